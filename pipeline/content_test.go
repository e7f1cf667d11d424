package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// catalogKind lists the files of a source folder in out, a line "name content" each, sorted by
// name; the content digest of out (ContentDigester) is that of the contents alone, sorted.
type catalogKind struct{ runs atomic.Int64 }

func (k *catalogKind) Name() string      { return "catalog" }
func (k *catalogKind) Version() int      { return 1 }
func (k *catalogKind) Outputs() []string { return []string{"out"} }
func (k *catalogKind) Attributes() []Attribute {
	return []Attribute{{Name: "source", Type: cty.String, Required: true, Role: Source, Doc: "folder to list"}}
}
func (k *catalogKind) Run(ctx context.Context, j *Job) error {
	k.runs.Add(1)
	src := j.Path(j.Values.String("source"))
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		b.WriteString(e.Name() + " " + string(data) + "\n")
	}
	return os.WriteFile(filepath.Join(j.Out, "out"), []byte(b.String()), 0o644)
}

// catalogContents is the sorted contents of a catalog's lines, without the names.
func catalogContents(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var contents []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		_, c, _ := strings.Cut(l, " ")
		contents = append(contents, c)
	}
	slices.Sort(contents)
	return contents, nil
}

func (k *catalogKind) OutputContents(dir string, files FileDigests) (map[string]string, error) {
	if _, ok := files.Digest("out"); !ok {
		return nil, os.ErrNotExist
	}
	contents, err := catalogContents(filepath.Join(dir, "out"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(strings.Join(contents, "\n")))
	return map[string]string{"out": hex.EncodeToString(sum[:])}, nil
}

// tallyKind writes the sorted contents of a catalog (keyed by its content, unless byFiles)
// into out.
type tallyKind struct {
	runs    atomic.Int64
	byFiles bool
}

func (k *tallyKind) Name() string      { return "tally" }
func (k *tallyKind) Version() int      { return 1 }
func (k *tallyKind) Outputs() []string { return []string{"out"} }
func (k *tallyKind) Attributes() []Attribute {
	return []Attribute{{Name: "input", Type: cty.String, Required: true, ByContent: !k.byFiles, Doc: "a catalog"}}
}
func (k *tallyKind) Run(ctx context.Context, j *Job) error {
	k.runs.Add(1)
	contents, err := catalogContents(j.Path(j.Values.String("input")))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(j.Out, "out"), []byte(strings.Join(contents, ",")), 0o644)
}

const contentHCL = `
stage "catalog" "src" {
  source = "raw"
}

stage "tally" "t" {
  input = stage.catalog.src.out
}

stage "xform" "names" {
  input = stage.catalog.src.out
}
`

// An attribute keyed ByContent is keyed by its upstream output's content digest: renaming a
// file reruns the stages that read the names (xform) but not the one that reads what the
// output holds (tally), which a change of content does rerun; an entry published before the
// content digests were recorded gets them when a key first needs them.
func TestAttributeKeyedByContentIgnoresRenames(t *testing.T) {
	ws := newWorkspace(t, contentHCL, map[string]string{"raw/a.txt": "apple", "raw/b.txt": "pear"})
	catalog, tally := &catalogKind{}, &tallyKind{}
	reg, err := NewRegistry(catalog, tally, ws.kinds.xform)
	if err != nil {
		t.Fatal(err)
	}
	ws.kinds.reg = reg
	run := func(want map[string]string) {
		t.Helper()
		got, _, err := ws.run(RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, got, want)
	}
	run(map[string]string{"catalog.src": "ran", "tally.t": "ran", "xform.names": "ran"})

	if err := os.Rename(filepath.Join(ws.dir, "raw/a.txt"), filepath.Join(ws.dir, "raw/z.txt")); err != nil {
		t.Fatal(err)
	}
	run(map[string]string{"catalog.src": "ran", "tally.t": "cached", "xform.names": "ran"})

	ws.write("raw/b.txt", "plum")
	p := ws.plan(Selection{})
	if d := p["tally.t"]; d.Action != Run {
		t.Fatalf("after a change of content, tally.t: %s %v", d.Action, d.Reasons)
	}
	run(map[string]string{"catalog.src": "ran", "tally.t": "ran", "xform.names": "ran"})
	if n := tally.runs.Load(); n != 2 {
		t.Fatalf("tally ran %d times, want 2", n)
	}

	// The catalog's entry as published before Entry.Contents.
	st, ok := ws.engine(nil).Store.LoadState("catalog.src")
	if !ok {
		t.Fatal("no state for catalog.src")
	}
	entryPath := ws.engine(nil).Store.keyPath(st.Key)
	var raw map[string]any
	b, err := os.ReadFile(entryPath)
	if err != nil || json.Unmarshal(b, &raw) != nil || raw["contents"] == nil {
		t.Fatalf("entry %s: %v, contents %v", entryPath, err, raw["contents"])
	}
	delete(raw, "contents")
	b, _ = json.Marshal(raw)
	if err := os.WriteFile(entryPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for a, d := range ws.plan(Selection{}) {
		if d.Action != Cached {
			t.Errorf("with the content digests left out of the entry: %s %s %v", a, d.Action, d.Reasons)
		}
	}
	// A plan takes no lock and writes nothing into the store; a run writes them in.
	contents := func() map[string]string {
		t.Helper()
		var back Entry
		if b, err := os.ReadFile(entryPath); err != nil || json.Unmarshal(b, &back) != nil {
			t.Fatalf("entry %s: %v", entryPath, err)
		}
		return back.Contents
	}
	if c := contents(); c != nil {
		t.Fatalf("a plan wrote the content digests into the entry: %v", c)
	}
	run(map[string]string{"catalog.src": "cached", "tally.t": "cached", "xform.names": "cached"})
	if c := contents(); c["out"] == "" {
		t.Fatalf("the run did not write the content digests into the entry: %v", c)
	}
	if err := os.Rename(filepath.Join(ws.dir, "raw/b.txt"), filepath.Join(ws.dir, "raw/c.txt")); err != nil {
		t.Fatal(err)
	}
	run(map[string]string{"catalog.src": "ran", "tally.t": "cached", "xform.names": "ran"})
	if n := catalog.runs.Load(); n != 4 {
		t.Fatalf("catalog ran %d times, want 4", n)
	}

	// An entry of the oldest layout, its file list inside it, gets them too.
	st, _ = ws.engine(nil).Store.LoadState("catalog.src")
	entryPath = ws.engine(nil).Store.keyPath(st.Key)
	filesPath := ws.engine(nil).Store.outputPath(st.Key)
	var files Manifest
	if b, err := os.ReadFile(filesPath); err != nil || json.Unmarshal(b, &files) != nil || files.Files == nil {
		t.Fatalf("%s: %v", filesPath, err)
	}
	b, _ = os.ReadFile(entryPath)
	raw = map[string]any{}
	json.Unmarshal(b, &raw)
	delete(raw, "contents")
	raw["output"] = files
	b, _ = json.Marshal(raw)
	os.WriteFile(entryPath, b, 0o644)
	os.Remove(filesPath)
	for a, d := range ws.plan(Selection{}) {
		if d.Action != Cached {
			t.Errorf("with the file list in the entry and no content digests: %s %s %v", a, d.Action, d.Reasons)
		}
	}

	// Keyed by its files instead: the plan says so, and not that the upstream changed.
	tally.byFiles = true
	d := ws.plan(Selection{})["tally.t"]
	if d.Action != Run || strings.Join(d.Reasons, "; ") != "attribute input is now keyed by the upstream output's files" {
		t.Fatalf("keyed by the files: %s %q", d.Action, d.Reasons)
	}
}
