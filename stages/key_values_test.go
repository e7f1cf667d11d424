package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
)

// keyValuesHCL is a split, an augment and a train stage; %s is more of the augment block and
// %s more of the train block (keysOf gives them ops and schedule when they do not).
const keyValuesHCL = smallSplitHCL + `
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 2
  %s
}

stage "train" "model" {
  architecture = "cnn"
  train        = stage.augment.balanced.output
  val          = stage.split.main.val
  options      = { channels = [8, 16] }
  %s
}
`

// keysOf plans the pipeline of w (its split and augment run once, so that the train stage's
// key is known) and returns each stage's key.
func keysOf(t *testing.T, w *ws, augment, train string) map[string]string {
	t.Helper()
	if !strings.Contains(augment, "ops") {
		augment += "\n ops = [\"color_jitter\"]"
	}
	if !strings.Contains(train, "schedule") {
		train += "\n schedule = \"cosine\""
	}
	w.write("pipeline.hcl", fmt.Appendf(nil, keyValuesHCL, augment, train))
	e := w.engine()
	if _, err := e.Run(context.Background(), pipeline.RunOptions{RunsDir: filepath.Join(w.dir, "models"),
		Selection: pipeline.Selection{Targets: []string{"augment.balanced"}}}); err != nil {
		t.Fatal(err)
	}
	ds, err := e.Plan(pipeline.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, d := range ds {
		if d.Key == "" {
			t.Fatalf("%s has no key: %+v", d.Addr, d)
		}
		keys[d.Addr] = d.Key
	}
	return keys
}

// Writing out a default the stage resolves itself, or changing a setting it ignores, keeps
// the key (no retraining, no new copies); a setting that counts changes it.
func TestKeysIgnoreValuesThatCannotChangeTheOutput(t *testing.T) {
	w := newWS(t, "")
	w.reg, _ = pipeline.NewRegistry(Split{}, Augment{}, Train{})
	writeSynthetic(t, w, 40, []string{"circle", "square"})
	base := keysOf(t, w, "", "")
	for _, c := range []struct {
		augment, train string
		same           bool
		changes        string
	}{
		{train: "epochs = 20\n batch_size = 32\n learning_rate = 1e-3", same: true},      // cnn's defaults
		{train: "plateau_patience = 2\n plateau_factor = 0.5", same: true},               // not the plateau schedule
		{train: "optimizer = \"adam\"\n weight_decay = 0.01", changes: "train.model"},    // adam differs from adamw…
		{augment: "rotation = 10\n crop = 0.5\n translate = 0.3", same: true},            // not in ops
		{augment: "brightness = 0.3", changes: "augment.balanced"},                       // color_jitter reads it
		{train: "epochs = 21", changes: "train.model"},                                   // not a default
		{train: "plateau_patience = 2\n schedule = \"plateau\"", changes: "train.model"}, // read now
		{train: "learning_rate = 1.0e-3\n epochs = 20.0", same: true},                    // the same numbers
		{train: "threads = 0\n early_stopping = 0\n label_smoothing = 0", same: true},    // attribute defaults
		{train: "weight_decay = 0.01", changes: "train.model"},                           // adamw reads it
		{train: "select_metric = \"val_loss\"", changes: "train.model"},                  // chooses the epoch
		{augment: "ops = [\"affine\"]\n translate = 0.3", changes: "augment.balanced"},   // affine reads it
	} {
		got := keysOf(t, w, c.augment, c.train)
		for addr, k := range base {
			want := c.same || (addr != c.changes && !(c.changes == "augment.balanced" && addr == "train.model"))
			if (got[addr] == k) != want {
				t.Errorf("augment {%s} train {%s}: %s key kept %v, want %v", c.augment, c.train, addr, got[addr] == k, want)
			}
		}
	}
	// With adam, weight_decay is not read: changing it keeps the key.
	adam := keysOf(t, w, "", "optimizer = \"adam\"\n weight_decay = 0.01")
	if adam2 := keysOf(t, w, "", "optimizer = \"adam\"\n weight_decay = 0.5"); adam2["train.model"] != adam["train.model"] {
		t.Error("weight_decay changed the key of an adam training")
	}
}

// Options entries equal to the architecture's defaults are keyed as left out; entries that
// count are kept, and options the stage cannot read entry by entry are keyed as given.
func TestDefaultOptionsLeftOut(t *testing.T) {
	for _, c := range []struct {
		hcl  string
		want string // the keyed value as HCL-like text; "" for as given
	}{
		{`{ dropout = 0.2, pool = 4 }`, "null"},
		{`{ dropout = 0.2, dense = 64 }`, "dense=64"},
		{`{ dense = 64 }`, ""},
		{`{ channels = [32, 64, 128] }`, "null"},
		{`{ nonsense = 1 }`, ""},
	} {
		v := parseHCLValue(t, c.hcl)
		got, ok := defaultOptionsLeftOut("cnn", v)
		switch {
		case c.want == "" && ok:
			t.Errorf("%s: keyed as %#v, want as given", c.hcl, got)
		case c.want == "null" && (!ok || !got.IsNull()):
			t.Errorf("%s: keyed as %#v (%v), want null", c.hcl, got, ok)
		case c.want == "dense=64" && (!ok || got.IsNull() || got.LengthInt() != 1 || !got.Type().HasAttribute("dense")):
			t.Errorf("%s: keyed as %#v (%v), want { dense = 64 }", c.hcl, got, ok)
		}
	}
}

// parseHCLValue evaluates an HCL expression without variables.
func parseHCLValue(t *testing.T, src string) cty.Value {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return v
}

// A stage with an attribute of the wrong type still has its other attributes checked, but a
// check that needs the broken one does not guess its value: val = 0.95 with test = "none" is
// one error (test's type), not also "test's default leaves nothing for train".
func TestAWrongTypeIsNotReadAsLeftOut(t *testing.T) {
	w := newWS(t, `
stage "split" "main" {
  source     = "raw"
  image_size = 8
  val        = 0.95
  test       = "none"
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = "many"
  ops         = []
}
`)
	w.write("raw/a/1.png", randomPNG(1, 1, 4, 4))
	diags := w.diagnostics()
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d %s", d.Subject.Start.Line, d.Summary))
	}
	want := []string{"6 Incorrect attribute value type", "11 Incorrect attribute value type", "12 No augmentation operations"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A plan says that a new val (or test, seed, test_source) draws the split's sets afresh, and
// test written as its default changes nothing.
func TestPlanSaysTheSetsWillBeDrawnAfresh(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 10)
	mustRun(t, w)
	plan := func(hcl string) *pipeline.Decision {
		t.Helper()
		w.write("pipeline.hcl", []byte(hcl))
		ds, err := w.engine().Plan(pipeline.Selection{})
		if err != nil || len(ds) != 1 {
			t.Fatalf("plan: %v, %v", ds, err)
		}
		return ds[0]
	}
	d := plan(strings.Replace(splitHCL, "val        = 0.2", "val        = 0.25", 1))
	if d.Action != pipeline.Run || !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, "drawn afresh") }) {
		t.Errorf("val changed: %s %q", d.Action, d.Reasons)
	}
	noTest := strings.Replace(splitHCL, "  test       = 0.2\n", "", 1)
	mustRunFile(t, w, noTest)
	if d := plan(strings.Replace(noTest, "val        = 0.2", "val        = 0.2\n  test       = 0.1", 1)); d.Action != pipeline.Cached {
		t.Errorf("test = 0.1, its default, written out: %s %q", d.Action, d.Reasons)
	}
}

