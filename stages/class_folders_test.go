package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"pipeline/pipeline"
)

// sourceDiags returns what validate says of the workspace's sources (Workflow.CheckSources),
// each as "Summary: Detail".
func (w *ws) sourceDiags() []string {
	w.t.Helper()
	var out []string
	for _, d := range w.engine().Workflow.CheckSources(w.dir) {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		out = append(out, fmt.Sprintf("%s: %s: %s", sev, d.Summary, d.Detail))
	}
	return out
}

// runError runs the workspace's pipeline, which must fail in split.main, and returns the
// split's error.
func (w *ws) runError() string {
	w.t.Helper()
	rec, _ := w.run(true)
	res := rec.Result("split.main")
	if res == nil || res.Status != "failed" {
		w.t.Fatalf("split.main: %+v, want it failed", res)
	}
	return res.Error
}

// What a listing of the source shows will fail the split is said by validate (and plan,
// which makes the same source check), in the split's words, as a warning at the source,
// before the split fails on it: class folders whose names are not UTF-8 (all of them; the
// split failed on the first), and a source without class folders.
func TestValidateFindsWhatTheSourceListingFailsTheSplitOn(t *testing.T) {
	for _, c := range []struct {
		name  string
		files []string // under raw/
		why   string   // what validate says after `source "raw": `
		run   []string // what the split's error says
	}{
		{"a name not UTF-8", []string{"caf\xe9/1.png", "ok/1.png"},
			`class folder "caf\xe9": the name is not valid UTF-8; rename the folder`,
			[]string{`source raw: class folder "caf\xe9": the name is not valid UTF-8; rename the folder`}},
		{"two names not UTF-8", []string{"caf\xe9/1.png", "th\xe9/1.png", "ok/1.png"},
			`class folders "caf\xe9" and "th\xe9": the names are not valid UTF-8; rename the folders`,
			[]string{`source raw: class folders "caf\xe9" and "th\xe9": the names are not valid UTF-8; rename the folders`}},
		{"files only", []string{"1.png", ".hidden/1.png"},
			"raw has no class folders: lay images out as raw/<class>/<image>",
			[]string{"raw has no class folders: lay images out as raw/<class>/<image>"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWS(t, splitHCL)
			for i, f := range c.files {
				w.write("raw/"+f, randomPNG(7, uint64(i), 6, 6))
			}
			want := fmt.Sprintf(`warning: Unusable source: source "raw": %s. The stage will fail when it runs unless that changes first.`, c.why)
			if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
				t.Errorf("validate says %q, want %q", got, want)
			}
			err := w.runError()
			for _, want := range c.run {
				if !strings.Contains(err, want) {
					t.Errorf("the split fails with %q, want %q in it", err, want)
				}
			}
		})
	}
	// An empty source, and a source of class folders (whatever is in them), is not refused.
	w := newWS(t, splitHCL)
	os.MkdirAll(filepath.Join(w.dir, "raw"), 0o755)
	if got := w.sourceDiags(); len(got) != 1 || !strings.Contains(got[0], "raw has no class folders") {
		t.Errorf("an empty source: %q", got)
	}
	for i := 0; i < 3; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(7, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/x/%d.png", i), randomPNG(8, uint64(i), 6, 6))
	}
	if got := w.sourceDiags(); len(got) != 0 {
		t.Errorf("a source of class folders: %q", got)
	}
}

// test_source classes that source lacks are named all at once, each with the training class
// it may stand for (another case, else the closest spelling), by validate beforehand, from
// the folders' listings, and by the split: the split named only the first, and validate none.
func TestTestSourceClassesTheSourceLacksAreAllNamed(t *testing.T) {
	w := newWS(t, fmt.Sprintf(testSourceHCL, 8))
	w.writeClasses("raw/train", 4, "cat", "dog", "horse")
	for i, c := range []string{"cat", "Dog", "hrose"} {
		w.write(fmt.Sprintf("raw/test/%s/t.png", c), randomPNG(9, uint64(i), 6, 6))
	}
	os.MkdirAll(filepath.Join(w.dir, "raw/test/fox"), 0o755) // empty, and a class all the same
	why := `test_source raw/test has classes "Dog" (did you mean "dog"?), "hrose" (did you mean "horse"?) and "fox", which raw/train does not have; the test classes must be training classes`
	want := fmt.Sprintf(`warning: Unusable source: test_source "raw/test": %s. The stage will fail when it runs unless that changes first.`, why)
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("validate says %q, want %q", got, want)
	}
	if err := w.runError(); err != why {
		t.Errorf("the split fails with %q, want %q", err, why)
	}

	// Many are counted past the first five, those with a suggestion first.
	for _, c := range []string{"e1", "e2", "e3", "e4"} {
		os.MkdirAll(filepath.Join(w.dir, "raw/test", c), 0o755)
	}
	why = `test_source raw/test has classes "Dog" (did you mean "dog"?), "hrose" (did you mean "horse"?), "e1", "e2", "e3" and 2 more, which raw/train does not have`
	if got := w.sourceDiags(); len(got) != 1 || !strings.Contains(got[0], why) {
		t.Errorf("validate says %q, want %q in it", got, why)
	}

	// One class, and none.
	for _, c := range []string{"Dog", "fox", "hrose", "e1", "e2", "e3"} {
		os.RemoveAll(filepath.Join(w.dir, "raw/test", c))
	}
	why = `test_source raw/test has class "e4", which raw/train does not have`
	if got := w.sourceDiags(); len(got) != 1 || !strings.Contains(got[0], why) {
		t.Errorf("validate says %q, want %q in it", got, why)
	}
	// None: left with the training classes that have no test folder, a warning.
	os.RemoveAll(filepath.Join(w.dir, "raw/test/e4"))
	if got := w.sourceDiags(); len(got) != 1 || !strings.Contains(got[0], `Questionable source: test_source "raw/test": classes "dog" and "horse" have no folder here`) {
		t.Errorf("test classes that are training classes: %q", got)
	}
}

