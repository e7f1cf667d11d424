package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pipeline/graphs/testmodel"
	"pipeline/pipeline"
)

// mainHelperVar makes the test binary run the command line after it, as the pipeline binary
// would (TestMain), for tests that need a process of their own: signals, exit statuses.
const mainHelperVar = "PIPELINE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainHelperVar) == "1" {
		scheduleClock = fastClock{start: time.Now()}
		os.Exit(run(append([]string{"pipeline"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	code := m.Run()
	testmodel.Cleanup()
	os.Exit(code)
}

// fastClock runs 60 times as fast as the real clock from start: a minute passes in a second,
// so that a test of the scheduler's loop in a process of its own (TestMain) waits a second for
// an "@every 1m" trigger. --once fires the next trigger at once whatever the clock.
type fastClock struct{ start time.Time }

func (c fastClock) Now() time.Time { return c.start.Add(60 * time.Since(c.start)) }

func (c fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / 60) }

// longTraining trains until it is stopped: for tests that signal a run under way.
const longTraining = `
stage "train" "model" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 100000
  batch_size   = 4
  options      = { channels = [2], dense = 4, pool = 2 }
}
`

// A run interrupted by Ctrl-C exits 130, as shells report a command so stopped, not 1 like
// a failed stage.
func TestInterruptedRunExits130(t *testing.T) {
	dir := workspace(t, splitOnly+longTraining)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "run", filepath.Join(dir, "pipeline.hcl"))
	cmd.Env = append(os.Environ(), mainHelperVar+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() { // interrupt once training has done an epoch: the run is under way
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "train.model: epoch 1/") {
			cmd.Process.Signal(syscall.SIGINT)
			break
		}
	}
	done := make(chan error, 1)
	go func() {
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
		done <- cmd.Wait() // after the last read, as Wait closes the pipe
	}()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the run did not stop after SIGINT:\n%s", <-done)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want status %d:\n%s", err, exitInterrupted, log.String())
	}
}

// pipelineProcess is the pipeline command run in a process of its own (the test binary, see
// TestMain), for tests that signal it.
type pipelineProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	errb strings.Builder
	done chan error
}

func startPipeline(t *testing.T, args ...string) *pipelineProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &pipelineProcess{t: t, cmd: exec.Command(exe, args...), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), mainHelperVar+"=1")
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { // a process the test left running
		select {
		case err := <-p.done:
			p.done <- err
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Write collects the process's stderr.
func (p *pipelineProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.Write(b)
}

func (p *pipelineProcess) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// waitUntil polls cond until it holds, failing the test after a minute or if the process ends.
func (p *pipelineProcess) waitUntil(what string, cond func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
		select {
		case err := <-p.done:
			p.done <- err
			p.t.Fatalf("the process ended (%v) before %s:\n%s", err, what, p.stderr())
		default:
		}
	}
	p.t.Fatalf("timed out waiting until %s:\n%s", what, p.stderr())
}

// signal sends sig to the process.
func (p *pipelineProcess) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// exitCode waits up to a minute for the process to end and returns its exit status (-1 when
// a signal killed it).
func (p *pipelineProcess) exitCode() int {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			p.t.Fatal(err)
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		p.t.Fatalf("the process did not end:\n%s", p.stderr())
	}
	return 0
}

// trainingUnderway reports whether a run in dir's models folder has finished an epoch.
func trainingUnderway(dir string) bool {
	logs, _ := filepath.Glob(filepath.Join(dir, "models", "*", "run.log"))
	for _, l := range logs {
		if b, _ := os.ReadFile(l); strings.Contains(string(b), "train.model: epoch 1/") {
			return true
		}
	}
	return false
}

// checkCancelledCleanly checks that the workspace dir holds exactly one run, which wrote its
// run.json saying cancelled (pipeline runs does not call it incomplete) and left no
// unpublished output behind.
func checkCancelledCleanly(t *testing.T, dir, stderr string) {
	t.Helper()
	runs, _ := filepath.Glob(filepath.Join(dir, "models", "2*"))
	if len(runs) != 1 {
		t.Fatalf("run folders %v, want one:\n%s", runs, stderr)
	}
	b, err := os.ReadFile(filepath.Join(runs[0], "run.json"))
	if err != nil {
		t.Fatalf("the stopped run wrote no run.json: %v\n%s", err, stderr)
	}
	var rec struct {
		Status string
		Stages []json.RawMessage
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Status != "cancelled" {
		t.Fatalf("run.json: status %q (%v), want cancelled", rec.Status, err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, pipeline.StoreDir, "tmp")); len(left) > 0 {
		t.Fatalf("unpublished outputs left in tmp/: %v", left)
	}
	code, out, errs := runCLI("runs", filepath.Join(dir, "pipeline.hcl"))
	if code != exitOK || !strings.Contains(out, "cancelled") || strings.Contains(out, "incomplete") {
		t.Fatalf("runs: exit %d, want the run listed as cancelled\n%s%s", code, out, errs)
	}
	// The columns add up: the cancelled training is counted as not run.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if !slices.Equal(head[:8], []string{"run", "status", "duration", "ran", "cached", "failed", "not", "run"}) || len(row) < 8 {
		t.Fatalf("runs:\n%s", out)
	}
	total := 0
	for _, f := range row[3:7] {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("runs: %q in\n%s", f, out)
		}
		total += n
	}
	if notRun, _ := strconv.Atoi(row[6]); notRun == 0 || total != len(rec.Stages) {
		t.Fatalf("runs counts %v, %d stages in run.json:\n%s", row[3:7], len(rec.Stages), out)
	}
}

