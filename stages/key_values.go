package stages

import (
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
)

// Values that cannot change a stage's output are keyed as if they were left out
// (pipeline.KeyNormalizer), so that writing a default out, or tuning a setting the stage
// ignores, does not retrain a model or remake the augmented copies.

// KeyValues implements pipeline.KeyNormalizer: epochs, batch_size and learning_rate equal
// to the architecture's defaults, options entries equal to its defaults, the plateau
// settings under another schedule, and weight_decay with adam are keyed as left out.
func (t Train) KeyValues(v *pipeline.Values) map[string]cty.Value {
	out := map[string]cty.Value{}
	archVal := v.Get("architecture")
	if !archVal.IsWhollyKnown() || archVal.IsNull() {
		return out
	}
	arch := archVal.AsString()
	def, ok := archDefaults[arch]
	if !ok {
		return out
	}
	for name, d := range map[string]float64{"epochs": float64(def.epochs), "batch_size": float64(def.batch), "learning_rate": def.lr} {
		if numberIs(v.Get(name), d) {
			out[name] = cty.NullVal(cty.Number)
		}
	}
	if o, ok := defaultOptionsLeftOut(arch, v.Get("options")); ok {
		out["options"] = o
	}
	defaults := attributeDefaults(t.Attributes())
	if s := v.Get("schedule"); s.IsWhollyKnown() && !s.IsNull() && s.AsString() != SchedulePlateau {
		out["plateau_factor"], out["plateau_patience"] = defaults["plateau_factor"], defaults["plateau_patience"]
	}
	if o := v.Get("optimizer"); o.IsWhollyKnown() && !o.IsNull() && o.AsString() == "adam" {
		out["weight_decay"] = defaults["weight_decay"] // adam has no weight decay
	}
	return out
}

// defaultOptionsLeftOut returns options without the entries that leave arch's network as
// its defaults have it (null when none is left), and whether that differs from options.
// Options that cannot be read entry by entry (unknown, invalid, or valid only together)
// are keyed as given.
func defaultOptionsLeftOut(arch string, options cty.Value) (cty.Value, bool) {
	if !options.IsWhollyKnown() || options.IsNull() || !(options.Type().IsObjectType() || options.Type().IsMapType()) {
		return cty.NilVal, false
	}
	base, err := archSpec(arch, cty.NullVal(cty.DynamicPseudoType))
	if err != nil {
		return cty.NilVal, false
	}
	kept := map[string]cty.Value{}
	for it := options.ElementIterator(); it.Next(); {
		k, val := it.Element()
		one, err := archSpec(arch, cty.ObjectVal(map[string]cty.Value{k.AsString(): val}))
		if err != nil {
			return cty.NilVal, false
		}
		if !reflect.DeepEqual(one, base) {
			kept[k.AsString()] = val
		}
	}
	switch {
	case len(kept) == 0:
		return cty.NullVal(cty.DynamicPseudoType), true
	case len(kept) == options.LengthInt():
		return cty.NilVal, false
	case options.Type().IsMapType():
		return cty.MapVal(kept), true
	default:
		return cty.ObjectVal(kept), true
	}
}

// opParams lists the attributes each augmentation operation reads.
var opParams = map[string][]string{
	OpFlipRotateCrop: {"flip", "rotation", "crop"},
	OpColorJitter:    {"brightness", "contrast", "saturation"},
	OpAffine:         {"translate", "scale_min", "scale_max"},
	OpBlur:           {"blur"},
	OpNoise:          {"noise"},
	OpFlip:           nil,
}

// KeyValues implements pipeline.KeyNormalizer: the parameters of operations that are not
// in ops are keyed as left out.
func (a Augment) KeyValues(v *pipeline.Values) map[string]cty.Value {
	out := map[string]cty.Value{}
	ops := v.Get("ops")
	if !ops.IsWhollyKnown() || ops.IsNull() || !(ops.Type().IsListType() || ops.Type().IsSetType() || ops.Type().IsTupleType()) {
		return out
	}
	var names []string
	for it := ops.ElementIterator(); it.Next(); {
		_, op := it.Element()
		if op.IsNull() || op.Type() != cty.String {
			return out
		}
		names = append(names, op.AsString())
	}
	defaults := attributeDefaults(a.Attributes())
	for _, p := range unusedParams(names) {
		out[p] = defaults[p]
	}
	return out
}

// unusedParams returns the parameters of opParams that no operation of ops reads.
func unusedParams(ops []string) []string {
	var used, unused []string
	for _, op := range ops {
		used = append(used, opParams[op]...)
	}
	for _, params := range opParams {
		for _, p := range params {
			if !slices.Contains(used, p) {
				unused = append(unused, p)
			}
		}
	}
	return unused
}

