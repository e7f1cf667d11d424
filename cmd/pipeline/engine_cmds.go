package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

// Exit codes, chosen here only.
const (
	exitOK      = 0
	exitErr     = 1
	exitPending = 2 // plan: there is work to do
	// exitInterrupted is a run stopped by SIGINT or SIGTERM: 128 + SIGINT, as shells report
	// a command killed by Ctrl-C, so scripts can tell it from a failure.
	exitInterrupted = 130
)

var varFlag = &cli.StringSliceFlag{Name: "var", Usage: "set a variable: -var NAME=VALUE (repeatable)"}

// loaded is a pipeline file ready to plan or run.
type loaded struct {
	engine *pipeline.Engine
	cfg    *pipeline.Config
	abs    string // the pipeline file's absolute path
}

// load reads, checks and evaluates the pipeline file named by the first argument, printing
// every diagnostic with its source snippet. With checkSources it also reports source folders
// that do not exist (validate; plan and run report those they need when they hash them);
// without, it refuses stage references in quotes in the stages the command selects
// (Workflow.PathChecks; plan then looks in the sources of the stages it will run).
func load(c *cli.Context, checkSources bool) (*loaded, error) {
	l, err := loadFile(c, checkSources)
	if err != nil {
		return nil, err
	}
	store, err := pipeline.OpenStore(filepath.Dir(l.abs))
	if err != nil {
		return nil, err
	}
	l.engine.Store = store
	return l, nil
}

// loadFile is load without the store: for the commands that only read the file (validate,
// graph), which neither create the store in the workspace nor need to be able to write there
// (a read-only checkout validates as well). Its engine's Store is nil.
func loadFile(c *cli.Context, checkSources bool) (*loaded, error) {
	path := c.Args().First()
	if path == "" {
		path = "pipeline.hcl"
	}
	if c.Args().Len() > 1 {
		return nil, fmt.Errorf("expected one pipeline file, got %q", c.Args().Slice())
	}
	if _, _, err := workspaceFile(path); err != nil { // a missing file in one line, as runs says it
		return nil, err
	}
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	vars, err := parseVars(c.StringSlice("var"))
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, wf, diags := buildFile(path, reg, vars)
	if wf != nil && checkSources {
		diags = append(diags, wf.CheckSources(filepath.Dir(abs))...)
	} else if wf != nil && !diags.HasErrors() {
		// Of the stages the command selects: a bad --stage is the plan's to report.
		if insts, _, err := (&pipeline.Engine{Workflow: wf}).Select(selection(c)); err == nil {
			diags = append(diags, wf.PathChecks(filepath.Dir(abs), insts, false)...)
		}
	}
	if len(diags) > 0 {
		printDiagnostics(c.App.ErrWriter, cfg, diags)
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: %s", path, pipeline.Plural(len(diags.Errs()), "error", "errors"))
	}
	return &loaded{engine: &pipeline.Engine{Workflow: wf}, cfg: cfg, abs: abs}, nil
}

// buildFile reads the pipeline file at path and builds its workflow with the variables vars
// (nil when the file has no stages or cannot be read), with every diagnostic.
func buildFile(path string, reg *pipeline.Registry, vars map[string]string) (*pipeline.Config, *pipeline.Workflow, hcl.Diagnostics) {
	cfg, diags := pipeline.LoadFile(path, reg)
	if cfg == nil || cfg.Files == nil || len(cfg.Stages) == 0 {
		return cfg, nil, diags
	}
	wf, d := pipeline.Build(cfg, reg, vars)
	return cfg, wf, append(diags, d...)
}

// parseVars reads -var NAME=VALUE flags.
func parseVars(flags []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("-var %q: expected NAME=VALUE", kv)
		}
		vars[k] = v
	}
	return vars, nil
}

func printDiagnostics(w io.Writer, cfg *pipeline.Config, diags hcl.Diagnostics) {
	var files map[string]*hcl.File
	if cfg != nil {
		files = cfg.Files
	}
	width, color := 100, false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			width = cols
		}
		color = os.Getenv("NO_COLOR") == ""
	}
	hcl.NewDiagnosticTextWriter(w, files, uint(width), color).WriteDiagnostics(diags)
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a pipeline file without running anything",
		ArgsUsage: "[FILE]",
		Flags:     []cli.Flag{varFlag},
		Action: func(c *cli.Context) error {
			l, err := loadFile(c, true)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s is valid: %s (%s), %s\n", l.cfg.Path,
				pipeline.Plural(len(l.cfg.Stages), "stage", "stages"), pipeline.Plural(len(l.engine.Workflow.Instances), "instance", "instances"),
				pipeline.Plural(len(l.cfg.Schedules), "schedule", "schedules"))
			return nil
		},
	}
}

