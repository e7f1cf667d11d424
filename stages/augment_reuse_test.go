package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// A setting of an operation not in ops keeps augment cached, and the next real rerun (new
// photos) still reuses the copies made before it: copies.json records the settings as the
// key has them, the unused one as its default.
func TestUnusedOperationSettingKeepsCopiesReused(t *testing.T) {
	hcl, w := twoOpsWorkspace(t)
	rec := mustRun(t, w)
	var first copiesRecord
	readJSONFile(t, w.output(rec, "augment.balanced", "report/"+copiesFile), &first)
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "max_augment = 3", "max_augment = 3\n  blur = 2", 1)))
	if st := mustRun(t, w).Result("augment.balanced"); st.Status != pipeline.StatusCached {
		t.Fatalf("augment after a setting of blur, not in ops, changed: %s", st.Status)
	}
	for i := 10; i < 14; i++ { // big's training set grows (8 of 14), small's copies stay
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(1, uint64(i), 12, 12))
	}
	rec = mustRun(t, w)
	if st := rec.Result("augment.balanced"); st.Status != pipeline.StatusRan {
		t.Fatalf("augment after photos were added: %s", st.Status)
	}
	if log := runLog(t, rec); !strings.Contains(log, "augment.balanced: reused ") {
		t.Errorf("augment reused no copies after an unused setting changed:\n%s", log)
	}
	var second copiesRecord
	readJSONFile(t, w.output(rec, "augment.balanced", "report/"+copiesFile), &second)
	if second.MadeWith != first.MadeWith {
		t.Errorf("made_with %q after blur, not in ops, changed; was %q", second.MadeWith, first.MadeWith)
	}
}

// Every parameter an operation reads is a field of OpParams, so that usedParams can set it.
func TestEveryOperationParameterIsAField(t *testing.T) {
	p := usedParams(nil, OpParams{})
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if v.Field(i).Float() == 0 {
			t.Errorf("%s is not set to its default with no operations: opParams lacks %q", v.Type().Field(i).Name, v.Type().Field(i).Tag.Get("cty"))
		}
	}
	if n := len(unusedParams(nil)); n != v.NumField() {
		t.Errorf("opParams names %d parameters, OpParams has %d", n, v.NumField())
	}
}

