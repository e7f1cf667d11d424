package pipeline

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const genHCL = `
stage "gen" "src" {
  source = "raw"
}
`

// objectsIn lists the published outputs of a workspace's store.
func objectsIn(t *testing.T, ws *workspace) []string {
	t.Helper()
	return dirNames(filepath.Join(ws.dir, StoreDir, "objects"))
}

// A source file changed while its stage runs fails the stage: the output, made from a mix of
// the old and new content, is not published under the key of the old content, nothing of it is
// kept, and a later plan (with the file changed back, too) does not take it as cached.
func TestASourceChangedWhileTheStageRunsIsNotPublished(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "aa", "raw/b.txt": "bb"})
	key := ws.plan(Selection{})["gen.src"].Key
	ws.kinds.gen.probe = func(j *Job) {
		ws.write("raw/b.txt", "BB") // same size; read by the stage after this
		ws.write("raw/c.txt", "cc")
	}
	got, rec, err := ws.run(RunOptions{})
	if err == nil || got["gen.src"] != StatusFailed {
		t.Fatalf("run: %v, %v", got, err)
	}
	msg := rec.Result("gen.src").Error
	for _, want := range []string{`source "raw" changed while the stage ran`, "b.txt changed", "c.txt added", "run again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	st := ws.engine(nil).Store
	if _, ok := st.Lookup(key); ok {
		t.Error("the output was recorded under the key planned from the old content")
	}
	if objs := objectsIn(t, ws); len(objs) != 0 {
		t.Errorf("objects published: %v", objs)
	}
	if _, ok := st.LoadState("gen.src"); ok {
		t.Error("a state was recorded for the failed stage")
	}
	if tmp := dirNames(filepath.Join(st.Root, "tmp")); len(tmp) != 0 {
		t.Errorf("left in tmp/: %v", tmp)
	}
	if _, err := os.Stat(filepath.Join(st.Root, "work", key)); !os.IsNotExist(err) {
		t.Errorf("the scratch folder of the key is still there (%v)", err)
	}

	// Back to the old content: the key planned at first, which has no output.
	os.Remove(filepath.Join(ws.dir, "raw/c.txt"))
	ws.write("raw/b.txt", "bb")
	if d := ws.plan(Selection{})["gen.src"]; d.Key != key || d.Action != Run {
		t.Fatalf("after restoring the file: %s (key equal %v)", d.Action, d.Key == key)
	}
	ws.kinds.gen.probe = nil
	if _, rec, err = ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "gen.src", "out")); err != nil || string(b) != "aabb" {
		t.Fatalf("output %q, %v", b, err)
	}
}

// A file rewritten with its identity kept is caught after the run by its content, when it
// was modified too shortly before it was hashed for its identity to tell (racyMargin); a file
// settled then is judged by its identity alone.
func TestChangesReadsOnlyRacyFilesAgain(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "1", "b/c": "2"})
	for _, tc := range []struct {
		name  string
		clock func() time.Time
		want  []string
	}{
		{"racy", nil, []string{"a changed"}},
		{"settled", func() time.Time { return time.Now().Add(time.Minute) }, nil},
	} {
		c := OpenStatCache("")
		c.Clock = tc.clock
		m, st, err := c.hashTree(dir, treeMode{source: true, remember: true})
		if err != nil {
			t.Fatal(err)
		}
		// What a rewrite within the same clock tick would leave: the same identities, a
		// manifest whose digest for a is not a's content.
		files := map[string]string{"a": hexSHA("0"), "b/c": m.Files["b/c"]}
		got, err := c.changes(st, files)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: changes %q, want %q (%v)", tc.name, got, tc.want, err)
		}
	}
}

