package pipeline

import (
	"strings"
	"testing"
)

// describeSourceChange names a folder added or removed with all its files, with their count,
// and leaves to the files a folder a file moved into or out of; files moved between two
// folders are a folder renamed only when the first is gone and the second new.
func TestDescribeSourceChangeNamesNewFoldersWithTheirFiles(t *testing.T) {
	m := func(files ...string) Manifest {
		out := Manifest{Files: map[string]string{}}
		for _, f := range files {
			name, digest, _ := strings.Cut(f, "=")
			if strings.HasSuffix(name, "/") {
				digest = folderMark
			}
			out.Files[name] = digest
		}
		return out
	}
	for _, c := range []struct {
		name          string
		was, now      Manifest
		want, lacking string
	}{
		{"a folder renamed and given a file",
			m("A/", "A/x=1", "A/y=2"), m("B/", "B/x=1", "B/y=2", "B/z=3"),
			"src: 1 added, 0 changed, 0 removed, 2 moved (folder A renamed B) (e.g. B/z, A/x → B/x, A/y → B/y)", ""},
		{"a new class and a file in an old one",
			m("A/", "A/x=1"), m("A/", "A/x=1", "A/w=9", "N/", "N/a=4", "N/b=5", "N/E/"),
			"src: 1 added, 0 changed, 0 removed (e.g. A/w); folder added: N/ (2 files)", ""},
		{"many new classes",
			m("A/", "A/x=1"), m("A/", "A/x=1", "N1/", "N1/a=4", "N2/", "N2/a=5", "N3/", "N3/a=6", "N4/", "N4/a=7", "N4/b=8"),
			"src: folders added (4, 5 files): N1/ (1 file), N2/ (1 file), N3/ (1 file), …", ""},
		{"a folder renamed to the same name in another Unicode form",
			m("Cr\u00e8me/", "Cr\u00e8me/x=1"), m("Cre\u0300me/", "Cre\u0300me/x=1"),
			"src: 0 added, 0 changed, 0 removed, 1 moved (folder \"Cr\\u00e8me\" renamed \"Cre\\u0300me\": the same name in another Unicode form) (e.g. Cr\u00e8me/x → Cre\u0300me/x)", ""},
		{"a class removed, a file of it moved",
			m("C/", "C/c=1", "C/d=2", "K/", "K/k=3"), m("D/", "D/c=1", "K/", "K/k=3"),
			"src: 0 added, 0 changed, 1 removed, 1 moved (folder C renamed D) (e.g. C/d, C/c → D/c)", "folder removed"},
		{"a file moved from one class to another that both stay",
			m("dog/", "dog/a=1", "dog/b=2", "cat/", "cat/c=3"), m("dog/", "dog/a=1", "cat/", "cat/c=3", "cat/dogphoto=2"),
			"src: 0 added, 0 changed, 0 removed, 1 moved (from folder dog to cat) (e.g. dog/b → cat/dogphoto)", "renamed"},
		{"a class folder that cannot be read now",
			m("frog/", "frog/a=1", "frog/b=2", "cat/", "cat/c=3"), m("frog=unreadable", "cat/", "cat/c=3"),
			"src: cannot be read now (permission denied): frog/ (2 files before)", "removed"},
		{"the same readable again",
			m("frog=unreadable", "cat/", "cat/c=3"), m("frog/", "frog/a=1", "frog/b=2", "cat/", "cat/c=3"),
			"src: readable again: frog/ (2 files now)", "added"},
		{"a folder that could not be read, gone",
			m("frog=unreadable", "cat/", "cat/c=3"), m("cat/", "cat/c=3"),
			"src: 0 added, 0 changed, 1 removed (e.g. frog)", "readable"},
		{"a new folder that cannot be read",
			m("cat/", "cat/c=3"), m("frog=unreadable", "cat/", "cat/c=3"),
			"src: added, cannot be read (permission denied): frog", "now"},
		{"a file that cannot be read now, beside one added",
			m("a/", "a/x=1"), m("a/", "a/x=unreadable", "a/y=2"),
			"src: 1 added, 0 changed, 0 removed (e.g. a/y); cannot be read now (permission denied): a/x", ""},
		{"a file moved from the top folder into another",
			m("x=1", "b/", "b/y=2"), m("b/", "b/y=2", "b/x=1"),
			"src: 0 added, 0 changed, 0 removed, 1 moved (from the top folder to b) (e.g. x → b/x)", ""},
		{"a class folder with subfolders renamed",
			m("Bag/", "Bag/2024/", "Bag/2024/a=1", "Bag/2025/", "Bag/2025/b=2", "Bag/c=3"),
			m("bag/", "bag/2024/", "bag/2024/a=1", "bag/2025/", "bag/2025/b=2", "bag/c=3"),
			"src: 0 added, 0 changed, 0 removed, 3 moved (folder Bag renamed bag) (e.g. ", ""},
		{"a subfolder renamed",
			m("Bag/", "Bag/2024/", "Bag/2024/a=1", "Bag/2024/b=2", "Bag/c=3"),
			m("Bag/", "Bag/old/", "Bag/old/a=1", "Bag/old/b=2", "Bag/c=3"),
			"src: 0 added, 0 changed, 0 removed, 2 moved (folder Bag/2024 renamed Bag/old) (e.g. ", ""},
		{"a subfolder moved into another class",
			m("Bag/", "Bag/2024/", "Bag/2024/a=1", "Coat/", "Coat/c=3"),
			m("Bag/", "Coat/", "Coat/2024/", "Coat/2024/a=1", "Coat/c=3"),
			"src: 0 added, 0 changed, 0 removed, 1 moved (from folder Bag to Coat) (e.g. ", ""},
		{"a class folder renamed, and a photo in it too",
			m("Bag/", "Bag/2024/", "Bag/2024/a=1", "Bag/c=3"),
			m("bag/", "bag/2024/", "bag/2024/a=1", "bag/d=3"),
			"src: 0 added, 0 changed, 0 removed, 2 moved (folder Bag renamed bag) (e.g. Bag/2024/a → bag/2024/a, Bag/c → bag/d)", ""},
		{"two class folders renamed at once",
			m("Bag/", "Bag/a=1", "Coat/", "Coat/b=2", "Shirt/", "Shirt/c=3"), m("Bags/", "Bags/a=1", "Coats/", "Coats/b=2", "Shirt/", "Shirt/c=3"),
			"src: 0 added, 0 changed, 0 removed, 2 moved (folders renamed: Bag → Bags, Coat → Coats) (e.g. ", ""},
		{"four class folders renamed at once",
			m("d/", "d/x=4", "c/", "c/x=3", "b/", "b/x=2", "a/", "a/x=1"), m("D/", "D/x=4", "C/", "C/x=3", "B/", "B/x=2", "A/", "A/x=1"),
			"src: 0 added, 0 changed, 0 removed, 4 moved (4 folders renamed: a → A, b → B, c → C, …) (e.g. ", ""},
		{"a class folder renamed beside a photo moved between two classes that stay",
			m("Bag/", "Bag/a=1", "dog/", "dog/b=2", "dog/d=4", "cat/", "cat/c=3"), m("Bags/", "Bags/a=1", "dog/", "dog/b=2", "cat/", "cat/c=3", "cat/d=4"),
			"src: 0 added, 0 changed, 0 removed, 2 moved (folder Bag renamed Bags) (e.g. ", "from folder"},
		{"two class folders merged into a new one",
			m("A/", "A/x=1", "B/", "B/y=2"), m("C/", "C/x=1", "C/y=2"),
			"src: 0 added, 0 changed, 0 removed, 2 moved (e.g. ", "renamed"},
		{"one file added, one changed and one removed",
			m("a/", "a/x=1", "a/y=2"), m("a/", "a/x=9", "a/z=3"),
			"src: 1 added, 1 changed, 1 removed (e.g. added a/z, changed a/x, removed a/y)", ""},
		{"a broken link removed and another added in another folder: no move",
			m("a/", "a/x=broken-symlink", "a/1=1", "b/", "b/2=2"), m("a/", "a/1=1", "b/", "b/2=2", "b/y=broken-symlink"),
			"src: 1 added, 0 changed, 1 removed (e.g. added b/y, removed a/x)", "1 moved"},
		{"a link loop gone, another come: no move",
			m("a/", "a/l=symlink-loop", "a/1=1"), m("a/", "a/1=1", "a/k=symlink-loop"),
			"src: 1 added, 0 changed, 1 removed (e.g. added a/k, removed a/l)", "1 moved"},
		{"recorded before folders were listed",
			m("A/x=1", "B/y=2"), m("A/", "A/x=1", "A/new=3", "B/", "B/y=2"),
			"src: 1 added, 0 changed, 0 removed (e.g. A/new)", "(1 file)"},
	} {
		got := describeSourceChange("src", DiffManifests(c.was, c.now), c.was.Files, c.now.Files)
		if !strings.HasPrefix(got, c.want) || c.lacking != "" && strings.Contains(got, c.lacking) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
