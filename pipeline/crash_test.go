package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledRunResumes runs a pipeline in a child process, SIGKILLs it while a stage is
// writing its output, and checks that the next run sees no half-written output, reuses the
// stage that finished, takes over the dead run's lock, and completes.
func TestKilledRunResumes(t *testing.T) {
	if dir := os.Getenv("PIPELINE_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	ws := newWorkspace(t, chainHCL, chainFiles())
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunResumes$")
	cmd.Env = append(os.Environ(), "PIPELINE_CRASH_CHILD="+ws.dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(ws.dir, "child-writing")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child never reached the blocking stage")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// The child really died mid-write: its partial output sits in tmp/, unpublished.
	partial, _ := filepath.Glob(filepath.Join(ws.dir, StoreDir, "tmp", "*", "partial"))
	if len(partial) != 1 {
		t.Fatalf("expected the killed stage's partial output in tmp/, found %v", partial)
	}
	// The half-written output is not visible as a published object.
	objects, _ := os.ReadDir(filepath.Join(ws.dir, StoreDir, "objects"))
	for _, o := range objects {
		if _, err := os.Stat(filepath.Join(ws.dir, StoreDir, "objects", o.Name(), "partial")); err == nil {
			t.Fatal("a killed stage's partial output was published")
		}
	}
	p := ws.plan(Selection{})
	if p["gen.src"].Action != Cached {
		t.Fatalf("gen.src finished before the kill but plans %s %v", p["gen.src"].Action, p["gen.src"].Reasons)
	}
	got, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got["gen.src"] != StatusCached || got["xform.up"] != StatusRan || got["xform.final"] != StatusRan {
		t.Fatalf("after the kill: %v", got)
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if !strings.Contains(string(log), "ended without releasing the workspace lock") {
		t.Errorf("run.log does not mention the dead run's lock:\n%s", log)
	}
	if entries, _ := os.ReadDir(filepath.Join(ws.dir, StoreDir, "tmp")); len(entries) != 0 {
		t.Errorf("the dead run's temporary output was not cleaned up (%d entries)", len(entries))
	}
}

// crashChild runs the chain with xform blocking after writing part of its output.
func crashChild(dir string) {
	kinds := newFakeKinds()
	kinds.xform.block = make(chan struct{})
	kinds.xform.beforeBlock = func(j *Job) {
		os.WriteFile(filepath.Join(j.Out, "partial"), []byte("half"), 0o644)
		os.WriteFile(filepath.Join(dir, "child-writing"), nil, 0o644)
	}
	cfg, diags := LoadFile(filepath.Join(dir, "pipeline.hcl"), kinds.reg)
	if diags.HasErrors() {
		panic(diags.Error())
	}
	wf, diags := Build(cfg, kinds.reg, nil)
	if diags.HasErrors() {
		panic(diags.Error())
	}
	st, err := OpenStore(dir)
	if err != nil {
		panic(err)
	}
	(&Engine{Workflow: wf, Store: st}).Run(context.Background(), RunOptions{Jobs: 1, RunsDir: filepath.Join(dir, "models")})
}