// schedule --once, which a systemd service or cron runs (and systemctl stop sends SIGTERM),
// handles SIGTERM exactly as run does: the run is cancelled, writes its run.json and cleans
// up, and the process exits 130 saying so.
func TestScheduleOnceSIGTERMEndsAsRun(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"schedule", "--once"}} {
		t.Run(args[0], func(t *testing.T) {
			dir := workspace(t, splitOnly+longTraining+`
schedule "nightly" {
  cron    = "0 3 * * *"
  targets = [stage.train.model]
}
`)
			p := startPipeline(t, append(args, filepath.Join(dir, "pipeline.hcl"))...)
			p.waitUntil("training is under way", func() bool { return trainingUnderway(dir) })
			p.signal(syscall.SIGTERM)
			if code := p.exitCode(); code != exitInterrupted || !strings.Contains(p.stderr(), "interrupted; finished stages are kept") {
				t.Fatalf("%s: exit %d after SIGTERM, want %d:\n%s", args, code, exitInterrupted, p.stderr())
			}
			checkCancelledCleanly(t, dir, p.stderr())
		})
	}
}

// The scheduler's loop: the first SIGINT/SIGTERM stops taking triggers and lets the run in
// progress go on; a second one cancels it, which ends as run's does (exit 130). With
// --cancel-on-stop the first one cancels it. Stopped while idle, it exits 0.
func TestScheduleLoopSignals(t *testing.T) {
	every := func(cron string) string {
		return splitOnly + longTraining + `
schedule "often" {
  cron    = "` + cron + `"
  targets = [stage.train.model]
}
`
	}
	t.Run("second signal cancels", func(t *testing.T) {
		dir := workspace(t, every("@every 1m"))
		p := startPipeline(t, "schedule", filepath.Join(dir, "pipeline.hcl"))
		p.waitUntil("training is under way", func() bool { return trainingUnderway(dir) })
		p.signal(syscall.SIGTERM)
		p.waitUntil("the scheduler says it is stopping", func() bool {
			return strings.Contains(p.stderr(), "SIGTERM: the run in progress finishes")
		})
		time.Sleep(1500 * time.Millisecond) // past a trigger time (a minute on fastClock): nothing new starts
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("the scheduler ended (%v) on the first signal while a run was going:\n%s", err, p.stderr())
		default:
		}
		p.signal(syscall.SIGINT)
		if code := p.exitCode(); code != exitInterrupted || !strings.Contains(p.stderr(), "SIGINT: cancelling the run in progress") {
			t.Fatalf("exit %d after a second signal, want %d:\n%s", code, exitInterrupted, p.stderr())
		}
		checkCancelledCleanly(t, dir, p.stderr())
	})
	t.Run("cancel-on-stop", func(t *testing.T) {
		dir := workspace(t, every("@every 1m"))
		p := startPipeline(t, "schedule", filepath.Join(dir, "pipeline.hcl"), "--cancel-on-stop")
		p.waitUntil("training is under way", func() bool { return trainingUnderway(dir) })
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitInterrupted {
			t.Fatalf("exit %d after SIGTERM with --cancel-on-stop, want %d:\n%s", code, exitInterrupted, p.stderr())
		}
		checkCancelledCleanly(t, dir, p.stderr())
	})
	t.Run("idle", func(t *testing.T) {
		dir := workspace(t, every("0 3 * * *"))
		p := startPipeline(t, "schedule", filepath.Join(dir, "pipeline.hcl"))
		p.waitUntil("the scheduler waits", func() bool { return strings.Contains(p.stderr(), "next: schedule") })
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK || !strings.Contains(p.stderr(), "SIGTERM: no run in progress") {
			t.Fatalf("exit %d after SIGTERM with no run going, want 0:\n%s", code, p.stderr())
		}
		if _, err := os.Stat(filepath.Join(dir, "models")); err == nil {
			t.Fatal("a run was started")
		}
	})
}

// A run, or schedule --once, whose output no one reads any more (its stdout and stderr a pipe
// whose reader is gone, as `pipeline run | head` leaves them once head exits) goes on to the
// end instead of being killed by SIGPIPE at its next line: it exits 0, and its run.json and
// report.html are written.
func TestARunOutlivesTheReaderOfItsOutput(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run"}, {"schedule", "--once"}} {
		dir := workspace(t, splitScheduled)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close() // gone before the first line
		cmd := exec.Command(exe, append(args, filepath.Join(dir, "pipeline.hcl"))...)
		cmd.Env = append(os.Environ(), mainHelperVar+"=1")
		cmd.Stdout, cmd.Stderr = w, w
		err = cmd.Run()
		w.Close()
		if err != nil {
			t.Errorf("%s: %v, want exit status 0", args, err)
		}
		records, _ := filepath.Glob(filepath.Join(dir, "models", "*", "run.json"))
		if len(records) != 1 {
			t.Fatalf("%s: %d run.json files, want 1", args, len(records))
		}
		var rec pipeline.RunRecord
		b, _ := os.ReadFile(records[0])
		if err := json.Unmarshal(b, &rec); err != nil || rec.Status != "succeeded" {
			t.Errorf("%s: run.json %s (%v), want status succeeded", args, b, err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(records[0]), "report.html")); err != nil {
			t.Errorf("%s: %v", args, err)
		}
	}
}