func selectionFlags() []cli.Flag {
	return []cli.Flag{
		varFlag,
		&cli.StringSliceFlag{Name: "stage", Usage: "bring what `NAME` needs up to date and run NAME (repeatable; kind.name, kind.name[key] or kind.name.key)"},
		&cli.BoolFlag{Name: "force", Usage: "rerun the selected stages (all without --stage) even when cached"},
		&cli.BoolFlag{Name: "downstream", Usage: "also run everything that depends on the selected stages"},
	}
}

// selection is the stages the flags select (the engine refuses a --stage that names none,
// saying what it could have meant).
func selection(c *cli.Context) pipeline.Selection {
	return pipeline.Selection{Targets: c.StringSlice("stage"), Force: c.Bool("force"), Downstream: c.Bool("downstream")}
}

func planCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "show what run would do and why (exit 0: nothing to do, 2: work pending, 1: error)",
		ArgsUsage: "[FILE]",
		Flags:     append(selectionFlags(), &cli.BoolFlag{Name: "json", Usage: "print the plan as JSON"}),
		Action: func(c *cli.Context) error {
			// A plan is short and its garbage small (about 1 KB per source file): collecting
			// less often saves 10–20 % of a 50,000-file plan for 25 MB more peak memory.
			defer debug.SetGCPercent(debug.SetGCPercent(400))
			l, err := load(c, false)
			if err != nil {
				return err
			}
			sel := selection(c)
			plan, err := l.engine.Plan(sel)
			if err != nil {
				return err
			}
			// What the stages that will run can be told to fail on from their sources (a
			// class too small to split): looked for in those alone, a cached stage cannot.
			var running []*pipeline.Instance
			for _, d := range plan {
				if inst, ok := l.engine.Workflow.Instance(d.Addr); ok && d.Action == pipeline.Run {
					running = append(running, inst)
				}
			}
			if diags := l.engine.Workflow.PathChecks(l.engine.Store.Workspace, running, true); len(diags) > 0 {
				printDiagnostics(c.App.ErrWriter, l.cfg, diags)
			}
			pending := printPlan(c.App.Writer, plan, c.Bool("json"))
			if pending {
				return exitError{code: exitPending}
			}
			return nil
		},
	}
}

// printPlan prints one line per instance and reports whether anything will run.
func printPlan(w io.Writer, plan []*pipeline.Decision, asJSON bool) bool {
	pending := false
	for _, d := range plan {
		if d.Action == pipeline.Run {
			pending = true
		}
	}
	if asJSON {
		for _, d := range plan {
			if d.Reasons == nil {
				d.Reasons = []string{} // always there, as the docs list it: [] for none
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"stages": plan, "pending": pending})
		return pending
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	runs, maybe := 0, 0
	for _, d := range plan {
		mark, what := "=", "cached"
		if d.Action == pipeline.Run {
			runs++
			mark, what = "~", "rerun"
			if d.New {
				mark, what = "+", "run"
			}
			if !d.Certain {
				mark, what = "?", "may run"
				runs, maybe = runs-1, maybe+1
			}
		}
		reason := strings.Join(d.Reasons, "; ")
		if reason != "" {
			reason = ": " + reason
		}
		fmt.Fprintf(tw, "%s %s\t%s%s\n", mark, d.Addr, what, reason)
	}
	tw.Flush()
	if maybe > 0 {
		// Their keys depend on outputs made first: they run only if those come out changed.
		fmt.Fprintf(w, "%d to run, %d may run (if what they use comes out changed), %d cached\n", runs, maybe, len(plan)-runs-maybe)
	} else {
		fmt.Fprintf(w, "%d to run, %d cached\n", runs, len(plan)-runs)
	}
	return pending
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "bring the pipeline's stages up to date",
		ArgsUsage: "[FILE]",
		Flags: append(selectionFlags(),
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "stages to run at once (0: the number of CPUs)", DefaultText: "number of CPUs"},
			&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "after a failure, run what does not depend on it"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and stop (exit status as plan's: 2 when there is work to do)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors and the summary"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every line stages log"},
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "where run folders go, relative to the pipeline file"},
		),
		Action: func(c *cli.Context) error {
			ignoreBrokenPipes()
			if c.Int("jobs") < 0 {
				return fmt.Errorf("--jobs %d: the number of stages to run at once must be 1 or more (0: the number of CPUs)", c.Int("jobs"))
			}
			if c.Bool("quiet") && c.Bool("verbose") {
				return fmt.Errorf("--quiet and --verbose ask for opposite things: give one of them")
			}
			l, err := load(c, false)
			if err != nil {
				return err
			}
			sel := selection(c)
			if c.Bool("dry-run") {
				plan, err := l.engine.Plan(sel)
				if err != nil {
					return err
				}
				if printPlan(c.App.Writer, plan, false) {
					return exitError{code: exitPending} // as plan: 2 when there is work to do
				}
				return nil
			}
			// libtensorflow takes a quarter of a second to load: it loads in the background
			// while the engine plans and hashes, and the first stage that executes waits for
			// it (a missing library fails that stage). A run with everything cached does not
			// wait, and the process may end while it loads, unless planning itself needs the
			// library: keys of stages that run TensorFlow name the GPUs a session lists when
			// the build is not the CPU-only wheel, and the loaded files when PIPELINE_LIBTENSORFLOW
			// names another library (graphs.NumericsEnvironment).
			loaded := make(chan error, 1)
			go func() { loaded <- graphs.LoadTensorFlow() }()
			ctx, stop := interruptible(c)
			defer stop()
			rep := newReporter(c.App.ErrWriter, c.Bool("quiet"), c.Bool("verbose"))
			rec, err := l.engine.Run(ctx, pipeline.RunOptions{
				Selection: sel,
				Jobs:      c.Int("jobs"),
				KeepGoing: c.Bool("keep-going"),
				RunsDir:   pipeline.InWorkspace(l.engine.Store.Workspace, c.String("runs-dir")),
				Reporter:  rep,
				Versions:  versions(),
				Prepare: func() error { // called once, before the first stage that executes
					if err := <-loaded; err != nil {
						return err
					}
					graphs.QuietStartupLines() // the run cannot end while a stage waits for this
					stages.StartRun()
					return nil
				},
			})
			rep.close()
			if rec != nil {
				sum := stages.Summarize(rec)
				sum.WriteTable(c.App.Writer)
				if _, err := sum.WriteHTML(); err != nil {
					fmt.Fprintf(c.App.ErrWriter, "pipeline: writing report.html: %v\n", err)
				}
				printRunSummary(c.App.Writer, rec)
			}
			if ierr := interruptedExit(err); ierr != nil {
				return ierr
			}
			return err
		},
	}
}

