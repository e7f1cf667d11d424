package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// gc counts as freed only the files of the removed outputs that nothing kept links to.
func TestFreedBytesLeavesOutFilesLinkedFromWhatIsKept(t *testing.T) {
	root := t.TempDir()
	objects := filepath.Join(root, "objects")
	write := func(rel, content string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(from, rel string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Link(from, p); err != nil {
			t.Fatal(err)
		}
	}
	write("objects/a/own", "0123456789")          // only a's: 10 bytes
	shared := write("objects/b/shared", "abcdef") // b's, linked from a: 6 bytes
	link(shared, "objects/a/shared")
	run := write("runs/r1/model", "xyz") // a run folder's file, linked from a: 3 bytes
	link(run, "objects/a/model")
	a, b, r1 := filepath.Join(objects, "a"), filepath.Join(objects, "b"), filepath.Join(root, "runs/r1")
	for _, c := range []struct {
		gone []string
		want int64
	}{
		{[]string{a}, 10},     // b and the run folder are kept
		{[]string{a, b}, 16},  // b goes too: its file is freed
		{[]string{a, r1}, 13}, // the run folder goes too: a's link to its file frees it
		{[]string{b}, 0},      // a, kept, links to b's only file
		{[]string{a, b, r1}, 10 + 6 + 3},
	} {
		if got := FreedBytes(c.gone, objects); got != c.want {
			t.Errorf("removing %v frees %d bytes, want %d", c.gone, got, c.want)
		}
	}
}
