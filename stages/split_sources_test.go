package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	} {
		attrs := fmt.Sprintf("source = %q", c.source)
		if c.testSource != "" {
			attrs += fmt.Sprintf("\n  test_source = %q", c.testSource)
		}
		w := newWS(t, "stage \"split\" \"main\" {\n  "+attrs+"\n  image_size = 8\n}\n")
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
	}
}
