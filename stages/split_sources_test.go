package stages

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// validate (and plan, which evaluates the same checks) refuses a source that is a file, and a
// test_source that is the source, or inside it, once links and ".." are resolved.
func TestSplitFoldersAreCheckedOnTheFileSystem(t *testing.T) {
	for _, c := range []struct {
		source, testSource string
		want               []string // "" for valid
	}{
		{"file.hcl", "", []string{"Source is not a folder", `source "file.hcl" is a file, not a folder`}},
		{"raw", "notes.txt", []string{"Source is not a folder", `test_source "notes.txt" is a file`}},
		{"raw", "same", []string{"test_source overlaps source", `test_source "same" is the same folder as source "raw"`}},
		{"raw", "same/a", []string{"test_source overlaps source", `test_source "same/a" (`, `raw/a) is inside source "raw" (`}},
		{"raw/a", "up", []string{"test_source overlaps source", `test_source "up" (`, `) holds source "raw/a" (`}},
		{"raw", "held/../held", []string{""}},
		{"raw", "missing", []string{""}}, // the engine reports it
		// Folders that do not exist yet are compared as far as they do, written either way.
		{"raw", "raw/test", []string{"test_source overlaps source", `test_source "raw/test" (`, `raw/test) is inside source "raw" (`}},
		{"raw", "WS/raw/test", []string{"test_source overlaps source", `raw/test) is inside source "raw" (`}},
		{"new/train", "new", []string{"test_source overlaps source", `) holds source "new/train" (`}},
		{"same/new", "raw/new", []string{"test_source overlaps source", `test_source "raw/new" is the same folder as source "same/new"`}},
	} {
		w := newWS(t, "")
		testSource := strings.Replace(c.testSource, "WS", w.dir, 1)
		attrs := fmt.Sprintf("source = %q", c.source)
		if testSource != "" {
			attrs += fmt.Sprintf("\n  test_source = %q", testSource)
		}
		w.write("pipeline.hcl", []byte("stage \"split\" \"main\" {\n  "+attrs+"\n  image_size = 8\n}\n"))
		w.write("file.hcl", []byte("stage {}"))
		w.write("notes.txt", []byte("notes"))
		w.write("raw/a/1.png", randomPNG(1, 1, 6, 6))
		w.write("held/a/1.png", randomPNG(1, 2, 6, 6))
		os.Symlink("raw", filepath.Join(w.dir, "same"))
		os.Symlink(".", filepath.Join(w.dir, "up"))
		err := w.loadDiags()
		if c.want[0] == "" {
			if err != nil {
				t.Errorf("source %q, test_source %q: %v", c.source, c.testSource, err)
			}
			continue
		}
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("source %q, test_source %q: %v, want %q", c.source, c.testSource, err, want)
			}
		}
		if err != nil && strings.Count(err.Error(), "test_source overlaps source") > 1 {
			t.Errorf("source %q, test_source %q: the overlap is reported more than once: %v", c.source, c.testSource, err)
		}
	}
}