// numberIs reports whether val is a known number that the stage reads as f (a float64, as
// its configuration decodes it: 1e-3 as written is not exactly the float64 1e-3).
func numberIs(val cty.Value, f float64) bool {
	if !val.IsWhollyKnown() || val.IsNull() || val.Type() != cty.Number {
		return false
	}
	g, _ := val.AsBigFloat().Float64()
	return g == f
}

// attributeDefaults maps each attribute with a default to it.
func attributeDefaults(attrs []pipeline.Attribute) map[string]cty.Value {
	out := map[string]cty.Value{}
	for _, a := range attrs {
		if a.Default != cty.NilVal {
			out[a.Name] = a.Default
		}
	}
	return out
}

// KeyValues implements pipeline.KeyNormalizer: a test fraction equal to its default is keyed
// as left out, and so are format, quality and compression when the split stores no images,
// which they then do nothing for (changing them reruns nothing).
func (Split) KeyValues(v *pipeline.Values) map[string]cty.Value {
	out := map[string]cty.Value{}
	if numberIs(v.Get("test"), defaultTest) {
		out["test"] = cty.NullVal(cty.Number)
	}
	if s := v.Get("store_images"); s.IsKnown() && !s.IsNull() && s.False() {
		out["format"], out["quality"], out["compression"] = cty.NullVal(cty.String), cty.NullVal(cty.Number), cty.NullVal(cty.String)
	}
	return out
}

// KeySeed implements pipeline.SeedOwner: the split's own seed when set (the pipeline block's
// seed also sets it), which it uses for everything; a new pipeline seed then leaves it cached.
func (Split) KeySeed(v *pipeline.Values, seed int64) int64 {
	if s := v.Get("seed"); s.IsWhollyKnown() && !s.IsNull() && s.Type() == cty.Number {
		if n, acc := s.AsBigFloat().Int64(); acc == big.Exact {
			return n
		}
	}
	return seed
}

// SourceNotes implements pipeline.SourceNoter: what a change to the files of source or
// test_source does to the classes (class folders added, removed or renamed) and to the
// photos' labels (a photo moved into another class folder), which the files' changes alone
// do not say: a training on the split runs again, and a model with other classes is not
// promoted over the champion without a person. With drop_small_classes, a source class
// folder with fewer files than the split needs is no class: the split drops it.
func (Split) SourceNotes(v *pipeline.Values, attr string, was, now map[string]string) []string {
	if attr != "source" && attr != "test_source" {
		return nil
	}
	need := 0 // the fewest files of a class the split keeps
	if attr == "source" {
		need = droppedBelow(v)
	}
	classesOf := func(files map[string]string) ([]string, map[string][]string) {
		count := map[string]int{}
		byDigest := map[string][]string{} // a photo's paths, by its digest
		for rel, d := range files {
			top, _, nested := strings.Cut(rel, "/")
			if !nested || strings.HasPrefix(top, ".") || strings.HasSuffix(rel, "/") {
				continue // a class is a folder with files in it (an empty one is none)
			}
			count[className(top)]++
			if pipeline.HasContent(d) { // a broken link, say, is no photo
				byDigest[d] = append(byDigest[d], rel)
			}
		}
		var classes []string
		for c, n := range count {
			if n >= need {
				classes = append(classes, c)
			}
		}
		slices.Sort(classes)
		return classes, byDigest
	}
	wasClasses, wasPaths := classesOf(was)
	nowClasses, nowPaths := classesOf(now)
	var notes []string
	if change := ClassChange(wasClasses, nowClasses); change != "" && attr == "source" { // test_source's must be among source's
		notes = append(notes, "the classes change: "+change)
	}
	// Photos (by content) in classes both sides have, whose classes differ.
	classOf := func(rel string) string { top, _, _ := strings.Cut(rel, "/"); return className(top) }
	var moved, copied []string
	for d, before := range wasPaths {
		after := nowPaths[d]
		if len(after) == 0 {
			continue
		}
		from, to := slices.Sorted(maps.Keys(photosByClass(before, classOf))), slices.Sorted(maps.Keys(photosByClass(after, classOf)))
		if slices.Equal(from, to) || !allIn(from, nowClasses) || !allIn(to, wasClasses) {
			continue
		}
		if allIn(from, to) { // still where it was, and in another class too: a copy
			copied = append(copied, d)
		} else {
			moved = append(moved, d)
		}
	}
	if len(moved) > 0 {
		notes = append(notes, pipeline.Agree(len(moved), "1 photo is now in another class (its label changes)", fmt.Sprintf("%d photos are now in another class (their labels change)", len(moved))))
	}
	if len(copied) > 0 {
		notes = append(notes, pipeline.Agree(len(copied), "1 photo is now in another class as well (two labels for one photo, which the run warns of)",
			fmt.Sprintf("%d photos are now in another class as well (two labels for one photo, which the run warns of)", len(copied))))
	}
	renamed := false // some photo is under another name now (not merely a folder added or gone)
	for rel, d := range was {
		if _, ok := now[rel]; !ok && pipeline.HasContent(d) {
			renamed = true
			break
		}
	}
	switch {
	case len(notes) > 0 || attr != "source":
	case maps.Equal(was, now): // the folder under another path
		notes = append(notes, "the same photos: the trainings on them are not expected to run again")
	case renamed && sameByClass(wasPaths, nowPaths, classOf):
		notes = append(notes, "only names change: the sets keep the same photos, so the trainings on them are not expected to run again")
	}
	return notes
}

