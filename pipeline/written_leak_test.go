package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// writeThenFailKind writes a few files with Job.WriteFile, then fails.
type writeThenFailKind struct{}

func (writeThenFailKind) Name() string      { return "writefail" }
func (writeThenFailKind) Version() int      { return 1 }
func (writeThenFailKind) Outputs() []string { return []string{"out"} }
func (writeThenFailKind) Attributes() []Attribute {
	return []Attribute{{Name: "files", Type: cty.Number, Required: true, Doc: "how many"}}
}
func (writeThenFailKind) Run(ctx context.Context, j *Job) error {
	n, _ := j.Values.Get("files").AsBigFloat().Int64()
	if err := os.MkdirAll(filepath.Join(j.Out, "out"), 0o755); err != nil {
		return err
	}
	for i := range n {
		if _, err := j.WriteFile(filepath.Join(j.Out, "out", fmt.Sprint(i)), []byte(fmt.Sprint(i))); err != nil {
			return err
		}
	}
	return errors.New("asked to fail")
}

// openScratchFiles returns the files of the store's tmp folder under dir the process holds
// open.
func openScratchFiles(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			open = append(open, target)
		}
	}
	return open
}

// A stage that fails after writing files leaves no scratch file of their records open: the
// space of a large stage's records is given back with the run, not whenever the garbage
// collector gets to it.
func TestAFailedStageLeavesNoScratchFileOpen(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no finalizer closes it meanwhile
	defer func(n int) { writtenRun = n }(writtenRun)
	writtenRun = 2
	reg, err := NewRegistry(writeThenFailKind{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte("stage \"writefail\" \"w\" {\n  files = 5\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := LoadFile(filepath.Join(dir, "pipeline.hcl"), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wf, diags := Build(cfg, reg, nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := (&Engine{Workflow: wf, Store: st}).Run(context.Background(), RunOptions{RunsDir: filepath.Join(dir, "models")})
	if rec == nil || rec.Result("writefail.w").Status != StatusFailed {
		t.Fatalf("the stage did not fail: %+v", rec)
	}
	if open := openScratchFiles(t, st.Stats.spillDir()); len(open) != 0 {
		t.Errorf("scratch files still open after the run: %v", open)
	}
}
