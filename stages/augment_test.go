package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestCopyPlanMatchesTheFormulaExactly(t *testing.T) {
	cases := []struct{ n, largest, maxAug int }{
		{10, 100, 5},  // 5×10 = 50 < 100: target 50
		{30, 100, 5},  // 150 > 100: target 100
		{60, 100, 5},  // more than half the largest: still grows to 100 (the original added none)
		{100, 100, 5}, // the largest: no copies
		{7, 100, 5},
		{1, 100, 5},
		{33, 100, 3},
		{10, 10, 1},
	}
	for _, c := range cases {
		plan := copyPlan(c.n, c.largest, c.maxAug)
		total, lo, hi := 0, 1<<30, 0
		for _, k := range plan {
			total += k
			lo, hi = min(lo, k), max(hi, k)
		}
		target := min(c.maxAug*c.n, c.largest)
		if c.n+total != target {
			t.Errorf("n=%d largest=%d max=%d: %d images after, want %d", c.n, c.largest, c.maxAug, c.n+total, target)
		}
		if hi-lo > 1 {
			t.Errorf("n=%d: copies per original range %d..%d, want an even spread", c.n, lo, hi)
		}
		if hi > c.maxAug-1 {
			t.Errorf("n=%d: an original got %d copies, more than max_augment-1 = %d", c.n, hi, c.maxAug-1)
		}
	}
}

const augmentHCL = `
pipeline {
  image_size = 8
}

stage "split" "main" {
  source = "raw"
  val    = 0.2
  test   = 0.2
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 3
  ops         = ["flip_rotate_crop", "color_jitter", "affine", "blur", "noise", "flip"]
}
`

func TestAugmentBalancesDeterministicallyAndTrainOnly(t *testing.T) {
	sizes := map[string]int{"big": 40, "half": 25, "small": 5}
	var outputs []string
	for k := 0; k < 2; k++ {
		w := newWS(t, augmentHCL)
		for c, n := range sizes {
			for i := 0; i < n; i++ {
				w.write(fmt.Sprintf("raw/%s/%02d.png", c, i), randomPNG(uint64(len(c)), uint64(i), 10, 10))
			}
		}
		rec, _ := w.run(false)
		outputs = append(outputs, rec.Result("augment.balanced").Output)
		train, _ := ReadManifest(w.output(rec, "split.main", TrainSet))
		test, _ := ReadManifest(w.output(rec, "split.main", TestSet))
		out, err := ReadManifest(w.output(rec, "augment.balanced", "output"))
		if err != nil {
			t.Fatal(err)
		}
		before, after := train.Counts(), out.Counts()
		largest := 0
		for _, n := range before {
			largest = max(largest, n)
		}
		for i, c := range out.Classes {
			if want := min(3*before[i], largest); after[i] != want {
				t.Errorf("%s: %d → %d images, want %d", c, before[i], after[i], want)
			}
		}
		testDigests := map[string]bool{}
		for _, e := range test.Images {
			testDigests[e.Digest] = true
		}
		for _, e := range out.Images {
			if testDigests[e.Digest] {
				t.Fatalf("test image %s appears in the augmented training set", e.Digest)
			}
			if _, err := os.Stat(filepath.Join(w.output(rec, "augment.balanced", "output"), e.Path)); err != nil {
				t.Fatalf("manifest entry %s: %v", e.Path, err)
			}
		}
	}
	if outputs[0] != outputs[1] {
		t.Fatal("two runs produced different augmented sets")
	}
}
