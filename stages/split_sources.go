package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agext/levenshtein"

	"pipeline/pipeline"
)

// A split's source and test_source must be folders, and two separate ones: a file fails the
// run with "not a directory", and a test_source that is the source (or inside it, or holds
// it) once resolved, through symbolic links or "..", makes training images test images too.
// Only the file system shows these, so validate, plan and run look (a stat and a link
// resolution each); the engine reports paths that do not exist.

// folderProblem is what is wrong with the folder of a split's attribute.
type folderProblem struct {
	attr, summary, detail string
}

// folderProblems checks the split's source and testSource ("" for none) as written,
// relative to workspace (absolute paths as they are).
func folderProblems(workspace, source, testSource string) []folderProblem {
	var out []folderProblem
	resolved := map[string]string{}
	for _, a := range [][2]string{{"source", source}, {"test_source", testSource}} {
		if a[1] == "" {
			continue
		}
		abs := pipeline.InWorkspace(workspace, a[1])
		if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
			out = append(out, folderProblem{a[0], "Source is not a folder",
				fmt.Sprintf("%s %q is a file, not a folder: give the folder that holds one folder of images per class.", a[0], a[1])})
			continue
		}
		// A folder that does not exist (the engine says so) is still compared, as far as it
		// does, so that the overlap is reported with it.
		resolved[a[0]] = resolveExisting(abs)
	}
	src, test := resolved["source"], resolved["test_source"]
	if src != "" && test != "" && (pipeline.Inside(test, src) || pipeline.Inside(src, test)) {
		where := fmt.Sprintf("test_source %q (%s) %%s source %q (%s)", testSource, test, source, src)
		switch {
		case src == test:
			where = fmt.Sprintf("test_source %q is the same folder as source %q (%s)", testSource, source, src)
		case pipeline.Inside(test, src):
			where = fmt.Sprintf(where, "is inside")
		default:
			where = fmt.Sprintf(where, "holds")
		}
		out = append(out, folderProblem{"test_source", "test_source overlaps source",
			where + " once symbolic links and \"..\" are resolved, so the same images would be read as training images and as test images; give two separate folders (e.g. data/raw/train and data/raw/test)."})
	}
	return out
}

// resolveExisting returns the absolute, clean path abs with the symbolic links of its longest
// existing part resolved (the rest as written).
func resolveExisting(abs string) string {
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if r, err := filepath.Abs(filepath.Join(real, rest)); err == nil {
				return r
			}
			return abs
		}
		if filepath.Dir(p) == p {
			return abs
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// validateFolders adds folderProblems to d, when the workspace is known: the folder of the
// file source is written in (paths in a pipeline file are relative to its folder, as
// pipeline.Job.Workspace is; Values made without a file have no ranges and are not checked).
func validateFolders(d *diagList, v *pipeline.Values) {
	file := v.Range("source").Filename
	if file == "" || !usable(v, "source") || !v.Get("test_source").IsKnown() {
		return
	}
	for _, p := range folderProblems(filepath.Dir(file), v.String("source"), v.String("test_source")) {
		d.add(v, p.attr, p.summary, p.detail)
	}
}

// layoutProblems says what in the listing l of the split's folder attr (source or
// test_source) fails the split, in the split's words, or "": class folders named in bytes
// that are not UTF-8 or with one name in two Unicode forms (classListing.problems), a source
// without class folders, and test_source classes that source lacks (when the workspace is
// known: the folder of the file source is written in, as for validateFolders). It reads no
// file, so validate and plan can afford it.
func layoutProblems(v *pipeline.Values, attr string, l *classListing) string {
	if p := l.problems(); len(p) > 0 {
		return strings.Join(p, "; ")
	}
	if attr == "source" && len(l.folders) == 0 {
		return noClassFolders(pipeline.CleanPath(v.String(attr)))
	}
	src := sourceListing(v)
	if attr != "test_source" || src == nil {
		return ""
	}
	err := testClassesNotInSource(pipeline.CleanPath(v.String(attr)), pipeline.CleanPath(v.String("source")), l.classes(), src.classes())
	if err != nil {
		return err.Error()
	}
	return ""
}

// sourceListing lists the class folders of the split's source (listClasses), for what
// test_source is checked against, when the workspace is known (the folder of the file source
// is written in, as for validateFolders); nil when it is not, or the source cannot be read, has
// no class folders or fails the split (said at source).
func sourceListing(v *pipeline.Values) *classListing {
	file := v.Range("source").Filename
	if file == "" || !usable(v, "source") {
		return nil
	}
	src, err := listClasses(pipeline.InWorkspace(filepath.Dir(file), v.String("source")))
	if err != nil || len(src.problems()) > 0 || len(src.folders) == 0 {
		return nil
	}
	return src
}

// testClassesNotInSource fails a split whose test_source folder testSource has classes,
// tclasses, that its source folder source does not have (classes): each is named (the first
// five, and a count of the rest), with the training class it may stand for (one whose name
// differs only in letter case, else the closest in spelling), so that one run shows them all.
func testClassesNotInSource(testSource, source string, tclasses, classes []string) error {
	// Those with a suggestion first: a few names are shown, and they say what to do.
	var suggested, other []string
	for _, c := range tclasses {
		if slices.Contains(classes, c) {
			continue
		}
		if sug := similarClass(c, classes); sug != "" {
			suggested = append(suggested, fmt.Sprintf("%q (did you mean %q?)", c, sug))
		} else {
			other = append(other, fmt.Sprintf("%q", c))
		}
	}
	missing := append(suggested, other...)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("test_source %s has %s %s, which %s does not have; the test classes must be training classes",
		testSource, pipeline.Agree(len(missing), "class", "classes"), listSome(missing), source)
}

// similarClass is the class of classes that class most likely stands for: one whose name
// differs only in letter case; else the closest in spelling, case aside, when it is a likely
// typo (an edit in a name of up to four characters, two in a longer one: "fox" is no
// misspelt "dog", as closest would have it); else, of those whose name holds class's or is
// held in it, letters and digits alone ("fox" and "foxes", "T-shirt top" and "Tshirt"), the
// closest in spelling ("Tshirt" before "Shirt"). "" when none is.
func similarClass(class string, classes []string) string {
	for _, c := range classes {
		if strings.EqualFold(c, class) {
			return c
		}
	}
	lower := strings.ToLower(class)
	best, bestDist := "", 2
	if utf8.RuneCountInString(class) > 4 {
		bestDist = 3
	}
	for _, c := range classes {
		if d := levenshtein.Distance(lower, strings.ToLower(c), nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" || utf8.RuneCountInString(class) < 3 {
		return best
	}
	alnum := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return unicode.ToLower(r)
			}
			return -1
		}, s)
	}
	name := alnum(class)
	best, bestDist = "", 0
	for _, c := range classes {
		if ac := alnum(c); utf8.RuneCountInString(ac) >= 3 && utf8.RuneCountInString(name) >= 3 && (strings.Contains(ac, name) || strings.Contains(name, ac)) {
			if d := levenshtein.Distance(lower, strings.ToLower(c), nil); best == "" || d < bestDist {
				best, bestDist = c, d
			}
		}
	}
	return best
}