// similarClass suggests a class another case of the name, or a likely typo of it, or one that
// holds it; not any short name two edits away.
func TestSimilarClass(t *testing.T) {
	classes := []string{"cat", "dog", "horse", "Sea lion"}
	for given, want := range map[string]string{
		"Dog": "dog", "DOG": "dog", "hrose": "horse", "Horses": "horse", "cats": "cat",
		"sea-lion": "Sea lion", "lion": "Sea lion", "fox": "", "cow": "", "ox": "",
	} {
		if got := similarClass(given, classes); got != want {
			t.Errorf("similarClass(%q) = %q, want %q", given, got, want)
		}
	}
	// Of the names that hold it, the closest: not the first.
	if got := similarClass("T-shirt top", []string{"Shirt", "Tshirt", "Trouser"}); got != "Tshirt" {
		t.Errorf("similarClass(%q) = %q, want %q", "T-shirt top", got, "Tshirt")
	}
}

// Class folders that are one folder through symbolic links fail the split, saying so, and
// validate warns of them beforehand: they made as many classes of the same images, which no
// model can tell apart, shown only as a label conflict per image.
func TestClassFoldersThatAreOneFolderFailTheSplit(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("outside/kitty/%d.png", i), randomPNG(1, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/dog/%d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/bird/%d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	os.Symlink("../outside/kitty", filepath.Join(w.dir, "raw/cat"))
	os.Symlink(filepath.Join(w.dir, "outside/kitty"), filepath.Join(w.dir, "raw/feline"))
	os.Symlink("cat", filepath.Join(w.dir, "raw/cat2"))
	os.Symlink("dog", filepath.Join(w.dir, "raw/pup"))
	kitty, _ := filepath.EvalSymlinks(filepath.Join(w.dir, "outside/kitty"))
	dog, _ := filepath.EvalSymlinks(filepath.Join(w.dir, "raw/dog"))
	end := ", through symbolic links: each of its images would be in every one of those classes, which no model can tell apart; keep one of them, or give each class its own folder of images"
	whyCat := `class folders "cat", "cat2" and "feline"%s are one folder, ` + kitty + end
	whyDog := `class folders "dog" and "pup"%s are one folder, ` + dog + end
	want := fmt.Sprintf(`warning: Unusable source: source "raw": %s; %s. The stage will fail when it runs unless that changes first.`,
		fmt.Sprintf(whyCat, ""), fmt.Sprintf(whyDog, ""))
	if got := w.sourceDiags(); len(got) != 1 || got[0] != want {
		t.Errorf("validate says %q, want %q", got, want)
	}
	// the run's error names the folder once, as the pipeline file does (source raw: …)
	if err, want := w.runError(), fmt.Sprintf("source raw: %s; %s", fmt.Sprintf(whyCat, ""), fmt.Sprintf(whyDog, "")); err != want {
		t.Errorf("the split fails with %q, want %q", err, want)
	}

	// One link to a folder is one class, whatever its name.
	os.Remove(filepath.Join(w.dir, "raw/cat2"))
	os.Remove(filepath.Join(w.dir, "raw/feline"))
	os.Remove(filepath.Join(w.dir, "raw/pup"))
	if got := w.sourceDiags(); len(got) != 0 {
		t.Errorf("a class folder linked to a folder outside: %q", got)
	}
	w.run(false)
}

// Class folders whose names differ only in letter case are warned of, by validate (and plan)
// at source and by the split in its log, naming them all: they are distinct classes on Linux,
// but one folder on macOS or Windows, which would merge them.
func TestClassFoldersDifferingOnlyInCaseAreWarnedOf(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		for j, c := range []string{"Cat", "cat", "CAT", "dog", "Sac \u00e0 main", "SAC \u00c0 MAIN", "\u03a3\u03bf\u03c6\u03b9\u03b1"} {
			w.write(fmt.Sprintf("raw/%s/%d.png", c, i), randomPNG(uint64(20+j), uint64(i), 6, 6))
		}
	}
	w.write("raw/Dog.png", randomPNG(0, 0, 6, 6)) // a file, not a class folder
	end := " differ only in letter case: separate classes here, but one folder on a file system that ignores case (macOS's and Windows's, by default), where a copy or checkout would merge their images; rename them apart, or merge them if they are one class"
	clashes := []string{`class folders "CAT", "Cat" and "cat"%s` + end, "class folders \"SAC \u00c0 MAIN\" and \"Sac \u00e0 main\"%s" + end}
	rec := checkClashWarnings(t, w, clashes)
	if m := splitOf(t, w, rec); len(m) == 0 {
		t.Errorf("the split made no sets")
	}
}