// droppedBelow returns the fewest files a class folder of the split's source needs to be a
// class, when drop_small_classes leaves smaller ones out (counted from the listing, as
// validate counts them: a folder with that many files can still have fewer usable images),
// else 0.
func droppedBelow(v *pipeline.Values) int {
	if v == nil {
		return 0
	}
	if need, drop, ok := sourceNeed(v); ok && drop {
		return need
	}
	return 0
}

// sameByClass reports whether two listings of photos (paths by digest) hold the same photos
// the same number of times in each class.
func sameByClass(was, now map[string][]string, classOf func(string) string) bool {
	if len(was) != len(now) {
		return false
	}
	for d, before := range was {
		if !maps.Equal(photosByClass(before, classOf), photosByClass(now[d], classOf)) {
			return false
		}
	}
	return true
}

// photosByClass counts paths by class, each the class of its path.
func photosByClass(paths []string, classOf func(string) string) map[string]int {
	m := map[string]int{}
	for _, p := range paths {
		m[classOf(p)]++
	}
	return m
}

// allIn reports whether every one of items is in the sorted list.
func allIn(items, sorted []string) bool {
	for _, it := range items {
		if _, ok := slices.BinarySearch(sorted, it); !ok {
			return false
		}
	}
	return true
}

// ChangeNotes implements pipeline.ChangeNoter: a new seed, val, test or test_source draws
// the sets afresh, which a plan should say before it happens (the run warns again); with a
// test_source, only train and val; back to the settings of an earlier split (again), that
// split's sets are kept (Job.Earlier), unless its records changed since they were written
// (recordsChanged), which the run checks too. A test fraction that goes from its default, written
// out, to left out (as keys have had it since they leave defaults out) or back is no change. Otherwise images keep their sets, which
// turning near_duplicates on or off bears on: on, near-duplicates found in different sets
// join their group's held-out set; off, those placed together stay together.
func (Split) ChangeNotes(v *pipeline.Values, changed map[string][2]string, again func(labels ...string) []*pipeline.Job) []string {
	for name, c := range changed {
		if name == "test" && testFraction(c[0]) == testFraction(c[1]) {
			continue
		}
		switch name {
		case "seed", "val", "test", "test_source":
			// The settings the split compares with an earlier one's (previousSplit.sets): the
			// seed it is keyed by (its own or the pipeline's), val, test and test_source. The
			// split passes over an earlier one whose records changed since they were written
			// (recordsChanged), and so does the note.
			var damaged string
			if again != nil {
				for _, ej := range again("seed", "attr val", "attr test", "attr test_source") {
					rel := recordsChanged(ej, ej.Previous)
					if rel == "" {
						return []string{"the sets of the earlier split made with these settings are kept: images go back to the sets they had then"}
					}
					if damaged == "" {
						damaged = fmt.Sprintf(" (the earlier split made with these settings cannot be gone back to: its %s is gone or changed since it was written)", rel)
					}
				}
			}
			if ts := v.Get("test_source"); ts.IsKnown() && !ts.IsNull() {
				return []string{"the sets will be drawn afresh: images move between train and val (the test set is test_source's)" + damaged}
			}
			return []string{"the sets will be drawn afresh: images move between train, val and test" + damaged}
		}
	}
	if v, ok := changed["near_duplicates"]; ok {
		switch was, now := !strings.HasSuffix(v[0], " false"), !strings.HasSuffix(v[1], " false"); {
		case now && !was:
			return []string{"near-duplicates now in different sets will move to their group's held-out set (listed in split.json)"}
		case was && !now:
			return []string{"images keep their sets (near-duplicates placed together stay together); new images are placed without the check"}
		}
	}
	return nil
}

// DefaultShown implements pipeline.DefaultShower: test left unset is 0.1 without test_source
// (with it, that folder is the test set).
func (Split) DefaultShown(name string, keyed func(label string) string) string {
	if ts := keyed("attr test_source"); name != "test" || ts != "" && !strings.HasSuffix(ts, " null") {
		return ""
	}
	return testFraction("")
}

// testFraction is the test fraction a key's value of test stands for ("number" 0.2, or
// "number" null for the default).
func testFraction(keyed string) string {
	if strings.HasSuffix(keyed, " null") || keyed == "" {
		return strconv.FormatFloat(defaultTest, 'g', -1, 64)
	}
	_, num, _ := strings.Cut(keyed, " ")
	return num
}
