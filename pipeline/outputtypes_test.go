package pipeline

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestReferencesToTheWrongKindOfOutputAreErrors checks that an output whose type an
// attribute does not accept is reported where it is referred to, however it reaches the
// attribute (directly, through a function, each.value, a for expression or a whole stage),
// and that accepted, untyped and literal values pass.
func TestReferencesToTheWrongKindOfOutputAreErrors(t *testing.T) {
	src := `
stage "make" "one" {
  source = "data"
}

stage "make" "many" {
  for_each = toset(["x", "y"])
  source   = "data"
}

stage "gen" "plain" {
  source = "data"
}

stage "use" "direct" {
  input = stage.make.one.count
}

stage "use" "fine" {
  input  = stage.make.one.out
  suffix = stage.make.one.count # suffix accepts anything
}

stage "use" "function" {
  input = upper(stage.make.many["x"].count)
}

stage "use" "template" {
  input = "${stage.make.many.y.out}/a.txt"
}

stage "use" "untyped" {
  input = stage.gen.plain.count
}

stage "use" "literal" {
  input = "data/a.txt"
}

stage "use" "each" {
  for_each = stage.make.many
  input    = each.value.count
}

stage "collect" "whole" {
  from = stage.make.many
}

stage "collect" "outs" {
  from = { for k, v in stage.make.many : k => v.out }
}

stage "collect" "mixed" {
  from = { a = stage.make.one.out, b = stage.make.one.count, c = stage.make.many["x"] }
}
`
	diags := loadAndBuild("types.hcl", []byte(src), nil)
	want := []string{
		` 16: Wrong kind of stage output: use's input takes a text file (a make stage's out); stage.make.one.count is a tally (a make stage's count).`,
		` 25: Wrong kind of stage output: use's input takes a text file (a make stage's out); stage.make.many["x"].count is a tally (a make stage's count).`,
		` 42: Wrong kind of stage output: use's input takes a text file (a make stage's out); each.value.count is a tally (a make stage's count).`,
		` 46: Wrong kind of stage output: collect's from takes text files (a make stage's out); stage.make.many holds a tally (a make stage's count).`,
		` 54: Wrong kind of stage output: collect's from takes text files (a make stage's out); stage.make.one.count is a tally (a make stage's count).`,
		` 54: Wrong kind of stage output: collect's from takes text files (a make stage's out); stage.make.many["x"] holds a tally (a make stage's count).`,
	}
	var got []string
	for _, d := range diags {
		got = append(got, lineSummary(d.Subject.Start.Line, d.Summary+": "+d.Detail))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each points at the reference, not at the whole expression.
	for _, d := range diags {
		if d.Subject.Start.Line == 54 && !strings.Contains(d.Detail, src[d.Subject.Start.Byte:d.Subject.End.Byte]+" ") {
			t.Errorf("%s points at %q", d.Detail, src[d.Subject.Start.Byte:d.Subject.End.Byte])
		}
	}
}

// TestTypedOutputsRunWithUnmarkedValues checks that a valid pipeline of typed kinds builds
// without errors, that the values kinds see during the check carry no marks, and that it runs.
func TestTypedOutputsRunWithUnmarkedValues(t *testing.T) {
	src := `
stage "make" "src" {
  source = "raw"
}

stage "gen" "raw" {
  source = "raw"
}

stage "use" "up" {
  input = stage.make.src.out
}

stage "collect" "all" {
  from = { up = stage.use.up.out, src = stage.make.src.out, raw = stage.gen.raw }
}
`
	ws := newWorkspace(t, src, chainFiles())
	e := ws.engine(nil)
	for _, inst := range e.Workflow.Instances {
		v, diags := e.Workflow.evaluate(inst, nil, true)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		for _, n := range v.Names() {
			if v.Get(n).ContainsMarked() {
				t.Errorf("%s: %s is marked", inst.Addr, n)
			}
		}
	}
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(rec.Dir(), "use.up", "out"))
	if string(b) != "AB" {
		t.Fatalf("use.up wrote %q", b)
	}
}

// TestOutputTypesMustNameOutputs checks that a kind cannot give a type to an output it lacks.
func TestOutputTypesMustNameOutputs(t *testing.T) {
	k := typedKind{Kind: &genKind{}, name: "make", types: map[string]string{"out": "text file", "cuont": "tally"}}
	if _, err := NewRegistry(k); err == nil || !strings.Contains(err.Error(), `"cuont"`) {
		t.Fatalf("registered a kind typing a missing output: %v", err)
	}
}

// TestEachValueOfAMapOfOutputsIsTheOutput checks that a stage whose for_each is a map of
// upstream outputs gets them as each.value, checked for their type before anything runs and
// filled in when it runs.
func TestEachValueOfAMapOfOutputsIsTheOutput(t *testing.T) {
	bad := `
stage "make" "one" {
  source = "data"
}

stage "use" "each" {
  for_each = { text = stage.make.one.out, tally = stage.make.one.count }
  input    = each.value
}
`
	diags := loadAndBuild("each.hcl", []byte(bad), nil)
	want := `In use.each[tally]: use's input takes a text file (a make stage's out); each.value is a tally (a make stage's count).`
	if len(diags) != 1 || diags[0].Subject.Start.Line != 8 || diags[0].Detail != want {
		t.Fatalf("want one diagnostic on line 8: %s\ngot:\n%s", want, diags.Error())
	}
	good := strings.NewReplacer("tally = stage.make.one.count", `lit = "raw/a.txt"`, `"data"`, `"raw"`).Replace(bad)
	ws := newWorkspace(t, good, chainFiles())
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"text": "AB", "lit": "A"} {
		if b, _ := os.ReadFile(filepath.Join(rec.Dir(), "use.each."+key, "out")); string(b) != want {
			t.Errorf("use.each[%s] wrote %q, want %q", key, b, want)
		}
	}
}