// run --force reads the sources of the forced stages again instead of trusting the stat
// cache: a digest recorded for an identity the file still has (as after a rewrite that kept
// it) is corrected, and the key describes the content.
func TestForceReadsTheSourcesAgain(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	ws.clock = func() time.Time { return time.Now().Add(time.Minute) }
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	// The cache lies about a.txt.
	e := ws.engine(nil)
	abs := filepath.Join(ws.dir, "raw", "a.txt")
	c := e.Store.Stats
	c.mu.Lock()
	entry, _ := c.lookup(abs)
	entry.Digest = sha256.Sum256([]byte("not a"))
	c.changed[abs], c.trees, c.dirty = entry, map[string]treeRecord{}, true
	c.mu.Unlock()
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	lied := ws.plan(Selection{})["gen.src"]

	// Forcing another stage leaves gen.src's sources to the cache.
	e = ws.engine(nil)
	if _, err := e.Plan(Selection{Targets: []string{"xform.up"}, Force: true}); err != nil || e.Store.Stats.Hashed != 0 {
		t.Fatalf("plan forcing xform.up read %d files (%v), want 0", e.Store.Stats.Hashed, err)
	}
	e = ws.engine(nil)
	if _, err := e.Run(context.Background(), RunOptions{Selection: Selection{Targets: []string{"gen.src"}, Force: true}, RunsDir: filepath.Join(ws.dir, "models")}); err != nil {
		t.Fatal(err)
	}
	truth, err := OpenStatCache("").HashTree(filepath.Join(ws.dir, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	after := ws.plan(Selection{})["gen.src"]
	if after.Action != Cached || after.Key == lied.Key || after.sources["source"].Digest != truth.Digest {
		t.Fatalf("after run --force: %s %v, key changed %v, source digest %s, want %s",
			after.Action, after.Reasons, after.Key != lied.Key, after.sources["source"].Digest, truth.Digest)
	}
}

// A folder added or removed below a source changes its key, even an empty one (to the split,
// a class without images), and plan names it; one that a file change accounts for is not named
// again.
func TestPlanSaysWhichFoldersWereAddedOrRemoved(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/Boot/1.jpg": "one", "raw/Sneaker/2.jpg": "two"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	mkdir := func(rel string) {
		if err := os.MkdirAll(filepath.Join(ws.dir, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		change func()
		want   string
	}{
		{func() { mkdir("raw/Sandal") }, "raw: folder added: Sandal/"},
		{func() { mkdir("raw/Sandal/left"); mkdir("raw/Bag") }, "raw: folders added: Bag/, Sandal/"},
		// A new folder with files is said as a folder, with its count.
		{func() { ws.write("raw/Bag/3.jpg", "three") }, "raw: folders added: Bag/ (1 file), Sandal/"},
		{func() { ws.write("raw/Boot/5.jpg", "five") }, "raw: 1 added, 0 changed, 0 removed (e.g. Boot/5.jpg); folders added: Bag/ (1 file), Sandal/"},
		{func() {
			os.RemoveAll(filepath.Join(ws.dir, "raw/Bag"))
			os.RemoveAll(filepath.Join(ws.dir, "raw/Sandal"))
			os.RemoveAll(filepath.Join(ws.dir, "raw/Sneaker"))
			os.Remove(filepath.Join(ws.dir, "raw/Boot/5.jpg"))
		},
			"raw: folder removed: Sneaker/ (1 file)"},
		{func() { mkdir("raw/Sneaker") }, "raw: 0 added, 0 changed, 1 removed (e.g. Sneaker/2.jpg)"},
		{func() { ws.write("raw/Sneaker/2.jpg", "two"); mkdir("raw/.hidden") }, ""},
	} {
		step.change()
		d := ws.plan(Selection{})["gen.src"]
		if step.want == "" {
			if d.Action != Cached {
				t.Fatalf("back as it was (but for a hidden folder): %s %v", d.Action, d.Reasons)
			}
			continue
		}
		if d.Action != Run || len(d.Reasons) != 1 || d.Reasons[0] != step.want {
			t.Fatalf("%s %q, want %q", d.Action, d.Reasons, step.want)
		}
	}
	// An empty folder removed, as the only change (from a content never run without it).
	mkdir("raw/Empty")
	ws.write("raw/Boot/4.jpg", "four")
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(ws.dir, "raw/Empty"))
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Run || d.Reasons[0] != "raw: folder removed: Empty/" {
		t.Fatalf("after removing an empty folder: %s %q", d.Action, d.Reasons)
	}
}

// A source path is keyed cleaned: "./raw/" is "raw", and a path already clean keeps the key
// lines it always had.
func TestSourcePathsAreKeyedCleaned(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "a"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	d := ws.plan(Selection{})["gen.src"]
	want := []string{
		"kind gen 1",
		`attr repeat "number" 1`,
		`attr source "string" "raw"`,
		`source source "raw" ` + d.sources["source"].Digest,
		"seed 42",
	}
	if !slices.Equal(d.lines, want) {
		t.Fatalf("key lines %q, want %q", d.lines, want)
	}
	for _, spelling := range []string{"./raw/", "raw/", "raw/../raw", "./raw"} {
		ws.write("pipeline.hcl", strings.Replace(genHCL, `"raw"`, `"`+spelling+`"`, 1))
		if d := ws.plan(Selection{})["gen.src"]; d.Action != Cached || !slices.Equal(d.lines, want) {
			t.Errorf("source = %q: %s %v, lines %q", spelling, d.Action, d.Reasons, d.lines)
		}
	}
}

// An attribute keyed when set is left out of the key while unset (the key lines above have
// no label line, so a kind can gain it without rerunning its stages), and in the key when
// given, with the plan naming it.
func TestAttributesKeyedWhenSet(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "a"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	unset := ws.plan(Selection{})["gen.src"]
	if slices.ContainsFunc(unset.lines, func(l string) bool { return strings.HasPrefix(l, "attr label ") }) {
		t.Fatalf("unset label in the key: %q", unset.lines)
	}
	ws.write("pipeline.hcl", strings.Replace(genHCL, `source = "raw"`, `source = "raw"
  label = "x"`, 1))
	d := ws.plan(Selection{})["gen.src"]
	if d.Action == Cached || !slices.Contains(d.lines, `attr label "string" "x"`) || !slices.Contains(d.Reasons, `attribute label (unset) → "x"`) {
		t.Fatalf("label given: %s %v, lines %q", d.Action, d.Reasons, d.lines)
	}
}

const pathInputHCL = `
stage "use" "file" {
  input = "%s"
}
`

// A path written as a string where a stage output is expected is keyed by its content, like a
// source: a change to the file reruns the stage, and plan says what changed. One that does not
// exist is keyed by the string alone (the stage reports it), and the outputs of stages stay
// keyed by their digests.
func TestAPathGivenForAnOutputIsKeyedByItsContent(t *testing.T) {
	ws := newWorkspace(t, strings.Replace(pathInputHCL, "%s", "./given/in.txt", 1), map[string]string{"given/in.txt": "abc"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	d := ws.plan(Selection{})["use.file"]
	if d.Action != Cached || !slices.Contains(d.lines, `path input "given/in.txt" `+hexTreeDigest(t, ws, "given/in.txt")) {
		t.Fatalf("%s, lines %q", d.Action, d.lines)
	}
	ws.write("given/in.txt", "abd")
	d = ws.plan(Selection{})["use.file"]
	if d.Action != Run || len(d.Reasons) != 1 || d.Reasons[0] != "given/in.txt: 0 added, 1 changed, 0 removed (e.g. in.txt)" {
		t.Fatalf("after changing the file: %s %q", d.Action, d.Reasons)
	}
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "use.file", "out")); err != nil || string(b) != "ABD" {
		t.Fatalf("output %q, %v", b, err)
	}

	// Another path given: the attribute's change says it; the path it gave is not "gone".
	ws.write("given/other.txt", "xyz")
	ws.write("pipeline.hcl", strings.Replace(pathInputHCL, "%s", "./given/other.txt", 1))
	d = ws.plan(Selection{})["use.file"]
	if d.Action != Run || len(d.Reasons) == 0 || !strings.HasPrefix(d.Reasons[0], "attribute input ") || strings.Contains(strings.Join(d.Reasons, "; "), "is gone") {
		t.Errorf("another path given: %s %q", d.Action, d.Reasons)
	}
	// The same path given, but no longer there: it is gone.
	ws.write("pipeline.hcl", strings.Replace(pathInputHCL, "%s", "./given/in.txt", 1))
	os.Remove(filepath.Join(ws.dir, "given", "in.txt"))
	d = ws.plan(Selection{})["use.file"]
	if d.Action != Run || !slices.Contains(d.Reasons, "given/in.txt (given as input) is gone") {
		t.Errorf("the path removed: %s %q", d.Action, d.Reasons)
	}

	// Not there: the key has the attribute alone, as before paths were hashed.
	ws.write("pipeline.hcl", strings.Replace(pathInputHCL, "%s", "missing.txt", 1))
	d = ws.plan(Selection{})["use.file"]
	for _, l := range d.lines {
		if strings.HasPrefix(l, "path ") {
			t.Errorf("a missing path has a key line: %q", l)
		}
	}
}

// hexTreeDigest is the manifest digest of a workspace path, as a source's.
func hexTreeDigest(t *testing.T, ws *workspace, rel string) string {
	t.Helper()
	m, err := OpenStatCache("").HashTree(filepath.Join(ws.dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return m.Digest
}

// A source recorded before folders were listed in its manifest reruns its stage once, and plan
// says why rather than calling every folder added.
func TestPlanExplainsFoldersNewlyCounted(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/Boot/1.jpg": "one", "raw/Bag/2.jpg": "two"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	// The state as an earlier version recorded it: no folder entries, another digest, and
	// no output under the present key.
	st := ws.engine(nil).Store
	state, _ := st.LoadState("gen.src")
	if err := os.Remove(st.keyPath(state.Key)); err != nil {
		t.Fatal(err)
	}
	state.Sources = st.LoadSources("gen.src")
	m := state.Sources["source"]
	delete(m.Files, "Boot/")
	delete(m.Files, "Bag/")
	m.Digest = manifestDigest(m.Files)
	state.Sources["source"] = m
	for i, l := range state.Lines {
		if strings.HasPrefix(l, "source ") {
			state.Lines[i] = `source source "raw" ` + m.Digest
		}
	}
	state.Key = keyOfLines("gen.src", state.Lines)
	if err := st.SaveState(state); err != nil {
		t.Fatal(err)
	}
	d := ws.plan(Selection{})["gen.src"]
	if want := "raw: its folders now count in the key (an empty one changes what a split does)"; d.Action != Run || len(d.Reasons) != 1 || d.Reasons[0] != want {
		t.Fatalf("%s %q, want %q", d.Action, d.Reasons, want)
	}

	// A folder without subfolders lists none either way: a first one is a folder added.
	flat := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "a"})
	if _, _, err := flat.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(flat.dir, "raw", "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d := flat.plan(Selection{})["gen.src"]; d.Action != Run || len(d.Reasons) != 1 || d.Reasons[0] != "raw: folder added: new/" {
		t.Fatalf("a first subfolder: %s %q", d.Action, d.Reasons)
	}
}

// A hard link added to an input while the stage runs (augment links the images it is given)
// moves only the file's change time: its content decides, so the stage is not failed for
// it; a rewrite that kept size and times is.
func TestChangesComparesContentWhenOnlyTheChangeTimeMoved(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "1", "b": "2"})
	c := OpenStatCache("")
	c.Clock = func() time.Time { return time.Now().Add(time.Minute) } // every file settled
	m, st, err := c.hashTree(dir, treeMode{source: true, remember: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(t.TempDir(), "a-link")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "b"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	for _, files := range []map[string]string{m.Files, nil} { // nil: the digests from the cache
		got, err := c.changes(st, files)
		if err != nil || !slices.Equal(got, []string{"b changed"}) {
			t.Errorf("files %v: changes %q, want [b changed] (%v)", files != nil, got, err)
		}
	}
}

// A folder added is named unless a file added below it says so already, or a folder above it
// named: one line per new tree, whatever its depth.
func TestSplitFolderChangesNamesEachNewTreeOnce(t *testing.T) {
	files, folders := splitFolderChanges(ManifestDiff{
		Added:   []string{"a/", "a/b/", "a/b/c/", "c/", "c/x.txt", "d/", "de/", "e/f/"},
		Removed: []string{"old/", "old/in/", "gone.txt"},
	})
	if !slices.Equal(files.Added, []string{"c/x.txt"}) || !slices.Equal(files.Removed, []string{"gone.txt"}) {
		t.Errorf("files %+v", files)
	}
	if !slices.Equal(folders.Added, []string{"a/", "d/", "de/", "e/f/"}) || !slices.Equal(folders.Removed, []string{"old/"}) {
		t.Errorf("folders %+v", folders)
	}
}

// A stage that fails because a source changed under it (a folder deleted before the stage
// read it) says that the source changed, and to run again, with the stage's own error.
func TestAStageFailingWhileItsSourceChangedSaysSo(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "aa", "raw/b.txt": "bb"})
	ws.kinds.gen.probe = func(j *Job) {
		os.RemoveAll(filepath.Join(ws.dir, "raw"))
	}
	got, rec, err := ws.run(RunOptions{})
	if err == nil || got["gen.src"] != StatusFailed {
		t.Fatalf("run: %v, %v", got, err)
	}
	msg := rec.Result("gen.src").Error
	for _, want := range []string{`source "raw" changed while the stage ran (removed as a whole), and the stage failed: `, "no such file or directory", "; run again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// A source folder that cannot be read for lack of permission fails the plan saying so and
// what to do, not as a failure to hash it.
func TestAnUnreadableSourceFolderSaysWhatToDo(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "aa"})
	root := filepath.Join(ws.dir, "raw")
	openFile = func(name string) (*os.File, error) {
		if name == root {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openFile = os.Open }()
	_, err := ws.engine(nil).Plan(Selection{})
	if err == nil || !strings.Contains(err.Error(), `source "raw" cannot be read (permission denied): give the user running pipeline read access to it`) {
		t.Errorf("plan: %v", err)
	}
}

// A cached stage keeps the source manifests recorded with its key, file and all (written
// again, they cost as much as the sources are many), dates its state, and a plan after a
// change still names what changed.
func TestACachedStageKeepsItsRecordedSources(t *testing.T) {
	ws := newWorkspace(t, genHCL, map[string]string{"raw/a.txt": "a", "raw/b.txt": "b"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	st := ws.engine(nil).Store
	path := st.sourcesPath("gen.src")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := st.LoadState("gen.src")
	status, _, err := ws.run(RunOptions{})
	if err != nil || status["gen.src"] != StatusCached {
		t.Fatalf("second run: %v %v", status, err)
	}
	after, err := os.Stat(path)
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the sources of a cached stage were written again (%v)", err)
	}
	second, _ := st.LoadState("gen.src")
	if second.Key != first.Key || !second.Updated.After(first.Updated) || !slices.Equal(second.Earlier, first.Earlier) {
		t.Errorf("state after a cached run %+v, before %+v", second, first)
	}
	// Damaged since (cut short, say), the file is written again by the next cached run.
	if err := os.WriteFile(path, []byte(`{"raw": {"fi`), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, _, err := ws.run(RunOptions{}); err != nil || status["gen.src"] != StatusCached {
		t.Fatalf("run after the damage: %v %v", status, err)
	}
	if got := st.LoadSources("gen.src"); len(got) != 1 || len(got["source"].Files) != 2 {
		t.Errorf("the damaged sources were kept: %v", got)
	}
	ws.write("raw/b.txt", "b, changed")
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Run || len(d.Reasons) != 1 || d.Reasons[0] != "raw: 0 added, 1 changed, 0 removed (e.g. b.txt)" {
		t.Errorf("after a change: %s %q", d.Action, d.Reasons)
	}
}
