package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
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
)

var varFlag = &cli.StringSliceFlag{Name: "var", Usage: "set a variable: -var NAME=VALUE (repeatable)"}

// loaded is a pipeline file ready to plan or run.
type loaded struct {
	engine *pipeline.Engine
	cfg    *pipeline.Config
}

// load reads, checks and evaluates the pipeline file named by the first argument, printing
// every diagnostic with its source snippet. With checkSources it also reports source folders
// that do not exist (validate; plan and run report those they need when they hash them).
func load(c *cli.Context, checkSources bool) (*loaded, error) {
	path := c.Args().First()
	if path == "" {
		path = "pipeline.hcl"
	}
	if c.Args().Len() > 1 {
		return nil, fmt.Errorf("expected one pipeline file, got %q", c.Args().Slice())
	}
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, kv := range c.StringSlice("var") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("-var %q: expected NAME=VALUE", kv)
		}
		vars[k] = v
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, diags := pipeline.LoadFile(path, reg)
	var wf *pipeline.Workflow
	if cfg != nil && cfg.Files != nil && len(cfg.Stages) > 0 {
		var d hcl.Diagnostics
		wf, d = pipeline.Build(cfg, reg, vars)
		diags = append(diags, d...)
		if checkSources {
			diags = append(diags, wf.CheckSources(filepath.Dir(abs))...)
		}
	}
	if len(diags) > 0 {
		printDiagnostics(c.App.ErrWriter, cfg, diags)
	}
	if diags.HasErrors() {
		n := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				n++
			}
		}
		return nil, fmt.Errorf("%s: %d error(s)", path, n)
	}
	store, err := pipeline.OpenStore(filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	return &loaded{engine: &pipeline.Engine{Workflow: wf, Store: store}, cfg: cfg}, nil
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
			l, err := load(c, true)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s is valid: %d stages (%d instances), %d schedules\n",
				l.cfg.Path, len(l.cfg.Stages), len(l.engine.Workflow.Instances), len(l.cfg.Schedules))
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
			plan, err := l.engine.Plan(selection(c))
			if err != nil {
				return err
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
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"stages": plan, "pending": pending})
		return pending
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	runs := 0
	for _, d := range plan {
		mark, what := "=", "cached"
		if d.Action == pipeline.Run {
			runs++
			mark, what = "~", "rerun"
			if d.New {
				mark, what = "+", "run"
			}
			if !d.Known {
				mark = "?"
			}
		}
		reason := strings.Join(d.Reasons, "; ")
		if reason != "" {
			reason = ": " + reason
		}
		fmt.Fprintf(tw, "%s %s\t%s%s\n", mark, d.Addr, what, reason)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d to run, %d cached\n", runs, len(plan)-runs)
	return pending
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "bring the pipeline's stages up to date",
		ArgsUsage: "[FILE]",
		Flags: append(selectionFlags(),
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "stages to run at once (default: number of CPUs)"},
			&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "after a failure, run what does not depend on it"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and stop"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors and the summary"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every line stages log"},
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "where run folders go, relative to the pipeline file"},
		),
		Action: func(c *cli.Context) error {
			l, err := load(c, false)
			if err != nil {
				return err
			}
			if c.Bool("dry-run") {
				plan, err := l.engine.Plan(selection(c))
				if err != nil {
					return err
				}
				printPlan(c.App.Writer, plan, false)
				return nil
			}
			// libtensorflow takes a quarter of a second to load: it loads in the background
			// while the engine plans and hashes, and the first stage that executes waits for
			// it (a missing library fails that stage). A run with everything cached does not
			// wait; the process may end while it loads.
			loaded := make(chan error, 1)
			go func() { loaded <- graphs.LoadTensorFlow() }()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep := newReporter(c.App.ErrWriter, c.Bool("quiet"), c.Bool("verbose"))
			rec, err := l.engine.Run(ctx, pipeline.RunOptions{
				Selection: selection(c),
				Jobs:      c.Int("jobs"),
				KeepGoing: c.Bool("keep-going"),
				RunsDir:   filepath.Join(l.engine.Store.Workspace, c.String("runs-dir")),
				Reporter:  rep,
				Versions:  versions(),
				Prepare: func() error { // called once, before the first stage that executes
					if err := <-loaded; err != nil {
						return err
					}
					graphs.QuietStartupLines() // the run cannot end while a stage waits for this
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
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted; finished stages are kept and the next run resumes from them")
			}
			return err
		},
	}
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

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "list run folders with their status",
		Flags: []cli.Flag{&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "the folder of run folders"}},
		Action: func(c *cli.Context) error {
			// Not filepath.Glob: a folder name holding '[' or '*' would match nothing.
			entries, _ := os.ReadDir(c.String("runs-dir"))
			var dirs []string
			for _, e := range entries {
				p := filepath.Join(c.String("runs-dir"), e.Name(), "run.json")
				if _, err := os.Stat(p); err == nil {
					dirs = append(dirs, p)
				}
			}
			sort.Strings(dirs)
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "run\tstatus\tduration\tran\tcached\tfailed\tpipeline")
			for _, p := range dirs {
				var rec pipeline.RunRecord
				b, err := os.ReadFile(p)
				if err != nil || json.Unmarshal(b, &rec) != nil {
					fmt.Fprintf(tw, "%s\t(unreadable run.json)\n", filepath.Base(filepath.Dir(p)))
					continue
				}
				n := map[string]int{}
				for _, s := range rec.Stages {
					n[s.Status]++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", rec.ID, rec.Status, rec.Finished.Sub(rec.Started).Round(time.Second),
					n[pipeline.StatusRan], n[pipeline.StatusCached], n[pipeline.StatusFailed], rec.Pipeline)
			}
			return tw.Flush()
		},
	}
}

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:      "graph",
		Usage:     "print the stage graph in Graphviz DOT",
		ArgsUsage: "[FILE]",
		Flags:     []cli.Flag{varFlag},
		Action: func(c *cli.Context) error {
			l, err := load(c, false)
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

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:      "gc",
		Usage:     "remove stored outputs that FILE's plan, no stage's current state and no run folder uses, listing each",
		ArgsUsage: "[FILE]",
		Flags: []cli.Flag{varFlag,
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "the folder of run folders, relative to the pipeline file (every other one a run has used is looked in too)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be removed, remove nothing"}},
		Action: func(c *cli.Context) error {
			l, err := load(c, false)
			if err != nil {
				return err
			}
			res, err := l.engine.GC(filepath.Join(l.engine.Store.Workspace, c.String("runs-dir")), c.Bool("dry-run"))
			if err != nil {
				return err
			}
			verb := "removed"
			if c.Bool("dry-run") {
				verb = "would remove"
			}
			w := c.App.Writer
			fmt.Fprintf(w, "%s %d outputs (%.1f MB) and %d cache entries; kept %d outputs\n",
				verb, res.Objects, float64(res.Bytes)/1e6, res.Keys, res.Kept)
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
			return nil
		},
	}
}
