package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A test photo removed from a class leaves its test set short of its quota (images keep their
// sets): the split's log says so, naming the class and the counts, until photos added fill it.
func TestAClassShortOfItsHeldOutQuotaIsWarnedOf(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 9) // 9 images at 0.2 and 0.2: 5 train, 2 val, 2 test
	rec := mustRun(t, w)
	if log := runLog(t, rec); strings.Contains(log, "held-out") {
		t.Errorf("a first split warns of a short set:\n%s", log)
	}
	var test string
	for src, s := range splitOf(t, w, rec) {
		if s == TestSet && strings.HasPrefix(src, "a/") {
			test = src
		}
	}
	if err := os.Remove(filepath.Join(w.dir, "raw", test)); err != nil {
		t.Fatal(err)
	}
	// 8 images: the quotas are 5, 1 and 2; a's test set has 1.
	rec = mustRun(t, w)
	if c := splitCounts(t, w, rec)["a"]; c.Test != 1 || c.Val != 2 {
		t.Fatalf("class a after one test photo was removed: %+v, want 1 test and 2 val images", c)
	}
	want := `warning: class "a" (1 test image of 2) has fewer held-out images than its quota: images keep the sets the previous split gave them, and only new photos fill a set below its quota; add photos to the class, or set a new seed for the split to draw its sets afresh (images then move between train, val and test)`
	if log := runLog(t, rec); !strings.Contains(log, want) || strings.Contains(log, `"b" (`) {
		t.Errorf("run.log does not warn of class a's test set alone:\n%s", log)
	}
	// A new photo goes to the short set: the class fills its quotas again.
	w.write("raw/a/new.png", randomPNG(7, 100, 6, 6))
	rec = mustRun(t, w)
	if c, log := splitCounts(t, w, rec)["a"], runLog(t, rec); c.Test != 2 || strings.Contains(log, "held-out") {
		t.Errorf("class a after a photo was added: %+v\n%s", c, log)
	}
}

// The warning names each class short of a quota with its counts; with a test_source only val
// has a quota; a class the previous split placed none of is not warned of.
func TestShortHeldOutNamesEachClassAndSet(t *testing.T) {
	counts := []classCounts{
		{Name: "a", Train: 8, Val: 1, Test: 1},  // 10: 6, 2, 2
		{Name: "b", Train: 6, Val: 2, Test: 2},  // at its quotas
		{Name: "c", Train: 18, Val: 1, Test: 1}, // 20: 12, 4, 4
		{Name: "new", Train: 10},
	}
	placed := map[string]bool{"a": true, "b": true, "c": true}
	got := shortHeldOut(counts, placed, 0.2, 0.2, false)
	if !strings.HasPrefix(got, `classes "a" (1 val image of 2, 1 test image of 2) and "c" (1 val image of 4, 1 test image of 4) have fewer held-out images than their quotas: `) ||
		!strings.HasSuffix(got, "add photos to these classes, or set a new seed for the split to draw its sets afresh (images then move between train, val and test)") {
		t.Errorf("two classes short: %q", got)
	}
	// With a test_source the test set is that folder's: a's 9 images have quotas of 7 and 2.
	got = shortHeldOut(counts[:1], placed, 0.2, 0, true)
	if !strings.HasPrefix(got, `class "a" (1 val image of 2) has fewer held-out images than its quota: `) || !strings.HasSuffix(got, "(images then move between train and val)") {
		t.Errorf("with a test_source: %q", got)
	}
	if got := shortHeldOut(counts[1:], map[string]bool{"b": true}, 0.2, 0.2, false); got != "" {
		t.Errorf("no class the previous split placed short: %q", got)
	}
}

