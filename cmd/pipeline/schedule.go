package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

func scheduleCommand() *cli.Command {
	return &cli.Command{
		Name:      "schedule",
		Usage:     "run the file's schedule blocks in the foreground (retrain on cron)",
		ArgsUsage: "[FILE]",
		Flags: []cli.Flag{
			varFlag,
			&cli.BoolFlag{Name: "once", Usage: "fire the next due trigger now and exit (for tests and OS cron)"},
			&cli.StringFlag{Name: "schedule", Usage: "with --once, the schedule to fire (default: the one due next)"},
			&cli.BoolFlag{Name: "print-crontab", Usage: "print crontab lines doing the same with the OS scheduler, and exit"},
			&cli.BoolFlag{Name: "cancel-on-stop", Usage: "on the first SIGINT/SIGTERM cancel a run in progress instead of letting it finish (a second signal cancels it anyway)"},
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "where run folders go, relative to the pipeline file"},
		},
		Action: func(c *cli.Context) error {
			ignoreBrokenPipes()
			if c.Bool("once") && c.Bool("print-crontab") {
				return fmt.Errorf("--once and --print-crontab ask for different things (fire a schedule now, or print crontab lines): give one of them")
			}
			// Checked as validate checks it (its source folders too): a mistake found now,
			// not at the first trigger, hours later.
			l, err := load(c, true)
			if err != nil {
				return err
			}
			if len(l.cfg.Schedules) == 0 {
				// A target of the file's own: its select stage, else its last stage.
				addrs := l.engine.Workflow.BlockAddrs()
				target := "select.best"
				if n := len(l.engine.Workflow.Instances); n > 0 {
					target = l.engine.Workflow.Instances[n-1].Block
				}
				for _, a := range addrs {
					if strings.HasPrefix(a, "select.") {
						target = a
						break
					}
				}
				return fmt.Errorf("%s declares no schedule blocks; add one, e.g.\n\nschedule \"nightly\" {\n  cron    = \"0 3 * * *\"\n  targets = [stage.%s]\n}", l.cfg.Path, target)
			}
			if c.IsSet("schedule") && !c.Bool("once") {
				return fmt.Errorf("--schedule goes with --once (it names the schedule --once fires)")
			}
			if c.Bool("print-crontab") {
				if w := schedulerRunning(l.cfg.Path, "these lines would fire them as well"); w != "" {
					fmt.Fprintln(c.App.ErrWriter, w)
				}
				return printCrontab(c, l)
			}
			logger := log.New(c.App.ErrWriter, "", log.LstdFlags)
			s := &pipeline.Scheduler{Schedules: l.cfg.Schedules, Clock: scheduleClock, Logf: logger.Printf}
			if c.Bool("once") {
				if w := schedulerRunning(l.cfg.Path, "--once fires one as well, so it may run twice"); w != "" {
					logger.Print(w)
				}
				return fireOnce(c, logger, s)
			}
			reg, err := registry()
			if err != nil {
				return err
			}
			vars, err := parseVars(c.StringSlice("var"))
			if err != nil {
				return err
			}
			s.Reload = scheduleReloader(l.cfg.Path, reg, vars)
			return scheduleLoop(c, logger, s, l.cfg.Path)
		},
	}
}

// schedulerRunning returns a warning that a scheduler (`pipeline schedule` in the foreground)
// already fires the schedules of the workspace of file, naming it and saying why that
// matters (what, of the command asking), or "" when none runs: a crontab line or a systemd
// timer with --once next to it fires every trigger twice.
func schedulerRunning(file, what string) string {
	other, err := pipeline.SchedulerHolder(filepath.Dir(file))
	if err != nil || other == nil {
		return ""
	}
	return fmt.Sprintf("warning: a scheduler already fires this workspace's schedules (pid %d on %s, %q, since %s): %s; use either it or the OS scheduler, not both",
		other.PID, other.Host, other.Command, other.Started.Local().Format(time.DateTime), what)
}

