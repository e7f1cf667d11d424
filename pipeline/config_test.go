package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

var (
	errorComment = regexp.MustCompile(`# ERROR: (.+)$`)
	varComment   = regexp.MustCompile(`^# -var (\w+)=(.*)$`)
)

// TestInvalidConfigs loads every file in testdata/config/invalid. Each `# ERROR: summary`
// comment marks a line where exactly one diagnostic with that summary must point, and no
// other diagnostics may appear. A line `# -var NAME=VALUE` sets a variable as -var does.
func TestInvalidConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/invalid/*.hcl")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			vars := map[string]string{}
			for i, line := range strings.Split(string(src), "\n") {
				if m := errorComment.FindStringSubmatch(line); m != nil {
					want = append(want, lineSummary(i+1, m[1]))
				}
				if m := varComment.FindStringSubmatch(line); m != nil {
					vars[m[1]] = m[2]
				}
			}
			diags := loadAndBuild(path, src, vars)
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				line := 0
				if d.Subject != nil {
					line = d.Subject.Start.Line
				}
				got = append(got, lineSummary(line, d.Summary))
				if d.Detail == "" {
					t.Errorf("diagnostic %q has no detail saying how to fix it", d.Summary)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("diagnostics:\n  %s\nwant:\n  %s\nfull:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), diags.Error())
			}
		})
	}
}

func lineSummary(line int, summary string) string {
	return fmt.Sprintf("%3d: %s", line, summary)
}

func loadAndBuild(path string, src []byte, vars map[string]string) hcl.Diagnostics {
	f := newFakeKinds()
	cfg, diags := LoadSource(path, src, f.reg)
	if cfg == nil || cfg.Files == nil || len(cfg.Stages) == 0 {
		return diags
	}
	_, d := Build(cfg, f.reg, vars)
	return append(diags, d...)
}

// TestMisspelledArgumentsSuggestTheClosestName checks that a misspelled argument gets a "did
// you mean" in every kind of block, also when the block sets the name it was meant to be.
func TestMisspelledArgumentsSuggestTheClosestName(t *testing.T) {
	src := `
variable "n" {
  default = 1
  defualt = 2
}

stage "gen" "a" {
  source = "data"
  repaet = 2
}

stage "xform" "b" {
  input  = stage.gen.a.out
  epochs = 3
  epoch  = 20
  seed   = 7
}

schedule "nightly" {
  cron    = "@daily"
  targets = [stage.xform.b]
  overlp  = "skip"
}
`
	f := newFakeKinds()
	_, diags := LoadSource("misspelled.hcl", []byte(src), f.reg)
	want := map[int]string{
		4:  `An argument named "defualt" is not expected here. Did you mean "default"? The block sets "default" too, on line 3: keep one of the two.`,
		9:  `An argument named "repaet" is not expected here. Did you mean "repeat"?`,
		15: `An argument named "epoch" is not expected here. Did you mean "epochs"? The block sets "epochs" too, on line 14: keep one of the two.`,
		16: `An argument named "seed" is not expected here. The seed is the whole pipeline's, set in its pipeline block (pipeline { seed = 42 }): it seeds the split, augmentation and training alike (a split stage also takes a seed of its own, for its sets only).`,
		22: `An argument named "overlp" is not expected here. Did you mean "overlap"?`,
	}
	if len(diags) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(diags), len(want), diags.Error())
	}
	for _, d := range diags {
		if w := want[d.Subject.Start.Line]; d.Summary != "Unsupported argument" || d.Detail != w {
			t.Errorf("line %d: %s: %s\nwant: %s", d.Subject.Start.Line, d.Summary, d.Detail, w)
		}
	}
}

// A misspelled overlap policy gets a "did you mean", as every other value outside a fixed set.
func TestMisspelledOverlapSuggestsThePolicy(t *testing.T) {
	for given, want := range map[string]string{
		"queu":   `overlap is "queu"; use "skip" (drop a trigger while a run is going) or "queue" (run it afterwards). Did you mean "queue"?`,
		"skp":    `overlap is "skp"; use "skip" (drop a trigger while a run is going) or "queue" (run it afterwards). Did you mean "skip"?`,
		"always": `overlap is "always"; use "skip" (drop a trigger while a run is going) or "queue" (run it afterwards).`,
	} {
		src := fmt.Sprintf("stage \"gen\" \"a\" {\n  source = \"data\"\n}\nschedule \"nightly\" {\n  cron    = \"@daily\"\n  targets = [stage.gen.a]\n  overlap = %q\n}\n", given)
		_, diags := LoadSource("overlap.hcl", []byte(src), newFakeKinds().reg)
		if len(diags) != 1 || diags[0].Summary != "Invalid overlap policy" || diags[0].Detail != want {
			t.Errorf("overlap = %q: %s\nwant: %s", given, diags.Error(), want)
		}
	}
}

// TestUnknownPipelineSettingIsAnError checks that a pipeline block setting no stage kind has
// and nothing refers to is an error with the closest name (the stages would silently keep
// their defaults), that one only kinds absent from the file have is a warning, as is one every
// stage that has it sets itself, and that a used one is neither.
func TestUnknownPipelineSettingIsAnError(t *testing.T) {
	src := `
pipeline {
  seed    = 7
  repeet  = 2
  suffix  = "!"
  label   = "x"
  unused  = 1
  files   = 3
  sed     = 1
}

stage "gen" "a" {
  source = "data"
}

stage "xform" "b" {
  input  = stage.gen.a.out
  suffix = pipeline.label
}
`
	diags := loadAndBuild("settings.hcl", []byte(src), nil)
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d %v %s: %s", d.Subject.Start.Line, d.Severity == hcl.DiagWarning, d.Summary, d.Detail))
	}
	want := []string{
		`4 false Unknown pipeline setting: No stage kind has an attribute "repeet" and nothing refers to pipeline.repeet: the pipeline block takes seed and defaults for the stages' attributes. Did you mean "repeat"?`,
		`5 true Unused pipeline setting: Every stage that has an attribute "suffix" sets its own, and nothing refers to pipeline.suffix, so the setting has no effect: remove it, or leave suffix unset where the pipeline's should apply.`,
		`7 false Unknown pipeline setting: No stage kind has an attribute "unused" and nothing refers to pipeline.unused: the pipeline block takes seed and defaults for the stages' attributes. Remove it, or use it somewhere as pipeline.unused.`,
		`8 true Unused pipeline setting: No stage in this file has an attribute "files" (only bulk stages do) and nothing refers to pipeline.files, so the setting has no effect.`,
		`9 false Unknown pipeline setting: No stage kind has an attribute "sed" and nothing refers to pipeline.sed: the pipeline block takes seed and defaults for the stages' attributes. Did you mean "seed"?`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestInstanceProblemsAreReportedOnceOrNamed checks that a problem every instance of a
// for_each stage has alike is reported once, and one only some instances have names them.
func TestInstanceProblemsAreReportedOnceOrNamed(t *testing.T) {
	src := `
stage "gen" "same" {
  for_each = toset(["x", "y", "z"])
  source   = "data"
  repeat   = 0
}

stage "gen" "some" {
  for_each = toset(["x", "y", "z"])
  source   = "data"
  repeat   = { x = 0, y = -1, z = 1 }[each.key]
}

stage "xform" "one" {
  for_each = toset(["x", "y", "z"])
  input    = stage.gen.same[each.key].out
  epochs   = { x = "many", y = 1, z = 2 }[each.key]
}
`
	diags := loadAndBuild("instances.hcl", []byte(src), nil)
	want := []string{
		"  5: Invalid repeat: repeat must be at least 1.",
		" 11: Invalid repeat: In gen.some[x], gen.some[y]: repeat must be at least 1.",
		` 17: Incorrect attribute value type: In xform.one[x]: attribute "epochs" of a xform stage must be a number: got the string "many".`,
	}
	var got []string
	for _, d := range diags {
		got = append(got, lineSummary(d.Subject.Start.Line, d.Summary+": "+d.Detail))
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWholeStageForAStringSuggestsItsOutputs checks that a string attribute given a whole
// stage is told which of its outputs to give.
func TestWholeStageForAStringSuggestsItsOutputs(t *testing.T) {
	src := `
stage "gen" "src" {
  source = "raw"
}

stage "xform" "up" {
  input = stage.gen.src
}
`
	diags := loadAndBuild("whole.hcl", []byte(src), nil)
	want := "stage.gen.src is the whole stage, an object of its outputs; did you mean stage.gen.src.out or stage.gen.src.count?"
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, want) {
		t.Fatalf("want one diagnostic with %q, got:\n%s", want, diags.Error())
	}
	// A for_each stage: an object of instances, each with the outputs.
	src = strings.Replace(src, `source = "raw"`, `for_each = toset(["a", "b"])
  source   = "raw"`, 1)
	diags = loadAndBuild("whole.hcl", []byte(src), nil)
	want = "stage.gen.src is the whole stage, an object of its instances; did you mean stage.gen.src[KEY].out or stage.gen.src[KEY].count?"
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, want) {
		t.Fatalf("for_each: want one diagnostic with %q, got:\n%s", want, diags.Error())
	}
}

// TestTypeErrorDoesNotHideTheStagesOtherProblems checks that a stage with an attribute of the
// wrong type still has its other attributes checked, so the file's problems show at once.
func TestTypeErrorDoesNotHideTheStagesOtherProblems(t *testing.T) {
	src := `
stage "gen" "one" {
  source = ["not", "a", "string"]
  repeat = 0
}
`
	diags := loadAndBuild("types.hcl", []byte(src), nil)
	var got []string
	for _, d := range diags {
		got = append(got, lineSummary(d.Subject.Start.Line, d.Summary))
	}
	sort.Strings(got)
	want := []string{"  3: Incorrect attribute value type", "  4: Invalid repeat"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCycleMessagesSayHowTheStagesReferToEachOther checks that a stage naming itself is said
// to, and that a cycle says which references make it: an attribute's (a stage's own output) or
// a depends_on entry (no output involved).
func TestCycleMessagesSayHowTheStagesReferToEachOther(t *testing.T) {
	path := "testdata/config/invalid/cycles.hcl"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	detail := map[string]string{}
	for _, d := range loadAndBuild(path, src, nil) {
		detail[d.Summary] = d.Detail
	}
	for summary, want := range map[string][]string{
		"Stage refers to itself":                        {"xform.c refers to stage.xform.c in input: a stage cannot use its own output;"},
		"Stage depends on itself":                       {"xform.d lists itself in depends_on: a stage cannot wait for itself; remove that entry."},
		"Dependency cycle: xform.a → xform.b → xform.a": {"xform.a refers to stage.xform.b in input (", "A stage cannot depend on its own output; remove one of these references."},
		"Dependency cycle: xform.e → xform.f → xform.e": {"xform.e lists stage.xform.f in depends_on (", "A stage cannot wait for itself through depends_on; remove one"},
	} {
		for _, w := range want {
			if !strings.Contains(detail[summary], w) {
				t.Errorf("%s: detail %q lacks %q", summary, detail[summary], w)
			}
		}
	}
}

// TestInvalidVariableDefaultIsOneError checks that a default of the wrong type is one error,
// at the default, saying what was given, and not also a variable without a default.
func TestInvalidVariableDefaultIsOneError(t *testing.T) {
	src := `
variable "epochs" {
  type    = number
  default = "three"
}

stage "xform" "a" {
  input  = "in.txt"
  epochs = var.epochs
}
`
	diags := loadAndBuild("default.hcl", []byte(src), nil)
	want := `The default of variable "epochs" must be a number, as its type says: got the string "three". Change the default or the type.`
	if len(diags) != 1 || diags[0].Subject.Start.Line != 4 || diags[0].Detail != want {
		t.Fatalf("want one error at line 4 saying %q, got:\n%s", want, diags.Error())
	}
	// A list's or a map's element at fault is named.
	for def, want := range map[string]string{
		`type = list(string)
  default = ["cnn", { a = 1 }]`: `must be a list of string, as its type says: at [1], got an object.`,
		`type = map(number)
  default = { a = 1, b = "x" }`: `must be a map of number, as its type says: at ["b"], got the string "x".`,
	} {
		src := "variable \"v\" {\n  " + def + "\n}\n\nstage \"xform\" \"a\" {\n  input = \"in.txt\"\n}\n"
		diags := loadAndBuild("default.hcl", []byte(src), nil)
		if len(diags) != 1 || !strings.Contains(diags[0].Detail, want) {
			t.Errorf("%s: want one error saying %q, got:\n%s", def, want, diags.Error())
		}
	}
}

// TestReferenceWithoutStagePrefixSuggestsIt checks that a stage reference written without
// "stage." (split.main.train) is told the whole reference with it, wherever it is written,
// once, and that an unknown name that is no stage kind keeps HCL's message.
func TestReferenceWithoutStagePrefixSuggestsIt(t *testing.T) {
	path := "testdata/config/invalid/stage_prefix.hcl"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		7:  `There is no variable named "gen". A reference to a stage starts with stage (gen is a stage kind): did you mean stage.gen.a["x"].out?`,
		11: `There is no variable named "gen". A reference to a stage starts with stage (gen is a stage kind): did you mean stage.gen.a?`,
		16: `There is no variable named "bulk". A reference to a stage starts with stage (bulk is a stage kind): did you mean stage.bulk.e?`,
		21: `Each depends_on entry must be a stage reference such as stage.split.main. Did you mean stage.xform.b?`,
		25: `There is no variable named "nope".`,
		29: `There is no variable named "xform". A reference to a stage starts with stage (xform is a stage kind): did you mean stage.xform.b.out?`,
		39: `Each depends_on entry must be a stage reference such as stage.split.main.`,
		40: `Each depends_on entry must be a stage reference such as stage.split.main. Did you mean stage.xform.b?`,
	}
	diags := loadAndBuild(path, src, nil)
	if len(diags) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(diags), len(want), diags.Error())
	}
	for _, d := range diags {
		if w := want[d.Subject.Start.Line]; d.Detail != w {
			t.Errorf("line %d: %s\nwant: %s", d.Subject.Start.Line, d.Detail, w)
		}
	}
}

// TestMisspelledAttributeOfAnObjectSuggestsTheClosest checks that an attribute an object does
// not have gets the closest name it has, as a stage output named in a reference does: a
// stage's outputs through each.value (for_each over the stage, or over a map of its
// instances), a variable's object, and an object written in place.
func TestMisspelledAttributeOfAnObjectSuggestsTheClosest(t *testing.T) {
	src := `
variable "obj" {
  default = { alpha = "a", beta = "b" }
}

stage "gen" "a" {
  for_each = toset(["x", "y"])
  source   = "data"
}

stage "xform" "b" {
  for_each = stage.gen.a
  input    = each.value.outt
}

stage "use" "c" {
  for_each = { one = stage.make.m, two = stage.make.m }
  input    = each.value.outt
}

stage "make" "m" {
  source = "data"
}

stage "xform" "d" {
  input  = var.obj.alpah
  suffix = { alpha = "a" }.zeta
}

stage "join" "e" {
  inputs = { for k, v in stage.gen.a : k => v.outt }
}
`
	diags := loadAndBuild("attrs.hcl", []byte(src), nil)
	want := []string{
		` 13: Unsupported attribute: This object does not have an attribute named "outt". Did you mean "out"?`,
		` 18: Unsupported attribute: This object does not have an attribute named "outt". Did you mean "out"?`,
		` 26: Unsupported attribute: This object does not have an attribute named "alpah". Did you mean "alpha"?`,
		` 27: Unsupported attribute: This object does not have an attribute named "zeta". Its attributes are "alpha".`,
		` 31: Unsupported attribute: This object does not have an attribute named "outt". Did you mean "out"?`,
	}
	var got []string
	for _, d := range diags {
		got = append(got, lineSummary(d.Subject.Start.Line, d.Summary+": "+d.Detail))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNullLeavesAnAttributeUnset checks that an optional attribute set to null takes the
// kind's default: in a stage (directly, or through a variable whose default is null), which
// opts the stage out of the pipeline block's value, and in the pipeline block.
func TestNullLeavesAnAttributeUnset(t *testing.T) {
	src := `
variable "r" {
  default = null
}

pipeline {
  seed   = null
  suffix = "!"
  epochs = null
}

stage "gen" "a" {
  source = "data"
  repeat = var.r
}

stage "xform" "b" {
  input  = stage.gen.a.out
  suffix = null
}

stage "xform" "c" {
  input = stage.gen.a.out
}
`
	f := newFakeKinds()
	cfg, diags := LoadSource("null.hcl", []byte(src), f.reg)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	wf, d := Build(cfg, f.reg, nil)
	if len(d) > 0 {
		t.Fatalf("diagnostics: %v", d)
	}
	if wf.Seed != DefaultSeed {
		t.Errorf("seed = null gives seed %d, want the default %d", wf.Seed, DefaultSeed)
	}
	want := map[string]map[string]cty.Value{
		"gen.a":   {"repeat": cty.NumberIntVal(1)},
		"xform.b": {"suffix": cty.StringVal(""), "epochs": cty.NumberIntVal(10)},
		"xform.c": {"suffix": cty.StringVal("!"), "epochs": cty.NumberIntVal(10)},
	}
	for _, inst := range wf.Instances {
		v, d := wf.Evaluate(inst, nil)
		if d.HasErrors() {
			t.Fatalf("%s: %v", inst.Addr, d)
		}
		for name, w := range want[inst.Addr] {
			if got := v.Get(name); !got.RawEquals(w) {
				t.Errorf("%s %s = %#v, want %#v", inst.Addr, name, got, w)
			}
		}
	}
}

// TestNullInACollectionIsAnError checks that a null element of a list or map attribute (which
// a kind's checks and keys cannot read) is an error naming the attribute and where the null is.
func TestNullInACollectionIsAnError(t *testing.T) {
	src := `
stage "gen" "a" {
  source = "data"
}

stage "join" "j" {
  inputs = { a = stage.gen.a.out, b = null }
}
`
	diags := loadAndBuild("nulls.hcl", []byte(src), nil)
	if len(diags) != 1 || diags[0].Summary != "Null in a collection" || diags[0].Subject.Start.Line != 7 ||
		diags[0].Detail != `Attribute "inputs" of a join stage holds null at key "b"; remove it or give a value.` {
		t.Fatalf("diagnostics: %v", diags)
	}
}

// TestPipelineBlockProblemsAreAllReported checks that a wrong type in the pipeline block does
// not hide another problem of a value the same stage takes from it.
func TestPipelineBlockProblemsAreAllReported(t *testing.T) {
	src := `
pipeline {
  label  = ["x"]
  repeat = 0
}

stage "gen" "a" {
  source = "data"
}
`
	var got []string
	for _, d := range loadAndBuild("both.hcl", []byte(src), nil) {
		got = append(got, fmt.Sprintf("%d %s", d.Subject.Start.Line, d.Summary))
	}
	if want := []string{"3 Incorrect attribute value type", "4 Invalid repeat"}; !slices.Equal(got, want) {
		t.Fatalf("diagnostics %q, want %q", got, want)
	}
}

// TestAbsoluteSourceInTheWorkspaceIsRelative checks that a source written as an absolute path
// inside the workspace (the pipeline file's folder) is the same value, and so the same key,
// as the relative path, and that one outside it stays as written.
func TestAbsoluteSourceInTheWorkspaceIsRelative(t *testing.T) {
	ws := t.TempDir()
	outside := filepath.Join(filepath.Dir(ws), "elsewhere", "data")
	// The workspace reached through a link: the real path written is inside it too.
	link := filepath.Join(t.TempDir(), "ws")
	os.Symlink(ws, link)
	for _, c := range []struct{ dir, written, want string }{
		{ws, "data", "data"},
		{ws, filepath.Join(ws, "data"), "data"},
		{ws, filepath.Join(ws, "sub", "..", "data"), "data"},
		{ws, outside, outside},
		{link, filepath.Join(ws, "data"), "data"},
		{ws, filepath.Join(link, "data"), "data"},
	} {
		written, want := c.written, c.want
		f := newFakeKinds()
		src := fmt.Sprintf("stage \"gen\" \"a\" {\n  source = %q\n}\n", written)
		cfg, diags := LoadSource(filepath.Join(c.dir, "pipeline.hcl"), []byte(src), f.reg)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		wf, d := Build(cfg, f.reg, nil)
		if d.HasErrors() {
			t.Fatal(d)
		}
		v, d := wf.Evaluate(wf.Instances[0], nil)
		if d.HasErrors() {
			t.Fatal(d)
		}
		if got := v.String("source"); got != want {
			t.Errorf("source %q in %s is %q, want %q", written, c.dir, got, want)
		}
	}
}

// A reference to a stage whose block has its kind misspelled points at that block and its
// kind, not at the misspelling as the stage meant.
func TestAReferenceToAStageWithAMisspelledKindPointsAtTheKind(t *testing.T) {
	path := "testdata/config/invalid/unknown_kind.hcl"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range loadAndBuild(path, src, nil) {
		if d.Summary == "Reference to undeclared stage" {
			want := `There is no stage xform.b in this file, but stage "xfrom" "b" (unknown_kind.hcl, line 5) looks like it, with its kind misspelled: fix the kind there, and this reference holds.`
			if d.Detail != want {
				t.Fatalf("detail %q, want %q", d.Detail, want)
			}
			return
		}
	}
	t.Fatal("no diagnostic for the reference")
}
