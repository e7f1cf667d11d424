package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// runBulk runs bulkHCL with text = text, its run folder in models/.
func runBulk(t *testing.T, ws *workspace, text string) *RunRecord {
	t.Helper()
	return runBulkIn(t, ws, text, filepath.Join(ws.dir, "models"))
}

// runBulkIn runs bulkHCL with text = text, its run folder in runsDir.
func runBulkIn(t *testing.T, ws *workspace, text, runsDir string) *RunRecord {
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
	rec, err := (&Engine{Workflow: wf, Store: st}).Run(t.Context(), RunOptions{RunsDir: runsDir})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// gcModels runs gc in ws with models/ as the runs folder.
func gcModels(t *testing.T, ws *workspace) GCResult {
	t.Helper()
	st, err := OpenStore(ws.dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.GC(filepath.Join(ws.dir, "models"), false, nil, nil, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	return res
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
	want, _ := filepath.EvalSymlinks(filepath.Join(ws.dir, ObjectRel(rec.Result("bulk.data").Output), "images"))
	if got, _ := filepath.EvalSymlinks(link); got != want {
		t.Errorf("link resolves to %s, want %s", got, want)
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
	gc := func() GCResult { return gcModels(t, ws) }
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
	// Files written a minute before they are hashed (the change time cannot be set back).
	ws.clock = func() time.Time { return time.Now().Add(time.Minute) }
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

	// A file changed since, keeping its size, inode and (coarse) modification and change
	// times, would keep its identity: one hashed within racyMargin of its times is never
	// vouched for.
	ws.clock = nil
	ws.write("raw/c", "gamma")
	var recent []bool
	ws.kinds.gen.probe = func(j *Job) {
		fi, err := os.Stat(j.Path("raw/c"))
		if err != nil {
			t.Error(err)
			return
		}
		_, ok := j.KnownDigest(j.Path("raw/c"), fi)
		recent = append(recent, ok)
	}
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recent, []bool{false}) {
		t.Errorf("a file written just now: known %v, want [false]", recent)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestRunFolderLinksResolveWhenTheRunsFolderIsALink(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	elsewhere := filepath.Join(t.TempDir(), "big", "disk", "models")
	if err := os.MkdirAll(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(ws.dir, "models")); err != nil {
		t.Fatal(err)
	}
	rec := runBulk(t, ws, "a")
	link := filepath.Join(rec.Dir(), "bulk.data", "images")
	if b, err := os.ReadFile(filepath.Join(link, "1", "3.txt")); err != nil || string(b) != "a3" {
		t.Fatalf("through %s: %q %v", link, b, err)
	}
}

func TestGCSeesRunFoldersInEveryRunsFolderUsed(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	exp := filepath.Join(ws.dir, "experiments")
	old := runBulkIn(t, ws, "a", exp) // --runs-dir experiments
	runBulk(t, ws, "b")               // the current state moves on, in models/
	if err := os.Remove(filepath.Join(old.Dir(), "run.json")); err != nil {
		t.Fatal(err) // only its link refers to the object now
	}
	if res := gcModels(t, ws); res.Objects != 0 {
		t.Fatalf("gc of models/ removed %d objects, one still linked from experiments/", res.Objects)
	}
	checkBulkLink(t, ws, old, "a")
}

func TestGCWorksInAWorkspaceWhosePathHoldsPatternCharacters(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	odd := filepath.Join(t.TempDir(), "ws[1]*?")
	if err := os.Rename(ws.dir, odd); err != nil {
		t.Fatal(err)
	}
	ws.dir = odd
	rec := runBulk(t, ws, "a")
	if res := gcModels(t, ws); res.Objects != 0 {
		t.Fatalf("gc removed %d objects that the current state uses", res.Objects)
	}
	checkBulkLink(t, ws, rec, "a")
}

func TestAFileDeletedThroughARunFolderLinkIsRestored(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	rec := runBulk(t, ws, "a")
	if err := os.Remove(filepath.Join(rec.Dir(), "bulk.data", "images", "0", "2.txt")); err != nil {
		t.Fatal(err)
	}
	if d := ws.plan(Selection{})["bulk.data"]; d.Action != Run || !strings.HasPrefix(d.Reasons[0], "output damaged") {
		t.Fatalf("after deleting an image through the link: %s %v", d.Action, d.Reasons)
	}
	runBulk(t, ws, "a")
	checkBulkLink(t, ws, rec, "a") // the old run folder's link leads to the restored object
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "bulk.data", "images", "0", "2.txt")); err != nil || string(b) != "a2" {
		t.Fatalf("restored file: %q %v", b, err)
	}
}

// moveWorkspace renames the workspace to a new folder, as `mv` would, and points ws and the
// run records at the new place.
func moveWorkspace(t *testing.T, ws *workspace, recs ...*RunRecord) {
	t.Helper()
	to := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(ws.dir, to); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		rel, err := filepath.Rel(ws.dir, r.dir)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("run folder %s is not in the workspace %s", r.dir, ws.dir)
		}
		r.dir = filepath.Join(to, rel)
	}
	ws.dir = to
}

// TestGCAfterTheWorkspaceMovedSeesItsRunsFolders moves a workspace with two runs folders and
// checks that gc still keeps what the runs folder it is not given uses, and that the run
// folders' links still lead into the store: runs folders inside the workspace are recorded
// relative to it, and those recorded absolute by older versions are found at their new place.
func TestGCAfterTheWorkspaceMovedSeesItsRunsFolders(t *testing.T) {
	for _, older := range []bool{false, true} {
		name := "recorded now"
		if older {
			name = "recorded absolute by an older version"
		}
		t.Run(name, func(t *testing.T) {
			ws := newWorkspace(t, bulkHCL, nil)
			outside := filepath.Join(t.TempDir(), "outside")
			runBulkIn(t, ws, "c", outside)                               // --runs-dir elsewhere
			exp := runBulkIn(t, ws, "a", filepath.Join(ws.dir, "runs2")) // --runs-dir runs2
			cur := runBulk(t, ws, "b")                                   // the current state moves on, in models/
			list := filepath.Join(ws.dir, StoreDir, runsDirsFile)
			want := outside + "\nruns2\nmodels\n"
			if older {
				old := outside + "\n" + filepath.Join(ws.dir, "runs2") + "\n" + filepath.Join(ws.dir, "models") + "\n"
				want = old + "models\n" // the old place is kept: runs2 is found through it
				if err := os.WriteFile(list, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			moveWorkspace(t, ws, exp, cur)
			if err := os.RemoveAll(filepath.Join(ws.dir, "models")); err != nil {
				t.Fatal(err)
			}
			if res := gcModels(t, ws); res.Objects != 0 {
				t.Fatalf("gc after the move removed %d outputs, %v; runs2/ still uses them", res.Objects, res.Removed)
			}
			checkBulkLink(t, ws, exp, "a")

			// The next run records models relative to the workspace; the folder outside
			// stays absolute.
			cur = runBulk(t, ws, "b")
			checkBulkLink(t, ws, cur, "b")
			list = filepath.Join(ws.dir, StoreDir, runsDirsFile)
			if b, _ := os.ReadFile(list); string(b) != want {
				t.Fatalf("after a run in the moved workspace, %s holds %q, want %q", runsDirsFile, b, want)
			}
		})
	}
}

// TestGCKeepsWhatALinkMadeBeforeAMoveNames moves a workspace away from a runs folder outside
// it, whose run folder has no run.json (a killed run): its link leads nowhere now, and gc
// keeps the object it names all the same (put back side by side, the link leads there
// again), while BrokenLinks says where the store has it.
func TestGCKeepsWhatALinkMadeBeforeAMoveNames(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	outside := runBulkIn(t, ws, "a", filepath.Join(t.TempDir(), "runs"))
	runBulk(t, ws, "b")
	if err := os.Remove(filepath.Join(outside.Dir(), "run.json")); err != nil {
		t.Fatal(err)
	}
	if got := BrokenLinks(ws.dir, outside.Dir()); len(got) != 0 {
		t.Fatalf("before the move: broken links %v", got)
	}
	moveWorkspace(t, ws)
	obj := outside.Result("bulk.data").Output
	got := BrokenLinks(ws.dir, outside.Dir())
	if want := filepath.Join(ws.dir, ObjectRel(obj), "images"); len(got) != 1 || got[0].Link != "bulk.data/images" || got[0].Object != obj || got[0].Now != want {
		t.Fatalf("after the move: broken links %+v, want bulk.data/images, now at %s", got, want)
	}
	if res := gcModels(t, ws); res.Objects != 0 {
		t.Fatalf("gc removed %d outputs, %v; a link made before the move names one", res.Objects, res.Removed)
	}
	if err := os.Remove(filepath.Join(outside.Dir(), "bulk.data", "images")); err != nil {
		t.Fatal(err)
	}
	if res := gcModels(t, ws); res.Objects != 1 {
		t.Fatalf("gc removed %d outputs once the link was gone, want 1", res.Objects)
	}
}

// TestRunsDirsOfOlderVersionsAreRead checks how the runs folders recorded absolute by older
// versions are read and rewritten: one inside the workspace becomes relative to it; one not
// there is kept as recorded (a disk not mounted), and stands for the folder at the same place
// under the workspace, the longest such path, if there is one (the workspace moved).
func TestRunsDirsOfOlderVersionsAreRead(t *testing.T) {
	ws := newWorkspace(t, bulkHCL, nil)
	st, err := OpenStore(ws.dir)
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	gone := filepath.Join(t.TempDir(), "old", "place", "exp", "runs")
	for _, d := range []string{"inside", "exp/runs", "runs"} {
		if err := os.MkdirAll(filepath.Join(ws.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := filepath.Join(ws.dir, "inside") + "\n" + gone + "\n" + outside + "\n"
	if err := os.WriteFile(filepath.Join(st.Root, runsDirsFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(ws.dir, "inside"), filepath.Join(ws.dir, "exp", "runs"), outside}
	if got := st.runsDirs(); !slices.Equal(got, want) {
		t.Errorf("runsDirs: %q, want %q", got, want)
	}
	if err := st.RecordRunsDir(filepath.Join(ws.dir, "models")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(st.Root, runsDirsFile)); string(b) != "inside\n"+gone+"\n"+outside+"\nmodels\n" {
		t.Errorf("%s after a run: %q", runsDirsFile, b)
	}
}
