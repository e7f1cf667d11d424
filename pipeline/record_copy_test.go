package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pipeline/pipeline/regular/regulartest"
)

// TestCopyRefusesFilesThatAreNotRegular checks that the copy LinkTree and LinkFile fall back
// to where a hard link fails (across file systems) refuses a named pipe, naming it, instead of
// waiting for ever for a writer, and leaves nothing in its place.
func TestCopyRefusesFilesThatAreNotRegular(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "requests.fifo")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	refused := func(what, pipe string, copy func() error) {
		t.Helper()
		err := regulartest.Within(t, what, copy, pipe)
		if want := pipe + " is not a regular file: it is a named pipe, which is not copied"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s of a named pipe: %v, want an error saying %q", what, err, want)
		}
	}
	dst := filepath.Join(dir, "copy")
	refused("copyFile", pipe, func() error { return copyFile(pipe, dst) })
	if _, err := os.Lstat(dst); err == nil {
		t.Error("copyFile left a file in the place of a named pipe's copy")
	}

	// A folder on another file system, which LinkTree copies.
	other, err := os.MkdirTemp("/dev/shm", "linktree")
	if err != nil {
		t.Skip("no other file system to link across:", err)
	}
	defer os.RemoveAll(other)
	var a, b syscall.Stat_t
	if syscall.Stat(other, &a) != nil || syscall.Stat(dir, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same file system as", dir)
	}
	src := filepath.Join(other, "saved_model")
	os.MkdirAll(filepath.Join(src, "variables"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "saved_model.pb"), []byte("graph"), 0o644); err != nil {
		t.Fatal(err)
	}
	far := filepath.Join(src, "variables", "requests.fifo")
	if err := syscall.Mkfifo(far, 0o644); err != nil {
		t.Fatal(err)
	}
	refused("LinkTree across file systems", far, func() error { return LinkTree(src, filepath.Join(dir, "linked")) })
	refused("LinkFile across file systems", far, func() error { return LinkFile(far, filepath.Join(dir, "linked-file")) })
}