// mustRunFile writes hcl as the pipeline file and runs it.
func mustRunFile(t *testing.T, w *ws, hcl string) {
	t.Helper()
	w.write("pipeline.hcl", []byte(hcl))
	mustRun(t, w)
}

// A test fraction written as its default and then left out (keys before and after they left
// defaults out) is no change to the sets; another fraction, val or the seed is.
func TestSplitChangeNotes(t *testing.T) {
	for _, c := range []struct {
		changed map[string][2]string
		note    bool
	}{
		{map[string][2]string{"test": {`"number" 0.1`, `"number" null`}}, false},
		{map[string][2]string{"test": {`"number" 0.2`, `"number" null`}}, true},
		{map[string][2]string{"val": {`"number" 0.1`, `"number" 0.2`}}, true},
		{map[string][2]string{"seed": {"42", "7"}}, true},
		{map[string][2]string{"image_size": {`"number" 28`, `"number" 32`}}, false},
	} {
		if got := len(Split{}.ChangeNotes(&pipeline.Values{}, c.changed, nil)) > 0; got != c.note {
			t.Errorf("%v: note %v, want %v", c.changed, got, c.note)
		}
	}
}

// Turning near_duplicates on or off keeps the sets, and the plan says what that means for
// near-duplicates; left out is on.
func TestSplitChangeNotesNearDuplicates(t *testing.T) {
	for _, c := range []struct {
		was, now, want string
	}{
		{`"bool" null`, `"bool" false`, "stay together"},
		{`"bool" true`, `"bool" false`, "stay together"},
		{`"bool" false`, `"bool" null`, "held-out set"},
		{`"bool" false`, `"bool" true`, "held-out set"},
		{`"bool" null`, `"bool" true`, ""},
	} {
		notes := Split{}.ChangeNotes(&pipeline.Values{}, map[string][2]string{"near_duplicates": {c.was, c.now}}, nil)
		if got := strings.Join(notes, "; "); c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%s → %s: notes %q, want one saying %q", c.was, c.now, got, c.want)
		}
	}
	got := Split{}.ChangeNotes(&pipeline.Values{}, map[string][2]string{"near_duplicates": {`"bool" null`, `"bool" false`}, "seed": {"1", "2"}}, nil)
	if len(got) != 1 || !strings.Contains(got[0], "afresh") {
		t.Errorf("with a new seed: %q, want the sets drawn afresh", got)
	}
}

