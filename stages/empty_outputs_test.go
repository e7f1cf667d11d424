package stages

import (
	"fmt"
	"strings"
	"testing"

	hclv2 "github.com/hashicorp/hcl/v2"

	"pipeline/pipeline"
)

// A split with val = 0 or test = 0 leaves that set empty: a stage that trains or evaluates on
// it is refused before anything runs, at its reference; a split whose empty set nobody uses
// is fine.
func TestValidateRefusesAnEmptySetWhereImagesAreNeeded(t *testing.T) {
	const hcl = `
pipeline {
  image_size = 16
}

stage "split" "main" {
  source = "raw"
  val    = 0
  test   = 0
}

stage "split" "unused" {
  source = "raw"
  val    = 0
}

stage "train" "model" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
}

stage "evaluate" "test" {
  model = stage.train.model.saved_model
  data  = stage.split.main.test
}
`
	w := newWS(t, hcl)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{}, Evaluate{})
	diags := w.diagnostics()
	var got []string
	for _, d := range diags {
		if d.Severity != hclv2.DiagError {
			continue // a tiny network's warnings
		}
		got = append(got, d.Subject.String()[len(d.Subject.Filename)+1:]+": "+d.Detail)
	}
	want := []string{
		"20,18-38: train's val takes split.main's val, which will be empty: the split sets val = 0.",
		"25,11-32: evaluate's data takes split.main's test, which will be empty: the split sets test = 0.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The error of a stage given an empty set names every way a split makes one: a test_source
// without images of the split's classes too, which validation cannot refuse (the split
// warns of it), and not only val = 0 or test = 0, which it refuses.
func TestEmptySetErrorNamesAnEmptyTestSource(t *testing.T) {
	got := emptyHint(fmt.Errorf("test set x: %w", errEmptySet)).Error()
	for _, want := range []string{"it holds no images", "val = 0 or test = 0", "a test_source with no images"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
