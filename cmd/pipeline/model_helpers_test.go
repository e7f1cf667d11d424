package main

import (
	"testing"

	"pipeline/graphs/testmodel"
)

// smallModel writes into dir a SavedModel for 8×8 grey images with the given classes (a, b
// when none) and a file marker holding mark, by which tests tell the models' files apart
// (testmodel.Write), for tests of promotion, which loads a model before it promotes it.
func smallModel(t testing.TB, dir, mark string, classes ...string) string {
	t.Helper()
	if err := testmodel.Write(dir, classes, "", mark); err != nil {
		t.Fatal(err)
	}
	return dir
}
