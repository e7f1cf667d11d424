package stages

import (
	"os"
	"testing"

	"pipeline/graphs/testmodel"
)

// realModel writes into dir a SavedModel for 8×8 grey images with the given classes (a, b
// when none), whose model.json names arch, and a file marker holding arch, by which tests
// tell the models' files apart (testmodel.Write), for tests that need a model promotion can
// load (it answers a prediction before promoting).
func realModel(t testing.TB, dir, arch string, classes ...string) string {
	t.Helper()
	if err := testmodel.Write(dir, classes, arch, arch); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMain removes the models realModel exported once.
func TestMain(m *testing.M) {
	code := m.Run()
	testmodel.Cleanup()
	os.Exit(code)
}
