package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"pipeline/pipeline"
)

// TestEveryKindSuggestsMisspelledAttributes misspells every attribute of every stage kind,
// alone and beside the attribute itself, and expects the attribute's name as the suggestion.
func TestEveryKindSuggestsMisspelledAttributes(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range reg.Names() {
		kind, _ := reg.Lookup(name)
		for _, a := range kind.Attributes() {
			typo := a.Name + "x"
			for _, body := range []string{typo + " = 1", a.Name + " = 1\n  " + typo + " = 1"} {
				src := fmt.Sprintf("stage %q \"s\" {\n  %s\n}\n", name, body)
				_, diags := pipeline.LoadSource("typo.hcl", []byte(src), reg)
				want := fmt.Sprintf("Did you mean %q?", a.Name)
				if len(diags) != 1 || !strings.Contains(diags[0].Detail, want) {
					t.Errorf("%s stage with %q: want one diagnostic with %s, got:\n%s", name, strings.ReplaceAll(body, "\n  ", "; "), want, diags.Error())
				}
			}
		}
	}
}

// TestUnknownArchitectureIsOneError checks that an unknown architecture is reported as such,
// without a second error about the options of an architecture that does not exist.
func TestUnknownArchitectureIsOneError(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
stage "train" "model" {
  architecture = "resnet"
  train        = "a"
  val          = "b"
  options      = { dense = 64 }
}
`
	cfg, diags := pipeline.LoadSource("arch.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	if len(diags) != 1 || diags[0].Summary != "Invalid architecture" {
		t.Fatalf("want one Invalid architecture, got:\n%s", diags.Error())
	}
}

// TestArchitectureOptionsAreCheckedBeforeRunning checks that options which cannot build a
// network at any image size are reported by validation, not when the training starts.
func TestArchitectureOptionsAreCheckedBeforeRunning(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for opts, want := range map[string]string{
		"{ patch = 4, dim = 64 }":            "dim 64 is not divisible by heads 12",
		"{ patch = 4, dim = 64, heads = 4 }": "",
		"{ patch = 0 }":                      "must be positive",
		"{ pool = \"max\" }":                 `pool "max"`,
		"{ dropout = 1 }":                    "dropout 1 must be in [0, 1)",
	} {
		src := fmt.Sprintf("stage \"train\" \"model\" {\n  architecture = \"vit\"\n  train = \"a\"\n  val = \"b\"\n  options = %s\n}\n", opts)
		cfg, diags := pipeline.LoadSource("arch.hcl", []byte(src), reg)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		_, diags = pipeline.Build(cfg, reg, nil)
		switch {
		case want == "" && diags.HasErrors():
			t.Errorf("options %s: %s", opts, diags.Error())
		case want != "" && (len(diags) != 1 || diags[0].Summary != "Invalid architecture options" || !strings.Contains(diags[0].Detail, want)):
			t.Errorf("options %s: want one Invalid architecture options with %q, got:\n%s", opts, want, diags.Error())
		}
	}
}

// TestEveryArchitectureOptionProblemIsNamed checks that each wrong option is reported by its
// own name, a valid one beside it is not blamed, and several problems are all reported.
func TestEveryArchitectureOptionProblemIsNamed(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arch, opts string
		want       []string
	}{
		{"cnn", "{ pool = 0 }", []string{"cnn: pool 0 must be positive"}},
		{"cnn", "{ dense_dropout = -0.1 }", []string{"cnn: dense_dropout -0.1 must be in [0, 1)"}},
		{"cnn", "{ pool = 0, dropout = 1.5 }", []string{"cnn: pool 0 must be positive", "cnn: dropout 1.5 must be in [0, 1)"}},
		{"cnn", "{ channels = [32, -1] }", []string{"cnn: channels [32, -1]: entry 2 (-1) must be positive"}},
		{"vgg19", "{ classifier = 0 }", []string{"vgg19: classifier 0 must be positive"}},
		{"vgg19", "{ width = -1, dropout = 1 }", []string{"vgg19: width -1 must be positive", "vgg19: dropout 1 must be in [0, 1)"}},
		{"vit", "{ patch = 4, dim = 64, heads = 0 }", []string{"vit: heads 0 must be positive"}},
		{"vit", "{ patch = 4, dim = 64, heads = 4, mlp_ratio = 0, pool = \"max\" }", []string{"vit: mlp_ratio 0 must be positive", `vit: pool "max" must be "cls" or "mean"`}},
		// An option the architecture lacks hides none of the others' problems.
		{"cnn", "{ dense = 0, foo = 1 }", []string{`cnn has no option "foo"`, "cnn: dense 0 must be positive"}},
		{"vit", "{ dim = 66, heads = 4, dropot = 0.1 }", []string{`vit has no option "dropot"; did you mean "dropout"?`, "vit: dim 66 is not divisible by heads 4"}},
	} {
		src := fmt.Sprintf("stage \"train\" \"model\" {\n  architecture = %q\n  train = \"a\"\n  val = \"b\"\n  options = %s\n}\n", c.arch, c.opts)
		cfg, diags := pipeline.LoadSource("arch.hcl", []byte(src), reg)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		_, diags = pipeline.Build(cfg, reg, nil)
		var got []string
		for _, d := range diags {
			if d.Summary == "Invalid architecture options" {
				got = append(got, d.Detail)
			}
		}
		same := len(got) == len(c.want)
		for i := range got {
			same = same && strings.HasPrefix(got[i], c.want[i])
		}
		if len(diags) != len(got) || !same {
			t.Errorf("%s options %s: want %q, got:\n%s", c.arch, c.opts, c.want, diags.Error())
		}
	}
}

// TestInvalidChoiceShowsTheValueAsWritten checks that a value outside a fixed set is shown
// as the pipeline file writes it: a number bare, a string quoted.
func TestInvalidChoiceShowsTheValueAsWritten(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[string]string{
		"channels = 2":     "channels = 2: use one of 1, 3.",
		"channels = 2.5":   "channels = 2.5: use one of 1, 3.",
		`format = "gif"`:   `format = "gif": use one of png, jpeg.`,
		`resize = "a\"b"`:  `resize = "a\"b": use one of`,
		`channels = "two"`: `must be a number: got the string "two"`,
		"val = -0.5":       "val = -0.5: use a fraction in [0, 1)",
		"quality = 1e6":    "quality = 1000000: use a whole number from 1 to 100.",
		"seed = 1.5":       "seed = 1.5: use a whole number (of 64 bits).",
		"seed = 1e30":      "seed = 1e+30: use a whole number (of 64 bits).",
	} {
		src := fmt.Sprintf("stage \"split\" \"main\" {\n  source = \"raw\"\n  image_size = 32\n  %s\n}\n", attr)
		cfg, diags := pipeline.LoadSource("choice.hcl", []byte(src), reg)
		if !diags.HasErrors() {
			_, diags = pipeline.Build(cfg, reg, nil)
		}
		if len(diags) != 1 || !strings.Contains(diags[0].Detail, want) {
			t.Errorf("%s: want one diagnostic with %q, got:\n%s", attr, want, diags.Error())
		}
	}
}

// TestMistypedChoicesGetASuggestion checks that a value outside a fixed set, or an augment
// operation that does not exist, is given the closest valid one, a shortened name too, and
// that the operations are listed as the file writes them.
func TestMistypedChoicesGetASuggestion(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for stage, want := range map[string]string{
		"stage \"select\" \"best\" {\n  candidates = { a = \"e\" }\n  metric = \"test_f1\"\n}\n":    `metric = "test_f1": use one of test_f1_macro, test_f1_weighted, test_top1, test_top3, test_top5, test_loss. Did you mean "test_f1_macro"?`,
		"stage \"select\" \"best\" {\n  candidates = { a = \"e\" }\n  metric = \"test_top_1\"\n}\n": `metric = "test_top_1": use one of test_f1_macro, test_f1_weighted, test_top1, test_top3, test_top5, test_loss. Did you mean "test_top1"?`,
		"stage \"augment\" \"a\" {\n  input = \"i\"\n  ops = [\"rotate\"]\n}\n":                     `"rotate" is not an operation; use "affine", "blur", "color_jitter", "flip", "flip_rotate_crop" or "noise". Did you mean "flip_rotate_crop"?`,
		"stage \"augment\" \"a\" {\n  input = \"i\"\n  ops = [\"sharpen\"]\n}\n":                    `"sharpen" is not an operation; use "affine", "blur", "color_jitter", "flip", "flip_rotate_crop" or "noise".`,
		"stage \"augment\" \"a\" {\n  input = \"i\"\n  ops = []\n}\n":                               `List at least one of "affine", "blur", "color_jitter", "flip", "flip_rotate_crop" and "noise", or set max_augment = 1 to add no copies.`,
	} {
		cfg, diags := pipeline.LoadSource("choice.hcl", []byte(stage), reg)
		if !diags.HasErrors() {
			_, diags = pipeline.Build(cfg, reg, nil)
		}
		if len(diags) != 1 || diags[0].Detail != want {
			t.Errorf("%s: want one diagnostic %q, got:\n%s", stage, want, diags.Error())
		}
	}
}

// TestMisspelledArchitectureOptionIsNamedWithASuggestion checks that an options key the
// architecture does not have is named with the closest option and the valid ones, and that
// an option of the wrong type says what it takes, instead of Go's JSON errors.
func TestMisspelledArchitectureOptionIsNamedWithASuggestion(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for arch, c := range map[string]struct{ opts, want string }{
		"vit":   {"{ ptach = 4 }", `vit has no option "ptach"; did you mean "patch"? The vit options are patch, dim, depth, heads, mlp_ratio, pool and dropout.`},
		"cnn":   {"{ zzz = 1 }", `cnn has no option "zzz". The cnn options are channels, dropout, pool, dense and dense_dropout.`},
		"vgg19": {`{ width = "wide" }`, "vgg19 option width must be a number, not a string"},
	} {
		src := fmt.Sprintf("stage \"train\" \"model\" {\n  architecture = %q\n  train = \"a\"\n  val = \"b\"\n  options = %s\n}\n", arch, c.opts)
		cfg, diags := pipeline.LoadSource("arch.hcl", []byte(src), reg)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		_, diags = pipeline.Build(cfg, reg, nil)
		if len(diags) != 1 || diags[0].Summary != "Invalid architecture options" || diags[0].Detail != c.want {
			t.Errorf("%s options %s: want one Invalid architecture options %q, got:\n%s", arch, c.opts, c.want, diags.Error())
		}
	}
}

// TestViTPatchIsCheckedAgainstThePipelinesImageSize checks the error for a ViT patch that
// does not tile the pipeline's image_size, which its split uses (the training would stop on
// it), and its absence for one that does.
func TestViTPatchIsCheckedAgainstThePipelinesImageSize(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for patch, want := range map[int]string{7: "A vit patch of 7 does not divide the image_size 24 of its split", 4: ""} {
		src := fmt.Sprintf(`
pipeline {
  image_size = 24
}

stage "split" "main" {
  source = "photos"
}

stage "train" "model" {
  architecture = "vit"
  train        = stage.split.main.train
  val          = stage.split.main.val
  options      = { patch = %d, dim = 32, heads = 4 }
}
`, patch)
		cfg, diags := pipeline.LoadSource("patch.hcl", []byte(src), reg)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		_, diags = pipeline.Build(cfg, reg, nil)
		switch {
		case want == "" && len(diags) != 0:
			t.Errorf("patch %d: %s", patch, diags.Error())
		case want != "" && (len(diags) != 1 || diags[0].Severity != hcl.DiagError || !strings.Contains(diags[0].Detail, want) || !strings.Contains(diags[0].Detail, "for 24: 2, 3, 4, 6, 8, 12")):
			t.Errorf("patch %d: want one error with %q, got:\n%s", patch, want, diags.Error())
		}
	}
}

// TestViTOptionProblemsAreAllSaid checks that a patch that does not tile the image size is
// said beside the options' own problems, not only once they are fixed.
func TestViTOptionProblemsAreAllSaid(t *testing.T) {
	src := `
stage "split" "main" {
  source     = "photos"
  image_size = 16
}

stage "train" "model" {
  architecture = "vit"
  train        = stage.split.main.train
  val          = stage.split.main.val
  options      = { patch = 5, dim = 8, heads = 3 }
}
`
	var text string
	for _, d := range buildDiagnostics(t, "vit.hcl", src) {
		text += d.Detail + "\n"
	}
	if !strings.Contains(text, "dim 8 is not divisible by heads 3") || !strings.Contains(text, "A vit patch of 5 does not divide the image_size 16 of its split") {
		t.Errorf("want both problems, got:\n%s", text)
	}
}

// TestEmptyPromoteToIsRefused checks that promote_to = "" (the workspace folder itself) is an
// error at the attribute.
func TestEmptyPromoteToIsRefused(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := "stage \"select\" \"best\" {\n  candidates = { a = \"eval/a\" }\n  promote_to = \"\"\n}\n"
	cfg, diags := pipeline.LoadSource("select.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	if len(diags) != 1 || diags[0].Summary != "Empty path" || diags[0].Subject.Start.Line != 3 {
		t.Fatalf("want one Empty path on line 3, got:\n%s", diags.Error())
	}
}

// TestTrainingChecksUseTheImageSizeOfItsSplit checks that the pool and patch warnings take the
// image_size of the split a training's images come from (through an augment stage), not the
// pipeline block's, when the split sets its own.
func TestTrainingChecksUseTheImageSizeOfItsSplit(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
pipeline {
  image_size = 224
}

stage "split" "main" {
  source     = "photos"
  image_size = 60
}

stage "augment" "balanced" {
  input = stage.split.main.train
}

stage "train" "vgg" {
  architecture = "vgg19"
  train        = stage.augment.balanced.output
  val          = stage.split.main.val
  options      = { width = 0.25 }
}

stage "train" "vit" {
  architecture = "vit"
  train        = stage.augment.balanced.output
  val          = stage.split.main.val
  options      = { patch = 16, dim = 32, heads = 4 }
}
`
	cfg, diags := pipeline.LoadSource("sizes.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary+": "+d.Detail)
	}
	want := []string{
		"Pool larger than the feature map: A vgg19 pool of 7 is larger than the 2×2 grid its 5 blocks leave of its split's 60-pixel images: the pooling repeats values, and the dense layer takes 7×7×128 = 6272 inputs where 2×2×128 = 512 hold the same information (more weights, slower steps). Choose a pool of at most 2.",
		"Patch size does not tile the images: A vit patch of 16 does not divide the image_size 60 of its split: training stops with an error. Choose a patch that divides the image size (for 60: 5, 6, 10, 12, 15, 20).",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTrainingChecksFollowEachInstancesSplit checks the image size per instance: a training
// indexed by each.key takes its own split's size, and one whose train set may come from
// either of two splits of different sizes is not checked (neither size is sure).
func TestTrainingChecksFollowEachInstancesSplit(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
pipeline {
  image_size = 64
}

stage "split" "s" {
  for_each   = { small = 30, large = 32 }
  source     = "photos"
  image_size = each.value
}

stage "train" "m" {
  for_each     = toset(["small", "large"])
  architecture = "vit"
  train        = stage.split.s[each.key].train
  val          = stage.split.s[each.key].val
  options      = { patch = 4, dim = 32, heads = 4 }
}

stage "train" "either" {
  architecture = "vit"
  train        = var.small ? stage.split.s.small.train : stage.split.s.large.train
  val          = stage.split.s.large.val
  options      = { patch = 8, dim = 32, heads = 4 }
}

variable "small" {
  default = false
}
`
	cfg, diags := pipeline.LoadSource("each.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("line %d: %s", d.Subject.Start.Line, d.Detail))
	}
	want := []string{"line 17: In train.m[small]: a vit patch of 4 does not divide the image_size 30 of its split: training stops with an error. Choose a patch that divides the image size (for 30: 2, 3, 5, 6, 10, 15)."}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTrainAndValFromSplitsOfAnotherSize checks that validate refuses a training whose train
// and val sets come from splits that store images of different sizes or channels, which the
// training would stop on.
func TestTrainAndValFromSplitsOfAnotherSize(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
stage "split" "a" {
  source     = "photos"
  image_size = 60
  channels   = 1
}

stage "split" "b" {
  source     = "photos"
  image_size = 64
}

stage "augment" "x" {
  input = stage.split.a.train
}

stage "train" "m" {
  architecture = "cnn"
  train        = stage.augment.x.output
  val          = stage.split.b.val
}
`
	cfg, diags := pipeline.LoadSource("mixed.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	var got []string
	for _, d := range diags {
		if d.Summary == "Train and val sets of different splits" {
			got = append(got, d.Detail)
		}
	}
	want := []string{
		"The train set comes from a split with image_size = 60 and the val set from one with image_size = 64: the training would stop with an error. Take both from one split.",
		"The train set comes from a split with channels = 1 and the val set from one with channels = 3: the training would stop with an error. Take both from one split.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || !diags.HasErrors() {
		t.Errorf("diagnostics:\n%s\nwant errors\n%s", diags.Error(), strings.Join(want, "\n"))
	}
}

// TestTrainingChecksSeeEveryBranch checks that a train set chosen between an augment of one
// split and another split, of different sizes, is not taken for the nearer split's: neither
// size is sure, so nothing is refused.
func TestTrainingChecksSeeEveryBranch(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
variable "aug" {
  default = true
}

stage "split" "a" {
  source     = "photos"
  image_size = 60
}

stage "split" "b" {
  source     = "photos"
  image_size = 64
}

stage "augment" "x" {
  input = stage.split.b.train
}

stage "train" "m" {
  architecture = "vit"
  train        = var.aug ? stage.augment.x.output : stage.split.a.train
  val          = stage.split.b.val
  options      = { patch = 16, dim = 32, heads = 4 }
}
`
	cfg, diags := pipeline.LoadSource("branches.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if _, diags = pipeline.Build(cfg, reg, nil); len(diags) != 0 {
		t.Errorf("want no diagnostics, got:\n%s", diags.Error())
	}
}

// TestTrainingChecksUseTheValSetsSplitForAPathTrainSet checks that a train set given as a
// path takes the image size of the val set's split, which its images must match.
func TestTrainingChecksUseTheValSetsSplitForAPathTrainSet(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	src := `
stage "split" "b" {
  source     = "photos"
  image_size = 60
}

stage "train" "m" {
  architecture = "vit"
  train        = "data/mytrain"
  val          = stage.split.b.val
  options      = { patch = 16, dim = 32, heads = 4 }
}
`
	cfg, diags := pipeline.LoadSource("pathtrain.hcl", []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	if len(diags) != 1 || diags[0].Severity != hcl.DiagError || !strings.Contains(diags[0].Detail, "A vit patch of 16 does not divide the image_size 60 of its split") {
		t.Errorf("want the patch error, got:\n%s", diags.Error())
	}
}

// TestSelectGatesMustBeFractions checks that min_value and min_improvement beyond what a
// score in [0, 1] can reach (95 written for 95 %) are refused, and not for test_loss.
func TestSelectGatesMustBeFractions(t *testing.T) {
	for _, c := range []struct {
		attrs string
		want  []string
	}{
		{"min_value = 95\n  min_improvement = 5", []string{"Invalid min_value", "Invalid min_improvement"}},
		{"min_value = 0.95\n  min_improvement = 0.01", nil},
		{"metric = \"test_loss\"\n  min_value = 3\n  min_improvement = 2", nil},
	} {
		src := "stage \"select\" \"s\" {\n  candidates = { a = { evaluation = \"x\" } }\n  " + c.attrs + "\n}\n"
		var got []string
		for _, d := range buildDiagnostics(t, "gates.hcl", src) {
			if d.Severity == hcl.DiagError {
				got = append(got, d.Summary)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: errors %q, want %q", c.attrs, got, c.want)
		}
	}
}

// TestTrainSettingsWithoutEffectAreWarnedOf checks the warnings for plateau options without
// the plateau schedule, weight decay with adam, a warm-up as long as the training, and an
// early_stopping or plateau_patience the training is too short to reach, and their absence
// when the settings take effect.
func TestTrainSettingsWithoutEffectAreWarnedOf(t *testing.T) {
	for _, c := range []struct {
		attrs string
		want  []string
	}{
		{"schedule = \"cosine\"\n  plateau_factor = 0.5\n  optimizer = \"adam\"\n  weight_decay = 0.01\n  epochs = 3\n  warmup_epochs = 3",
			[]string{"Setting without effect", "Setting without effect", "Warm-up as long as the training"}},
		{"schedule = \"plateau\"\n  plateau_factor = 0.5\n  optimizer = \"adamw\"\n  weight_decay = 0.01\n  epochs = 4\n  warmup_epochs = 3", nil},
		// weight_decay = 0 says none; the cnn's 20 epochs by default.
		{"optimizer = \"adam\"\n  weight_decay = 0\n  warmup_epochs = 20", []string{"Warm-up as long as the training"}},
		// Values of the pipeline block, which other stages may use, are not warned of.
		{"schedule = \"cosine\"\n  optimizer = \"adam\"", nil},
		// init_mismatch without init_from
		{"init_mismatch = \"seed\"", []string{"Setting without effect"}},
		// Early stopping acts after an epoch before the last: of 4 epochs, 3 can have gone
		// without improvement after the third (when the first's metric is NaN), 4 cannot.
		{"epochs = 4\n  early_stopping = 4", []string{"Early stopping as long as the training"}},
		{"epochs = 4\n  early_stopping = 3", nil},
		{"early_stopping = 20", []string{"Early stopping as long as the training"}}, // the cnn's 20 epochs
		{"early_stopping = 19", nil},
		// A plateau reduction changes the rate after epoch plateau_patience + 2 at the earliest,
		// which must come before the last: with 5 epochs, patience 2 acts after the fourth,
		// 3 only after the last.
		{"epochs = 5\n  plateau_patience = 3", []string{"Plateau patience too long for the training"}},
		{"epochs = 5\n  plateau_patience = 2", nil},
		{"epochs = 2\n  plateau_patience = 0", []string{"Plateau patience too long for the training"}},
		{"schedule = \"cosine\"\n  epochs = 5\n  plateau_patience = 3", []string{"Setting without effect"}},
	} {
		src := "pipeline {\n  plateau_patience = 3\n  weight_decay = 0.02\n}\n\nstage \"split\" \"main\" {\n  source = \"photos\"\n  image_size = 32\n}\n\nstage \"train\" \"m\" {\n  architecture = \"cnn\"\n  train = stage.split.main.train\n  val = stage.split.main.val\n  " + c.attrs + "\n}\n"
		var got []string
		for _, d := range buildDiagnostics(t, "effect.hcl", src) {
			if d.Severity == hcl.DiagWarning && d.Subject != nil && d.Subject.Start.Line > 10 && d.Summary != "Unused pipeline setting" {
				got = append(got, d.Summary)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: warnings %q, want %q", c.attrs, got, c.want)
		}
	}
}

// TestAugmentSettingsWithoutEffectAreWarnedOf checks that validate warns of the parameters
// of an operation ops does not list, set in the augment stage, and of a held-out set given as
// augment's input; not of a parameter ops uses, of one written as its default, nor of a
// value of the pipeline block.
func TestAugmentSettingsWithoutEffectAreWarnedOf(t *testing.T) {
	for _, c := range []struct {
		attrs string
		want  []string
	}{
		{"input = stage.split.main.train\n  blur = 5\n  rotation = 10", []string{"Setting without effect: blur"}},
		{"input = stage.split.main.train\n  ops = [\"blur\", \"affine\"]\n  blur = 5\n  translate = 0.2\n  crop = 0.85\n  contrast = 0.3", []string{"Setting without effect: contrast"}},
		{"input = stage.split.main.train\n  ops = [\"flip\"]\n  max_augment = 2\n  flip = 0.7", []string{"Setting without effect: flip"}},
		{"input = stage.split.main.test", []string{"Augmenting a held-out set: input"}},
		{"input = stage.split.main.val\n  noise = 0.1", []string{"Augmenting a held-out set: input", "Setting without effect: noise"}},
		// a path, and the pipeline block's value (other stages may use it)
		{"input = \"data/train\"", nil},
	} {
		src := "pipeline {\n  saturation = 0.5\n}\n\nstage \"split\" \"main\" {\n  source = \"photos\"\n  image_size = 32\n}\n\nstage \"augment\" \"a\" {\n  " + c.attrs + "\n}\n"
		var got []string
		for _, d := range buildDiagnostics(t, "augment.hcl", src) {
			if d.Severity == hcl.DiagWarning && d.Subject != nil && d.Subject.Start.Line > 10 && d.Summary != "Unused pipeline setting" {
				line := strings.Split(src, "\n")[d.Subject.Start.Line-1]
				got = append(got, d.Summary+": "+strings.Fields(line)[0])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: warnings %q, want %q", c.attrs, got, c.want)
		}
	}
}

// buildDiagnostics loads and builds a pipeline file of src with the product's kinds, as
// validate does, and returns what building it says (failing the test if it cannot be read).
func buildDiagnostics(t *testing.T, name, src string) hcl.Diagnostics {
	t.Helper()
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := pipeline.LoadSource(name, []byte(src), reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, diags = pipeline.Build(cfg, reg, nil)
	return diags
}

// TestInitFromAPromotionFolderIsQuestioned checks that validate warns of an init_from naming
// the promotion folder itself (its card and scores.json would retrain the stage for nothing),
// and not of its SavedModel.
func TestInitFromAPromotionFolderIsQuestioned(t *testing.T) {
	ws := t.TempDir()
	promoteFake(t, ws, "run1", "m1", 0.7)
	for from, warned := range map[string]bool{"models/final_models": true, "models/final_models/saved_model": false} {
		src := "stage \"split\" \"main\" {\n  source = \"photos\"\n  image_size = 32\n}\n\nstage \"train\" \"m\" {\n  architecture = \"cnn\"\n  train = stage.split.main.train\n  val = stage.split.main.val\n  init_from = \"" + from + "\"\n}\n"
		file := filepath.Join(ws, "pipeline.hcl")
		os.WriteFile(file, []byte(src), 0o644)
		_, out, errs := runCLI("validate", file)
		said := strings.Join(strings.Fields(out+errs), " ") // as printed, wrapped
		want := `init_from "models/final_models": it is a promotion folder, whose card and scores.json change whenever select scores the champion, and each change would retrain this stage for nothing; give its SavedModel, "models/final_models/saved_model".`
		if strings.Contains(said, "Questionable path") != warned || warned && !strings.Contains(said, want) {
			t.Errorf("init_from %s:\n%s%s", from, out, errs)
		}
	}
}

// A problem is reported once: a for_each expression's for every element it fails on alike,
// and the pipeline block's seed not again by the split that takes it.
func TestProblemsAreSaidOnce(t *testing.T) {
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		`stage "split" "main" {
  source     = "raw"
  image_size = 32
}
stage "train" "model" {
  for_each     = toset(["cnn", "vit", "vgg19"])
  architecture = each.key
  train        = stage.split.main.train
  val          = stage.split.main.val
}
stage "evaluate" "test" {
  for_each = { for k, v in stage.train.model : k => v.saved_modle }
  model    = each.value
  data     = stage.split.main.test
}
`: `does not have an attribute named "saved_modle"`,
		`pipeline {
  seed       = 1.5
  image_size = 8
}
stage "split" "main" {
  source = "raw"
}
`: "seed must be a whole number",
	} {
		cfg, diags := pipeline.LoadSource("once.hcl", []byte(src), reg)
		if !diags.HasErrors() {
			_, diags = pipeline.Build(cfg, reg, nil)
		}
		var errs []string
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				errs = append(errs, d.Detail)
			}
		}
		if len(errs) != 1 || !strings.Contains(errs[0], want) {
			t.Errorf("want one error saying %q, got %d:\n%q", want, len(errs), errs)
		}
	}
}

// TestModelStagesOnTheWrongSetsAreWarnedOf checks that validate warns of a training on a
// held-out set or validated on the test set, of an evaluation of a set the model learns from,
// and of a select direction against its metric; not of the usual wiring.
func TestModelStagesOnTheWrongSetsAreWarnedOf(t *testing.T) {
	for _, c := range []struct {
		train, val, data, selectAttrs string
		want                          []string
	}{
		{"train", "val", "test", "", nil},
		{"train", "val", "test", "metric = \"test_loss\"\n  direction = \"min\"", nil},
		{"train", "val", "test", "direction = \"max\"", nil},
		{"train", "test", "test", "", []string{"Validating on the test set: val"}},
		{"val", "val", "test", "", []string{"Training on a held-out set: train"}},
		{"train", "val", "train", "", []string{"Evaluating on a set the model learns from: data"}},
		{"train", "val", "val", "", []string{"Evaluating on a set the model learns from: data"}},
		{"train", "val", "test", "direction = \"min\"", []string{"Direction against the metric: direction"}},
		{"train", "val", "test", "metric = \"test_loss\"\n  direction = \"max\"", []string{"Direction against the metric: direction"}},
	} {
		src := "stage \"split\" \"main\" {\n  source = \"photos\"\n  image_size = 32\n}\n\n" +
			"stage \"train\" \"m\" {\n  architecture = \"cnn\"\n  train = stage.split.main." + c.train + "\n  val = stage.split.main." + c.val + "\n  options = { pool = 2 }\n}\n\n" +
			"stage \"evaluate\" \"e\" {\n  model = stage.train.m.saved_model\n  data = stage.split.main." + c.data + "\n}\n\n" +
			"stage \"select\" \"s\" {\n  candidates = stage.evaluate.e\n  " + c.selectAttrs + "\n}\n"
		var got []string
		for _, d := range buildDiagnostics(t, "model.hcl", src) {
			if d.Severity == hcl.DiagWarning && d.Subject != nil {
				line := strings.Split(src, "\n")[d.Subject.Start.Line-1]
				got = append(got, d.Summary+": "+strings.Fields(line)[0])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("train %s, val %s, data %s, %q: warnings %q, want %q", c.train, c.val, c.data, c.selectAttrs, got, c.want)
		}
	}
}