// The plan says what a change to the photo folder does to the classes and labels: a class
// folder renamed, a photo moved or copied into another class; not a photo renamed in its class.
func TestPlanSaysWhenClassesOrLabelsChange(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 10)
	mustRun(t, w)
	mv := func(from, to string) {
		t.Helper()
		os.MkdirAll(filepath.Join(w.dir, filepath.Dir(to)), 0o755)
		if err := os.Rename(filepath.Join(w.dir, from), filepath.Join(w.dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	mv("raw/a/0.png", "raw/a/zero.png")
	if got := w.planReasons(t); strings.Contains(got, "class") || !strings.HasSuffix(got, "; only names change: the sets keep the same photos, so the trainings on them are not expected to run again") {
		t.Errorf("a photo renamed in its class: %q", got)
	}
	mv("raw/a/zero.png", "raw/b/zero.png")
	if got := w.planReasons(t); !strings.Contains(got, "(from folder a to b) (e.g. a/0.png → b/zero.png); 1 photo is now in another class (its label changes)") || strings.Contains(got, "classes change") {
		t.Errorf("a photo moved into another class: %q", got)
	}
	mv("raw/b/zero.png", "raw/a/0.png")
	// A copy into another class is no move: the photo has two labels.
	b, _ := os.ReadFile(filepath.Join(w.dir, "raw/a/0.png"))
	w.write("raw/b/copy.png", b)
	if got := w.planReasons(t); !strings.Contains(got, "1 photo is now in another class as well (two labels for one photo, which the run warns of)") || strings.Contains(got, "label changes") {
		t.Errorf("a photo copied into another class: %q", got)
	}
	os.Remove(filepath.Join(w.dir, "raw/b/copy.png"))
	mustRun(t, w)
	// The folder under another path: the same photos.
	mv("raw", "photos")
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, `source     = "raw"`, `source     = "photos"`, 1)))
	if got := w.planReasons(t); !strings.HasSuffix(got, "; the same photos: the trainings on them are not expected to run again") {
		t.Errorf("the photo folder under another path: %q", got)
	}
	mv("photos", "raw")
	w.write("pipeline.hcl", []byte(splitHCL))
	mv("raw/b", "raw/c")
	if got := w.planReasons(t); !strings.Contains(got, `(folder b renamed c)`) || !strings.Contains(got, `; the classes change: adds "c"; drops "b"`) || strings.Contains(got, "another class") || strings.Contains(got, "only names") {
		t.Errorf("a class folder renamed: %q", got)
	}
}

// With drop_small_classes, a class folder with fewer files than the split needs is left
// out of the model's classes: the plan does not count it as a class when it says how the
// classes change, nor when it numbers the class ids that move.
func TestPlanLeavesOutClassesTheSplitDrops(t *testing.T) {
	hcl := strings.Replace(splitHCL, "test       = 0.2\n", "test       = 0.2\n  drop_small_classes = true\n", 1)
	w := newWS(t, hcl)
	writeTwoClasses(w, "raw", 10)
	for i := 0; i < 10; i++ {
		w.write(fmt.Sprintf("raw/c/%d.png", i), randomPNG(9, uint64(i), 6, 6))
	}
	mustRun(t, w)
	// A folder of 2 photos, where 3 are needed, that sorts first: dropped, it adds no class
	// and moves no id.
	for i := 0; i < 2; i++ {
		w.write(fmt.Sprintf("raw/0 small/%d.png", i), randomPNG(10, uint64(i), 6, 6))
	}
	if got := w.planReasons(t); strings.Contains(got, "classes change") || strings.Contains(got, "ids") {
		t.Errorf("a class folder too small to keep added: %q", got)
	}
	mustRun(t, w)
	// Class b removed: c's id goes from 2 to 1, as the dropped folder has none.
	if err := os.RemoveAll(filepath.Join(w.dir, "raw/b")); err != nil {
		t.Fatal(err)
	}
	if got := w.planReasons(t); !strings.Contains(got, `the classes change: drops "b"; the ids of 1 class move ("c" 2 → 1)`) {
		t.Errorf("a class removed beside a class folder too small to keep: %q", got)
	}
	// Without drop_small_classes the folder is a class (the split fails on it, as validate
	// and plan warn), and holds id 0.
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "  drop_small_classes = true\n", "", 1)))
	if got := w.planReasons(t); !strings.Contains(got, `the ids of 1 class move ("c" 3 → 2)`) {
		t.Errorf("a class folder too small, not dropped: %q", got)
	}
}

