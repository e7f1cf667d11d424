package stages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The test set id changes with the stored pixels, not only with the manifest: the same
// photos stored another way are another test set.
func TestTestSetIDCoversTheStoredImages(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("images/a.png", randomPNG(1, 1, 4, 4))
	write("images/b.png", randomPNG(1, 2, 4, 4))
	m := &Manifest{Classes: []string{"x", "y"}, Size: 4, Channels: 3, Resize: "squash",
		Images: []Entry{{Path: "../images/a.png", Label: 0, Digest: "da"}, {Path: "../images/b.png", Label: 1, Digest: "db"}}}
	if err := m.Write(filepath.Join(dir, "test")); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(filepath.Join(dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	id := func() string {
		t.Helper()
		s, err := testSetID(filepath.Join(dir, "test"), m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := id()
	if again := id(); again != first {
		t.Fatal("the id of one test set changed")
	}
	write("images/b.png", randomPNG(1, 3, 4, 4)) // stored differently, same manifest
	if id() == first {
		t.Fatal("other stored pixels, same id")
	}
	os.Remove(filepath.Join(dir, "images/b.png"))
	if _, err := testSetID(filepath.Join(dir, "test"), m); err == nil {
		t.Fatal("an image the manifest lists is missing, and no error")
	}
}

// A run folder given as the model names the models in it.
func TestLoadPredictorNamesTheModelsOfARunFolder(t *testing.T) {
	run := t.TempDir()
	for _, m := range []string{"cnn", "vit"} {
		p := filepath.Join(run, m, "saved_model", "model.json")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(`{}`), 0o644)
	}
	_, err := LoadPredictor(run, 0)
	if err == nil || !strings.Contains(err.Error(), "give one of "+filepath.Join(run, "cnn")+" or "+filepath.Join(run, "vit")) {
		t.Fatalf("loading a run folder: %v", err)
	}
}

// A file given as the model is said to be one; the folder it is in is suggested only when it
// holds a model (for a model's model.json), not when it holds none (a photo in a folder of photos).
func TestLoadPredictorSuggestsOnlyAFolderHoldingAModel(t *testing.T) {
	dir := t.TempDir()
	photo := filepath.Join(dir, "bad", "bag.png")
	os.MkdirAll(filepath.Dir(photo), 0o755)
	os.WriteFile(photo, []byte("not a model"), 0o644)
	want := photo + " is a file: a model is a folder, and " + filepath.Join(dir, "bad") + ", the folder it is in, holds none exported by pipeline"
	if _, err := LoadPredictor(photo, 0); err == nil || err.Error() != want {
		t.Errorf("loading a photo as the model: %v\nwant %s", err, want)
	}
	card := filepath.Join(realModel(t, filepath.Join(dir, "cnn"), "cnn"), "model.json")
	want = card + " is a file: a model is a folder; give the folder it is in, " + filepath.Dir(card)
	if _, err := LoadPredictor(card, 0); err == nil || err.Error() != want {
		t.Errorf("loading a model's model.json as the model: %v\nwant %s", err, want)
	}
}
