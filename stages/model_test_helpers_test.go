package stages

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"pipeline/graphs"
)

// tinyModels holds, by class count, a small untrained CNN exported once per test binary, for
// tests that need a model promotion can load (it answers a prediction before promoting).
var tinyModels struct {
	sync.Mutex
	dirs map[int]string
}

// realModel writes into dir a SavedModel for 8×8 grey images with the given classes (a, b
// when none), whose model.json names arch, and a file marker holding arch, by which tests
// tell the models' files apart.
func realModel(t testing.TB, dir, arch string, classes ...string) string {
	t.Helper()
	if classes == nil {
		classes = []string{"a", "b"}
	}
	tinyModels.Lock()
	src, ok := tinyModels.dirs[len(classes)]
	if !ok {
		in := graphs.Input{Height: 8, Width: 8, Channels: 1, Mean: []float32{0}, Std: []float32{1}}
		spec := graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{2}, Pool: 2, Dense: 4}}
		tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: graphs.Classifier{Spec: spec, Input: in, Classes: int64(len(classes))},
			Optimizer: graphs.DefaultOptimizer(), Seed: 1})
		if err != nil {
			tinyModels.Unlock()
			t.Fatal(err)
		}
		base, err := os.MkdirTemp("", "tiny-model-")
		if err != nil {
			tinyModels.Unlock()
			t.Fatal(err)
		}
		src = filepath.Join(base, strconv.Itoa(len(classes)))
		err = tr.Export(src, classes, "center_crop")
		tr.Close()
		if err != nil {
			tinyModels.Unlock()
			t.Fatal(err)
		}
		if tinyModels.dirs == nil {
			tinyModels.dirs = map[int]string{}
		}
		tinyModels.dirs[len(classes)] = src
	}
	tinyModels.Unlock()
	for _, f := range []string{"saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var info graphs.ModelInfo
	b, _ := os.ReadFile(filepath.Join(src, graphs.ModelInfoFile))
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	info.Spec.Architecture, info.Classes = arch, classes
	b, _ = json.Marshal(info)
	os.WriteFile(filepath.Join(dir, graphs.ModelInfoFile), b, 0o644)
	os.WriteFile(filepath.Join(dir, "marker"), []byte(arch), 0o644)
	return dir
}

// TestMain removes the models realModel exported once.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tinyModels.dirs {
		os.RemoveAll(filepath.Dir(d))
	}
	os.Exit(code)
}