// A forced augment makes every copy again, linking none from its previous output, and the
// next plain rerun reuses them again.
func TestAForcedAugmentMakesEveryCopyAgain(t *testing.T) {
	_, w := twoOpsWorkspace(t)
	first := mustRun(t, w)
	copies := func(rec *pipeline.RunRecord) map[string]string {
		dir := w.output(rec, "augment.balanced", "output")
		m, err := ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range m.Images {
			if e.Copy != nil {
				out[e.Path] = filepath.Join(dir, filepath.FromSlash(e.Path))
			}
		}
		return out
	}
	before := copies(first)
	if len(before) == 0 {
		t.Fatal("augment made no copies")
	}
	forced := w.runForced("augment.balanced")
	log := runLog(t, forced)
	if strings.Contains(log, "augment.balanced: reused ") || !strings.Contains(log, "augment.balanced: forced: making every copy again") {
		t.Fatalf("the forced augment reused copies, or did not say it made them again:\n%s", log)
	}
	if r := forced.Result("augment.balanced"); r.Output != first.Result("augment.balanced").Output {
		t.Errorf("forced augment output %s, want the same as before, %s", r.Output, first.Result("augment.balanced").Output)
	}
	// Its output is the same as before, which the store keeps; the copies it made were its
	// own files until then, which the unchanged output's record cannot show: add a photo so
	// that the split reruns and a forced augment publishes a new output.
	w.write("raw/big/10.png", randomPNG(1, 10, 12, 12))
	forced = w.runForced("augment.balanced")
	if log := runLog(t, forced); strings.Contains(log, "augment.balanced: reused ") {
		t.Fatalf("the forced augment reused copies:\n%s", log)
	}
	after := copies(forced)
	shared := 0
	for p, a := range before {
		b, ok := after[p]
		if !ok {
			continue
		}
		shared++
		fa, err1 := os.Stat(a)
		fb, err2 := os.Stat(b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if os.SameFile(fa, fb) {
			t.Errorf("%s: the forced augment linked the previous output's copy", p)
		}
	}
	if shared == 0 {
		t.Fatal("no copy of the first run is in the forced run's output: nothing to compare")
	}
	w.write("raw/big/11.png", randomPNG(1, 11, 12, 12)) // and one to train (8 of 13)
	w.write("raw/big/12.png", randomPNG(1, 12, 12, 12))
	if log := runLog(t, mustRun(t, w)); !strings.Contains(log, "augment.balanced: reused ") {
		t.Errorf("the plain rerun after a forced one reused no copies:\n%s", log)
	}
}

// A rerun links the copies its previous output made from the same images where their class
// now has another label (a class added before it by name): a copy's path there follows from
// its class's label there.
func TestAugmentReusesCopiesOfAClassWhoseLabelMoved(t *testing.T) {
	_, w := twoOpsWorkspace(t)
	first := mustRun(t, w)
	for i := range 3 {
		w.write(fmt.Sprintf("raw/aardvark/%d.png", i), randomPNG(3, uint64(i), 12, 12))
	}
	rec := mustRun(t, w)
	if st := rec.Result("augment.balanced"); st.Status != pipeline.StatusRan {
		t.Fatalf("augment after a class was added: %s", st.Status)
	}
	checkCopiesLinked(t, w, first, 1, rec, 2) // small, then after aardvark and big
}

// checkCopiesLinked checks that the copies of the class of label in augment.balanced's output
// of rec are those of the class of was in that of first, each linked from there, none made
// again.
func checkCopiesLinked(t *testing.T, w *ws, first *pipeline.RunRecord, was int, rec *pipeline.RunRecord, label int) {
	t.Helper()
	before, after := copiesOfLabel(t, w, first, was), copiesOfLabel(t, w, rec, label)
	if len(before) == 0 {
		t.Fatal("no copies of the class in the first run")
	}
	linked := 0
	for name, a := range before {
		if b, ok := after[name]; ok && os.SameFile(a, b) {
			linked++
		}
	}
	if linked != len(before) || len(after) != len(before) {
		t.Errorf("%d of the class's %d copies linked from the previous output (%d now):\n%s", linked, len(before), len(after), runLog(t, rec))
	}
}

// copiesOfLabel returns the copies of the class of label in augment.balanced's output of rec,
// by file name.
func copiesOfLabel(t *testing.T, w *ws, rec *pipeline.RunRecord, label int) map[string]os.FileInfo {
	t.Helper()
	dir := w.output(rec, "augment.balanced", "output")
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]os.FileInfo{}
	for _, e := range m.Images {
		if e.Copy != nil && e.Label == label {
			fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(e.Path)))
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(e.Path)] = fi
		}
	}
	return out
}

// A stem is 16 hex digits and an occurrence, nothing else.
func TestParseStem(t *testing.T) {
	if k, ok := parseStem("0123456789abcdef_12"); !ok || k.occ != 12 || k.prefix != [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef} {
		t.Errorf("parsed %v %v", k, ok)
	}
	for _, s := range []string{"", "0123456789abcdef", "0123456789abcdef_", "0123456789abcdef_-1", "0123456789abcdef_01", "0123456789abcde_1", "0123456789abcdeg_1", "0123456789abcdef_1_aug2"} {
		if _, ok := parseStem(s); ok {
			t.Errorf("%q parsed as a stem", s)
		}
	}
}

// A rerun after a class folder was renamed links the copies its previous output made of the
// class's images, where they are under the label of the class's old name: a copy depends on
// its original, not on its class. Renamed to sort first, the class moves its label, and the
// other class's too.
func TestAugmentReusesCopiesOfARenamedClass(t *testing.T) {
	_, w := twoOpsWorkspace(t)
	first := mustRun(t, w)
	if err := os.Rename(filepath.Join(w.dir, "raw", "small"), filepath.Join(w.dir, "raw", "a few")); err != nil {
		t.Fatal(err)
	}
	rec := mustRun(t, w)
	if st := rec.Result("augment.balanced"); st.Status != pipeline.StatusRan {
		t.Fatalf("augment after a class was renamed: %s", st.Status)
	}
	checkCopiesLinked(t, w, first, 1, rec, 0) // small, then "a few" before big
	forced := w.runForced("augment.balanced")
	if a, b := rec.Result("augment.balanced").Output, forced.Result("augment.balanced").Output; a != b {
		t.Errorf("the output with linked copies %s, made afresh %s", a, b)
	}
}