// A split with a seed of its own was keyed by the pipeline's seed before it was keyed by its
// own: the plan says that, not that the sets are drawn afresh.
func TestPlanSaysASplitIsKeyedByItsOwnSeed(t *testing.T) {
	w := newWS(t, "pipeline {\n  seed = 42\n}\n"+strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  seed       = 7", 1))
	writeTwoClasses(w, "raw", 10)
	mustRun(t, w)
	state := filepath.Join(w.dir, pipeline.StoreDir, "state", "split.main.json")
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"seed 7"`) {
		t.Fatalf("%s: %v\n%s", state, err, b)
	}
	// As keys had it: the lines recorded, and no output under the key of the lines now.
	var st pipeline.State
	json.Unmarshal(b, &st)
	old := strings.Replace(strings.Replace(string(b), `"seed 7"`, `"seed 42"`, 1), st.Key, strings.Repeat("0", 64), 1)
	os.WriteFile(state, []byte(old), 0o644)
	entries, _ := filepath.Glob(filepath.Join(w.dir, pipeline.StoreDir, "keys", "*", st.Key+"*"))
	for _, e := range entries {
		os.Remove(e)
	}
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(ds) != 1 || strings.Join(ds[0].Reasons, "; ") != "now keyed by its own seed (7) instead of the pipeline's" {
		t.Fatalf("plan: %v %q", err, ds[0].Reasons)
	}
}

// With a test_source, a new val draws train and val afresh; the test set stays test_source's.
func TestPlanSaysOnlyTrainAndValAreDrawnAfreshWithATestSource(t *testing.T) {
	hcl := strings.Replace(splitHCL, "  test       = 0.2\n", "  test_source = \"heldout\"\n", 1)
	w := newWS(t, hcl)
	writeTwoClasses(w, "raw", 10)
	for i := 0; i < 3; i++ {
		w.write(fmt.Sprintf("heldout/a/%d.png", i), randomPNG(9, uint64(i), 6, 6))
		w.write(fmt.Sprintf("heldout/b/%d.png", i), randomPNG(10, uint64(i), 6, 6))
	}
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "val        = 0.2", "val        = 0.3", 1)))
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(ds) != 1 || !slices.Contains(ds[0].Reasons, "the sets will be drawn afresh: images move between train and val (the test set is test_source's)") {
		t.Fatalf("plan: %v %q", err, ds[0].Reasons)
	}
}

// writeTwoClasses writes n small distinct PNG photos into each of the class folders a and b
// of folder dir in w.
func writeTwoClasses(w *ws, dir string, n int) {
	for i := 0; i < n; i++ {
		w.write(fmt.Sprintf("%s/a/%d.png", dir, i), randomPNG(7, uint64(i), 6, 6))
		w.write(fmt.Sprintf("%s/b/%d.png", dir, i), randomPNG(8, uint64(i), 6, 6))
	}
}

// Entries without content (broken symbolic links, links that loop, files or folders that
// cannot be read) are no photo: two of them in two classes are not one photo in both, so
// one removed, fixed or made readable does not read as a photo changing class.
func TestPlanDoesNotTakeEntriesWithoutContentForOnePhoto(t *testing.T) {
	m := func(entries ...string) map[string]string {
		out := map[string]string{"a/": "folder", "a/1.png": "d1", "b/": "folder", "b/2.png": "d2"}
		for _, e := range entries {
			name, digest, _ := strings.Cut(e, "=")
			out[name] = digest
		}
		return out
	}
	for _, c := range []struct {
		name     string
		was, now map[string]string
	}{
		{"a broken link removed beside another in another class",
			m("a/x.png=broken-symlink", "b/y.png=broken-symlink"), m("b/y.png=broken-symlink")},
		{"a broken link added beside another in another class",
			m("a/x.png=broken-symlink"), m("a/x.png=broken-symlink", "b/y.png=broken-symlink")},
		{"a link loop removed beside another in another class",
			m("a/l=symlink-loop", "b/l=symlink-loop"), m("b/l=symlink-loop")},
		{"an unreadable file readable again beside an unreadable folder in another class",
			m("a/u.png=unreadable", "b/sub=unreadable"), m("a/u.png=d3", "b/sub=unreadable")},
	} {
		if got := strings.Join(Split{}.SourceNotes(&pipeline.Values{}, "source", c.was, c.now), "; "); strings.Contains(got, "photo") {
			t.Errorf("%s: notes %q, want none about photos changing class", c.name, got)
		}
	}
}
