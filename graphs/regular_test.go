package graphs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pipeline/pipeline/regular/regulartest"
)

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
		checked := regulartest.Within(t, "CheckFiles", func() error { return CheckFiles(dir) }, pipe)
		loaded := regulartest.Within(t, "LoadModel", func() error {
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
