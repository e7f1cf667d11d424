package stages

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestExampleFindsTheClassImageWhateverTheFolderIsCalled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "model [1]*")
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"3.png": "three", "13.JPG": "thirteen"} {
		if err := os.WriteFile(filepath.Join(dir, "examples", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &Predictor{Dir: dir}
	for id, want := range map[int][2]string{3: {"three", ".png"}, 13: {"thirteen", ".jpg"}} {
		f, ext, err := p.Example(id)
		if err != nil {
			t.Fatalf("class %d: %v", id, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != want[0] || ext != want[1] {
			t.Errorf("class %d: %q %q, want %q %q", id, b, ext, want[0], want[1])
		}
	}
	if _, _, err := p.Example(1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("class 1 has no example: %v", err)
	}
}

func TestTopPredictionsIsEmptyBelowOneAndCappedAtTheClasses(t *testing.T) {
	p, classes := []float32{0.1, 0.7, 0.2}, []string{"a", "b", "c"}
	for _, k := range []int{-3, 0} {
		if got := topPredictions(p, classes, k); len(got) != 0 {
			t.Errorf("k %d: %v, want none", k, got)
		}
	}
	if got := topPredictions(p, classes, 5); len(got) != 3 || got[0].ClassName != "b" || got[1].ClassName != "c" {
		t.Errorf("k 5: %v, want b, c, a", got)
	}
}
