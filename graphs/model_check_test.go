package graphs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedModelsFailToLoad checks that LoadModel and CheckModel refuse a SavedModel folder
// that TensorFlow would load but that cannot predict (its variables/ deleted), and other
// damage, with a *BrokenModelError naming the folder and what is wrong.
func TestDamagedModelsFailToLoad(t *testing.T) {
	export := tinyModelExporter(t)
	if err := CheckModel(export()); err != nil {
		t.Fatalf("an intact model: %v", err)
	}
	for _, c := range []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"variables deleted", func(dir string) { os.RemoveAll(filepath.Join(dir, "variables")) }, "its weights (variables/) are missing: it loads but cannot predict"},
		{"variables emptied", func(dir string) {
			os.RemoveAll(filepath.Join(dir, "variables"))
			os.Mkdir(filepath.Join(dir, "variables"), 0o755)
		}, "its weights (variables/) are missing"},
		{"data file deleted", func(dir string) {
			files, _ := filepath.Glob(filepath.Join(dir, "variables", "variables.data-*"))
			for _, f := range files {
				os.Remove(f)
			}
		}, "its weights are missing or incomplete (variables/)"},
		{"graph truncated", func(dir string) { os.WriteFile(filepath.Join(dir, "saved_model.pb"), []byte("x"), 0o644) }, "TensorFlow cannot load it"},
		{"card deleted", func(dir string) { os.Remove(filepath.Join(dir, ModelInfoFile)) }, "its model.json cannot be read"},
		{"classes changed", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ModelInfoFile))
			os.WriteFile(filepath.Join(dir, ModelInfoFile), []byte(strings.Replace(string(b), `"b"`, `"b", "c"`, 1)), 0o644)
		}, "it answers 2 probabilities, but its model.json names 3 classes"},
	} {
		dir := export()
		c.damage(dir)
		err := CheckModel(dir)
		var broken *BrokenModelError
		if !errors.As(err, &broken) || broken.Dir != dir || !strings.Contains(err.Error(), "model "+dir+" is broken: "+c.want) {
			t.Errorf("%s: %v, want a BrokenModelError saying %q", c.name, err, c.want)
		}
		if m, err := LoadModel(dir, 0); err == nil {
			m.Close()
			t.Errorf("%s: LoadModel loaded it", c.name)
		}
	}
	// A folder that holds no model at all is not a broken one.
	if err := CheckModel(t.TempDir()); err == nil || errors.As(err, new(*BrokenModelError)) {
		t.Errorf("an empty folder: %v", err)
	}
}
