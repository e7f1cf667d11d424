package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

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
			&cli.BoolFlag{Name: "print-crontab", Usage: "print crontab lines doing the same with the OS scheduler, and exit"},
			&cli.BoolFlag{Name: "cancel-on-stop", Usage: "on the first SIGINT/SIGTERM cancel a run in progress instead of letting it finish (a second signal cancels it anyway)"},
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "where run folders go, relative to the pipeline file"},
		},
		Action: func(c *cli.Context) error {
			l, err := load(c, false)
			if err != nil {
				return err
			}
			if len(l.cfg.Schedules) == 0 {
				return fmt.Errorf("%s declares no schedule blocks; add one, e.g. schedule \"nightly\" { cron = \"0 3 * * *\", targets = [stage.select.best] }", l.cfg.Path)
			}
			if c.Bool("print-crontab") {
				return printCrontab(c, l)
			}
			logger := log.New(c.App.ErrWriter, "", log.LstdFlags)
			s := &pipeline.Scheduler{Schedules: l.cfg.Schedules, Clock: pipeline.RealClock{}, Logf: logger.Printf}
			if c.Bool("once") {
				return fireOnce(c, logger, s)
			}
			return scheduleLoop(c, logger, s, l.cfg.Path)
		},
	}
}

// fireOnce fires the next due trigger of s now and ends as run does, so that cron or a systemd
// timer sees what happened: SIGINT or SIGTERM cancel the run (finished stages are kept, run.json
// says cancelled) and exit exitInterrupted; a failed retrain exits exitErr; success, nothing to
// do, or a workspace another process holds (logged as skipped) exit 0.
func fireOnce(c *cli.Context, logger *log.Logger, s *pipeline.Scheduler) error {
	next, err := s.Next(s.Clock.Now())
	if err != nil {
		return err
	}
	ctx, stop := interruptible(c)
	defer stop()
	logger.Printf("--once: firing %s now", next[0])
	err = fireTrigger(ctx, c, logger, next[0])
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
	var cut atomic.Bool // a run was cancelled by a signal
	s.Fire = func(ctx context.Context, t pipeline.Trigger) {
		err := fireTrigger(ctx, c, logger, t)
		switch {
		case errors.Is(err, context.Canceled): // fireTrigger logged the run as cancelled
			cut.Store(true)
		case err != nil:
			logger.Print(err)
		}
	}
	stopCtx, stopTaking := context.WithCancel(c.Context)
	defer stopTaking()
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
			if c.Bool("cancel-on-stop") {
				logger.Printf("%s: a run in progress is cancelled (--cancel-on-stop)", signalName(sig))
				cancelRun()
				return
			}
			logger.Printf("%s: a run in progress finishes; SIGINT or SIGTERM again cancels it", signalName(sig))
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
	logger.Printf("scheduling %d schedule(s) of %s; Ctrl-C or SIGTERM stops taking triggers", len(s.Schedules), file)
	if err := s.Loop(stopCtx, runCtx); err != nil {
		return err
	}
	if cut.Load() {
		return interruptedExit(context.Canceled)
	}
	return nil
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
// schedule's targets, and runs them when anything is out of date. It logs what it did and
// returns an error, naming the trigger, when the file, the plan or the run failed; a trigger
// skipped because another process holds the workspace lock is logged and not an error (the
// next trigger tries again).
func fireTrigger(ctx context.Context, c *cli.Context, logger *log.Logger, t pipeline.Trigger) error {
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
	pending := 0
	for _, d := range plan {
		if d.Action == pipeline.Run {
			pending++
		}
	}
	if pending == 0 {
		logger.Printf("%s: up to date, nothing to run", t)
		return nil
	}
	logger.Printf("%s: %d stage(s) out of date; running", t, pending)
	rec, err := l.engine.Run(ctx, pipeline.RunOptions{Selection: sel, RunsDir: inWorkspace(l.engine.Store.Workspace, c.String("runs-dir")),
		Reporter: newReporter(c.App.ErrWriter, true, false), Versions: versions(), Trigger: t.String()})
	switch {
	case errors.Is(err, pipeline.ErrLocked):
		logger.Printf("%s: skipped: %v", t, err)
		return nil
	case rec == nil:
		return fmt.Errorf("%s: failed to start: %w", t, err)
	}
	sum := stages.Summarize(rec)
	if _, werr := sum.WriteHTML(); werr != nil {
		logger.Printf("%s: writing report.html: %v", t, werr)
	}
	logger.Printf("%s: run %s %s (%s)", t, rec.ID, rec.Status, rec.Dir())
	if sum.Decision != "" {
		logger.Printf("%s: %s", t, sum.Decision)
	}
	if err != nil {
		return fmt.Errorf("%s: run %s %s: %w", t, rec.ID, rec.Status, err)
	}
	return nil
}

// printCrontab prints crontab lines that run each schedule's targets with the OS scheduler.
func printCrontab(c *cli.Context, l *loaded) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	file, _ := filepath.Abs(l.cfg.Path)
	w := c.App.Writer
	fmt.Fprintf(w, "# pipeline schedules of %s (install with: crontab -e)\n", file)
	for _, s := range l.cfg.Schedules {
		var stagesArgs []string
		for _, t := range l.engine.Workflow.ScheduleTargets(s) {
			stagesArgs = append(stagesArgs, "--stage '"+t+"'")
		}
		if s.Timezone != "Local" {
			fmt.Fprintf(w, "CRON_TZ=%s\n", s.Timezone)
		}
		fmt.Fprintf(w, "%s cd %s && %s run %s %s --quiet >> models/cron.log 2>&1   # schedule %q\n",
			s.Cron, filepath.Dir(file), exe, filepath.Base(file), strings.Join(stagesArgs, " "), s.Name)
	}
	fmt.Fprintln(w, "# the workspace lock keeps two runs from overlapping; a run started while one is going fails and says so")
	return nil
}