// An empty class folder changes what the split does (with drop_small_classes it is listed
// as dropped; without, the split fails on it), so it reruns the split, and the run says why.
func TestAnEmptyClassFolderRerunsTheSplit(t *testing.T) {
	w := newWS(t, strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1))
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	w.run(false)
	if err := os.Mkdir(filepath.Join(w.dir, "raw", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.run(false)
	res := rec.Result("split.main")
	if res.Status != "ran" || len(res.Reasons) != 1 || res.Reasons[0] != "raw: folder added: c/" {
		t.Fatalf("after adding an empty class folder: %s %q", res.Status, res.Reasons)
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if strings.Join(rep.Dropped, ",") != "c" {
		t.Fatalf("dropped %v, want the empty class c", rep.Dropped)
	}
}

// A test_source written another way ("./raw/test/" for "raw/test") is the same folder: the
// split keeps the previous split's sets, also one recorded as written by an earlier version.
func TestTestSourceWrittenAnotherWayKeepsThePreviousSets(t *testing.T) {
	w := newWS(t, strings.Replace(fmt.Sprintf(testSourceHCL, 8), `"raw/test"`, `"./raw/test/"`, 1))
	w.writeClasses("raw/train", 8, "x", "y")
	for _, c := range []string{"x", "y"} {
		w.write(fmt.Sprintf("raw/test/%s/t.png", c), randomPNG(uint64(c[0]), 100, 6, 6))
	}
	first, _ := w.run(false)
	var rep splitReport
	readJSONFile(t, w.output(first, "split.main", "report/split.json"), &rep)
	if rep.Settings == nil || rep.Settings.TestSource != "raw/test" {
		t.Fatalf("settings recorded %+v, want test_source raw/test", rep.Settings)
	}
	w.write("raw/train/x/new.png", randomPNG('x', 50, 6, 6)) // something to rerun for
	w.write("pipeline.hcl", []byte(fmt.Sprintf(testSourceHCL, 8)))
	rec, _ := w.run(false)
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if rec.Result("split.main").Status != "ran" || strings.Contains(string(log), "not keeping the previous split's sets") {
		t.Fatalf("split %s; run.log:\n%s", rec.Result("split.main").Status, log)
	}

	// A report that recorded the path as written.
	p := &previousSplit{rep: &splitReport{Settings: &splitSettings{Seed: 42, Val: 0.25, TestSource: "./raw/test/"}},
		manifests: map[string]*Manifest{TrainSet: {Images: []Entry{{Digest: "d1"}}}}}
	sets, why := p.sets(splitSettings{Seed: 42, Val: 0.25, TestSource: "raw/test"})
	if why != "" || sets["d1"] != TrainSet {
		t.Fatalf("previous sets %v, not kept because %q", sets, why)
	}
	if _, why := p.sets(splitSettings{Seed: 42, Val: 0.25, TestSource: "raw/other"}); why != `test_source "raw/test" → "raw/other"` {
		t.Fatalf("another folder: %q", why)
	}
}

// The split's source check counts each class's files against what its sets need: three with
// val and test, two with a test_source (the test set comes from there), one with neither.
func TestSourceCheckCountsFilesPerClass(t *testing.T) {
	src := t.TempDir()
	for class, n := range map[string]int{"big": 4, "two": 2, "one": 1} {
		os.MkdirAll(filepath.Join(src, class), 0o755)
		for i := 0; i < n; i++ {
			os.WriteFile(filepath.Join(src, class, fmt.Sprintf("%d.jpg", i)), nil, 0o644)
		}
		os.WriteFile(filepath.Join(src, class, ".hidden.jpg"), nil, 0o644) // not counted
	}
	for _, c := range []struct {
		given map[string]cty.Value
		want  string // "" for none
	}{
		{nil, `class "one" has 1 file, "two" has 2 files, and this split needs at least 3 images per class`},
		{map[string]cty.Value{"test_source": cty.StringVal("t")}, `class "one" has 1 file, and this split needs at least 2 images`},
		{map[string]cty.Value{"val": cty.NumberFloatVal(0), "test": cty.NumberFloatVal(0)}, ""},
		{map[string]cty.Value{"drop_small_classes": cty.True}, ""},
	} {
		given := map[string]cty.Value{"source": cty.StringVal("raw"), "image_size": cty.NumberIntVal(8)}
		for k, v := range c.given {
			given[k] = v
		}
		got := Split{}.CheckPath(pipelineValues(t, Split{}, given), "source", src)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.given, got, c.want)
		}
	}
	if got := (Split{}).CheckPath(pipelineValues(t, Split{}, map[string]cty.Value{"source": cty.StringVal("raw"), "image_size": cty.NumberIntVal(8)}), "test_source", src); got != "" {
		t.Errorf("test_source is not counted against the split's sets: %q", got)
	}
}

