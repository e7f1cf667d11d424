package graphs

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestExportRoundTrip(t *testing.T) {
	in := Input{Height: 16, Width: 16, Channels: 3, Mean: []float32{100, 100, 100}, Std: []float32{80, 80, 80}}
	spec := Spec{Architecture: "cnn", CNN: &CNN{Channels: []int64{8, 16}, Dropout: 0.1, Pool: 2, Dense: 32, DenseDropout: 0.1}}
	tr, err := NewTrainer(TrainConfig{Model: Classifier{Spec: spec, Input: in, Classes: 4}, Optimizer: DefaultOptimizer(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	data := Synthetic(32, 4, 16, 16, 3, 1)
	for i := 0; i < 5; i++ {
		if _, err := tr.Step(data.Slice(in, 0, 16), 1e-3); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := tr.Export(dir, []string{"a", "b", "c", "d"}, "center_crop"); err != nil {
		t.Fatal(err)
	}
	want, err := tr.Evaluate(Batch{Images: data.Images})
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.Predict(data.Images)
	if err != nil {
		t.Fatal(err)
	}
	var maxd float64
	for i := range want.Probabilities {
		for j := range want.Probabilities[i] {
			maxd = math.Max(maxd, math.Abs(float64(got[i][j]-want.Probabilities[i][j])))
		}
	}
	if maxd > 1e-5 {
		t.Fatalf("loaded model differs from the training session by %g", maxd)
	}
	t.Logf("max diff %g", maxd)
	// Exported again, the same model is the same bytes (its saved_model.pb has maps, which
	// Go would write in random order).
	for i := 0; i < 5; i++ {
		again := filepath.Join(t.TempDir(), "model")
		if err := tr.Export(again, []string{"a", "b", "c", "d"}, "center_crop"); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"} {
			a, err1 := os.ReadFile(filepath.Join(dir, f))
			b, err2 := os.ReadFile(filepath.Join(again, f))
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Fatalf("export %d: %s differs (%v, %v)", i, f, err1, err2)
			}
		}
	}
}

// TestExportedModelIsReadableByOthers checks that the SavedModel folder gets 0755 less the
// umask, as run folders do, and not the 0700 of os.MkdirTemp.
func TestExportedModelIsReadableByOthers(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := tinyModelExporter(t)()
	for path, want := range map[string]os.FileMode{dir: 0o755, filepath.Join(dir, "saved_model.pb"): 0o644, filepath.Join(dir, ModelInfoFile): 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

// tinyModelExporter returns a function that exports a tiny untrained CNN (8×8 grey images,
// classes "a" and "b") into a new folder, and returns the folder.
func tinyModelExporter(t *testing.T) func() string {
	t.Helper()
	in := Input{Height: 8, Width: 8, Channels: 1, Mean: []float32{100}, Std: []float32{80}}
	spec := Spec{Architecture: "cnn", CNN: &CNN{Channels: []int64{4}, Pool: 2, Dense: 8}}
	tr, err := NewTrainer(TrainConfig{Model: Classifier{Spec: spec, Input: in, Classes: 2}, Optimizer: DefaultOptimizer(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return func() string {
		dir := filepath.Join(t.TempDir(), "model")
		if err := tr.Export(dir, []string{"a", "b"}, "center_crop"); err != nil {
			t.Fatal(err)
		}
		return dir
	}
}
