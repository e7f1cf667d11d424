package stages

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"pipeline/pipeline/regular"
	"pipeline/pipeline/regular/regulartest"
)

// TestModelFolderNamedPipesAreNotRead checks that the files of a model or promotion folder
// read outside TensorFlow (a card, the promotions' history, a model's list of photos) are
// refused at once, as not regular files, when they are named pipes, which a read with no
// writer would wait on for ever: serve's watcher reads the first two, a training from a
// starting model (init_from) the last.
func TestModelFolderNamedPipesAreNotRead(t *testing.T) {
	final := filepath.Join(t.TempDir(), "final_models")
	model := filepath.Join(final+".d", "a")
	os.MkdirAll(model, 0o755)
	history, card, list := filepath.Join(final+".d", "history.json"), filepath.Join(model, "model.json"), filepath.Join(model, TrainedOnFile)
	for _, p := range []string{history, card, list} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip("no named pipes:", err)
		}
	}
	for _, c := range []struct {
		pipe string
		read func() error
	}{
		{history, func() error { _, err := ChampionDir(final); return err }},
		{card, func() error { _, err := ReadCard(model); return err }},
		{list, func() error { _, err := readTrainedOn(model); return err }},
	} {
		err := regulartest.Within(t, "reading "+c.pipe, c.read, c.pipe)
		var notRegular *regular.Error
		if !errors.As(err, &notRegular) || notRegular.Path != c.pipe {
			t.Errorf("%s a named pipe: %v, want it refused as not a regular file", c.pipe, err)
		}
	}
}