// fireOnce fires the next due trigger of s now and ends as run does, so that cron or a systemd
// timer sees what happened: SIGINT or SIGTERM cancel the run (finished stages are kept, run.json
// says cancelled) and exit exitInterrupted; a failed retrain exits exitErr; success, nothing to
// do, or a workspace another process holds (logged as skipped) exit 0.
//
// With --schedule NAME it fires that schedule, else the one due next: an OS cron line or a
// timer that starts it at one schedule's time would otherwise fire whichever other schedule
// comes next (an hourly one, at a nightly's 03:00).
func fireOnce(c *cli.Context, logger *log.Logger, s *pipeline.Scheduler) error {
	if name := c.String("schedule"); name != "" {
		var names []string
		for _, sc := range s.Schedules {
			names = append(names, fmt.Sprintf("%q", sc.Name))
		}
		i := slices.IndexFunc(s.Schedules, func(sc *pipeline.Schedule) bool { return sc.Name == name })
		if i < 0 {
			return fmt.Errorf("--schedule %q: the file has no such schedule (it has %s)", name, strings.Join(names, ", "))
		}
		s = &pipeline.Scheduler{Schedules: s.Schedules[i : i+1], Clock: s.Clock, Logf: s.Logf}
	}
	next, err := s.Next(s.Clock.Now())
	if err != nil {
		return err
	}
	ctx, stop := interruptible(c)
	defer stop()
	logger.Printf("--once: firing schedule %q now (its next time would be %s)", next[0].Schedule, next[0].Due.Format(time.RFC3339))
	t := pipeline.Trigger{Schedule: next[0].Schedule, Due: s.Clock.Now().In(next[0].Due.Location()), Once: true}
	err = fireTrigger(ctx, ctx, c, logger, t, nil)
	if ierr := interruptedExit(err); ierr != nil {
		return ierr
	}
	if err != nil {
		return exitError{code: exitErr, err: err}
	}
	return nil
}

// scheduleLoop runs the schedules of s (from file) until SIGINT or SIGTERM. The first signal stops taking
// triggers (those queued are dropped) and lets a run in progress finish, or with
// --cancel-on-stop cancels it; a second signal cancels it. A cancelled run ends as run's does:
// its stages in progress are cancelled, finished ones kept, and run.json says cancelled. The
// command exits 0 when it stopped without cutting a run short, exitInterrupted when it cut one
// short. A failed trigger is logged and the scheduler waits for the next one.
func scheduleLoop(c *cli.Context, logger *log.Logger, s *pipeline.Scheduler, file string) error {
	other, release, err := pipeline.SchedulerLock(filepath.Dir(file))
	if err != nil {
		return err
	}
	defer release()
	if other != nil {
		logger.Printf("warning: another scheduler already schedules this workspace (pid %d on %s, %q, since %s): both fire their triggers, and whichever finds the workspace in use skips or queues its run; stop one of them",
			other.PID, other.Host, other.Command, other.Started.Local().Format(time.DateTime))
	}
	var cut atomic.Bool // a run was cancelled by a signal
	memo := &effectMemo{}
	stopCtx, stopTaking := context.WithCancel(c.Context)
	defer stopTaking()
	s.Fire = func(ctx context.Context, t pipeline.Trigger) {
		err := fireTrigger(ctx, stopCtx, c, logger, t, memo)
		switch {
		case errors.Is(err, context.Canceled): // fireTrigger logged the run as cancelled
			cut.Store(true)
		case err != nil:
			logger.Print(err)
		}
	}
	runCtx, cancelRun := context.WithCancel(c.Context)
	defer cancelRun()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			stopTaking()
			switch {
			case !s.Busy():
				logger.Printf("%s: no run in progress", signalName(sig))
				return // and none starts: the scheduler checks the stop again as it starts one
			case c.Bool("cancel-on-stop"):
				logger.Printf("%s: cancelling the run in progress (--cancel-on-stop)", signalName(sig))
				cancelRun()
				return
			}
			logger.Printf("%s: the run in progress finishes; SIGINT or SIGTERM again cancels it", signalName(sig))
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			logger.Printf("%s: cancelling the run in progress", signalName(sig))
			cancelRun()
		case <-done:
		}
	}()
	logger.Printf("scheduling %s of %s; Ctrl-C or SIGTERM stops taking triggers", pipeline.Plural(len(s.Schedules), "schedule", "schedules"), file)
	for _, sc := range s.Schedules {
		if sc.Timezone == "Local" {
			zone, from := localZone()
			logger.Printf("a schedule without timezone follows %s (%s)", cmp.Or(zone, "the machine's zone"), from)
			break
		}
	}
	logger.Printf("edits to the file's schedule blocks apply within a minute (it is read again every minute)")
	if err := s.Loop(stopCtx, runCtx); err != nil {
		return err
	}
	if cut.Load() {
		return interruptedExit(context.Canceled)
	}
	return nil
}

