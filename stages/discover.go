package stages

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"
)

// candidate is a file found under a class folder, not yet read. Its path is the source
// folder joined with Rel (see path): not kept, a source of 50,000 files would hold each path
// twice.
type candidate struct {
	Rel   string // relative to the source folder, slash-separated
	Class string
}

// path returns the file's path, for root the folder discover listed.
func (c candidate) path(root string) string {
	return filepath.Join(root, filepath.FromSlash(c.Rel))
}

// Rejected is a file that is not used, with the reason: or a folder, none of whose files is
// (one that cannot be listed, or whose name is not UTF-8).
type Rejected struct {
	Path   string `json:"path"`
	Class  string `json:"class,omitempty"`
	Reason string `json:"reason"`
}

// Beginnings of the reasons a folder is rejected with (Rejected.folder).
const (
	unreadableFolder = "unreadable folder: "
	folderName       = "folder name "
)

// folder reports whether r is a folder rejected as a whole, not a file.
func (r Rejected) folder() bool {
	return strings.HasPrefix(r.Reason, unreadableFolder) || strings.HasPrefix(r.Reason, folderName)
}

// rejectedFolders counts the folders of rejected.
func rejectedFolders(rejected []Rejected) int {
	n := 0
	for _, r := range rejected {
		if r.folder() {
			n++
		}
	}
	return n
}

// rejectedCount counts rejected files and folders as a log line says they were rejected:
// "2 files", "1 file and 1 folder", "1 folder".
func rejectedCount(rejected []Rejected) string {
	folders := rejectedFolders(rejected)
	files := len(rejected) - folders
	switch {
	case folders == 0:
		return plural(files, "file", "files")
	case files == 0:
		return plural(folders, "folder", "folders")
	}
	return plural(files, "file", "files") + " and " + plural(folders, "folder", "folders")
}

// discover lists the files of a source folder laid out as <class>/<file> (subfolders inside a
// class folder are walked too). Class names are folder names, any valid UTF-8 allowed, in
// composed form (NFC). Hidden files and folders are skipped; files directly in the source
// folder, and files and folders inside class folders whose names are not valid UTF-8, are
// rejected; what fails the split for the class folders' names (classListing.problems) is its
// error. Symbolic links are followed; a link that loops on itself, or leads back into a folder
// being walked, to the source folder or to any folder above it, is rejected.
func discover(root string) (files []candidate, classes []string, rejected []Rejected, err error) {
	l, err := listClasses(root)
	if err != nil {
		return nil, nil, nil, err
	}
	if p := l.problems(); len(p) > 0 { // the caller names the folder (source NAME: …)
		return nil, nil, nil, errors.New(strings.Join(p, "; "))
	}
	rejected = l.rejected
	for _, f := range l.folders {
		seen := maps.Clone(l.above)
		seen[f.id] = true
		walkClass(f.abs, f.name, f.class, seen, &files, &rejected)
		classes = append(classes, f.class)
	}
	sort.Strings(classes)
	sort.Slice(files, func(i, j int) bool { return files[i].Rel < files[j].Rel })
	sort.Slice(rejected, func(i, j int) bool { return rejected[i].Path < rejected[j].Path })
	return files, classes, rejected, nil
}

