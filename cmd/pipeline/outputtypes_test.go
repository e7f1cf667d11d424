package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/pipeline"
)

const refsValid = `
stage "split" "main" {
  source     = "raw"
  image_size = 4
  channels   = 1
  val        = 0.2
  test       = 0.2
}

stage "train" "model" {
  for_each     = toset(["cnn"])
  architecture = each.key
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 1
}

stage "evaluate" "test" {
  for_each = stage.train.model
  model    = each.value.saved_model
  data     = stage.split.main.test
}

stage "select" "best" {
  candidates = stage.evaluate.test
}
`

// TestWrongKindOfOutputIsReportedBeforeAnythingRuns checks, with the real stage kinds, that a
// reference to the wrong kind of upstream output is an error of validate, plan and run, with
// its line and what the attribute takes, and that run then starts nothing.
func TestWrongKindOfOutputIsReportedBeforeAnythingRuns(t *testing.T) {
	if code, out, errs := runCLI("validate", filepath.Join(workspace(t, refsValid), "pipeline.hcl")); code != exitOK {
		t.Fatalf("valid file: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct{ from, to, line, detail string }{
		{"model    = each.value.saved_model", "model    = stage.split.main.test", "pipeline.hcl line 20",
			"evaluate's model takes a trained model (a train stage's saved_model); stage.split.main.test is an image set (a split stage's test)."},
		{"val          = stage.split.main.val", "val          = stage.split.main.report", "pipeline.hcl line 14",
			"train's val takes an image set (an augment stage's output, or a split stage's train, val or test); stage.split.main.report is a report (a split stage's report)."},
		{"candidates = stage.evaluate.test", "candidates = stage.train.model", "pipeline.hcl line 25",
			"select's candidates takes evaluations (an evaluate stage's evaluation); stage.train.model holds a trained model (a train stage's saved_model)."},
		{"candidates = stage.evaluate.test", "candidates = [stage.evaluate.test.cnn.evaluation]", "pipeline.hcl line 25",
			"candidates must be a map of evaluate stages, such as stage.evaluate.test; got a tuple"},
	} {
		src := strings.Replace(refsValid, c.from, c.to, 1)
		dir := workspace(t, src)
		file := filepath.Join(dir, "pipeline.hcl")
		for _, cmd := range []string{"validate", "plan", "run"} {
			code, _, errs := runCLI(cmd, file)
			flat := strings.Join(strings.Fields(errs), " ") // undo the wrapping at 100 columns
			if code != exitErr || !strings.Contains(flat, c.line) || !strings.Contains(flat, c.detail) || !strings.HasSuffix(flat, "pipeline.hcl: 1 error") {
				t.Errorf("%s with %s: exit %d, want %d with one error at %s: %s\n%s", cmd, c.to, code, exitErr, c.line, c.detail, errs)
			}
		}
		for _, p := range []string{"models", "data/intermediate/objects"} {
			if entries, _ := os.ReadDir(filepath.Join(dir, p)); len(entries) > 0 {
				t.Errorf("%s: run made %s: %d entries", c.to, p, len(entries))
			}
		}
	}
}

// TestEveryAcceptedTypeIsSomeKindsOutput checks that the stage kinds give every output a type
// and that every type an attribute accepts is one some kind produces (a misspelt type would
// otherwise reject every reference).
func TestEveryAcceptedTypeIsSomeKindsOutput(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	produced := map[string]bool{}
	for _, name := range reg.Names() {
		k, _ := reg.Lookup(name)
		typer, ok := k.(pipeline.OutputTyper)
		if !ok {
			t.Errorf("%s gives its outputs no types", name)
			continue
		}
		for _, o := range k.Outputs() {
			if typ := typer.OutputTypes()[o]; typ == "" {
				t.Errorf("%s's output %s has no type", name, o)
			} else {
				produced[typ] = true
			}
		}
	}
	for _, name := range reg.Names() {
		k, _ := reg.Lookup(name)
		for _, a := range k.Attributes() {
			for _, typ := range a.Accepts {
				if !produced[typ] {
					t.Errorf("%s's %s accepts %q, which no kind produces", name, a.Name, typ)
				}
			}
		}
	}
}
