package graphs

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadWeights exports a trained network and starts other trainers from it: one of the
// same shape computes exactly what the exported one does (batch-norm statistics included),
// one for other classes takes the classifier class by class, and another architecture, or
// one too different to share a tensor, is refused.
func TestLoadWeights(t *testing.T) {
	in := tinyInput(16, 3)
	data := Synthetic(32, 4, 16, 16, 3, 1)
	for _, spec := range tinySpecs() {
		t.Run(spec.Architecture, func(t *testing.T) {
			src := newTiny(t, spec, in, 4, 1)
			lossTrace(t, src, data, in, 5)
			dir := filepath.Join(t.TempDir(), "model")
			if err := src.Export(dir, []string{"a", "b", "c", "d"}, "center_crop"); err != nil {
				t.Fatal(err)
			}
			want, err := src.Evaluate(Batch{Images: data.Images})
			if err != nil {
				t.Fatal(err)
			}

			same := newTiny(t, spec, in, 4, 2) // another seed: other initial values
			before, err := same.Evaluate(Batch{Images: data.Images})
			if err != nil {
				t.Fatal(err)
			}
			ws, err := same.LoadWeights(dir, []string{"a", "b", "c", "d"})
			if err != nil {
				t.Fatal(err)
			}
			if len(ws.Fresh) != 0 || len(ws.Loaded) != len(same.model) {
				t.Fatalf("loaded %d of %d variables; fresh: %v", len(ws.Loaded), len(same.model), ws.Fresh)
			}
			got, err := same.Evaluate(Batch{Images: data.Images})
			if err != nil {
				t.Fatal(err)
			}
			if slices.Equal(before.Probabilities[0], want.Probabilities[0]) {
				t.Fatal("a trainer with another seed already computes the exported model's output; the test cannot tell")
			}
			for i := range want.Probabilities {
				if !slices.Equal(got.Probabilities[i], want.Probabilities[i]) {
					t.Fatalf("image %d: %v after loading, %v exported", i, got.Probabilities[i], want.Probabilities[i])
				}
			}
			if _, err := same.Step(data.Slice(in, 0, 8), 1e-3); err != nil {
				t.Fatalf("training after loading: %v", err)
			}

			// Six classes, four of them the model's in another order: the classifier is taken
			// by class name, so the known classes' odds against each other are the model's.
			classes := []string{"d", "x", "b", "a", "y", "c"}
			more := newTiny(t, spec, in, 6, 2)
			ws, err = more.LoadWeights(dir, classes)
			if err != nil {
				t.Fatal(err)
			}
			if len(ws.Fresh) != 0 || len(ws.Loaded) != len(more.model) || !slices.Equal(ws.NewClasses, []string{"x", "y"}) || len(ws.GoneClasses) != 0 {
				t.Fatalf("6 classes from a 4-class model: loaded %v, fresh %v, new classes %v", ws.Loaded, ws.Fresh, ws.NewClasses)
			}
			got, err = more.Evaluate(Batch{Images: data.Images})
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Probabilities {
				w, g := want.Probabilities[i], got.Probabilities[i]
				// a/b, c/d and b/c odds: columns 3/2, 5/0 and 2/5 here, 0/1, 2/3 and 1/2 there.
				for _, pair := range [][4]int{{3, 2, 0, 1}, {5, 0, 2, 3}, {2, 5, 1, 2}} {
					ours, theirs := float64(g[pair[0]]/g[pair[1]]), float64(w[pair[2]]/w[pair[3]])
					if math.Abs(ours/theirs-1) > 1e-3 {
						t.Fatalf("image %d: odds %g here, %g in the model", i, ours, theirs)
					}
				}
			}
		})
	}

	t.Run("other architecture", func(t *testing.T) {
		specs := tinySpecs()
		src := newTiny(t, specs[0], in, 4, 1)
		dir := filepath.Join(t.TempDir(), "model")
		if err := src.Export(dir, []string{"a", "b", "c", "d"}, "center_crop"); err != nil {
			t.Fatal(err)
		}
		other := newTiny(t, specs[len(specs)-1], in, 4, 1)
		if _, err := other.LoadWeights(dir, []string{"a", "b", "c", "d"}); err == nil || !strings.Contains(err.Error(), "holds a cnn, not a vit") {
			t.Fatalf("a %s from a %s: err %v", specs[len(specs)-1].Architecture, specs[0].Architecture, err)
		}
		narrow := newTiny(t, Spec{Architecture: "cnn", CNN: &CNN{Channels: []int64{4}, Pool: 2, Dense: 8}}, in, 3, 1)
		if _, err := narrow.LoadWeights(dir, []string{"p", "q", "r"}); err == nil || !strings.Contains(err.Error(), "options differ") {
			t.Fatalf("a cnn of other widths and classes: err %v", err)
		}
		if err := os.RemoveAll(filepath.Join(dir, "variables")); err != nil {
			t.Fatal(err)
		}
		if _, err := src.LoadWeights(dir, []string{"a", "b", "c", "d"}); err == nil || !strings.Contains(err.Error(), "has no weights") {
			t.Fatalf("a model without variables: err %v", err)
		}
	})
}
