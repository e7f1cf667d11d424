package stages

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
)

// loadDiags loads and builds the workspace's pipeline file, returning its errors.
func (w *ws) loadDiags() error {
	w.t.Helper()
	if diags := w.diagnostics(); diags.HasErrors() {
		return diags
	}
	return nil
}

// diagnostics loads and builds the workspace's pipeline file, as validate does, returning
// every diagnostic, warnings too.
func (w *ws) diagnostics() hcl.Diagnostics {
	cfg, diags := pipeline.LoadFile(filepath.Join(w.dir, "pipeline.hcl"), w.reg)
	if !diags.HasErrors() {
		_, diags = pipeline.Build(cfg, w.reg, nil)
	}
	return diags
}

// splitCounts returns the split's per-class counts from report/split.json.
func splitCounts(t *testing.T, w *ws, rec *pipeline.RunRecord) map[string]classCounts {
	t.Helper()
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	out := map[string]classCounts{}
	for _, c := range rep.Classes {
		out[c.Name] = c
	}
	return out
}

// The too-small check counts distinct images: copies share a set, so a class of three files,
// two of them identical, cannot give train, val and test one each.
func TestTooSmallCheckCountsDistinctImages(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/other/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	one := randomPNG(6, 0, 6, 6)
	w.write("raw/Tiny/1.png", one)
	w.write("raw/Tiny/2.png", one)
	w.write("raw/Tiny/3.png", randomPNG(6, 1, 6, 6))
	same := randomPNG(7, 0, 6, 6)
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("raw/Same/%d.png", i), same)
	}
	_, err := w.run(true)
	if err == nil || !strings.Contains(err.Error(), `class "Same" (4 files but only 1 distinct image), class "Tiny" (3 files but only 2 distinct images)`) {
		t.Fatalf("error %v", err)
	}
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)))
	rec, _ := w.run(false)
	counts := splitCounts(t, w, rec)
	if _, ok := counts["Tiny"]; ok || len(counts) != 2 {
		t.Fatalf("classes %v, want Same and Tiny dropped", counts)
	}
	log := runLog(t, rec)
	if !strings.Contains(log, `dropping class "Tiny": 3 usable files but only 2 distinct images, 3 needed`) {
		t.Errorf("run.log lacks the drop of Tiny:\n%s", log)
	}
}

// runLog returns a run's run.log.
func runLog(t *testing.T, rec *pipeline.RunRecord) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// groupsOf makes one group per size in sizes, of that many files of class c, named c00, c01, ….
func groupsOf(c string, sizes ...int) []*group {
	var gs []*group
	for i, n := range sizes {
		g := &group{Digest: fmt.Sprintf("%s%02d", c, i)}
		for k := 0; k < n; k++ {
			g.Members = append(g.Members, member{Class: c, Rel: fmt.Sprintf("%s/%d-%d.png", c, i, k)})
		}
		gs = append(gs, g)
	}
	return gs
}

// setsPerClass counts the groups of each class in each split.
func setsPerClass(groups []*group, assigned map[string]string) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, g := range groups {
		for c := range g.files() {
			if out[c] == nil {
				out[c] = map[string]int{}
			}
			out[c][assigned[g.Digest]]++
		}
	}
	return out
}

// Quotas count files: a group of many copies fills many places of its set. Every class still
// gets a group in each set the fractions ask for, whatever the seed's order.
func TestEverySetGetsAGroupWhateverTheGroupSizes(t *testing.T) {
	for seed := int64(0); seed < 30; seed++ {
		for _, sizes := range [][]int{{8, 1, 1}, {1, 1, 6}, {4, 4, 1, 1}, {10, 1, 1, 1}} {
			gs := groupsOf("a", sizes...)
			assigned, lacking := assignSplits(gs, nil, nil, 0.1, 0.1, seed)
			if len(lacking) > 0 {
				t.Fatalf("seed %d, groups %v: lacking %v", seed, sizes, lacking)
			}
			for _, s := range []string{TrainSet, ValSet, TestSet} {
				if n := setsPerClass(gs, assigned)["a"][s]; n == 0 {
					t.Errorf("seed %d, groups of %v files: no group in %s", seed, sizes, s)
				}
			}
		}
	}
}

