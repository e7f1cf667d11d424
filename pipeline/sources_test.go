package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

const sourcesHCL = `
stage "gen" "typo" {
  source = "data/trian"
}

stage "gen" "each" {
  for_each = toset(["x", "y"])
  source   = "data/elsewhere"
}

stage "gen" "deep" {
  source = "dta/tset"
}

stage "gen" "ok" {
  source = "data/test"
}
`

// TestCheckSourcesReportsMissingFoldersAtTheAttribute checks that a source that does not
// exist is an error at its attribute, once however many instances share it, with the closest
// existing path when the given one looks like a typo; and that plan says the same.
func TestCheckSourcesReportsMissingFoldersAtTheAttribute(t *testing.T) {
	ws := newWorkspace(t, sourcesHCL, map[string]string{"data/train/a.txt": "a", "data/test/b.txt": "b"})
	e := ws.engine(nil)
	diags := e.Workflow.CheckSources(ws.dir)
	want := []string{
		`3: Source not found: source "data/trian" does not exist (paths are relative to the folder of pipeline.hcl). Did you mean "data/train"?`,
		`8: Source not found: source "data/elsewhere" does not exist (paths are relative to the folder of pipeline.hcl).`,
		`12: Source not found: source "dta/tset" does not exist (paths are relative to the folder of pipeline.hcl). Did you mean "data/test"?`,
	}
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d: %s: %s", d.Subject.Start.Line, d.Summary, d.Detail))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err := e.Plan(Selection{Targets: []string{"gen.typo"}})
	if err == nil || !strings.Contains(err.Error(), `gen.typo: source "data/trian" does not exist (paths are relative to the folder of pipeline.hcl); did you mean "data/train"?`) {
		t.Errorf("plan: %v", err)
	}
	// run refuses as plan does, before it makes a run folder.
	runs := filepath.Join(ws.dir, "models")
	rec, err := e.Run(context.Background(), RunOptions{RunsDir: runs, Selection: Selection{Targets: []string{"gen.typo"}}})
	if rec != nil || err == nil || !strings.Contains(err.Error(), `gen.typo: source "data/trian" does not exist (paths are relative to the folder of pipeline.hcl); did you mean "data/train"?`) {
		t.Errorf("run: %v %v", rec, err)
	}
	if _, err := os.Stat(runs); !os.IsNotExist(err) {
		t.Errorf("run made its runs folder: %v", err)
	}
}

// A path written where a stage output is expected that does not exist is a warning at its
// attribute (the stage would fail; a run might yet make it, as a promotion makes a model
// folder), with the closest existing path; one that exists, and references to outputs, are
// not reported.
func TestCheckSourcesWarnsOfMissingPathInputs(t *testing.T) {
	ws := newWorkspace(t, `
stage "make" "m" {
  source = "raw"
}

stage "use" "typo" {
  input = "data/ot.txt"
}

stage "use" "ok" {
  input = "data/a.txt"
}

stage "use" "ref" {
  input = stage.make.m.out
}
`, map[string]string{"data/a.txt": "a", "raw/b.txt": "b"})
	diags := ws.engine(nil).Workflow.CheckSources(ws.dir)
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Subject.Start.Line != 7 ||
		diags[0].Detail != `input "data/ot.txt" does not exist (paths are relative to the folder of pipeline.hcl): the stage will fail when it runs unless it appears first. Did you mean "data/a.txt"?` {
		t.Fatalf("diagnostics: %v", diags)
	}
}