// WarnPath implements pipeline.PathWarner for the source folder: class folders whose names
// differ only in letter case (caseClashes) or in spaces (spaceClashes), which the split warns
// of too; and for test_source, each class the test set would have no image of, which the
// split warns of when it runs: a class of source with no folder there (missingTestClasses),
// and one whose folder there cannot be read (the split rejects it) or has no files (emptied
// of its test photos, say). test_source's classes are source's, so its names are not looked
// at.
func (Split) WarnPath(v *pipeline.Values, attr, abs string) []string {
	if attr != "source" && attr != "test_source" {
		return nil
	}
	l, err := listClasses(abs)
	if err != nil {
		return nil
	}
	if attr == "test_source" {
		classes, count, unreadable := countClassFiles(abs, l)
		// A class folder that source lacks, an empty one too, fails the stage (CheckPath
		// says so, with the source class it may stand for): that is to be fixed first.
		failing := layoutProblems(v, attr, l) != ""
		var out []string
		if src := sourceListing(v); src != nil && !failing {
			if w := missingTestClasses(v, src.classes(), classes); w != "" {
				out = append(out, w)
			}
		}
		for _, c := range classes {
			switch {
			case unreadable[c] != "":
				out = append(out, fmt.Sprintf("class %q: %s, so the test set would have none of its images", c, unreadable[c]))
			case count[c] == 0 && !failing:
				out = append(out, fmt.Sprintf("class %q: its folder has no files, so the test set would have none of its images", c))
			}
		}
		return out
	}
	return nameClashes(l.classes(), "")
}

// missingTestClasses says which of the split's source classes have no folder among
// tclasses, test_source's, and so no test image, with what to do; "" when none does. The
// classes are named together (the first five, and a count of the rest), for a test_source
// that is still being filled.
func missingTestClasses(v *pipeline.Values, classes, tclasses []string) string {
	var missing []string
	for _, c := range classes {
		if !slices.Contains(tclasses, c) {
			missing = append(missing, c)
		}
	}
	source, testSource := pipeline.CleanPath(v.String("source")), pipeline.CleanPath(v.String("test_source"))
	switch len(missing) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("class %q has no folder here, though source %q has one, so the test set would have none of its images (it is still trained and validated on); put its test photos in %s",
			missing[0], source, filepath.Join(testSource, missing[0]))
	}
	quoted := make([]string, len(missing))
	for i, c := range missing {
		quoted[i] = fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("classes %s have no folder here, though source %q has one for each, so the test set would have none of their images (they are still trained and validated on); put their test photos in %s",
		listSome(quoted), source, filepath.Join(testSource, "<class>"))
}