// A file in two classes takes its set by one class's quota; the other class still gets a
// file in each set, and when no split can give it one the class is named.
func TestSharedFilesLeaveNoClassWithoutASet(t *testing.T) {
	for seed := int64(0); seed < 30; seed++ {
		gs := groupsOf("a", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
		b := groupsOf("b", 1)
		// two of b's three images are also in a, whose quota places them
		gs[0].Members = append(gs[0].Members, member{Class: "b", Rel: "b/x.png"})
		gs[1].Members = append(gs[1].Members, member{Class: "b", Rel: "b/y.png"})
		all := append(gs, b...)
		assigned, lacking := assignSplits(all, nil, nil, 0.1, 0.1, seed)
		if len(lacking) > 0 {
			t.Fatalf("seed %d: lacking %v", seed, lacking)
		}
		per := setsPerClass(all, assigned)
		for _, c := range []string{"a", "b"} {
			for _, s := range []string{TrainSet, ValSet, TestSet} {
				if per[c][s] == 0 {
					t.Errorf("seed %d: class %s has no image in %s: %v", seed, c, s, per[c])
				}
			}
		}
	}
	// x needs g1, g2, g3 in three sets, y g1, g2, g4, so g4 shares g3's set; z, which has
	// both, cannot be given three sets. Each class has three distinct images.
	if res := splitGroups(conflicted(), nil, nil, 0.1, 0.1, 1); len(res.failed) == 0 {
		t.Error("no class of x, y, z named as unsplittable")
	}
}

// conflicted returns groups g1…g5 shared as x = {g1, g2, g3}, y = {g1, g2, g4},
// z = {g3, g4, g5}.
func conflicted() []*group {
	var gs []*group
	for i, classes := range []string{"xy", "xy", "xz", "yz", "z"} {
		g := &group{Digest: fmt.Sprintf("g%d", i+1)}
		for _, c := range classes {
			g.Members = append(g.Members, member{Class: string(c), Rel: fmt.Sprintf("%c/g%d.png", c, i+1)})
		}
		gs = append(gs, g)
	}
	return gs
}

// The same conflict through the stage: the classes are named, or dropped when asked.
func TestSharedFilesThatCannotBeSplitAreNamedOrDropped(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/other/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	for i, g := range conflicted() {
		pic := randomPNG(6, uint64(i), 6, 6)
		for _, m := range g.Members {
			w.write("raw/"+m.Rel, pic)
		}
	}
	_, err := w.run(true)
	if err == nil || !strings.Contains(err.Error(), "also in other classes") || !strings.Contains(err.Error(), "drop_small_classes") {
		t.Fatalf("error %v", err)
	}
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)))
	rec, _ := w.run(false)
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if len(rep.Dropped) == 0 {
		t.Fatal("nothing dropped")
	}
	for _, c := range rep.Classes {
		if c.Train == 0 || c.Val == 0 || c.Test == 0 {
			t.Errorf("class %s: %+v", c.Name, c)
		}
	}
}

