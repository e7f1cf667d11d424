package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeline/pipeline"
)

const resumeHCL = `
pipeline {
  seed       = 3
  image_size = 16
}

stage "split" "main" {
  source = "raw"
}

stage "train" "model" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 6
  batch_size   = 16
  optimizer    = "adam"
  schedule     = "cosine"
  options      = { channels = [8, 16], pool = 2, dense = 32 }
}
`

func runWorkspace(dir string) (*pipeline.RunRecord, error) {
	return runWorkspaceCtx(context.Background(), dir)
}

func runWorkspaceCtx(ctx context.Context, dir string) (*pipeline.RunRecord, error) {
	reg, _ := pipeline.NewRegistry(Split{}, Train{})
	cfg, diags := pipeline.LoadFile(filepath.Join(dir, "pipeline.hcl"), reg)
	if diags.HasErrors() {
		return nil, diags
	}
	wf, diags := pipeline.Build(cfg, reg, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	st, err := pipeline.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	return (&pipeline.Engine{Workflow: wf, Store: st}).Run(ctx, pipeline.RunOptions{RunsDir: filepath.Join(dir, "models")})
}

// TestTrainingResumesAfterSIGKILL kills a training stage after some epochs and checks that
// the rerun continues from the last completed epoch and ends exactly where an uninterrupted
// run with the same seed ends.
func TestTrainingResumesAfterSIGKILL(t *testing.T) {
	if dir := os.Getenv("PIPELINE_TRAIN_CHILD"); dir != "" {
		runWorkspace(dir)
		return
	}
	make := func() *ws {
		w := newWS(t, resumeHCL)
		writeSynthetic(t, w, 160, []string{"a", "b", "c", "d"})
		return w
	}
	straight := make()
	rec, err := runWorkspace(straight.dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(rec.Dir(), "cnn", "history.json"))

	killed := make()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainingResumesAfterSIGKILL$")
	cmd.Env = append(os.Environ(), "PIPELINE_TRAIN_CHILD="+killed.dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		states, _ := filepath.Glob(filepath.Join(killed.dir, pipeline.StoreDir, "work", "*", "state.json"))
		epoch := 0
		for _, p := range states {
			var st struct{ Epoch int }
			if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &st) == nil {
				epoch = st.Epoch
			}
		}
		if epoch >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child never finished three epochs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While the child trains, plan says a run holds the workspace rather than that its
	// training was interrupted.
	killed.reg, _ = pipeline.NewRegistry(Split{}, Augment{}, Train{})
	plan, err := killed.engine().Plan(pipeline.Selection{})
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	for _, d := range plan {
		if live := strings.Contains(strings.Join(d.Reasons, "; "), fmt.Sprintf("(pid %d on ", cmd.Process.Pid)) && strings.Contains(strings.Join(d.Reasons, "; "), "holds the workspace, and may be running it now (its work so far: resumes an interrupted training after its epoch "); live != strings.HasPrefix(d.Addr, "train.") {
			t.Errorf("plan during the run: %s %s %q", d.Addr, d.Action, d.Reasons)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// plan says the training resumes.
	plan, err = killed.engine().Plan(pipeline.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plan {
		if resumes := strings.Contains(strings.Join(d.Reasons, "; "), "resumes an interrupted training after its epoch "); resumes != strings.HasPrefix(d.Addr, "train.") {
			t.Errorf("plan after the kill: %s %s %q", d.Addr, d.Action, d.Reasons)
		}
	}

	// The training forced, it says that it starts over.
	forced, err := killed.engine().Plan(pipeline.Selection{Targets: []string{"train.model"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range forced {
		if over := strings.Contains(strings.Join(d.Reasons, "; "), "starts over; unforced, it resumes an interrupted training after its epoch "); over != strings.HasPrefix(d.Addr, "train.") {
			t.Errorf("forced plan after the kill: %s %s %q", d.Addr, d.Action, d.Reasons)
		}
	}

	rec, err = runWorkspace(killed.dir)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if !strings.Contains(string(log), "resuming after epoch") {
		t.Fatalf("the rerun did not resume:\n%s", log)
	}
	if strings.Contains(string(log), "epoch 1/6:") {
		t.Fatalf("the rerun trained epoch 1 again:\n%s", log)
	}
	got, _ := os.ReadFile(filepath.Join(rec.Dir(), "cnn", "history.json"))
	if a, b := withoutTiming(t, got), withoutTiming(t, want); a != b {
		t.Fatalf("resumed history differs from an uninterrupted run:\n%s\nwant:\n%s", a, b)
	}
}

// TestADamagedCheckpointTrainsFromScratch interrupts a training after two epochs, cuts its
// checkpoint short, and checks that the rerun says the checkpoint is damaged and trains from
// the first epoch in the same run, ending where an uninterrupted run ends (the trainer that
// failed to restore, which may hold part of the checkpoint, is not the one that trains).
func TestADamagedCheckpointTrainsFromScratch(t *testing.T) {
	fresh := func() *ws {
		w := newWS(t, resumeHCL)
		writeSynthetic(t, w, 160, []string{"a", "b", "c", "d"})
		return w
	}
	straight := fresh()
	rec, err := runWorkspace(straight.dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(rec.Dir(), "cnn", "history.json"))

	damaged := fresh()
	ctx, cancel := context.WithCancel(context.Background())
	var statePath string
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		for deadline := time.Now().Add(2 * time.Minute); ctx.Err() == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			states, _ := filepath.Glob(filepath.Join(damaged.dir, pipeline.StoreDir, "work", "*", "state.json"))
			for _, p := range states {
				var st struct{ Epoch int }
				if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &st) == nil && st.Epoch >= 2 {
					statePath = p
					return
				}
			}
		}
	}()
	_, err = runWorkspaceCtx(ctx, damaged.dir)
	cancel()
	<-done
	if err == nil || statePath == "" {
		t.Fatalf("the interrupted run: %v, after epoch 2: %v", err, statePath != "")
	}
	var st struct{ Epoch int }
	if b, err := os.ReadFile(statePath); err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("resume state %s: %v", statePath, err)
	}
	data := filepath.Join(filepath.Dir(statePath), fmt.Sprintf("ckpt-%d.data-00000-of-00001", st.Epoch))
	fi, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(data, fi.Size()/2); err != nil {
		t.Fatal(err)
	}

	rec, err = runWorkspace(damaged.dir)
	if err != nil {
		t.Fatalf("the run after the checkpoint was damaged: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	// Said on one line, with TensorFlow's reason ("Read less bytes than requested").
	said := regexp.MustCompile(fmt.Sprintf(`warning: the checkpoint of epoch %d is damaged \(restoring checkpoint ckpt-%d: [^\n\[]+\): training from scratch\n`, st.Epoch, st.Epoch))
	if !said.Match(log) || !strings.Contains(string(log), "epoch 1/6:") || strings.Contains(string(log), "resuming after") {
		t.Fatalf("run.log does not say the checkpoint was damaged and train from epoch 1:\n%s", log)
	}
	got, _ := os.ReadFile(filepath.Join(rec.Dir(), "cnn", "history.json"))
	if a, b := withoutTiming(t, got), withoutTiming(t, want); a != b {
		t.Fatalf("history after starting over differs from an uninterrupted run:\n%s\nwant:\n%s", a, b)
	}
}

// withoutTiming drops the wall-clock fields of a history, which legitimately differ.
func withoutTiming(t *testing.T, b []byte) string {
	var h []map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	for _, e := range h {
		delete(e, "seconds")
		delete(e, "images_per_s")
	}
	out, _ := json.MarshalIndent(h, "", " ")
	return string(out)
}