// interruptible returns the context for a run that SIGINT and SIGTERM stop: the stages in
// progress are cancelled, finished ones are kept, and the run still writes its run.json
// (status cancelled) and removes its unpublished outputs. Until stop is called, the signals
// no longer end the process; report the run's end with interruptedExit. run and
// schedule --once share this.
func interruptible(c *cli.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
}

// ignoreBrokenPipes lets a run outlive the reader of its output (`pipeline run | head`, a log
// viewer closed): with SIGPIPE ignored, a write to a pipe whose reader is gone fails, and the
// reporter and loggers go on without it, where the signal would kill the process mid-run,
// before its run.json. run, schedule and serve call it; it holds until the process ends.
func ignoreBrokenPipes() { signal.Ignore(syscall.SIGPIPE) }

// interruptedExit returns the error a command ends with when err says its run was stopped by
// SIGINT or SIGTERM (it wraps context.Canceled): exit status exitInterrupted with a message
// that the next run resumes. It returns nil for any other err.
func interruptedExit(err error) error {
	if errors.Is(err, context.Canceled) {
		return exitError{code: exitInterrupted, err: errors.New("interrupted; finished stages are kept and the next run resumes from them")}
	}
	return nil
}

func versions() map[string]string {
	return map[string]string{"pipeline": version, "libtensorflow": graphs.TensorFlowVersion()}
}

func printRunSummary(w io.Writer, rec *pipeline.RunRecord) {
	counts := map[string]int{}
	for _, s := range rec.Stages {
		counts[s.Status]++
	}
	var parts []string
	for _, st := range []string{pipeline.StatusRan, pipeline.StatusCached, pipeline.StatusFailed, pipeline.StatusSkipped, pipeline.StatusCancelled} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	fmt.Fprintf(w, "run %s %s in %s: %s\nrun folder: %s\n", rec.ID, rec.Status,
		rec.Finished.Sub(rec.Started).Round(100*time.Millisecond), strings.Join(parts, ", "), rec.Dir())
}