// Per class, each set's count is its exact share rounded up or down, the three summing to
// the class (largest remainder), with one val and one test image for a class of three or
// more, and one train image.
func TestTargetsKeepOneForTrain(t *testing.T) {
	for _, c := range []struct {
		n                   int
		val, test           float64
		train, wantV, wantT int
	}{
		{10, 0.1, 0.1, 8, 1, 1},
		{3, 0.1, 0.1, 1, 1, 1},
		{4, 0.4, 0.4, 1, 1, 2},
		{5, 0.9, 0, 1, 4, 0},
		{2, 0.5, 0.4, 1, 0, 1},
		{1, 0.5, 0.4, 1, 0, 0},
		// as exact as whole images allow: the image left over by two halves goes to test
		{25, 0.1, 0.1, 20, 2, 3},
		{15, 0.1, 0.1, 12, 1, 2},
		{10, 0.25, 0.25, 5, 2, 3},
		{6, 0.25, 0.25, 3, 1, 2},
		{7, 0.15, 0.15, 5, 1, 1},
		{30, 0.1, 0.2, 21, 3, 6},
		{9, 0.1, 0.1, 7, 1, 1},
	} {
		got := targets(c.n, c.val, c.test)
		if got[TrainSet] != c.train || got[ValSet] != c.wantV || got[TestSet] != c.wantT {
			t.Errorf("targets(%d, %g, %g) = %v, want train %d, val %d, test %d", c.n, c.val, c.test, got, c.train, c.wantV, c.wantT)
		}
	}
}

// val + test must leave room for train, test's default included; the error points at the
// larger of the two (line 5 holds the first attribute given, line 6 the second).
func TestValidateCountsTheDefaultTestFraction(t *testing.T) {
	for _, c := range []struct {
		attrs string
		ok    bool
		line  int
	}{
		{"val = 0.95", false, 5},
		{"val = 0.85", true, 0},
		{"val = 0.9", false, 5},
		{"val = 0.5\n  test = 0.5", false, 5},
		{"val = 0.2\n  test = 0.8", false, 6},
		{"test = 0.95", false, 5},
		{"val = 0.95\n  test_source = \"raw2\"", true, 0},
	} {
		w := newWS(t, "stage \"split\" \"main\" {\n  source = \"raw\"\n  image_size = 8\n\n  "+c.attrs+"\n}\n")
		err := w.loadDiags()
		if (err == nil) != c.ok || err != nil && !strings.Contains(err.Error(), "No images left for training") {
			t.Errorf("%s: %v", c.attrs, err)
		}
		if diags, _ := err.(hcl.Diagnostics); err != nil && (len(diags) != 1 || diags[0].Subject.Start.Line != c.line) {
			t.Errorf("%s: %v, want it at line %d", c.attrs, err, c.line)
		}
	}
}

// Where the minimums do not bind, no other division of a class is nearer its exact shares:
// targets minimises the summed distance of the three counts from them.
func TestTargetsAreAsExactAsCountsAllow(t *testing.T) {
	fracs := []float64{0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 1.0 / 3}
	for n := 3; n <= 80; n++ {
		for _, val := range fracs {
			for _, test := range fracs {
				got := targets(n, val, test)
				dist := func(tc, vc int) float64 {
					return math.Abs(float64(tc)-float64(n)*test) + math.Abs(float64(vc)-float64(n)*val) +
						math.Abs(float64(n-tc-vc)-float64(n)*(1-val-test))
				}
				if got[TestSet] <= 1 || got[ValSet] <= 1 || got[TrainSet] <= 1 {
					continue // a minimum may bind
				}
				best := dist(got[TestSet], got[ValSet])
				for tc := 0; tc <= n; tc++ {
					for vc := 0; tc+vc <= n; vc++ {
						if d := dist(tc, vc); d < best-1e-9 {
							t.Fatalf("targets(%d, %g, %g) = %v (distance %.3f), but test %d, val %d is nearer (%.3f)", n, val, test, got, best, tc, vc, d)
						}
					}
				}
			}
		}
	}
}

