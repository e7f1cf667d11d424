package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"pipeline/pipeline"
)

// A source folder's class folders are found from its listing alone (a stat per entry, no
// folder walked), so that what fails a split for its layout (a class folder named in bytes
// that are not UTF-8, one name in two Unicode forms) is found the same way by the split,
// which then walks the folders, and by validate and plan (CheckPath), which cannot afford to
// walk 50,000 photos.

// classFolder is a class folder of a source folder: its name, the class it stands for
// (className), its path, and the identity of the folder it is (FolderID), which is another's
// when a link leads there.
type classFolder struct {
	name, class, abs string
	id               [2]uint64
}

// classListing is what a source folder's listing says of its class folders.
type classListing struct {
	folders  []classFolder      // as discover takes them, in the listing's order
	rejected []Rejected         // entries that are no class folder: files, broken links, links back
	above    map[[2]uint64]bool // the source folder and every folder above it
	invalid  []string           // names of class folders that are not valid UTF-8
	twins    [][2]string        // class folders whose names are one name in two Unicode forms
}

// listClasses lists the class folders of the source folder root as discover takes them:
// hidden entries skipped; files, broken links and links back to root or above it rejected.
func listClasses(root string) (*classListing, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	l := &classListing{above: foldersAbove(root)}
	folderOf := map[string]string{} // class → its first folder's name
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		abs := filepath.Join(root, e.Name())
		name := EscapeInvalidUTF8(e.Name()) // as reports can show it
		fi, err := os.Stat(abs)
		switch {
		case err != nil:
			l.rejected = append(l.rejected, Rejected{Path: name, Reason: statReason(err)})
			continue
		case fi.IsDir() && l.above[FolderID(fi)]:
			l.rejected = append(l.rejected, Rejected{Path: name, Reason: "symbolic link loop"})
			continue
		case !fi.IsDir():
			l.rejected = append(l.rejected, Rejected{Path: name, Reason: "not inside a class folder"})
			continue
		case !utf8.ValidString(e.Name()):
			// Manifests and reports are JSON: the name would be mangled, and two such
			// folders could become one class.
			l.invalid = append(l.invalid, e.Name())
			continue
		}
		// A name that looks the same is the same class: "à" may be written as one character
		// or as "a" and a combining accent (macOS writes the latter), so class names are in
		// Unicode's composed form (NFC), whatever form the folder name has.
		class := className(e.Name())
		if other, ok := folderOf[class]; ok {
			l.twins = append(l.twins, [2]string{other, e.Name()})
		} else {
			folderOf[class] = e.Name()
		}
		l.folders = append(l.folders, classFolder{e.Name(), class, abs, FolderID(fi)})
	}
	return l, nil
}

