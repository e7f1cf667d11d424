package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/pipeline"
)

const splitScheduled = splitOnly + `
schedule "nightly" {
  cron    = "0 3 * * *"
  targets = [stage.split.main]
}
`

// TestScheduleOnceExitsLikeRun checks that schedule --once, which the README offers for the
// OS's cron, exits as run does: non-zero with the error on stderr when the run fails or
// cannot be planned, 0 when it succeeds or nothing is out of date, and 0 with a message when
// another process holds the workspace lock (the next trigger tries again).
func TestScheduleOnceExitsLikeRun(t *testing.T) {
	// A stage fails: one class is too few for a classifier.
	dir := workspace(t, splitScheduled)
	file := filepath.Join(dir, "pipeline.hcl")
	os.RemoveAll(filepath.Join(dir, "raw", "class 1"))
	code, _, errs := runCLI("run", file, "--quiet")
	if code != exitErr || !strings.Contains(errs, "a classifier needs at least 2") {
		t.Fatalf("run with a failing stage: exit %d, want %d\n%s", code, exitErr, errs)
	}
	code, _, errs = runCLI("schedule", file, "--once")
	if code != exitErr || !strings.Contains(errs, "pipeline: schedule \"nightly\"") || !strings.Contains(errs, "failed") ||
		!strings.Contains(errs, "a classifier needs at least 2") {
		t.Fatalf("schedule --once with a failing stage: exit %d, want %d\n%s", code, exitErr, errs)
	}

	// Planning fails: the source folder does not exist.
	dir = workspace(t, strings.Replace(splitScheduled, `"raw"`, `"rwa"`, 1))
	file = filepath.Join(dir, "pipeline.hcl")
	code, _, errs = runCLI("schedule", file, "--once")
	if code != exitErr || !strings.Contains(errs, "planning failed") || !strings.Contains(errs, "rwa") {
		t.Fatalf("schedule --once with a missing source: exit %d, want %d\n%s", code, exitErr, errs)
	}

	// Success, then nothing to do.
	dir = workspace(t, splitScheduled)
	file = filepath.Join(dir, "pipeline.hcl")
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "succeeded") {
		t.Fatalf("schedule --once: exit %d\n%s", code, errs)
	}
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "up to date") {
		t.Fatalf("schedule --once with nothing to do: exit %d\n%s", code, errs)
	}

	// Another process holds the workspace lock while there is work to do.
	os.WriteFile(file, []byte(strings.Replace(splitScheduled, "val        = 0.2", "val        = 0.25", 1)), 0o644)
	lock, _, err := pipeline.AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "skipped") || !strings.Contains(errs, "workspace is in use") {
		t.Fatalf("schedule --once while the workspace is locked: exit %d, want %d\n%s", code, exitOK, errs)
	}
}