// scheduleReloader returns the Scheduler.Reload of the pipeline file at path: its schedule
// blocks, read again whenever the file's size, modification time or inode changed since the
// last call, which the first call takes as a change. The file is checked as validate checks
// it with the -var values vars (its stages and schedule targets too, short of the source
// folders), so that an edit the next trigger would refuse ("not run: 1 error", hours later)
// keeps the schedules as they were and is logged now. An error names the file's first error
// and its line.
func scheduleReloader(path string, reg *pipeline.Registry, vars map[string]string) func() ([]*pipeline.Schedule, error) {
	var last os.FileInfo
	var scheds []*pipeline.Schedule
	var lastErr error
	return func() ([]*pipeline.Schedule, error) {
		fi, err := os.Stat(path)
		if err != nil {
			last = nil
			return nil, err
		}
		if last != nil && os.SameFile(fi, last) && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()) {
			return scheds, lastErr
		}
		last = fi
		cfg, _, diags := buildFile(path, reg, vars)
		if errs := diags.Errs(); len(errs) > 0 {
			scheds, lastErr = nil, fmt.Errorf("%s has %s: %v", path, pipeline.Plural(len(errs), "error", "errors"), errs[0])
			return nil, lastErr
		}
		scheds, lastErr = cfg.Schedules, nil
		return scheds, nil
	}
}

