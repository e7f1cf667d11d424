package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pipeline/pipeline"
	"pipeline/stages"
)

// imageFile is a file predict classifies: one named on the command line (dir is ""), or one
// found in the folder dir named there.
type imageFile struct {
	path, dir string
}

// badDir is a folder named to predict that gives no file to classify, and why.
type badDir struct {
	path, reason string
}

// expandImageArgs turns predict's arguments into files: a file (or a name that does not
// exist, which then gets its own error) as it is, a folder into the files directly in it,
// in name order, leaving out hidden ones (.name) and, unless recursive, subfolders. With
// recursive, each subfolder's files follow the folder's own, subfolders in name order, hidden
// ones left out; a link to a folder is followed only to a folder outside the folder named,
// once, and not to one that holds it (which would list it again, or everything above it). A
// folder that cannot be read, or holds no such file, is a badDir.
func expandImageArgs(args []string, recursive bool) ([]imageFile, []badDir) {
	var files []imageFile
	var bad []badDir
	for _, a := range args {
		fi, err := os.Stat(a)
		if a == "-" || err != nil || !fi.IsDir() { // - is standard input, even beside a folder named -
			files = append(files, imageFile{path: a})
			continue
		}
		l := &imageLister{arg: a, recursive: recursive, seen: map[[2]uint64]bool{stages.FolderID(fi): true}, files: &files}
		if real, err := filepath.EvalSymlinks(a); err == nil {
			l.real, _ = filepath.Abs(real)
		}
		n, subdirs, err := l.list(a)
		bad = append(bad, l.unreadable...)
		switch {
		case err != nil:
			bad = append(bad, badDir{a, err.Error()})
		case n == 0 && recursive:
			bad = append(bad, badDir{a, "the folder holds no files, nor do its subfolders (hidden files and folders are not looked in)"})
		case n == 0 && subdirs > 0:
			bad = append(bad, badDir{a, fmt.Sprintf("the folder holds no files, only %s: --recursive (-r) looks in them", pipeline.Plural(subdirs, "subfolder", "subfolders"))})
		case n == 0:
			bad = append(bad, badDir{a, "the folder holds no files (hidden files are not looked in)"})
		}
	}
	return files, bad
}

// imageLister lists the files of the folder named arg for expandImageArgs.
type imageLister struct {
	arg       string
	real      string // arg's absolute path with its links resolved ("" if that failed)
	recursive bool
	seen      map[[2]uint64]bool // the folders listed, by device and inode
	files     *[]imageFile
	// unreadable are the subfolders that could not be listed, said as bad folders whether
	// or not the folder named gave other files.
	unreadable []badDir
}

// list appends the files in dir and returns how many it added and how many subfolders dir
// holds; an unreadable dir is an error, and an unreadable subfolder is noted (unreadable).
func (l *imageLister) list(dir string) (int, int, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return 0, 0, fmt.Errorf("unreadable folder: %w", stages.WithoutPath(err))
	}
	n := 0
	var subdirs []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			subdirs = append(subdirs, p)
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() { // a link to a folder
			subdirs = append(subdirs, p)
			continue
		}
		*l.files = append(*l.files, imageFile{path: p, dir: l.arg})
		n++
	}
	if !l.recursive {
		return n, len(subdirs), nil
	}
	for _, sub := range subdirs {
		fi, err := os.Stat(sub)
		if err != nil || l.seen[stages.FolderID(fi)] || l.linkedInside(sub) {
			continue
		}
		l.seen[stages.FolderID(fi)] = true
		m, _, err := l.list(sub)
		if err != nil {
			l.unreadable = append(l.unreadable, badDir{sub, err.Error()})
		}
		n += m
	}
	return n, len(subdirs), nil
}

// linkedInside reports whether the folder at path is reached through a link (a link itself,
// or in a folder reached through one) to a folder inside the folder named, but for one in a
// hidden folder, or to one that holds it (or is it): the first is listed where it is, and
// the second would list the folder named again, or what is above it.
func (l *imageLister) linkedInside(path string) bool {
	if l.real == "" {
		return false
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	real, _ = filepath.Abs(real)
	if rel, err := filepath.Rel(filepath.Clean(l.arg), path); err == nil && real == filepath.Join(l.real, rel) {
		return false // no link on the way: the folder where it is
	}
	sep := string(filepath.Separator)
	if rel, inside := strings.CutPrefix(real, l.real+sep); inside {
		// Listed where it is, unless a hidden folder holds it (then only the link shows it).
		return !slices.ContainsFunc(strings.Split(rel, sep), func(name string) bool { return strings.HasPrefix(name, ".") })
	}
	return real == l.real || real == sep || strings.HasPrefix(l.real, real+sep)
}