// Class folders whose names differ only in their spaces (one at an end, two in a row, a
// non-breaking space pasted from a web page) are two classes that every plot, log and report
// shows alike: validate (and plan) at source and the split in its log warn of them.
func TestClassFoldersDifferingOnlyInSpacesAreWarnedOf(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		for j, c := range []string{"Boletus edulis", "Boletus  edulis", "Boletus edulis ", "Amanita muscaria", "Amanita\u00a0muscaria", "Russula emetica"} {
			w.write(fmt.Sprintf("raw/%s/%d.png", c, i), randomPNG(uint64(30+j), uint64(i), 6, 6))
		}
	}
	end := " differ only in spaces (two in a row, one at an end, or a non-breaking one): separate classes, which plots, logs and reports show alike; rename them apart, or merge them if they are one class"
	clashes := []string{"class folders \"Amanita muscaria\" and \"Amanita\\u00a0muscaria\"%s" + end, `class folders "Boletus  edulis", "Boletus edulis" and "Boletus edulis "%s` + end}
	checkClashWarnings(t, w, clashes)
}

// A class folder that is, through a symbolic link, a folder inside another class's fails
// the split as one folder shared by two classes does: its images would be in both.
func TestAClassFolderInsideAnotherFailsTheSplit(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("outside/kitty/%d.png", i), randomPNG(1, uint64(i), 6, 6))
		w.write(fmt.Sprintf("outside/kitty/sub/%d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/dog/%d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	os.Symlink("../outside/kitty", filepath.Join(w.dir, "raw/cat"))
	os.Symlink("../outside/kitty/sub", filepath.Join(w.dir, "raw/kitten"))
	want := `class folder "kitten" is inside class folder "cat" (`
	if got := w.sourceDiags(); len(got) != 1 || !strings.Contains(got[0], want) {
		t.Errorf("validate says %q, want %q in it", got, want)
	}
	if err := w.runError(); !strings.HasPrefix(err, "source raw: "+want) || !strings.Contains(err, "its images would be in both classes") {
		t.Errorf("the split fails with %q, want %q", err, want)
	}

	// Inside a hidden folder of cat's, which cat's walk skips, it is a class of its own.
	os.Remove(filepath.Join(w.dir, "raw/kitten"))
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("outside/kitty/.thumbs/%d.png", i), randomPNG(4, uint64(i), 6, 6))
	}
	os.Symlink("../outside/kitty/.thumbs", filepath.Join(w.dir, "raw/thumbs"))
	if got := w.sourceDiags(); len(got) != 0 {
		t.Errorf("validate says %q of a class folder in a hidden folder of another", got)
	}
}

// checkClashWarnings checks that validate warns of each of clashes (a class-name clash with %s
// where the split's log names the folder) at source "raw", and that a run's log does too,
// and returns the run.
func checkClashWarnings(t *testing.T, w *ws, clashes []string) *pipeline.RunRecord {
	t.Helper()
	var want []string
	for _, c := range clashes {
		want = append(want, fmt.Sprintf(`warning: Questionable source: source "raw": %s.`, fmt.Sprintf(c, "")))
	}
	if got := w.sourceDiags(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate says\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rec, _ := w.run(false)
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	for _, c := range clashes {
		if want := "warning: " + fmt.Sprintf(c, " in raw"); !strings.Contains(string(log), want) {
			t.Errorf("run.log lacks %q:\n%s", want, log)
		}
	}
	return rec
}