// A split left with fewer than two classes says why the others went: dropped for too few
// images, the files rejected and the setting that rejected them.
func TestTooFewClassesSaysWhy(t *testing.T) {
	w := newWS(t, strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true\n  min_side = 50", 1))
	w.writeClasses("raw", 4, "a", "b", "c")
	_, err := w.run(true)
	want := "0 usable classes in raw; a classifier needs at least 2 (3 classes dropped for too few images (drop_small_classes); 12 files rejected: 12 smaller than min_side 50); lower min_side"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestValuesInMessagesAreWrittenShort checks that a number in a message is written as the
// pipeline file would write it, not as hundreds of digits.
func TestValuesInMessagesAreWrittenShort(t *testing.T) {
	for in, want := range map[float64]string{2: "2", 0.25: "0.25", 1e300: "1e+300", 123456789: "123456789"} {
		if got := hclValue(cty.NumberFloatVal(in)); got != want {
			t.Errorf("hclValue(%g) = %s, want %s", in, got, want)
		}
	}
}

// A file changed in place (saved again by an editor or a PNG optimiser: other bytes, the same
// picture, or touched up) keeps its set, as photos are added around it: a held-out photo
// saved again never lands in training.
func TestAPhotoSavedAgainKeepsItsSet(t *testing.T) {
	w := newWS(t, splitHCL)
	classes := []string{"a", "b", "c"}
	for ci, c := range classes {
		for i := 0; i < 10; i++ {
			w.write(fmt.Sprintf("raw/%s/%02d.png", c, i), randomPNG(uint64(10+ci), uint64(i), 6, 6))
		}
	}
	rec, _ := w.run(false)
	before := splitOf(t, w, rec)
	resaved := 0
	for src, s := range before {
		if s == TrainSet {
			continue
		}
		path := filepath.Join(w.dir, "raw", filepath.FromSlash(src))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		w.write("raw/"+src, withPNGChunk(data, "tEXt", []byte("Software\x00optimiser")))
		resaved++
	}
	// This week's photos, which change every class's quotas.
	for ci, c := range classes {
		for i := 10; i < 16; i++ {
			w.write(fmt.Sprintf("raw/%s/%02d.png", c, i), randomPNG(uint64(10+ci), uint64(i), 6, 6))
		}
	}
	rec, _ = w.run(false)
	after := splitOf(t, w, rec)
	for src, s := range before {
		if s != TrainSet && after[src] != s {
			t.Errorf("%s, saved again, moved from %s to %s", src, s, after[src])
		}
	}
	if resaved < 6 {
		t.Fatalf("only %d held-out files to save again", resaved)
	}
}

// A min_side whose square is more than max_pixels rejects every image: validate says so,
// naming both, at min_side, or at max_pixels when min_side is its default.
func TestValidateRefusesSizeLimitsNoImagePasses(t *testing.T) {
	for _, c := range []struct {
		attrs string
		line  int // 0: valid
	}{
		{"min_side = 100\n  max_pixels = 50", 5},
		{"max_pixels = 50\n  min_side = 100", 6},
		{"min_side = 100\n  max_pixels = 10000", 0},
		{"max_pixels = 3", 5},
		{"max_pixels = 4", 0},
		{"min_side = 8000", 5}, // over the default max_pixels of 50,000,000
		{"min_side = 7000", 0},
	} {
		w := newWS(t, "stage \"split\" \"main\" {\n  source = \"raw\"\n  image_size = 8\n\n  "+c.attrs+"\n}\n")
		err := w.loadDiags()
		diags, _ := err.(hcl.Diagnostics)
		switch {
		case c.line == 0 && err != nil:
			t.Errorf("%s: %v", c.attrs, err)
		case c.line == 0:
		case len(diags) != 1 || diags[0].Summary != "No image can pass min_side and max_pixels" || diags[0].Subject.Start.Line != c.line:
			t.Errorf("%s: %v, want one error of no image passing at line %d", c.attrs, err, c.line)
		case !strings.Contains(diags[0].Detail, "min_side = ") || !strings.Contains(diags[0].Detail, "max_pixels = ") || !strings.Contains(diags[0].Detail, "every image is rejected"):
			t.Errorf("%s: %s", c.attrs, diags[0].Detail)
		}
	}
}