// The split's source check finds two class folders whose names are one name in two Unicode
// forms, which the split refuses, in its words, in source and test_source, whatever the
// settings: without it, validate and plan said nothing of a split that would fail.
func TestSourceCheckFindsClassFoldersNamedInTwoUnicodeForms(t *testing.T) {
	src := t.TempDir()
	for _, class := range []string{"Cr\u00e8me", "Cre\u0300me", "Lait"} { // "Crème" composed, decomposed
		os.MkdirAll(filepath.Join(src, class), 0o755)
		for i := 0; i < 4; i++ {
			os.WriteFile(filepath.Join(src, class, fmt.Sprintf("%d.jpg", i)), nil, 0o644)
		}
	}
	want := `class folders "Cre\u0300me" and "Cr\u00e8me" are the same name written in two Unicode forms (composed and decomposed accents); merge them into one folder`
	for name, given := range map[string]map[string]cty.Value{
		"defaults":           {},
		"drop_small_classes": {"drop_small_classes": cty.True},
		"val unknown":        {"val": cty.UnknownVal(cty.Number)}, // known once an upstream stage runs
	} {
		given["source"], given["image_size"] = cty.StringVal("raw"), cty.NumberIntVal(8)
		for _, attr := range []string{"source", "test_source"} {
			if got := (Split{}).CheckPath(pipelineValues(t, Split{}, given), attr, src); got != want {
				t.Errorf("%s with %s: %q, want %q", attr, name, got, want)
			}
		}
	}
	_, _, _, err := discover(src)
	if err == nil || err.Error() != want { // the caller names the folder (source raw: …)
		t.Errorf("the split's own error is worded otherwise: %v", err)
	}
	os.Rename(filepath.Join(src, "Cre\u0300me"), filepath.Join(src, "Cremes"))
	if got := (Split{}).CheckPath(pipelineValues(t, Split{}, map[string]cty.Value{"source": cty.StringVal("raw"), "image_size": cty.NumberIntVal(8)}), "source", src); got != "" {
		t.Errorf("folders of different names: %q", got)
	}
}

// countClassFiles counts what discover finds, from listings alone, and does not go round
// links that lead back into the folders it is in (two such links in a folder would otherwise
// multiply the walk at every level).
func TestClassFileCountsAreDiscoversFromListings(t *testing.T) {
	src := t.TempDir()
	for _, name := range []string{"a/1.jpg", "a/2.jpg", "a/sub/3.jpg", "a/.hidden.jpg", "b/1.png", "c/.only-hidden", "loose.jpg"} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		os.WriteFile(filepath.Join(src, name), []byte("x"), 0o644)
	}
	os.Symlink("..", filepath.Join(src, "a", "sub", "up"))
	os.Symlink("../..", filepath.Join(src, "a", "sub", "top"))
	os.Symlink(filepath.Join(src, "b"), filepath.Join(src, "a", "bs")) // b's files count in a too
	os.Symlink("1.png", filepath.Join(src, "b", "link.png"))
	l, err := listClasses(src)
	if err != nil {
		t.Fatal(err)
	}
	classes, counts, _ := countClassFiles(src, l)
	files, want, _, err := discover(src)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, f := range files {
		found[f.Class]++
	}
	found["c"] += 0 // a class with no files
	if !slices.Equal(classes, want) || !maps.Equal(counts, found) || counts["a"] != 5 {
		t.Errorf("counts %v of %v, discover finds %v of %v", counts, classes, found, want)
	}
}

// A class folder that cannot be listed is named with why in the source check (validate,
// plan), and rejected with that reason, without the absolute path, when the split runs.
func TestAnUnreadableClassFolderIsNamedWithWhy(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/c/%d.png", i), randomPNG(6, uint64(i), 6, 6))
	}
	locked := filepath.Join(w.dir, "raw", "b")
	readDir = func(name string) ([]os.DirEntry, error) {
		if name == locked {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadDir(name)
	}
	defer func() { readDir = os.ReadDir }()
	v := pipelineValues(t, Split{}, map[string]cty.Value{"source": cty.StringVal("raw"), "image_size": cty.NumberIntVal(8)})
	if got := (Split{}).CheckPath(v, "source", filepath.Join(w.dir, "raw")); !strings.Contains(got, `"b" has 0 files (b cannot be read (permission denied))`) {
		t.Errorf("source check: %q", got)
	}
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)))
	rec, _ := w.run(false)
	var rejected []Rejected
	readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rejected)
	if len(rejected) != 1 || rejected[0].Path != "raw/b" || rejected[0].Reason != "unreadable folder: permission denied" {
		t.Errorf("rejected %+v", rejected)
	}
}

