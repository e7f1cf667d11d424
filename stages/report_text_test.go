package stages

import (
	"bytes"
	"fmt"
	"html"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeline/pipeline"
)

func TestNeverRightNamesClassesWithNoCorrectPrediction(t *testing.T) {
	scores := []ClassScore{
		{Class: "a", Recall: 0.5, Support: 10},
		{Class: "b", Recall: 0, Support: 7},
		{Class: "c", Recall: 0, Support: 3},
		{Class: "d", Recall: 0, Support: 0}, // no test images: nothing to get right
		{Class: "e", Recall: 0, Support: 3},
	}
	if got := neverRight(scores); !slices.Equal(got, []string{`"c" (3)`, `"e" (3)`, `"b" (7)`}) {
		t.Fatalf("neverRight: %q", got)
	}
	if got := pipeline.ListSome([]string{"1", "2", "3"}, 2); got != "1, 2 and 1 more" {
		t.Fatalf("ListSome: %q", got)
	}
}

func TestFileURLEscapesWhatWouldNotReadAsAPath(t *testing.T) {
	for rel, want := range map[string]string{
		"cnn/metrics.png":     "cnn/metrics.png",
		"cnn.x:y/metrics.png": "./cnn.x:y/metrics.png",
		"cnn.a#b/metrics.png": "cnn.a%23b/metrics.png",
		"cnn.q?r/m.png":       "cnn.q%3Fr/m.png",
		"a b/m.png":           "a%20b/m.png",
	} {
		if got := string(fileURL(rel)); got != want {
			t.Errorf("fileURL(%q) = %q, want %q", rel, got, want)
		}
	}
}

// The report's line on dropped classes says how many, then names each with its usable
// images: a class named "empty" reads as one, not as a count ("…, empty: 1").
func TestReportNamesDroppedClassesWithTheirImages(t *testing.T) {
	w := newWS(t, strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1))
	for i := range 6 {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(31, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/other/%d.png", i), randomPNG(32, uint64(i), 6, 6))
	}
	w.write("raw/tiny/0.png", randomPNG(33, 0, 6, 6))
	w.write("raw/tiny/1.png", randomPNG(33, 1, 6, 6))
	w.write("raw/wee/0.png", randomPNG(34, 0, 6, 6))
	if err := os.MkdirAll(w.dir+"/raw/empty", 0o755); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.run(false)
	path, err := Summarize(rec).WriteHTML()
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "3 classes dropped for too few images (split.json: dropped_classes): empty (0 usable), tiny (2), wee (1)"
	if text := html.UnescapeString(string(page)); !strings.Contains(text, "<li>"+want+"</li>") {
		t.Fatalf("report.html lacks %q:\n%s", want, text)
	}
	// A split.json written before the counts were recorded names the classes alone.
	if got := droppedNote(splitReport{Dropped: []string{"c1", "c2"}}); got != "2 classes dropped for too few images (split.json: dropped_classes): c1, c2" {
		t.Fatalf("without counts: %q", got)
	}
}

// A split that rejected thousands of files (an editor's sidecar beside every photo) lists
// the first reportListMax in report.html and says how many more rejected.json holds; so for
// groups of the same picture in different classes.
func TestReportListsSomeRejectedFilesAndCountsTheRest(t *testing.T) {
	dir := t.TempDir()
	var rejected []Rejected
	var conflicts [][]string
	for i := range reportListMax + 57 {
		rejected = append(rejected, Rejected{Path: fmt.Sprintf("a/IMG_%04d.xmp", i), Class: "a", Reason: "not an image"})
	}
	for i := range reportListMax + 3 {
		conflicts = append(conflicts, []string{fmt.Sprintf("a/%d.jpg", i), fmt.Sprintf("b/%d.jpg", i)})
	}
	if err := writeJSON(dir+"/split.json", splitReport{Rejected: len(rejected), Conflicts: conflicts}); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(dir+"/rejected.json", rejected); err != nil {
		t.Fatal(err)
	}
	f, ok := splitFindings("split.main", dir)
	if !ok || len(f.Rejected) != reportListMax || f.RejectedMore != 57 || len(f.Conflicts) != reportListMax || f.ConflictsMore != 3 {
		t.Fatalf("findings: %v, %d rejected listed and %d more, %d conflicts and %d more", ok, len(f.Rejected), f.RejectedMore, len(f.Conflicts), f.ConflictsMore)
	}
	var page strings.Builder
	if err := reportTemplate.Execute(&page, map[string]any{"S": Summary{Run: &pipeline.RunRecord{}}, "Data": []dataFindings{f}}); err != nil {
		t.Fatal(err)
	}
	text := html.UnescapeString(page.String())
	if !strings.Contains(text, "… and 57 more in report/rejected.json") || !strings.Contains(text, "… and 3 more in split.json") ||
		strings.Count(text, ".xmp</td>") != reportListMax {
		t.Fatalf("report.html does not list %d rejected files and count the rest:\n%s", reportListMax, text)
	}
}

// A plot wider than the page shrinks to its width, except one so wide that shrunk its labels
// could not be read (a few dozen classes), which is shown at its own size, scrolled sideways.
func TestReportShowsWidePlotsAtTheirOwnSize(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, w int) string {
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, 10))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if u, wide := embedPNG(write("curves.png", 1440)); u == "" || wide {
		t.Errorf("a 1440-pixel plot: embedded %v, shown at its own size %v", u != "", wide)
	}
	u, wide := embedPNG(write("matrix.png", 2146))
	if u == "" || !wide {
		t.Errorf("a 2146-pixel plot: embedded %v, shown at its own size %v", u != "", wide)
	}
	var page strings.Builder
	if err := reportTemplate.Execute(&page, map[string]any{"S": Summary{Run: &pipeline.RunRecord{}},
		"Data": []dataFindings{{Stage: "split.main", Plot: u, PlotWide: true}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `<div class="plot wide"><a href=""><img alt="split.main class distribution"`) {
		t.Fatalf("the wide plot is not shown at its own size:\n%s", page.String())
	}
}