// TestQuotedStageReferenceIsAnError checks that a string written where a stage output is
// expected that reads as a stage reference and is no path is an error at the string, for
// validate (CheckSources, without the path warning too) and for plan and run (PathChecks),
// with the closest stage when it names none; and that an existing path, or a string whose
// second word is no stage kind, is a path as before.
func TestQuotedStageReferenceIsAnError(t *testing.T) {
	ws := newWorkspace(t, `
stage "make" "m" {
  source = "raw"
}

stage "use" "quoted" {
  input = "stage.make.m.out"
}

stage "use" "typo" {
  input = "stage.make.mm.out"
}

stage "collect" "inmap" {
  from = { a = stage.make.m.out, b = "stage.make.m.out" }
}

stage "use" "folder" {
  input = "stage.make.x"
}

stage "use" "nokind" {
  input = "stage.nokind.m.out"
}

stage "use" "badout" {
  input = "stage.make.m.uot"
}
`, map[string]string{"raw/b.txt": "b", "stage.make.x/a.txt": "a"})
	want := []string{
		`7:11 error: Stage reference in quotes: input "stage.make.m.out" is a string, not a reference: remove the quotes (input = stage.make.m.out). In quotes it is a path, which does not exist, and the stage does not wait for make.m.`,
		`11:11 error: Stage reference in quotes: input "stage.make.mm.out" is a string, not a reference: remove the quotes, and name a stage of this file (there is no stage make.mm; did you mean stage.make.m?).`,
		`15:38 error: Stage reference in quotes: from "stage.make.m.out" is a string, not a reference: remove the quotes (b = stage.make.m.out). In quotes it is a path, which does not exist, and the stage does not wait for make.m.`,
	}
	e := ws.engine(nil)
	for name, diags := range map[string]hcl.Diagnostics{"CheckSources": e.Workflow.CheckSources(ws.dir), "PathChecks": e.Workflow.PathChecks(ws.dir, e.Workflow.Instances, false)} {
		var got []string
		for _, d := range diags {
			sev := "error"
			if d.Severity == hcl.DiagWarning {
				sev = "warning"
			}
			got = append(got, fmt.Sprintf("%d:%d %s: %s: %s", d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary, d.Detail))
		}
		w := want
		if name == "CheckSources" { // a path of no stage kind is a path that is not there
			w = append(slices.Clone(want), `23:11 warning: Path not found: input "stage.nokind.m.out" does not exist (paths are relative to the folder of pipeline.hcl): the stage will fail when it runs unless it appears first.`)
		}
		// A reference that would be wrong without its quotes says how.
		w = append(slices.Clone(w), `27:11 error: Stage reference in quotes: input "stage.make.m.uot" is a string, not a reference: remove the quotes, and mend it: Stage make.m (kind make) has no output "uot"; its outputs are "count", "out". Did you mean "out"?`)
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
}

// TestCheckSourcesRefusesTheStore checks that a source holding the store is found without
// planning, as plan finds it.
func TestCheckSourcesRefusesTheStore(t *testing.T) {
	ws := newWorkspace(t, `stage "gen" "a" { source = "." }`, nil)
	e := ws.engine(nil)
	diags := e.Workflow.CheckSources(ws.dir)
	if len(diags) != 1 || diags[0].Summary != "Source contains the store" {
		t.Fatalf("diagnostics: %v", diags)
	}
	if _, err := e.Plan(Selection{}); err == nil || !strings.Contains(err.Error(), "contains the store") {
		t.Fatalf("plan: %v", err)
	}
}

// TestEmptyPathIsSaidToBeEmpty checks that an empty path (source = "", or one where a stage
// output is expected, alone or in a map) is an error at its attribute, not the workspace folder
// (which holds the store, as the error said), and that planning says so too.
func TestEmptyPathIsSaidToBeEmpty(t *testing.T) {
	ws := newWorkspace(t, `stage "gen" "a" {
  source = ""
}

stage "use" "b" {
  input = ""
}

stage "collect" "c" {
  from = { x = "" }
}
`, nil)
	cfg, diags := LoadFile(filepath.Join(ws.dir, "pipeline.hcl"), ws.kinds.reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = Build(cfg, ws.kinds.reg, nil)
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d %s: %s", d.Subject.Start.Line, d.Summary, d.Detail))
	}
	const why = "give a path, relative to the folder of pipeline.hcl (an empty one would be that folder, which holds the store)."
	want := []string{
		"2 Empty path: source is empty: " + why,
		"6 Empty path: input is empty: " + why,
		"10 Empty path: from is empty: " + why,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Planning checks the source too (a workflow built without validation's checks).
	if p := checkSource(ws.dir, "pipeline.hcl", "source", ""); p == nil || p.summary != "Empty path" {
		t.Fatalf("checkSource: %+v", p)
	}
}

// TestAbsoluteSourcesAreFound checks that a source written as an absolute path (data on
// another disk) is checked, planned and run where it is, not under the workspace.
func TestAbsoluteSourcesAreFound(t *testing.T) {
	data := t.TempDir()
	writeTree(t, data, map[string]string{"a.txt": "aa", "b.txt": "bb"})
	ws := newWorkspace(t, fmt.Sprintf(`stage "gen" "abs" { source = %q }`, data), nil)
	e := ws.engine(nil)
	if diags := e.Workflow.CheckSources(ws.dir); len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	got, rec, err := ws.run(RunOptions{})
	if err != nil || got["gen.abs"] != StatusRan {
		t.Fatalf("run: %v, %v", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "gen.abs", "out")); err != nil || string(b) != "aabb" {
		t.Fatalf("output %q, %v", b, err)
	}
}

// pickyKind finds a folder given as its source or input unusable when it holds fewer files
// than need ("too few"), and questionable when it holds more than 2 but fewer than twice
// need ("not many").
type pickyKind struct{ genKind }

func (*pickyKind) Name() string { return "picky" }
func (*pickyKind) Attributes() []Attribute {
	return []Attribute{
		{Name: "source", Type: cty.String, Role: Source, Doc: "folder to read"},
		{Name: "input", Type: cty.String, Accepts: []string{"text file"}, Doc: "another folder"},
		{Name: "need", Type: cty.Number, Required: true, Doc: "files needed"},
	}
}

func (*pickyKind) files(v *Values, abs string) (have, need int) {
	entries, _ := os.ReadDir(abs)
	n, _ := v.Get("need").AsBigFloat().Int64()
	return len(entries), int(n)
}

func (k *pickyKind) CheckPath(v *Values, attr, abs string) string {
	if have, need := k.files(v, abs); have < need {
		return fmt.Sprintf("it has %d files, too few", have)
	}
	return ""
}

func (k *pickyKind) WarnPath(v *Values, attr, abs string) []string {
	if have, need := k.files(v, abs); have > 2 && have < 2*need {
		return []string{fmt.Sprintf("it has %d files, not many", have)}
	}
	return nil
}

// A problem a kind finds in a path given to some instances of a for_each block, and not to
// the others (their values differ), names the instances it is about, each problem once; one
// every instance has, or that of a block without for_each, names none.
func TestPathProblemsOfSomeInstancesNameThem(t *testing.T) {
	ws := newWorkspace(t, `
stage "picky" "p" {
  for_each = { few = 2, some = 4, many = 9 }
  source   = "raw"
  input    = "raw"
  need     = each.value
}

stage "picky" "alone" {
  source = "raw"
  need   = 9
}
`, map[string]string{"raw/a": "a", "raw/b": "b", "raw/c": "c"})
	ws.kinds.reg, _ = NewRegistry(&pickyKind{})
	diags := ws.engine(nil).Workflow.CheckSources(ws.dir)
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d: %s: %s", d.Subject.Start.Line, d.Summary, d.Detail))
	}
	want := []string{
		`4: Questionable source: source "raw": it has 3 files, not many.`,
		`4: Unusable source: In picky.p[many], picky.p[some]: source "raw": it has 3 files, too few. The stage will fail when it runs unless that changes first.`,
		`5: Questionable path: input "raw": it has 3 files, not many.`,
		`5: Unusable path: In picky.p[many], picky.p[some]: input "raw": it has 3 files, too few: the stage will fail when it runs unless that changes first.`,
		`10: Unusable source: source "raw": it has 3 files, too few. The stage will fail when it runs unless that changes first.`,
		`10: Questionable source: source "raw": it has 3 files, not many.`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