// classes returns the classes of the listing's folders, sorted, each once.
func (l *classListing) classes() []string {
	var out []string
	for _, f := range l.folders {
		out = append(out, f.class)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// problems says what in the listing fails the split, each in a sentence (the caller names
// the source folder): class folders whose names are not UTF-8, one name in two Unicode forms, and one folder under several class names or one
// inside another's (sameFolders). It is the split's error, and its source check's warning.
func (l *classListing) problems() []string {
	var out []string
	if len(l.invalid) > 0 {
		out = append(out, invalidClassFolders(l.invalid))
	}
	for _, t := range l.twins {
		out = append(out, sameClassFolders(t[0], t[1]))
	}
	return append(out, l.sameFolders()...)
}

// sameFolders says of each folder that several class folders of other classes are, through
// symbolic links (cat → ../photos/kitty, feline → ../photos/kitty, cat2 → cat), that they are
// one folder: each of its images would be a picture of every one of those classes, in the
// same sets, so no model could tell them apart, and the split would only list every image
// as a label conflict. Folders of one class (a name in two Unicode forms) are left to
// sameClassFolders.
func (l *classListing) sameFolders() []string {
	var ids [][2]uint64
	byID := map[[2]uint64][]classFolder{}
	for _, f := range l.folders {
		if f.id == ([2]uint64{}) {
			continue // no identity on this system
		}
		if _, ok := byID[f.id]; !ok {
			ids = append(ids, f.id)
		}
		byID[f.id] = append(byID[f.id], f)
	}
	var out []string
	for _, id := range ids {
		folders := byID[id]
		var names, classes []string
		for _, f := range folders {
			names = append(names, f.name)
			classes = append(classes, f.class)
		}
		slices.Sort(classes)
		if classes = slices.Compact(classes); len(classes) < 2 {
			continue
		}
		real, err := filepath.EvalSymlinks(folders[0].abs)
		if err != nil {
			real = folders[0].abs
		}
		out = append(out, fmt.Sprintf("class folders %s are one folder, %s, through symbolic links: each of its images would be in every one of those classes, which no model can tell apart; keep one of them, or give each class its own folder of images",
			pipeline.QuotedList(names, "and"), real))
	}
	return append(out, l.nestedFolders()...)
}

// nestedFolders says of each class folder that is, through symbolic links, a folder inside
// another class's (kitten → ../photos/kitty/sub, cat → ../photos/kitty), not below a hidden
// folder there (which the other's walk skips), that its images would be in both classes, as
// sameFolders does of one folder. (A link inside a class folder
// to another class's folder is not looked for: its images show as label conflicts.)
func (l *classListing) nestedFolders() []string {
	real := map[string]classFolder{} // real path → the first class folder there
	paths := make([]string, len(l.folders))
	for i, f := range l.folders {
		p, err := filepath.EvalSymlinks(f.abs)
		if err != nil {
			continue
		}
		paths[i] = p
		if _, ok := real[p]; !ok {
			real[p] = f
		}
	}
	var out []string
	for i, f := range l.folders {
		if paths[i] == "" {
			continue
		}
		hidden := false // a hidden folder on the way, which the outer class's walk skips
		for sub, dir := paths[i], filepath.Dir(paths[i]); dir != sub && !hidden; sub, dir = dir, filepath.Dir(dir) {
			hidden = strings.HasPrefix(filepath.Base(sub), ".")
			if outer, ok := real[dir]; ok && outer.class != f.class && !hidden {
				out = append(out, fmt.Sprintf("class folder %q is inside class folder %q (%s is in %s) through symbolic links: its images would be in both classes, which no model can tell apart; keep one of them, or give each class its own folder of images",
					f.name, outer.name, paths[i], dir))
				break
			}
		}
	}
	return out
}

// invalidClassFolders says that the class folders names are not named in valid UTF-8.
func invalidClassFolders(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	if len(names) == 1 {
		return fmt.Sprintf("class folder %s: the name is not valid UTF-8; rename the folder", quoted[0])
	}
	return fmt.Sprintf("class folders %s: the names are not valid UTF-8; rename the folders", listSome(quoted))
}

// listSome lists the first five items and counts the rest ("a, b, c, d, e and 3 more"), or
// joins them all ("a, b and c").
func listSome(items []string) string {
	if len(items) > 5 {
		return pipeline.ListSome(items, 5)
	}
	return pipeline.JoinList(items, "and")
}

// caseClashes says of each set of classes, whose names differ only in letter case ("Cat" and
// "cat"), that they are two classes here, on a file system that tells them apart, and one
// folder where names ignore case (macOS's and Windows's by default), so that a copy or
// checkout there would merge them. It is a warning, not an error: on Linux they are distinct
// folders, and may be meant as distinct classes. in names the folder ("" to leave it out).
func caseClashes(classes []string, in string) []string {
	return clashes(classes, in, foldCase, "differ only in letter case: separate classes here, but one folder on a file system that ignores case (macOS's and Windows's, by default), where a copy or checkout would merge their images; rename them apart, or merge them if they are one class")
}

// spaceClashes says of each set of classes whose names differ only in their spaces (two in a
// row, one at an end, a non-breaking space pasted from a web page: the same words once runs
// of Unicode spaces are one space and the ends trimmed) that they are separate classes which
// every plot, log and report shows alike. A warning, as caseClashes's: they may be meant.
// in names the folder ("" to leave it out).
func spaceClashes(classes []string, in string) []string {
	return clashes(classes, in, func(c string) string { return strings.Join(strings.Fields(c), " ") },
		"differ only in spaces (two in a row, one at an end, or a non-breaking one): separate classes, which plots, logs and reports show alike; rename them apart, or merge them if they are one class")
}

// nameClashes is caseClashes's and spaceClashes's warnings together.
func nameClashes(classes []string, in string) []string {
	return append(caseClashes(classes, in), spaceClashes(classes, in)...)
}

// clashes returns a warning for each set of two or more classes that key maps to one key,
// in the order of their first class: "class folders A and B[ in FOLDER] " followed by what.
func clashes(classes []string, in string, key func(string) string, what string) []string {
	if in != "" {
		in = " in " + in
	}
	var keys []string
	byKey := map[string][]string{}
	for _, c := range classes {
		k := key(c)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		if !slices.Contains(byKey[k], c) {
			byKey[k] = append(byKey[k], c)
		}
	}
	var out []string
	for _, k := range keys {
		group := byKey[k]
		if len(group) < 2 {
			continue
		}
		slices.Sort(group)
		out = append(out, fmt.Sprintf("class folders %s%s %s", pipeline.QuotedList(group, "and"), in, what))
	}
	return out
}

// foldCase is s with each character replaced by the smallest of those it equals when case is
// ignored (unicode.SimpleFold's orbit), so that two names have one foldCase exactly when
// strings.EqualFold holds.
func foldCase(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// className is the class a folder's name stands for: the name in Unicode's composed form
// (NFC), so that "à" written as one character and as "a" and a combining accent is one class.
func className(folder string) string {
	return norm.NFC.String(folder)
}

// sameClassFolders says that class folders a and b are one class name written in two Unicode
// forms: the split's error, and its source check's warning.
func sameClassFolders(a, b string) string {
	return fmt.Sprintf("class folders %+q and %+q are the same name written in two Unicode forms (composed and decomposed accents); merge them into one folder", a, b)
}

// noClassFolders says that the source folder root has no class folders.
func noClassFolders(root string) string {
	return fmt.Sprintf("%s has no class folders: lay images out as %s/<class>/<image>", root, root)
}

// foldersAbove returns the identities of root and every folder above it: above it as
// written and, when the path goes through links, above the real folder. A link to any of
// them leads back into a walk of root.
func foldersAbove(root string) map[[2]uint64]bool {
	above := map[[2]uint64]bool{}
	abs, err := filepath.Abs(root)
	if err != nil {
		return above
	}
	paths := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for dir := p; ; dir = filepath.Dir(dir) {
			if fi, err := os.Stat(dir); err == nil {
				above[FolderID(fi)] = true
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return above
}
