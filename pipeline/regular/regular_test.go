package regular

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"pipeline/pipeline/regular/regulartest"
)

// TestReadRegularRefusesWhatIsNotARegularFile checks that Read reads a regular file
// (through a link too) and refuses a named pipe, a folder and a device, at once and with a
// *Error saying what the file is.
func TestReadRegularRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	file, pipe, link := filepath.Join(dir, "a.json"), filepath.Join(dir, "p"), filepath.Join(dir, "link")
	os.WriteFile(file, []byte("{}"), 0o644)
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	os.Symlink("p", link)
	if b, err := Read(file); err != nil || string(b) != "{}" {
		t.Fatalf("a regular file: %q, %v", b, err)
	}
	for path, want := range map[string]string{
		pipe:        pipe + " is not a regular file: it is a named pipe",
		link:        link + " is not a regular file: it is a named pipe",
		dir:         dir + " is not a regular file: it is a folder",
		"/dev/zero": "/dev/zero is not a regular file: it is a device file",
	} {
		err := regulartest.Within(t, "Read", func() error { _, err := Read(path); return err }, pipe)
		var notRegular *Error
		if !errors.As(err, &notRegular) || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if _, err := Read(filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file that is not there: %v, want fs.ErrNotExist", err)
	}
}