// workspaceFile returns the pipeline file a command names (default pipeline.hcl) and its
// folder, the workspace, for commands that only look at the workspace's folders (runs,
// promote) and so work whatever the file holds. A file named on the command line must exist;
// the default need not, which makes the current folder the workspace.
func workspaceFile(file string) (string, string, error) {
	if file == "" {
		return "pipeline.hcl", ".", nil
	}
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("pipeline file %s does not exist", file)
	}
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		return "", "", fmt.Errorf("%s is a folder; give the pipeline file in it (e.g. %s)", file, filepath.Join(file, "pipeline.hcl"))
	}
	return file, filepath.Dir(file), nil
}

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:      "runs",
		Usage:     "list the run folders of FILE's workspace with their status",
		ArgsUsage: "[FILE]",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "the folder of run folders, relative to the pipeline file"}},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return fmt.Errorf("expected one pipeline file, got %q", c.Args().Slice())
			}
			file, ws, err := workspaceFile(c.Args().First())
			if err != nil {
				return err
			}
			return listRuns(c.App.Writer, file, ws, pipeline.InWorkspace(ws, c.String("runs-dir")), time.Now())
		},
	}
}

// listRuns prints a line per run folder in runsDir: from its run.json, or for a folder
// without one, "running" when it is the run of the live process holding the workspace lock,
// else "incomplete" (the run was killed before it could write run.json).
func listRuns(w io.Writer, file, ws, runsDir string, now time.Time) error {
	entries, err := os.ReadDir(runsDir)
	if errors.Is(err, fs.ErrNotExist) {
		if _, ferr := os.Stat(file); errors.Is(ferr, fs.ErrNotExist) {
			return fmt.Errorf("pipeline file %s does not exist, nor does the runs folder %s; name the pipeline file, or run this in its folder", file, runsDir)
		}
		return fmt.Errorf("%s does not exist: no run of %s has used it (--runs-dir names another runs folder)", runsDir, file)
	}
	if err != nil {
		return err
	}
	holder, err := pipeline.LockHolder(ws)
	if err != nil {
		return err
	}
	// A run folder holds run.json, or run.log from its creation on; not filepath.Glob, as a
	// folder name holding '[' or '*' would match nothing.
	var runs, unfinished []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // hidden: not a run (one gc is removing, say)
		}
		dir := filepath.Join(runsDir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "run.json")); err == nil {
			runs = append(runs, dir)
		} else if fi, err := os.Stat(filepath.Join(dir, "run.log")); err == nil && fi.Mode().IsRegular() {
			runs = append(runs, dir)
			unfinished = append(unfinished, dir)
		}
	}
	if len(runs) == 0 {
		fmt.Fprintf(w, "%s holds no run folders\n", runsDir)
		return nil
	}
	sort.Strings(runs)
	running := runningFolder(holder, unfinished)
	// a run whose select did not promote, of which a model was promoted by hand since
	// (into final_models beside the runs, select's default)
	promoted := stages.PromotedRuns(filepath.Join(runsDir, "final_models"))
	aside := stages.SetAsideRuns(filepath.Join(runsDir, "final_models"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tstatus\tduration\tran\tcached\tfailed\tnot run\tpipeline\toptions\tresult")
	for _, dir := range runs {
		name := filepath.Base(dir)
		b, err := os.ReadFile(filepath.Join(dir, "run.json"))
		if errors.Is(err, fs.ErrNotExist) {
			// Started at the time in the folder's name; last heard of when run.log last grew.
			started, _ := time.Parse("20060102_150405", name[:min(len(name), 15)])
			status, until := "incomplete", now
			if dir == running {
				status = "running"
				if started.IsZero() {
					started = holder.Started
				}
			} else if fi, err := os.Stat(filepath.Join(dir, "run.log")); err == nil {
				until = fi.ModTime()
			}
			took := "-"
			if !started.IsZero() {
				took = until.Sub(started).Round(time.Second).String()
			}
			// What it was asked: the command line the lock records, or run.log for a run
			// killed (logged from this version on).
			command := loggedCommand(filepath.Join(dir, "run.log"))
			if dir == running && holder.Command != "" {
				command = holder.Command
			}
			file, options := commandSummary(command)
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t%s\t%s\t-\n", name, status, took, file, options)
			continue
		}
		var rec pipeline.RunRecord
		if err != nil || json.Unmarshal(b, &rec) != nil {
			fmt.Fprintf(tw, "%s\t(unreadable run.json)\n", name)
			continue
		}
		n := map[string]int{}
		for _, s := range rec.Stages {
			n[s.Status]++
		}
		result := runResult(&rec)
		switch by, set := setAsideWinner(aside[rec.ID], result); {
		case len(promoted[rec.ID]) > 0 && strings.Contains(result, "not promoted"):
			result += promotedByHand(promoted[rec.ID], result)
		case len(promoted[rec.ID]) > 0 && result == "-":
			// no select ran (the run failed or was cancelled first): a model of it promoted by hand
			result = strings.Join(promoted[rec.ID], ", ") + " promoted by hand since"
		case set && by == stages.SetAsideByRollback:
			result += " (rolled back since)"
		case set:
			result += " (set aside since)"
		}
		// not run: skipped after an upstream failure, or cancelled
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", rec.ID, rec.Status, rec.Finished.Sub(rec.Started).Round(time.Second),
			n[pipeline.StatusRan], n[pipeline.StatusCached], n[pipeline.StatusFailed], n[pipeline.StatusSkipped]+n[pipeline.StatusCancelled], rec.Pipeline, runOptions(&rec), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, dir := range runs {
		printBrokenLinks(w, ws, dir)
	}
	return nil
}

// printBrokenLinks says which links of the run folder dir into the store lead nowhere, and
// what to do about them: a command per link that links it again where the store has its
// target, else that the store no longer has it.
func printBrokenLinks(w io.Writer, ws, dir string) {
	var relink, gone []pipeline.BrokenLink
	for _, b := range pipeline.BrokenLinks(ws, dir) {
		if b.Now != "" {
			relink = append(relink, b)
		} else {
			gone = append(gone, b)
		}
	}
	name := filepath.Base(dir)
	if len(relink) > 0 {
		fmt.Fprintf(w, "%s: %s nowhere, made when the workspace's store was elsewhere (the workspace and this runs folder moved apart): put them back side by side, or make the links anew:\n",
			name, pipeline.Plural(len(relink), "link leads", "links lead"))
		for _, b := range relink {
			fmt.Fprintf(w, "  ln -sfn %s %s\n", b.Now, filepath.Join(dir, filepath.FromSlash(b.Link)))
		}
	}
	for _, b := range gone {
		if b.Object == "" {
			fmt.Fprintf(w, "%s: %s leads nowhere (%s)\n", name, b.Link, b.Target)
			continue
		}
		fmt.Fprintf(w, "%s: %s leads nowhere: the store no longer has output %s (a run that makes it again, with this run's settings, brings it back)\n",
			name, b.Link, b.Object[:min(12, len(b.Object))])
	}
}

// runningFolder returns which of the folders without run.json is the run of the lock's live
// holder: the one the lock file names, or, when it names none (an older pipeline, or a
// holder between taking the lock and making its folder), the newest made since the holder
// started; "" when there is no holder or no such folder.
func runningFolder(holder *pipeline.LockOwner, unfinished []string) string {
	if holder == nil {
		return ""
	}
	if holder.Run != "" {
		want, err := os.Stat(holder.Run)
		for _, dir := range unfinished {
			if fi, err2 := os.Stat(dir); err == nil && err2 == nil && os.SameFile(fi, want) {
				return dir
			}
		}
		return ""
	}
	newest := ""
	for _, dir := range unfinished {
		if fi, err := os.Stat(dir); err == nil && !fi.ModTime().Before(holder.Started.Truncate(time.Second)) && dir > newest {
			newest = dir
		}
	}
	return newest
}

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:      "graph",
		Usage:     "print the stage graph in Graphviz DOT",
		ArgsUsage: "[FILE]",
		Flags:     []cli.Flag{varFlag},
		Action: func(c *cli.Context) error {
			l, err := loadFile(c, false)
			if err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintln(w, "digraph pipeline {\n  rankdir=LR;\n  node [shape=box];")
			for _, i := range l.engine.Workflow.Instances {
				fmt.Fprintf(w, "  %q;\n", i.Addr)
			}
			for _, i := range l.engine.Workflow.Instances {
				for _, d := range i.Deps {
					fmt.Fprintf(w, "  %q -> %q;\n", d, i.Addr)
				}
			}
			fmt.Fprintln(w, "}")
			return nil
		},
	}
}