// A test_source class folder that cannot be read is warned of by validate and plan: the
// split leaves its test images out, which does not fail it.
func TestAnUnreadableTestClassFolderIsWarnedOf(t *testing.T) {
	w := testSourceXY(t)
	locked := filepath.Join(w.dir, "raw", "test", "y")
	readDir = func(name string) ([]os.DirEntry, error) {
		if name == locked {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadDir(name)
	}
	defer func() { readDir = os.ReadDir }()
	want := `warning: Questionable source: test_source "raw/test": class "y": y cannot be read (permission denied), so the test set would have none of its images.`
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("validate says %q, want %q", got, want)
	}
}

// testSourceXY is a workspace of testSourceHCL (test_source raw/test): classes x and y of six
// training photos each, and one test photo each.
func testSourceXY(t *testing.T) *ws {
	t.Helper()
	w := newWS(t, fmt.Sprintf(testSourceHCL, 8))
	w.writeClasses("raw/train", 6, "x", "y")
	for _, c := range []string{"x", "y"} {
		w.write(fmt.Sprintf("raw/test/%s/t.png", c), randomPNG(9, uint64(c[0]), 6, 6))
	}
	return w
}

// A folder that cannot be listed is rejected as a folder, not counted among the files: the
// split's log, its error for a class left too small and the run's report count files and
// folders apart ("1 file and 1 folder rejected").
func TestRejectedFoldersAreNotCountedAsFiles(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	w.write("raw/a/locked/0.png", randomPNG(4, 9, 6, 6))
	w.write("raw/b/x.jpg", []byte("not a picture"))
	locked := filepath.Join(w.dir, "raw", "a", "locked")
	readDir = func(name string) ([]os.DirEntry, error) {
		if name == locked {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadDir(name)
	}
	defer func() { readDir = os.ReadDir }()
	rec := mustRun(t, w)
	log := runLog(t, rec)
	for _, want := range []string{"; 1 file and 1 folder rejected (see report/rejected.json)",
		"warning: 1 file and 1 folder rejected (1 not an image, 1 unreadable folder: permission denied), e.g. "} {
		if !strings.Contains(log, want) {
			t.Errorf("run.log lacks %q:\n%s", want, log)
		}
	}
	path, err := Summarize(rec).WriteHTML()
	if err != nil {
		t.Fatal(err)
	}
	if html, _ := os.ReadFile(path); !strings.Contains(string(html), "rejected files and folders: 2 (report/rejected.json)") {
		t.Errorf("report.html does not count the folder apart:\n%s", html)
	}
	for i := 1; i < 6; i++ {
		if err := os.Remove(filepath.Join(w.dir, "raw", "a", fmt.Sprintf("%d.png", i))); err != nil {
			t.Fatal(err)
		}
	}
	rec, err = w.run(true)
	if err == nil || !strings.Contains(err.Error(), `class "a" (1; 1 folder rejected: 1 unreadable folder: permission denied)`) {
		t.Errorf("error %v", err)
	}
	if log := runLog(t, rec); strings.Contains(log, "1 files") || strings.Contains(log, "2 files") {
		t.Errorf("run.log counts the folder as a file:\n%s", log)
	}
	if got := rejectedCount([]Rejected{{Reason: "unreadable folder: permission denied"}, {Reason: "folder name is not valid UTF-8: rename it"}}); got != "2 folders" {
		t.Errorf("rejectedCount = %q, want 2 folders", got)
	}
}