// countClassFiles counts the files of each class of l, root's class folders (listClasses), as
// discover would find them (hidden ones left out, subfolders and links
// to folders followed, not into a folder they are in), from the folders' listings: a stat per
// folder and link, not per file, so that plan can afford it on 50,000 photos. A file that
// discover would reject (not a regular file, a name that is not UTF-8) is counted: the counts
// are at least discover's. It returns the classes in order, and for each class with a folder
// that cannot be listed, why (permission denied, say: discover rejects such a folder).
func countClassFiles(root string, l *classListing) ([]string, map[string]int, map[string]string) {
	// the folders being counted, root and those above it too: links back are not followed
	onPath := maps.Clone(l.above)
	var why string // the first folder of the class being counted that cannot be listed
	var count func(dir string) int
	count = func(dir string) int {
		entries, err := readDir(dir)
		if err != nil {
			if why == "" {
				rel, _ := filepath.Rel(root, dir)
				why = fmt.Sprintf("%s cannot be read (%s)", filepath.ToSlash(rel), pathErrorReason(err))
			}
			return 0
		}
		n := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
				n++
				continue
			}
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil || !fi.IsDir() {
				n++ // a link to a file, or a broken one (rejected, and counted as discover lists it)
				continue
			}
			if id := FolderID(fi); !onPath[id] {
				onPath[id] = true
				n += count(filepath.Join(dir, e.Name()))
				delete(onPath, id)
			}
		}
		return n
	}
	counts, unreadable := map[string]int{}, map[string]string{}
	var classes []string
	for _, f := range l.folders {
		if _, ok := counts[f.class]; !ok {
			classes = append(classes, f.class)
		}
		onPath[f.id], why = true, ""
		counts[f.class] += count(f.abs)
		if why != "" && unreadable[f.class] == "" {
			unreadable[f.class] = why
		}
		delete(onPath, f.id)
	}
	sort.Strings(classes)
	return classes, counts, unreadable
}

// readDir lists a folder below a class folder's root (os.ReadDir; tests deny some).
var readDir = os.ReadDir

// pathErrorReason is err without the path an *fs.PathError names (the caller names the file
// relative to its folder): "permission denied".
func pathErrorReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func walkClass(dir, rel, class string, seen map[[2]uint64]bool, files *[]candidate, rejected *[]Rejected) {
	entries, err := readDir(dir)
	if err != nil {
		*rejected = append(*rejected, Rejected{Path: rel, Class: class, Reason: unreadableFolder + pathErrorReason(err)})
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !utf8.ValidString(e.Name()) {
			// Manifests and reports are JSON, which cannot hold the name: it would be
			// mangled, and two such names could become one.
			what := "file"
			if e.IsDir() {
				what = "folder" // (folderName)
			}
			*rejected = append(*rejected, Rejected{Path: rel + "/" + EscapeInvalidUTF8(e.Name()), Class: class, Reason: what + " name is not valid UTF-8: rename it"})
			continue
		}
		abs := filepath.Join(dir, e.Name())
		r := rel + "/" + e.Name()
		fi, err := os.Stat(abs)
		if err != nil {
			*rejected = append(*rejected, Rejected{Path: r, Class: class, Reason: statReason(err)})
			continue
		}
		if fi.IsDir() {
			id := FolderID(fi)
			if seen[id] {
				*rejected = append(*rejected, Rejected{Path: r, Class: class, Reason: "symbolic link loop"})
				continue
			}
			seen[id] = true
			walkClass(abs, r, class, seen, files, rejected)
			delete(seen, id)
			continue
		}
		if !fi.Mode().IsRegular() {
			*rejected = append(*rejected, Rejected{Path: r, Class: class, Reason: "not a regular file"})
			continue
		}
		*files = append(*files, candidate{Rel: r, Class: class})
	}
}

// EscapeInvalidUTF8 returns s with each byte that is not part of valid UTF-8 written as \xNN
// (as Go quotes strings), so that a JSON report can name the file: the split's reports and
// predict's output name such a file so, where JSON would put U+FFFD in place of the byte.
func EscapeInvalidUTF8(s string) string {
	return escapeName(s, func(rune) bool { return false })
}

// statReason is why an entry that cannot be statted is rejected.
func statReason(err error) string {
	switch {
	case os.IsNotExist(err):
		return "broken symbolic link"
	case errors.Is(err, syscall.ELOOP):
		return "symbolic link loop"
	}
	return "unreadable: " + err.Error()
}

// FolderID identifies a folder (any file) by its device and inode, to tell when a link leads
// to a folder already walked.
func FolderID(fi os.FileInfo) [2]uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), st.Ino}
	}
	return [2]uint64{0, 0}
}

// errNoClasses explains an empty source.
func errNoClasses(root string) error {
	return errors.New(noClassFolders(root))
}