// A test_source class folder emptied of its photos gives the test set none of the class:
// validate (and plan) warn beforehand, and the split's log says so.
func TestAnEmptyTestClassFolderIsWarnedOf(t *testing.T) {
	w := testSourceXY(t)
	mustRun(t, w)
	if err := os.Remove(filepath.Join(w.dir, "raw/test/y/t.png")); err != nil {
		t.Fatal(err)
	}
	want := `warning: Questionable source: test_source "raw/test": class "y": its folder has no files, so the test set would have none of its images.`
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("validate says %q, want %q", got, want)
	}
	rec := mustRun(t, w)
	if log := runLog(t, rec); !strings.Contains(log, `warning: test_source raw/test has no usable images of class "y" (its folder has no files): the test set has no images of it`) {
		t.Errorf("run.log does not say that class y has no test images:\n%s", log)
	}
	w.write("raw/test/y/t.png", []byte("not a photo"))
	rec = mustRun(t, w)
	if log := runLog(t, rec); !strings.Contains(log, `warning: test_source raw/test has no usable images of class "y" (rejected in its folder: 1 not an image): the test set has no images of it`) {
		t.Errorf("run.log does not say that class y's test file was rejected:\n%s", log)
	}
}

// A class of source with no folder at all in test_source gets no test image: validate and
// plan warn beforehand, naming the class, both folders and the folder to put its test photos
// in, and the split's log says so; not while a test_source class that source lacks fails the
// split, which is to be fixed first.
func TestATestClassWithoutAFolderIsWarnedOf(t *testing.T) {
	w := newWS(t, fmt.Sprintf(testSourceHCL, 8))
	w.writeClasses("raw/train", 6, "x", "y", "z")
	w.write("raw/test/x/t.png", randomPNG(9, 1, 6, 6))
	w.write("raw/test/z/t.png", randomPNG(9, 2, 6, 6))
	want := `warning: Questionable source: test_source "raw/test": class "y" has no folder here, though source "raw/train" has one, so the test set would have none of its images (it is still trained and validated on); put its test photos in raw/test/y.`
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("validate says %q, want %q", got, want)
	}
	wf := w.engine().Workflow
	var planned []string
	for _, d := range wf.PathChecks(w.dir, wf.Instances, true) {
		planned = append(planned, fmt.Sprintf("warning: %s: %s", d.Summary, d.Detail))
	}
	if len(planned) != 1 || planned[0] != want {
		t.Errorf("plan says %q, want %q", planned, want)
	}
	rec := mustRun(t, w)
	if log := runLog(t, rec); !strings.Contains(log, `warning: test_source raw/test has no folder for class "y": the test set has no images of it`) {
		t.Errorf("run.log does not say that class y has no test images:\n%s", log)
	}

	// Several are named together.
	if err := os.RemoveAll(filepath.Join(w.dir, "raw/test/z")); err != nil {
		t.Fatal(err)
	}
	want = `warning: Questionable source: test_source "raw/test": classes "y" and "z" have no folder here, though source "raw/train" has one for each, so the test set would have none of their images (they are still trained and validated on); put their test photos in raw/test/<class>.`
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("two classes: validate says %q, want %q", got, want)
	}

	// A test class that source lacks fails the split: said alone.
	if err := os.Rename(filepath.Join(w.dir, "raw/test/x"), filepath.Join(w.dir, "raw/test/X")); err != nil {
		t.Fatal(err)
	}
	if got := w.sourceDiags(); len(got) != 1 || !strings.HasPrefix(got[0], "warning: Unusable source: ") || strings.Contains(got[0], "no folder here") {
		t.Errorf("a test class source lacks: validate says %q, want that alone", got)
	}
}

// The reasons a test_source class gave no usable image are found whatever the folder's path
// looks like: "." (whose files are shown without "./"), a trailing slash, a "./" in front.
func TestNoTestImagesFindsTheRejectedFiles(t *testing.T) {
	for _, c := range []struct{ testSource, path string }{
		{".", "y/a.png"}, {"raw/test", "raw/test/y/a.png"}, {"raw/test/", "raw/test/y/a.png"}, {"./raw/test", "raw/test/y/a.png"},
	} {
		rejected := []Rejected{{Path: c.path, Class: "y", Reason: "not an image"}, {Path: "other/x/b.png", Class: "x", Reason: "empty file"}}
		got := noTestImages(c.testSource, "y", rejected)
		if !strings.Contains(got, "rejected in its folder") || !strings.Contains(got, "not an image") || strings.Contains(got, "empty file") {
			t.Errorf("test_source %q: %s", c.testSource, got)
		}
	}
}
