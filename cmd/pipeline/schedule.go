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
			&cli.BoolFlag{Name: "cancel-on-stop", Usage: "on SIGINT/SIGTERM cancel a run in progress instead of letting it finish"},
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
			fire := func(ctx context.Context, t pipeline.Trigger) {
				// A failed trigger is logged and the scheduler waits for the next one.
				if err := fireTrigger(ctx, c, logger, t); err != nil {
					logger.Print(err)
				}
			}
			s := &pipeline.Scheduler{Schedules: l.cfg.Schedules, Clock: pipeline.RealClock{}, Fire: fire, Logf: logger.Printf}
			if c.Bool("once") {
				next, err := s.Next(s.Clock.Now())
				if err != nil {
					return err
				}
				logger.Printf("--once: firing %s now", next[0])
				// Exit as run does, so that cron or a systemd timer sees a failed retrain.
				if err := fireTrigger(c.Context, c, logger, next[0]); err != nil {
					return exitError{code: exitErr, err: err}
				}
				return nil
			}
			stopCtx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			runCtx := c.Context
			if c.Bool("cancel-on-stop") {
				runCtx = stopCtx
			}
			logger.Printf("scheduling %d schedule(s) of %s; Ctrl-C stops taking triggers", len(l.cfg.Schedules), l.cfg.Path)
			return s.Loop(stopCtx, runCtx)
		},
	}
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