// signalName names the signals the scheduler handles as kill(1) does.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// fireTrigger reloads the pipeline file (so edits apply to the next trigger), plans the
// schedule's targets, and runs them when anything is out of date, or when a target has an
// effect (select's promotion), which run applies even with every stage cached, so that the
// champion follows the current decision. It logs what it did and returns an error, naming the
// trigger, when the file, the plan or the run failed; a trigger skipped because another
// process holds the workspace lock is logged and not an error (the next trigger tries again).
//
// memo, when not nil (the loop's), remembers what each schedule's promotion was last applied
// to: a trigger with nothing out of date and nothing that promotion depends on changed since
// (the plan's keys, the promotion folder's link, history.json, the champion's files) runs
// nothing, instead of making a run folder to say the champion is already the champion.
func fireTrigger(ctx, stop context.Context, c *cli.Context, logger *log.Logger, t pipeline.Trigger, memo *effectMemo) error {
	l, err := load(c, false)
	if err != nil {
		return fmt.Errorf("%s: not run: %w", t, err)
	}
	var sched *pipeline.Schedule
	for _, s := range l.cfg.Schedules {
		if s.Name == t.Schedule {
			sched = s
		}
	}
	if sched == nil {
		logger.Printf("%s: the schedule is no longer in %s; nothing to do", t, l.cfg.Path)
		return nil
	}
	sel := pipeline.Selection{Targets: l.engine.Workflow.ScheduleTargets(sched)}
	plan, err := l.engine.Plan(sel)
	if err != nil {
		return fmt.Errorf("%s: planning failed: %w", t, err)
	}
	pending, maybe, what := 0, 0, ""
	for _, d := range plan {
		switch {
		case d.Action == pipeline.Run && d.Certain:
			pending++
		case d.Action == pipeline.Run:
			maybe++ // runs only if what it uses comes out changed
		}
	}
	if pending+maybe == 0 {
		effects := effectStages(l.engine.Workflow, plan)
		if len(effects) == 0 {
			logger.Printf("%s: up to date, nothing to run", t)
			return nil
		}
		keys := map[string]string{}
		for _, d := range plan {
			keys[d.Addr] = d.Key
		}
		if memo.unchanged(t.Schedule, effectState(l, keys, effects)) {
			logger.Printf("%s: up to date, and nothing %s's promotion depends on changed since the last trigger applied it; nothing to run", t, strings.Join(effects, ", "))
			return nil
		}
		// As run does: the effect (select's promotion) follows the current champion, which
		// may have changed (a rollback) or failed to change (a promotion that failed) since.
		what = fmt.Sprintf("up to date; running anyway, every stage cached, for the effect of %s (promotion), as run does", strings.Join(effects, ", "))
	} else {
		also := ""
		if maybe > 0 {
			also = fmt.Sprintf(", %d more if what they use comes out changed", maybe)
		}
		what = fmt.Sprintf("%s to run%s", pipeline.Plural(pending, "stage", "stages"), also)
	}
	// What is to run is said once the run holds the workspace: a process holding it (a run
	// started by hand) skips the trigger, or with overlap "queue" makes it wait, looking again
	// every lockPoll, until the scheduler is told to stop, which drops it; once the workspace
	// is free, the trigger starts over (the file read and planned again).
	opts := pipeline.RunOptions{Selection: sel, RunsDir: pipeline.InWorkspace(l.engine.Store.Workspace, c.String("runs-dir")),
		Reporter: newReporter(c.App.ErrWriter, true, false), Versions: versions(), Trigger: t.String(),
		Started: func(dir string) {
			logger.Printf("%s: %s; running in %s (its run.log follows the stages)", t, what, dir)
		}}
	stages.StartRun()
	rec, err := l.engine.Run(ctx, opts)
	if errors.Is(err, pipeline.ErrLocked) {
		if sched.Overlap != "queue" {
			logger.Printf("%s: %s; skipped: %v", t, what, err)
			return nil
		}
		logger.Printf("%s: %s; %v; waiting for it to finish (overlap = \"queue\")", t, what, err)
		for {
			// A stop (the loop's first signal) or a cancel (--once's signal, the loop's second
			// or --cancel-on-stop) drops the trigger, said so: --once gets both at once.
			select {
			case <-stop.Done():
			case <-ctx.Done():
			case <-time.After(lockPoll):
				// Once the workspace is free, the trigger starts over: it reads the file and
				// plans again, as the wait may have been long, the file edited meanwhile, and
				// the work done by the process waited for.
				lk, _, lerr := pipeline.AcquireLock(l.engine.Store.Workspace)
				if errors.Is(lerr, pipeline.ErrLocked) {
					continue
				}
				if lerr != nil {
					return fmt.Errorf("%s: not run: %w", t, lerr)
				}
				lk.Release()
				return fireTrigger(ctx, stop, c, logger, t, memo)
			}
			logger.Printf("%s: dropped while waiting for the workspace: the scheduler is stopping", t)
			return nil
		}
	}
	if rec == nil {
		return fmt.Errorf("%s: failed to start: %w", t, err)
	}
	sum := stages.Summarize(rec)
	if _, werr := sum.WriteHTML(); werr != nil {
		logger.Printf("%s: writing report.html: %v", t, werr)
	}
	// A failed run is said in one line, the error returned (the loop logs it, --once exits
	// with it), which names the run folder too; a cancelled one is logged here, as the loop
	// does not log a cancellation's error.
	failed := err != nil && !errors.Is(err, context.Canceled)
	if !failed {
		logger.Printf("%s: run %s %s (%s)", t, rec.ID, rec.Status, rec.Dir())
	}
	if sum.Decision != "" {
		logger.Printf("%s: %s", t, sum.Decision)
	}
	if err != nil {
		return fmt.Errorf("%s: run %s %s (%s): %w", t, rec.ID, rec.Status, rec.Dir(), err)
	}
	if memo != nil { // what the run left: its stages' keys, no second plan needed
		keys := map[string]string{}
		for _, st := range rec.Stages {
			keys[st.Addr] = st.Key
		}
		memo.remember(t.Schedule, effectState(l, keys, effectStages(l.engine.Workflow, plan)))
	}
	return nil
}

