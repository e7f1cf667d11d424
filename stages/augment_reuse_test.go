package stages

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// A setting of an operation not in ops keeps augment cached, and the next real rerun (new
// photos) still reuses the copies made before it: copies.json records the settings as the
// key has them, the unused one as its default.
func TestUnusedOperationSettingKeepsCopiesReused(t *testing.T) {
	hcl := strings.Replace(augmentHCL, `ops         = ["flip_rotate_crop", "color_jitter", "affine", "blur", "noise", "flip"]`, `ops         = ["flip_rotate_crop", "color_jitter"]`, 1)
	w := newWS(t, hcl)
	for i := 0; i < 10; i++ {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(1, uint64(i), 12, 12))
	}
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("raw/small/%d.png", i), randomPNG(2, uint64(i), 12, 12))
	}
	rec := mustRun(t, w)
	var first copiesRecord
	readJSONFile(t, w.output(rec, "augment.balanced", "report/"+copiesFile), &first)
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "max_augment = 3", "max_augment = 3\n  blur = 2", 1)))
	if st := mustRun(t, w).Result("augment.balanced"); st.Status != pipeline.StatusCached {
		t.Fatalf("augment after a setting of blur, not in ops, changed: %s", st.Status)
	}
	for i := 4; i < 8; i++ {
		w.write(fmt.Sprintf("raw/small/%d.png", i), randomPNG(2, uint64(i), 12, 12))
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