// pruneChampions removes, for gc --keep-champions, the promoted models of every folder the
// file's select stages promote to but the champion and the keep champions before it, and
// returns what it says about them and their folders (for a dry run's count of what gc frees).
func pruneChampions(c *cli.Context, l *loaded, keep int) (string, []string, error) {
	verb := "removed"
	if c.Bool("dry-run") {
		verb = "would remove"
	}
	folders := promotionFolders(l.engine.Workflow)
	if len(folders) == 0 {
		return "no select stage promotes a model: no promoted models to remove\n", nil, nil
	}
	var b strings.Builder
	var dirs []string
	for _, rel := range slices.Sorted(maps.Keys(folders)) {
		to := pipeline.InWorkspace(l.engine.Store.Workspace, rel)
		pruned, err := stages.PruneChampions(to, keep, c.Bool("dry-run"))
		if err != nil {
			return b.String(), dirs, fmt.Errorf("%s: %w", rel+".d", err)
		}
		for _, p := range pruned {
			dirs = append(dirs, filepath.Join(to+".d", p.ID))
		}
		var freed, bytes int64
		for _, p := range pruned {
			freed, bytes = freed+p.Freed, bytes+p.Bytes
		}
		kept := "the champion alone"
		if keep > 0 {
			kept = fmt.Sprintf("the champion and up to %s before it", pipeline.Plural(keep, "champion", "champions"))
		}
		fmt.Fprintf(&b, "%s %s from %s, keeping %s", verb, pipeline.Plural(len(pruned), "promoted model", "promoted models"), rel+".d", kept)
		if len(pruned) == 0 {
			b.WriteString("\n")
			continue
		}
		// A promoted model's files are hard links to the store's output while gc keeps
		// that: removing the model frees only what no output holds.
		fmt.Fprintf(&b, ": frees %s (%s in their files, the rest held by stored outputs)\n", bytesText(freed), bytesText(bytes))
		for _, p := range pruned {
			when := "promoted at an unknown time (its card cannot be read)"
			if !p.Promoted.IsZero() {
				when = p.Promoted.Local().Format("promoted 2006-01-02 15:04")
			}
			if p.SetAside != "" {
				when += ", " + p.SetAside
			}
			fmt.Fprintf(&b, "  %-28s %9s  %s\n", p.ID, bytesText(p.Bytes), when)
		}
	}
	return b.String(), dirs, nil
}

