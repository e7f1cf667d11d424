package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"pipeline/graphs"
)

// smallModels holds, by class count, a small untrained CNN exported once per test binary (in
// base, which TestMain removes), for tests of promotion, which loads a model before it
// promotes it.
var smallModels struct {
	sync.Mutex
	base string
	dirs map[int]string
}

// smallModel writes into dir a SavedModel for 8×8 grey images with the given classes (a, b
// when none) and a file marker holding mark, by which tests tell the models' files apart.
func smallModel(t testing.TB, dir, mark string, classes ...string) string {
	t.Helper()
	if classes == nil {
		classes = []string{"a", "b"}
	}
	smallModels.Lock()
	src, err := exportSmallModel(len(classes))
	smallModels.Unlock()
	if err != nil {
		t.Fatal(err)
	}
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
	info.Classes = classes
	b, _ = json.Marshal(info)
	os.WriteFile(filepath.Join(dir, graphs.ModelInfoFile), b, 0o644)
	os.WriteFile(filepath.Join(dir, "marker"), []byte(mark), 0o644)
	return dir
}

// exportSmallModel returns the folder of the small model with n classes, exporting it the
// first time; the caller holds smallModels' lock.
func exportSmallModel(n int) (string, error) {
	if src, ok := smallModels.dirs[n]; ok {
		return src, nil
	}
	if smallModels.base == "" {
		base, err := os.MkdirTemp("", "small-models-")
		if err != nil {
			return "", err
		}
		smallModels.base, smallModels.dirs = base, map[int]string{}
	}
	in := graphs.Input{Height: 8, Width: 8, Channels: 1, Mean: []float32{0}, Std: []float32{1}}
	spec := graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{2}, Pool: 2, Dense: 4}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: graphs.Classifier{Spec: spec, Input: in, Classes: int64(n)}, Optimizer: graphs.DefaultOptimizer(), Seed: 1})
	if err != nil {
		return "", err
	}
	defer tr.Close()
	names := make([]string, n)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	src := filepath.Join(smallModels.base, strconv.Itoa(n))
	if err := tr.Export(src, names, "center_crop"); err != nil {
		return "", err
	}
	smallModels.dirs[n] = src
	return src, nil
}
