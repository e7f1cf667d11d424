package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const bulkHCL = `
variable "text" {
  default = "a"
}

stage "bulk" "data" {
  files = 5
  text  = var.text
}

stage "xform" "up" {
  input = stage.bulk.data.report
}
`

// runBulk runs bulkHCL with text = text.
func runBulk(t *testing.T, ws *workspace, text string) *RunRecord {
	t.Helper()
	cfg, diags := LoadFile(filepath.Join(ws.dir, "pipeline.hcl"), ws.kinds.reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wf, diags := Build(cfg, ws.kinds.reg, map[string]string{"text": text})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st, err := OpenStore(ws.dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := (&Engine{Workflow: wf, Store: st}).Run(t.Context(), RunOptions{RunsDir: filepath.Join(ws.dir, "models")})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// checkBulkLink checks that run folder rec links bulk.data's images as one relative symbolic
// link to the store object, holding the files written with text, and hard-links the report.
func checkBulkLink(t *testing.T, ws *workspace, rec *RunRecord, text string) {
	t.Helper()
	link := filepath.Join(rec.Dir(), "bulk.data", "images")
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s: want a symbolic link, got %v %v", link, fi, err)
	}
	to, _ := os.Readlink(link)
	if filepath.IsAbs(to) {
		t.Errorf("link %s → %s is absolute: the workspace could not move", link, to)
	}
	want := filepath.Join(ws.dir, ObjectRel(rec.Result("bulk.data").Output), "images")
	if got, _ := filepath.EvalSymlinks(link); got != want {
		wantEval, _ := filepath.EvalSymlinks(want)
		if got != wantEval {
			t.Errorf("link resolves to %s, want %s", got, want)
		}
	}
	for i, name := range []string{"0/0.txt", "1/1.txt", "0/4.txt"} {
		b, err := os.ReadFile(filepath.Join(link, name))
		if want := text + []string{"0", "1", "4"}[i]; err != nil || string(b) != want {
			t.Errorf("%s through the link: %q %v, want %q", name, b, err, want)
		}
	}
	rfi, err := os.Lstat(filepath.Join(rec.Dir(), "bulk.data", "report"))
	if err != nil || !rfi.Mode().IsRegular() {
		t.Errorf("report: want a regular file (hard link), got %v %v", rfi, err)
	}
}

func TestRunFolderLinksBulkFoldersWhole(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	rec := runBulk(t, ws, "a")
	checkBulkLink(t, ws, rec, "a")
	// A cached run links the same object again.
	rec2 := runBulk(t, ws, "a")
	if rec2.Result("bulk.data").Status != "cached" {
		t.Fatalf("second run: %s", rec2.Result("bulk.data").Status)
	}
	checkBulkLink(t, ws, rec2, "a")
	// Other kinds' outputs are still hard-linked file by file.
	if fi, err := os.Lstat(filepath.Join(rec.Dir(), "xform.up", "out")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("xform.up/out: %v %v", fi, err)
	}
}

func TestGCKeepsWhatRunFoldersLinkTo(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	old := runBulk(t, ws, "a")
	cur := runBulk(t, ws, "b") // the current state moves on to another object
	oldObj := filepath.Join(ws.dir, ObjectRel(old.Result("bulk.data").Output))
	if old.Result("bulk.data").Output == cur.Result("bulk.data").Output {
		t.Fatal("the two runs made the same object")
	}
	st, err := OpenStore(ws.dir)
	if err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(ws.dir, "models")
	gc := func() GCResult {
		t.Helper()
		res, err := st.GC(runs, false)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Kept through the old run's run.json.
	if res := gc(); res.Objects != 0 {
		t.Fatalf("gc removed %d objects while both run folders exist", res.Objects)
	}
	checkBulkLink(t, ws, old, "a")
	// A run that died before writing run.json: kept through its link.
	if err := os.Remove(filepath.Join(old.Dir(), "run.json")); err != nil {
		t.Fatal(err)
	}
	if res := gc(); res.Objects != 0 {
		t.Fatalf("gc removed %d objects still linked from a run folder without run.json", res.Objects)
	}
	checkBulkLink(t, ws, old, "a")
	// Once that run folder is gone, its object goes; the current one stays.
	if err := os.RemoveAll(old.Dir()); err != nil {
		t.Fatal(err)
	}
	res := gc()
	if res.Objects < 1 {
		t.Fatalf("gc removed nothing after the run folder was deleted")
	}
	if _, err := os.Stat(oldObj); !os.IsNotExist(err) {
		t.Errorf("old object still there: %v", err)
	}
	checkBulkLink(t, ws, cur, "b")
}

func TestJobKnowsTheDigestsOfItsSources(t *testing.T) {
	ws := newWorkspace(t, `
stage "gen" "src" {
  source = "raw"
}
`, map[string]string{"raw/a": "alpha", "raw/b": "beta", "other": "not a source"})
	var known, other []string
	ws.kinds.gen.probe = func(j *Job) {
		for _, name := range []string{"raw/a", "raw/b", "other"} {
			fi, err := os.Stat(j.Path(name))
			if err != nil {
				t.Error(err)
				return
			}
			d, ok := j.KnownDigest(j.Path(name), fi)
			if name == "other" {
				if ok {
					other = append(other, d)
				}
				continue
			}
			known = append(known, d)
		}
	}
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{sha256Hex("alpha"), sha256Hex("beta")}
	if !slices.Equal(known, want) {
		t.Errorf("known digests %q, want %q", known, want)
	}
	if len(other) != 0 {
		t.Errorf("a file outside the sources had a known digest: %q", other)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