// bytesText says a size in MB (of 1,000,000), one decimal, as gc's other lists do, so that a
// column of them lines up.
func bytesText(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// championRuns returns the run folders (by name) that trained the champions of the file's
// select stages, which gc --keep-runs keeps: their plots and metrics, and promote RUN/FOLDER,
// which installs a champion again from them.
func championRuns(l *loaded) map[string]bool {
	runs := map[string]bool{}
	for rel := range promotionFolders(l.engine.Workflow) {
		promotions, _, err := stages.History(pipeline.InWorkspace(l.engine.Store.Workspace, rel))
		if err != nil || len(promotions) == 0 {
			continue
		}
		if run, _, ok := stages.RunOfPromotion(promotions[len(promotions)-1]); ok {
			runs[run] = true
		}
	}
	return runs
}

// agreeRuns is "the run folder" or "the N run folders".
func agreeRuns(n int) string {
	if n == 1 {
		return "the run folder"
	}
	return fmt.Sprintf("the %d run folders", n)
}

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:      "gc",
		Usage:     "remove stored outputs that neither FILE's plan, nor a stage's current state, nor a run folder uses, and checkpoints no run would resume from, listing each",
		ArgsUsage: "[FILE]",
		Flags: []cli.Flag{varFlag,
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "the folder of run folders, relative to the pipeline file (every other one a run has used is looked in too)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be removed, remove nothing"},
			&cli.IntFlag{Name: "keep-runs", Usage: "first remove the run folders of --runs-dir but the newest `N` that succeeded and the newest N of the others (failed, cancelled, killed)", DefaultText: "keep them all"},
			&cli.IntFlag{Name: "keep-champions", Usage: "remove the promoted models of the file's select stages but the champion and the `N` champions before it (what --rollback goes back through)", DefaultText: "keep them all"}},
		Action: func(c *cli.Context) error {
			keepRuns, keepChampions := -1, -1
			if c.IsSet("keep-runs") {
				if keepRuns = c.Int("keep-runs"); keepRuns < 0 {
					return fmt.Errorf("--keep-runs %d: the number of run folders to keep must be 0 or more", keepRuns)
				}
			}
			if c.IsSet("keep-champions") {
				if keepChampions = c.Int("keep-champions"); keepChampions < 0 {
					return fmt.Errorf("--keep-champions %d: the number of earlier champions to keep must be 0 or more", keepChampions)
				}
			}
			l, err := load(c, false)
			if err != nil {
				return err
			}
			runsDir := pipeline.InWorkspace(l.engine.Store.Workspace, c.String("runs-dir"))
			l.engine.Store.PinnedRuns = championRuns(l)
			// Promoted models go only once gc's plan tells what is used (it removes nothing
			// until it can), and before it removes outputs, so that their sizes are what a
			// dry run says.
			champions := ""
			var first func() ([]string, error)
			if keepChampions >= 0 {
				first = func() (dirs []string, err error) {
					champions, dirs, err = pruneChampions(c, l, keepChampions)
					return dirs, err
				}
			}
			res, err := l.engine.GC(runsDir, c.Bool("dry-run"), keepRuns, first)
			if err != nil {
				fmt.Fprint(c.App.Writer, champions)
				return err
			}
			verb := "removed"
			if c.Bool("dry-run") {
				verb = "would remove"
			}
			w := c.App.Writer
			if keepRuns >= 0 {
				fmt.Fprintf(w, "%s %s", verb, pipeline.Plural(len(res.Runs), "run folder", "run folders"))
				if len(res.Runs) > 0 {
					fmt.Fprintf(w, " (%s)", strings.Join(res.Runs, ", "))
				}
				fmt.Fprintf(w, ", keeping the newest %d that succeeded and the newest %d of the others", keepRuns, keepRuns)
				if len(res.Pinned) > 0 {
					fmt.Fprintf(w, ", and %s that trained the champion (%s)", agreeRuns(len(res.Pinned)), strings.Join(res.Pinned, ", "))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprint(w, champions)
			freed := fmt.Sprintf("%.1f MB", float64(res.Bytes)/1e6)
			if res.Freed != res.Bytes {
				// Hard links to the files of outputs kept, or of run folders, free nothing.
				freed = fmt.Sprintf("%.1f MB freed of %.1f MB in their files, the rest shared with what is kept", float64(res.Freed)/1e6, float64(res.Bytes)/1e6)
			}
			fmt.Fprintf(w, "%s %s (%s) and %s; kept %s\n", verb, pipeline.Plural(res.Objects, "output", "outputs"),
				freed, pipeline.Plural(res.Keys, "cache entry", "cache entries"), pipeline.Plural(res.Kept, "output", "outputs"))
			for _, o := range res.Removed {
				made, who := "", "no cache entry"
				if !o.Created.IsZero() {
					made = o.Created.Local().Format("made 2006-01-02 15:04")
				}
				if len(o.Addrs) > 0 {
					who = strings.Join(o.Addrs, ", ")
				}
				fmt.Fprintf(w, "  %-28s %9.1f MB  %-22s %s\n", who, float64(o.Bytes)/1e6, made, o.Digest[:min(12, len(o.Digest))])
			}
			if len(res.Work) > 0 {
				var bytes int64
				for _, wk := range res.Work {
					bytes += wk.Bytes
				}
				fmt.Fprintf(w, "%s %s (%.1f MB) of interrupted stages no run resumes from\n", verb,
					pipeline.Plural(len(res.Work), "scratch folder", "scratch folders"), float64(bytes)/1e6)
				for _, wk := range res.Work {
					fmt.Fprintf(w, "  %-28s %9.1f MB  %s\n", cmp.Or(wk.Addr, "(stage not noted)"), float64(wk.Bytes)/1e6, wk.Key[:min(12, len(wk.Key))])
				}
			}
			return nil
		},
	}
}

