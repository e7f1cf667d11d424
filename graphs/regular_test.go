package graphs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within runs f and returns its error, failing the test if f has not returned within 30
// seconds (it blocks reading a named pipe); each of pipes is then opened for writing, which
// lets a read blocked on one return.
func within(t *testing.T, what string, f func() error, pipes ...string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		for _, p := range pipes {
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
		<-done
		t.Fatalf("%s blocks reading a named pipe", what)
		return nil
	}
}

// TestReadRegularRefusesWhatIsNotARegularFile checks that ReadRegular reads a regular file
// (through a link too) and refuses a named pipe, a folder and a device, at once and with a
// *NotRegularError saying what the file is.
func TestReadRegularRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	file, pipe, link := filepath.Join(dir, "a.json"), filepath.Join(dir, "p"), filepath.Join(dir, "link")
	os.WriteFile(file, []byte("{}"), 0o644)
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	os.Symlink("p", link)
	if b, err := ReadRegular(file); err != nil || string(b) != "{}" {
		t.Fatalf("a regular file: %q, %v", b, err)
	}
	for path, want := range map[string]string{
		pipe:        pipe + " is not a regular file: it is a named pipe",
		link:        link + " is not a regular file: it is a named pipe",
		dir:         dir + " is not a regular file: it is a folder",
		"/dev/zero": "/dev/zero is not a regular file: it is a device file",
	} {
		err := within(t, "ReadRegular", func() error { _, err := ReadRegular(path); return err }, pipe)
		var notRegular *NotRegularError
		if !errors.As(err, &notRegular) || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if _, err := ReadRegular(filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file that is not there: %v, want fs.ErrNotExist", err)
	}
}

// TestNamedPipesInAModelFolderAreNotRead checks that CheckFiles and LoadModel refuse, at once
// and naming it, a SavedModel folder whose model.json, saved_model.pb or weights are named
// pipes, which a read would wait on for ever; a named pipe that is none of its files does not
// stop the model loading.
func TestNamedPipesInAModelFolderAreNotRead(t *testing.T) {
	export := tinyModelExporter(t)
	for _, file := range []string{ModelInfoFile, "saved_model.pb", "variables/variables.index", "notes.fifo"} {
		dir := export()
		pipe := filepath.Join(dir, filepath.FromSlash(file))
		os.Remove(pipe)
		if err := syscall.Mkfifo(pipe, 0o644); err != nil {
			t.Skip("no named pipes:", err)
		}
		want := "model " + dir + " is broken: its " + file + " is a named pipe, not a regular file"
		checked := within(t, "CheckFiles", func() error { return CheckFiles(dir) }, pipe)
		loaded := within(t, "LoadModel", func() error {
			m, err := LoadModel(dir, 1)
			if err == nil {
				m.Close()
			}
			return err
		}, pipe)
		for what, err := range map[string]error{"CheckFiles": checked, "LoadModel": loaded} {
			var broken *BrokenModelError
			switch {
			case file == "notes.fifo" && err != nil:
				t.Errorf("%s with a named pipe beside its files: %v", what, err)
			case file != "notes.fifo" && (!errors.As(err, &broken) || !strings.Contains(err.Error(), want)):
				t.Errorf("%s with %s a named pipe: %v, want %q", what, file, err, want)
			}
		}
	}
}
