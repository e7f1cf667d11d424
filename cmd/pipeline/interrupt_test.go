package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mainHelperVar makes the test binary run the command line after it, as the pipeline binary
// would (TestMain), for tests that need a process of their own: signals, exit statuses.
const mainHelperVar = "PIPELINE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainHelperVar) == "1" {
		os.Exit(run(append([]string{"pipeline"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// A run interrupted by Ctrl-C exits 130, as shells report a command so stopped, not 1 like
// a failed stage.
func TestInterruptedRunExits130(t *testing.T) {
	dir := workspace(t, splitOnly+`
stage "train" "model" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 100000
  batch_size   = 4
  options      = { channels = [2], dense = 4, pool = 2 }
}
`)
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