// runResult says, for runs, what the run's effects came to (StageResult.Summary: select's
// "cnn 0.8295, promoted"), each after its stage's address when there are several; "-" for
// none.
func runResult(rec *pipeline.RunRecord) string {
	var all []*pipeline.StageResult
	summaries := map[*pipeline.StageResult]string{}
	for _, s := range rec.Stages {
		if sum := cmp.Or(s.Summary, legacySummary(s.Effect)); sum != "" {
			all = append(all, s)
			summaries[s] = sum
		}
	}
	if len(all) == 1 {
		return summaries[all[0]]
	}
	var parts []string
	for _, s := range all {
		parts = append(parts, s.Addr+": "+summaries[s])
	}
	return cmp.Or(strings.Join(parts, "; "), "-")
}

// selectWinner returns the candidate named in a run's result (as runResult gives it; of the
// last select stage when there are several) and whether that select promoted it: the result
// ends "cnn 0.8295, promoted" or "cnn 0.8295, not promoted", with "(trained on N of its test
// images)" after the score when its evaluation counts test photos it saw; ok is false for
// another result.
func selectWinner(result string) (name string, promoted, ok bool) {
	if i := strings.LastIndex(result, "; "); i >= 0 {
		result = result[i+2:]
	}
	m := selectResult.FindStringSubmatch(result)
	if m == nil {
		return "", false, false
	}
	name = m[1]
	if addr, rest, cut := strings.Cut(name, ": "); cut && strings.HasPrefix(addr, "select.") {
		name = rest
	}
	return name, m[2] == "promoted", true
}

// selectResult matches a select stage's result: the winner, its score, and what came of it.
var selectResult = regexp.MustCompile(`^(.+?) \S+(?: \(trained on \d+ of its test images\))?, (promoted|not promoted)$`)

// setAsideWinner returns how the model a run's select promoted (named in its result, as
// runResult gives it) was set aside since, among the run's models set aside (by their folders,
// as stages.SetAsideRuns gives them), and whether it was: another model of the run set aside
// (one promoted by hand, then rolled back) says nothing of the one select promoted.
func setAsideWinner(aside map[string]string, result string) (string, bool) {
	name, promoted, ok := selectWinner(result)
	if !ok || !promoted {
		return "", false
	}
	by, ok := aside[stages.PromotedFolder(name)]
	return by, ok
}