// effectMemo remembers, by schedule, the effectState a run of the schedule's targets left.
type effectMemo struct {
	mu   sync.Mutex
	last map[string]string
}

// unchanged reports whether state is what the schedule's last run left (false for a nil memo).
func (m *effectMemo) unchanged(schedule, state string) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	last, ok := m.last[schedule]
	return ok && last == state
}

func (m *effectMemo) remember(schedule, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]string{}
	}
	m.last[schedule] = state
}

// effectState describes what the promotion of the effect stages depends on: the key of every
// stage planned (keys, by address), and for each select stage what ChampionDir says of its promotion
// folder, history.json and the champion's card (by content), and the identity of the
// champion's folders and files the promotion checks (by stat, change time included, so a
// folder swapped in with its old times still differs).
func effectState(l *loaded, keys map[string]string, effects []string) string {
	var b strings.Builder
	for _, addr := range slices.Sorted(maps.Keys(keys)) {
		fmt.Fprintf(&b, "%s %s\n", addr, keys[addr])
	}
	stat := func(p string) string {
		fi, err := os.Lstat(p)
		if err != nil {
			return "missing"
		}
		id := fmt.Sprintf("%d %d %v", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id += fmt.Sprintf(" %d %d.%d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
		}
		return id
	}
	content := func(p string) string {
		data, err := os.ReadFile(p)
		if err != nil {
			return "missing"
		}
		return fmt.Sprintf("%x", sha256.Sum256(data))
	}
	for _, inst := range l.engine.Workflow.Instances {
		if !slices.Contains(effects, inst.Addr) {
			continue
		}
		v, diags := l.engine.Workflow.Evaluate(inst, nil)
		if diags.HasErrors() || v == nil || v.String("promote_to") == "" {
			fmt.Fprintf(&b, "%s unknown %d\n", inst.Addr, time.Now().UnixNano()) // never the same: the trigger runs
			continue
		}
		to := pipeline.InWorkspace(l.engine.Store.Workspace, v.String("promote_to"))
		champ, err := stages.ChampionDir(to)
		fmt.Fprintf(&b, "%s champion %q %v link %s history %s\n", inst.Addr, champ, err, stat(to), content(filepath.Join(to+".d", "history.json")))
		if champ != "" {
			saved := stages.SavedModelOf(champ)
			fmt.Fprintf(&b, "  card %s folder %s model %s %s weights %s\n", content(filepath.Join(champ, graphs.ModelInfoFile)), stat(champ),
				stat(saved), stat(filepath.Join(saved, "saved_model.pb")), stat(filepath.Join(saved, "variables")))
		}
	}
	return b.String()
}

// effectStages returns the stages of plan whose kind has an effect outside the store
// (pipeline.Effector: select's promotion), which a run applies whether the stage runs or is
// cached.
func effectStages(wf *pipeline.Workflow, plan []*pipeline.Decision) []string {
	planned := map[string]bool{}
	for _, d := range plan {
		planned[d.Addr] = true
	}
	var out []string
	for _, inst := range wf.Instances {
		if _, ok := inst.Kind.(pipeline.Effector); ok && planned[inst.Addr] {
			out = append(out, inst.Addr)
		}
	}
	return out
}

// scheduleClock is the scheduler's clock. Tests of the loop in a process of its own make it
// run faster (a minute a second), as no schedule may fire more often than once a minute.
var scheduleClock pipeline.Clock = pipeline.RealClock{}

// lockPoll is how often a queued trigger looks whether another process has let go of the
// workspace.
var lockPoll = 5 * time.Second
