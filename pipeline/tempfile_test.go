package pipeline

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// withUmask sets the process umask for the rest of the test.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func wantPerm(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s is %v, want %v", path, got, want)
	}
}

// TestRunFolderFilesAreReadableLikeTheFolder checks that run.json, written through a
// temporary file and a rename, gets the permissions of run.log (0644 less the umask) and not
// the 0600 of os.CreateTemp, so other users who can list a run folder can read its record.
func TestRunFolderFilesAreReadableLikeTheFolder(t *testing.T) {
	for _, c := range []struct {
		umask          int
		folder, record fs.FileMode
	}{{0o022, 0o755, 0o644}, {0o027, 0o750, 0o640}} {
		withUmask(t, c.umask)
		ws := newWorkspace(t, chainHCL, chainFiles())
		_, rec, err := ws.run(RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantPerm(t, rec.Dir(), c.folder)
		wantPerm(t, filepath.Join(rec.Dir(), "run.log"), c.record)
		wantPerm(t, filepath.Join(rec.Dir(), "run.json"), c.record)
	}
}

// TestMkdirTempAndCreateTempFollowTheUmask checks the permissions and names of MkdirTemp and
// CreateTemp.
func TestMkdirTempAndCreateTempFollowTheUmask(t *testing.T) {
	withUmask(t, 0o022)
	dir := t.TempDir()
	d1, err := MkdirTemp(dir, ".promote-")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := MkdirTemp(dir, "x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if d1 == d2 || filepath.Ext(d2) != ".tmp" || filepath.Dir(d1) != dir {
		t.Errorf("names %s, %s", d1, d2)
	}
	wantPerm(t, d1, 0o755)
	f, err := CreateTemp(dir, ".run.json.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantPerm(t, f.Name(), 0o644)
}
