package stages

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// augmentHCLTemplate is a split and an augment with max_augment and ops to fill in.
const augmentHCLTemplate = `
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
  max_augment = %d
  ops         = %s
}
`

// flip is deterministic: an original gets at most one flip copy, and no two copies of an
// original are the same bytes.
func TestFlipMakesAtMostOneCopyPerOriginal(t *testing.T) {
	w := newWS(t, fmt.Sprintf(augmentHCLTemplate, 6, `["flip", "color_jitter"]`))
	for i := 0; i < 40; i++ {
		w.write(fmt.Sprintf("raw/big/%02d.png", i), randomPNG(1, uint64(i), 10, 10))
	}
	for i := 0; i < 5; i++ {
		w.write(fmt.Sprintf("raw/small/%d.png", i), randomPNG(2, uint64(i), 10, 10))
	}
	rec, _ := w.run(false)
	dir := w.output(rec, "augment.balanced", "output")
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	flips := map[string]int{}            // original digest → flip copies
	seen := map[string]map[string]bool{} // original digest → copies' SHA-256
	copies := 0
	for _, e := range m.Images {
		if e.Copy == nil {
			continue
		}
		copies++
		if e.Copy.Op == OpFlip {
			flips[e.Digest]++
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		sum := fmt.Sprintf("%x", sha256.Sum256(b))
		if seen[e.Digest] == nil {
			seen[e.Digest] = map[string]bool{}
		}
		if seen[e.Digest][sum] {
			t.Errorf("%s: two copies of one original are identical", e.Path)
		}
		seen[e.Digest][sum] = true
	}
	if copies < 10 {
		t.Fatalf("only %d copies: the test cannot tell", copies)
	}
	for d, n := range flips {
		if n > 1 {
			t.Errorf("original %s has %d flip copies", d[:8], n)
		}
	}
}

// With flip alone, more than one copy per original cannot be distinct: refused beyond
// max_augment 2.
func TestFlipAloneIsLimitedToMaxAugment2(t *testing.T) {
	for _, c := range []struct {
		max int
		ops string
		ok  bool
	}{
		{6, `["flip"]`, false},
		{3, `["flip", "flip"]`, false},
		{2, `["flip"]`, true},
		{6, `["flip", "blur"]`, true},
	} {
		w := newWS(t, fmt.Sprintf(augmentHCLTemplate, c.max, c.ops))
		err := w.loadDiags()
		if (err == nil) != c.ok || err != nil && !strings.Contains(err.Error(), "set max_augment = 2") {
			t.Errorf("max_augment %d, ops %s: %v", c.max, c.ops, err)
		}
	}
}