// promotedByHand is what runs adds to the result of a run whose select did not promote, some
// of whose models (folders) were promoted by hand since: " (promoted by hand since)" when that
// is the run's winner, else naming them (" (vit promoted by hand since)").
func promotedByHand(folders []string, result string) string {
	if name, _, ok := selectWinner(result); ok && slices.Contains(folders, stages.PromotedFolder(name)) || len(folders) == 0 {
		return " (promoted by hand since)"
	}
	return " (" + strings.Join(folders, ", ") + " promoted by hand since)"
}

// Select's notes as runs recorded them before they recorded a summary (run.json's effect).
var (
	legacyPromoted = regexp.MustCompile(`^(?:.*; )?promoted (\S+) \(\S+ ([0-9.]+|NaN)[;)]`)
	legacyChampion = regexp.MustCompile(`^(?:.*; )?(\S+) \(\S+ ([0-9.]+|NaN)\) is already the champion`)
)

// legacySummary is the summary of a select stage's note in a run recorded before select gave
// one (StageResult.Summary), "" for a note of another kind.
func legacySummary(effect string) string {
	if m := legacyPromoted.FindStringSubmatch(effect); m != nil {
		return m[1] + " " + m[2] + ", promoted"
	}
	if m := legacyChampion.FindStringSubmatch(effect); m != nil {
		return m[1] + " " + m[2] + ", champion"
	}
	if strings.HasPrefix(effect, "not promoted: ") {
		return "not promoted"
	}
	return ""
}

// runOptions says, for runs, what a run was asked beyond its pipeline file: the command line's
// options that change what it does (-var, --stage, --force, …; not --quiet or --verbose), and
// that a schedule started it ("scheduled -var epochs=3"); "" for a plain run. The record holds
// the command line joined with spaces: the pipeline file's path, which may hold some, is taken
// out as a whole.
// commandSummary is the pipeline file and the options of a run's command line, as runs shows
// them ("-" and "" for none).
func commandSummary(command string) (file, options string) {
	if command == "" {
		return "-", ""
	}
	rec := pipeline.RunRecord{Command: command}
	args := strings.Fields(command)
	if i := slices.IndexFunc(args, func(a string) bool { return strings.HasSuffix(a, ".hcl") }); i >= 0 {
		rec.Pipeline = args[i]
	} else if len(args) > 1 && len(positionalArgs(args[2:])) == 0 {
		rec.Pipeline = "pipeline.hcl" // no file named, only flags: the commands' default
	}
	if len(args) > 1 && args[1] == "schedule" {
		rec.Trigger = "schedule" // a run the scheduler fired: its options are the scheduler's
	}
	return cmp.Or(rec.Pipeline, "-"), runOptions(&rec)
}

// loggedCommand reads a run's command line from the start of its run.log ("" when not there).
func loggedCommand(log string) string {
	f, err := os.Open(log)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 5 && sc.Scan(); i++ {
		if _, cmd, ok := strings.Cut(sc.Text(), " "+pipeline.CommandLogPrefix); ok {
			return cmd
		}
	}
	return ""
}

// valueFlags are the flags of run and schedule that take their value as the next word.
var valueFlags = []string{"-var", "--var", "-stage", "--stage", "-jobs", "--jobs", "-j", "-runs-dir", "--runs-dir"}

// positionalArgs returns the words of a command line's arguments that are not flags nor the
// values of valueFlags (the pipeline file, when one is named).
func positionalArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case slices.Contains(valueFlags, a):
			i++ // its value
		case !strings.HasPrefix(a, "-"):
			out = append(out, a)
		}
	}
	return out
}

func runOptions(rec *pipeline.RunRecord) string {
	verb, prefix := " run ", ""
	if rec.Trigger != "" { // fired by pipeline schedule, with its -var values
		verb, prefix = " schedule ", "scheduled"
	}
	_, rest, ok := strings.Cut(rec.Command, verb)
	if !ok {
		return prefix
	}
	if rec.Pipeline != "" {
		rest = strings.Replace(" "+rest+" ", " "+rec.Pipeline+" ", " ", 1)
	}
	var out []string
	for _, a := range strings.Fields(rest) {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && slices.Contains([]string{"quiet", "q", "verbose", "v", "once"}, name) {
			continue
		}
		if a == filepath.Base(rec.Pipeline) && strings.HasSuffix(a, ".hcl") {
			continue // named relative to another folder than the record's
		}
		out = append(out, a)
	}
	return strings.TrimSpace(prefix + " " + strings.Join(out, " "))
}
