package testmodel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"pipeline/graphs"
)

// exported holds, by class count, the models exported once per test binary (in base, which
// Cleanup removes). It is package state on purpose: exporting takes TensorFlow a while, and a
// test binary is one process.
var exported struct {
	sync.Mutex
	base string
	dirs map[int]string
}

// modelFiles are the SavedModel's files Write copies; model.json is written afresh.
var modelFiles = []string{"saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"}

// Write writes into dir a SavedModel for 8×8 grey images with the given classes (a, b when
// none), whose model.json names arch as its architecture unless arch is empty, and a file
// marker holding mark, by which tests tell the models' files apart.
func Write(dir string, classes []string, arch, mark string) error {
	if classes == nil {
		classes = []string{"a", "b"}
	}
	exported.Lock()
	src, err := export(len(classes))
	exported.Unlock()
	if err != nil {
		return err
	}
	for _, f := range modelFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	var info graphs.ModelInfo
	b, err := os.ReadFile(filepath.Join(src, graphs.ModelInfoFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return err
	}
	info.Classes = classes
	if arch != "" {
		info.Spec.Architecture = arch
	}
	b, _ = json.Marshal(info)
	if err := os.WriteFile(filepath.Join(dir, graphs.ModelInfoFile), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "marker"), []byte(mark), 0o644)
}

// export returns the folder of the small model with n classes, exporting it the first time;
// the caller holds exported's lock.
func export(n int) (string, error) {
	if src, ok := exported.dirs[n]; ok {
		return src, nil
	}
	if exported.base == "" {
		base, err := os.MkdirTemp("", "testmodel-")
		if err != nil {
			return "", err
		}
		exported.base, exported.dirs = base, map[int]string{}
	}
	in := graphs.Input{Height: 8, Width: 8, Channels: 1, Mean: []float32{0}, Std: []float32{1}}
	spec := graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{2}, Pool: 2, Dense: 4}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: graphs.Classifier{Spec: spec, Input: in, Classes: int64(n)},
		Optimizer: graphs.DefaultOptimizer(), Seed: 1})
	if err != nil {
		return "", err
	}
	defer tr.Close()
	// The class names are model.json's only, which Write rewrites: any will do here.
	names := make([]string, n)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	src := filepath.Join(exported.base, strconv.Itoa(n))
	if err := tr.Export(src, names, "center_crop"); err != nil {
		return "", err
	}
	exported.dirs[n] = src
	return src, nil
}

// Cleanup removes the models exported so far; a TestMain calls it after m.Run.
func Cleanup() {
	exported.Lock()
	defer exported.Unlock()
	if exported.base != "" {
		os.RemoveAll(exported.base)
	}
	exported.base, exported.dirs = "", nil
}
