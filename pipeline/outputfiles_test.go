package pipeline

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An output's compact file list gives what the Manifest of its folder gives: the same
// digest, the same manifest file byte for byte, the same entries in path order (names that
// sort between a folder and its files, names JSON escapes, entries without content), and
// the same digests of named outputs.
func TestOutputFilesMatchTheManifest(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"a/x", "a-b", "a.c/y", "a/z/deep", "b/<q\"uote>&.png", "b/ünïcode €.jpg", "train/manifest.json", "val/manifest.json", ".hidden", "unreadable"} {
		write(rel, "content of "+rel)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "a", "broken")); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	openFile = func(name string) (*os.File, error) { // as if it could not be read (root reads anything)
		if name == unreadable {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openFile = os.Open }()
	c := OpenStatCache("")
	spilled := 0 // chunks the last list checked wrote to its scratch file
	check := func(dir string) {
		t.Helper()
		m, _, err := c.hashTree(dir, treeMode{})
		if err != nil {
			t.Fatal(err)
		}
		o, st, err := c.hashOutput(dir, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		defer o.close()
		spilled = len(o.spilled)
		if whole, err := c.walk(dir, false); err != nil || whole.sig != st.sig || whole.newest != st.newest || !maps.Equal(whole.marks, st.marks) {
			t.Errorf("the walk a folder at a time differs from the whole walk's (%v)", err)
		}
		if got := o.digest(); got != m.Digest {
			t.Errorf("digest %s, the manifest's %s", got, m.Digest)
		}
		if o.len() != len(m.Files) {
			t.Errorf("%d entries, the manifest has %d", o.len(), len(m.Files))
		}
		got := maps.Collect(o.All())
		if !maps.Equal(got, m.Files) {
			t.Errorf("entries %v, the manifest's %v", got, m.Files)
		}
		var order []string
		for rel, d := range o.All() {
			order = append(order, rel)
			if want, ok := ManifestFiles(m.Files).Digest(rel); !ok || want != d {
				t.Errorf("%s: %s from All, the manifest's %s", rel, d, want)
			}
			if one, ok := o.Digest(rel); !ok || one != d {
				t.Errorf("%s: %s from Digest, %s from All", rel, one, d)
			}
		}
		var want []string
		for rel := range ManifestFiles(m.Files).All() {
			want = append(want, rel)
		}
		if !slices.Equal(order, want) {
			t.Errorf("order %q, want %q", order, want)
		}
		if _, ok := o.Digest("not/there"); ok {
			t.Error("an entry for a path not listed")
		}
		outputs := []string{"train", "val", "a"}
		refs := map[string][]string{"val": {"a-b", "gone"}}
		if got, want := OutputDigests(o, outputs, refs), OutputDigests(ManifestFiles(m.Files), outputs, refs); !maps.Equal(got, want) {
			t.Errorf("output digests %v, the manifest's %v", got, want)
		}
		p1, p2 := filepath.Join(t.TempDir(), "m.json"), filepath.Join(t.TempDir(), "o.json")
		if err := writeManifestJSON(p1, m); err != nil {
			t.Fatal(err)
		}
		if err := writeOutputManifestJSON(p2, o, o.digest()); err != nil {
			t.Fatal(err)
		}
		b1, _ := os.ReadFile(p1)
		b2, _ := os.ReadFile(p2)
		if !bytes.Equal(b1, b2) {
			t.Errorf("manifest file\n%s\nwant\n%s", b2, b1)
		}
		read, digest, err := readOutputFiles(p2)
		if err != nil || digest != m.Digest {
			t.Fatalf("read back: digest %s, want %s (%v)", digest, m.Digest, err)
		}
		if got := maps.Collect(read.All()); !maps.Equal(got, m.Files) {
			t.Errorf("read back %v, want %v", got, m.Files)
		}
	}
	check(dir)
	defer func(n int) { outputBatch = n }(outputBatch)
	outputBatch = 3 // files hashed a few at a time, the batches across folders
	check(dir)
	if spilled != 0 {
		t.Errorf("a cache without a store wrote %d chunks to a scratch file", spilled)
	}
	// A store's cache keeps a list's last chunk in memory, the others in a scratch file in
	// its tmp folder, gone once the list is closed.
	store := t.TempDir()
	if err := os.Mkdir(filepath.Join(store, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	c = OpenStatCache(filepath.Join(store, StatCacheFile))
	check(dir)
	if spilled != 3 { // 10 files in 4 chunks
		t.Errorf("%d chunks written to the scratch file, want 3", spilled)
	}
	if left, _ := os.ReadDir(filepath.Join(store, "tmp")); len(left) != 0 {
		t.Errorf("scratch files left behind: %v", left)
	}
	if m, _, _ := c.hashTree(dir, treeMode{}); m.Files["unreadable"] != unreadableMark || m.Files["a/broken"] != "broken-symlink" {
		t.Fatalf("the tree lacks the entries without content: %v", m.Files)
	}
	check(t.TempDir()) // empty
	only := t.TempDir()
	os.Symlink("nowhere", filepath.Join(only, "broken"))
	check(only) // marks and no files
}

// A chunk of a file list that cannot be read back from its scratch file fails what was using
// the list with an error naming the file, not the process with a panic; other panics go on.
func TestOutputFilesReadBackFailureIsAnError(t *testing.T) {
	dir := t.TempDir()
	for i := range 7 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte{byte(i)}, 0o644)
	}
	store := t.TempDir()
	if err := os.Mkdir(filepath.Join(store, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(n int) { outputBatch = n }(outputBatch)
	outputBatch = 2
	c := OpenStatCache(filepath.Join(store, StatCacheFile))
	o, _, err := c.hashOutput(dir, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if len(o.spilled) == 0 {
		t.Fatal("nothing written to the scratch file")
	}
	want := o.digest()
	if err := o.spill.Truncate(0); err != nil { // the disk fails under it
		t.Fatal(err)
	}
	o.loaded = [2]loadedChunk{}
	var got string
	err = func() (err error) {
		defer catchSpill(&err)
		got = o.digest()
		return nil
	}()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(store, "tmp")) {
		t.Fatalf("digest %s (want %s before the failure), error %v: want one naming the scratch folder", got, want, err)
	}
	defer func() {
		if r := recover(); r != "another" {
			t.Errorf("recovered %v, want the other panic to go on", r)
		}
	}()
	func() (err error) {
		defer catchSpill(&err)
		panic("another")
	}()
}

// A manifest that cannot be a published output's is refused, not taken in part.
func TestReadOutputFilesRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"cut":      `{"files": {"a": "` + strings.Repeat("0", 64) + `", "b": "`,
		"unsorted": `{"files": {"b": "` + strings.Repeat("0", 64) + `", "a": "` + strings.Repeat("1", 64) + `"}, "digest": "x"}`,
		"array":    `["files"]`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		if _, _, err := readOutputFiles(p); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}

// The list refuses files out of path order, which would break its binary search, rather
// than hold them.
func TestOutputFilesRefuseDisorder(t *testing.T) {
	var o outputFiles
	if err := o.add([]outputFile{{rel: "a"}, {rel: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := o.add([]outputFile{{rel: "c"}, {rel: "c"}}); err == nil {
		t.Error("a path twice taken")
	}
	if err := o.add([]outputFile{{rel: "a-b"}}); err == nil {
		t.Error("a path before the last one taken")
	}
	if err := o.add([]outputFile{{rel: "c"}, {rel: "d"}}); err != nil {
		t.Fatal(err)
	}
	if f, ok := o.find("d"); !ok || f.rel != "d" || o.n != 4 {
		t.Errorf("find d: %v %v, %d files", f, ok, o.n)
	}
}

// A published output found as it was recorded is verified from its signature, walked a folder
// at a time; one with a file changed, added or removed is not.
func TestQuickStoreDigestNeedsTheRecordedTree(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(st.Root, "tmp"), "out")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"a/x", "a-b", "b/c/y"} {
		p := filepath.Join(tmp, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(rel), 0o644)
	}
	e, err := st.Publish(tmp, strings.Repeat("1", 64), "stage.x", nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(st.Workspace, ObjectRel(e.Output.Digest))
	if d, ok := st.Stats.quickStoreDigest(obj); !ok || d != e.Output.Digest {
		t.Fatalf("as published: %s %v, want %s", d, ok, e.Output.Digest)
	}
	os.WriteFile(filepath.Join(obj, "a", "new"), []byte("added"), 0o644)
	if d, ok := st.Stats.quickStoreDigest(obj); ok {
		t.Errorf("a file added: %s taken from the record", d)
	}
	if got := st.Verify(e); got != "output damaged (a/new added)" {
		t.Errorf("Verify: %q", got)
	}
}

// A damaged record of a previous output whose entries hold values that are not SHA-256
// digests (longer, shorter, not hex) is read as it was written: such an entry is no file's
// digest, so the file is taken as changed since it was published, and reading the record
// fails neither the stage nor gc.
func TestPreviousRecordWithDamagedDigests(t *testing.T) {
	prev := filepath.Join(t.TempDir(), strings.Repeat("d", 64))
	if err := os.MkdirAll(prev, 0o755); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"longer":  strings.Repeat("0", 66),
		"longest": strings.Repeat("ab", 100),
		"shorter": strings.Repeat("0", 62),
		"odd":     strings.Repeat("0", 65),
		"not-hex": strings.Repeat("z", 64),
	}
	var files []string
	for name, v := range values {
		if err := os.WriteFile(filepath.Join(prev, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, fmt.Sprintf("%q: %q", name, v))
	}
	slices.Sort(files)
	record := filepath.Join(t.TempDir(), "record.json")
	text := `{"files": {` + strings.Join(files, ", ") + `}, "digest": "` + filepath.Base(prev) + `"}`
	if err := os.WriteFile(record, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	job := &Job{Previous: prev, prevRecord: record, stats: OpenStatCache("")}
	for name, v := range values {
		p := filepath.Join(prev, name)
		if !job.PreviousChanged(p) {
			t.Errorf("%s (recorded as %q): not taken as changed", name, v)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := job.PreviousDigest(p, fi); ok {
			t.Errorf("%s (recorded as %q): taken as intact with %s", name, v, d)
		}
		if d, ok := job.previousFiles().Digest(name); !ok || d != v {
			t.Errorf("%s: read back as %q %v, recorded as %q", name, d, ok, v)
		}
	}
}

// A previous output's record whose entries are out of path order (JSON replaces names that
// are not UTF-8, which can reorder them) is still checked against, read whole.
func TestPreviousRecordOutOfOrderIsStillUsed(t *testing.T) {
	sum := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	digest := strings.Repeat("d", 64)
	prev := filepath.Join(t.TempDir(), digest)
	os.MkdirAll(prev, 0o755)
	os.WriteFile(filepath.Join(prev, "a"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(prev, "b"), []byte("B"), 0o644)
	record := filepath.Join(t.TempDir(), "record.json")
	text := fmt.Sprintf(`{"files": {"b": %q, "a": %q}, "digest": %q}`, sum("B"), sum("A"), digest)
	if err := os.WriteFile(record, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readOutputFiles(record); err == nil {
		t.Fatal("an out-of-order record read as a sorted list")
	}
	job := &Job{Previous: prev, prevRecord: record, stats: OpenStatCache("")}
	if job.PreviousChanged(filepath.Join(prev, "a")) {
		t.Error("an unchanged file of the previous output taken as changed")
	}
	os.WriteFile(filepath.Join(prev, "b"), []byte("changed"), 0o644)
	if !job.PreviousChanged(filepath.Join(prev, "b")) {
		t.Error("a changed file of the previous output taken as unchanged")
	}
}
