package stages

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/graphs"
	"pipeline/pipeline"
)

const warmStartHCL = smallSplitHCL + `
stage "train" "base" {
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 3
  batch_size    = 16
  learning_rate = 3e-3
  options       = { channels = [4], pool = 2, dense = 8 }
}

stage "train" "tuned" {
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 1
  batch_size    = 16
  learning_rate = 1e-12
  options       = { channels = [4], pool = 2, dense = 8 }
  init_from     = INIT
}

stage "train" "fresh" {
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 1
  batch_size    = 16
  learning_rate = 1e-12
  options       = { channels = [4], pool = 2, dense = 8 }
}
`

// A training with init_from starts from that model's weights: with a learning rate too small
// to move them, its one epoch scores about what the model scored, where one from scratch
// does not; the log says what was taken and
// metrics.json records it. A model folder given as a path works the same and is keyed by its
// content; a model of another architecture fails the stage, naming both.
func TestTrainingStartsFromAModel(t *testing.T) {
	w := newWS(t, strings.Replace(warmStartHCL, "INIT", "stage.train.base.saved_model", 1))
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{})
	writeSynthetic(t, w, 60, []string{"circle", "square", "stripes"})
	rec, _ := w.run(false)

	// Only the batch-norm statistics move in an epoch at that rate.
	var base, tuned, fresh Metrics
	readJSONFile(t, w.output(rec, "train.base", "metrics.json"), &base)
	readJSONFile(t, w.output(rec, "train.tuned", "metrics.json"), &tuned)
	readJSONFile(t, w.output(rec, "train.fresh", "metrics.json"), &fresh)
	if math.Abs(float64(tuned.ValLoss-base.ValLoss)) > 0.02 || math.Abs(float64(fresh.ValLoss-base.ValLoss)) < 0.1 {
		t.Errorf("val loss at a learning rate of 1e-12: %v started from the model, %v from scratch; the model's %v", tuned.ValLoss, fresh.ValLoss, base.ValLoss)
	}
	if from, _ := tuned.Hyperparameters["init_from"].(string); from != "an upstream stage's saved_model" {
		t.Errorf("metrics.json's init_from: %v", tuned.Hyperparameters["init_from"])
	}
	if _, ok := base.Hyperparameters["init_from"]; ok {
		t.Errorf("a training without init_from records one: %v", base.Hyperparameters)
	}
	// The default schedule, plateau, with its settings.
	if base.Hyperparameters["plateau_factor"] != 0.1 || base.Hyperparameters["plateau_patience"] != 5.0 {
		t.Errorf("metrics.json's plateau settings: %v", base.Hyperparameters)
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if !strings.Contains(string(log), "starting from the weights of ") || !strings.Contains(string(log), ": 9 of 9 tensors") {
		t.Errorf("run.log does not say what the tuned training started from:\n%s", log)
	}

	// The same model as a folder in the workspace.
	if err := os.CopyFS(filepath.Join(w.dir, "start"), os.DirFS(w.output(rec, "train.base", "saved_model"))); err != nil {
		t.Fatal(err)
	}
	w.write("pipeline.hcl", []byte(strings.Replace(warmStartHCL, "INIT", `"start"`, 1)))
	rec, _ = w.run(false)
	var again Metrics
	readJSONFile(t, w.output(rec, "train.tuned", "metrics.json"), &again)
	if again.Hyperparameters["init_from"] != "start" {
		t.Errorf("metrics.json's init_from for a folder: %v", again.Hyperparameters["init_from"])
	}
	if res := rec.Result("train.tuned"); res.Status != pipeline.StatusRan || again.ValLoss != tuned.ValLoss {
		t.Errorf("init_from a folder: %s, val loss %v, want %v as from the stage's output", res.Status, again.ValLoss, tuned.ValLoss)
	}
	w.write("start/variables/variables.data-00000-of-00001", []byte("not weights"))
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		want := d.Addr == "train.tuned"
		if ran := d.Action != pipeline.Cached; ran != want || want && !strings.Contains(strings.Join(d.Reasons, "; "), "start") {
			t.Errorf("the model folder changed: %s %s %v", d.Addr, d.Action, d.Reasons)
		}
	}

	// Another architecture.
	vit := strings.Replace(warmStartHCL, "INIT", "stage.train.base.saved_model", 1)
	vit = strings.Replace(vit, `epochs        = 1`, `epochs        = 1
  architecture  = "vit"`, 1)
	vit = strings.Replace(strings.Replace(vit, `architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 1`, `train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 1`, 1), `options       = { channels = [4], pool = 2, dense = 8 }
  init_from`, `options       = { patch = 4, dim = 8, depth = 1, heads = 2 }
  init_from`, 1)
	w.write("pipeline.hcl", []byte(vit))
	rec, err = w.run(true)
	if err == nil {
		t.Fatal("a vit started from a cnn ran")
	}
	if res := rec.Result("train.tuned"); res == nil || !strings.Contains(res.Error, "init_from: ") || !strings.Contains(res.Error, "holds a cnn, not a vit") {
		t.Errorf("a vit from a cnn: %+v", res)
	}

	// With init_mismatch = "seed", the vit trains from the seed, saying so: the same weights
	// as a vit without init_from, and no init_from in metrics.json.
	w.write("pipeline.hcl", []byte(strings.Replace(vit, "init_from     = stage.train.base.saved_model", "init_from     = stage.train.base.saved_model\n  init_mismatch = \"seed\"", 1)))
	rec, _ = w.run(false)
	log, _ = os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if !strings.Contains(string(log), `holds a cnn, and this stage trains a vit: training from the seed (init_mismatch = "seed")`) {
		t.Errorf("run.log does not say the vit trained from the seed:\n%s", log)
	}
	var seeded Metrics
	readJSONFile(t, w.output(rec, "train.tuned", "metrics.json"), &seeded)
	if _, ok := seeded.Hyperparameters["init_from"]; ok {
		t.Errorf("a training from the seed records init_from: %v", seeded.Hyperparameters)
	}
	weights := func(rec *pipeline.RunRecord) string {
		b, err := os.ReadFile(filepath.Join(w.output(rec, "train.tuned", "saved_model"), "variables", "variables.data-00000-of-00001"))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x", b)
	}
	fromSeed := weights(rec)
	w.write("pipeline.hcl", []byte(strings.Replace(vit, "init_from     = stage.train.base.saved_model", "", 1)))
	rec, _ = w.run(false)
	if weights(rec) != fromSeed {
		t.Error("the vit trained from the seed after a cnn at init_from differs from one without init_from")
	}
}

// A training whose init_from is a folder holding no model fails naming the folder as written
// and saying it holds no model exported by pipeline, as validate warns, not the SavedModel
// folder looked in inside it.
func TestTrainingFromAFolderWithoutAModelNamesIt(t *testing.T) {
	w := newWS(t, smallSplitHCL+`
stage "train" "tuned" {
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 1
  batch_size    = 16
  options       = { channels = [4], pool = 2, dense = 8 }
  init_from     = "raw/circle"
}
`)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{})
	writeSynthetic(t, w, 30, []string{"circle", "square"})
	rec, err := w.run(true)
	if err == nil {
		t.Fatal("a training from a folder of images ran")
	}
	want := `init_from "raw/circle": it holds no model exported by pipeline (no model.json)`
	if res := rec.Result("train.tuned"); res == nil || res.Error != want {
		t.Errorf("a training from a folder of images: %+v, want the error %q", res, want)
	}
}

// The log line says what a training took from its model: a warning when most of the network
// starts from the seed, the new classes and the model's classes it lacks, and the tensors
// that start fresh (not the classifier's, when no class is shared: that is said once).
func TestDescribeWarmStart(t *testing.T) {
	head := graphs.FreshVar{Name: "model/head/kernel", Shape: []int64{8, 3}, From: []int64{8, 3}}
	conv := graphs.FreshVar{Name: "model/conv1/kernel", Shape: []int64{3, 3, 1, 4}, From: []int64{3, 3, 1, 8}}
	for _, c := range []struct {
		ws      graphs.WarmStart
		classes int
		want    []string
		not     []string
	}{
		{graphs.WarmStart{Loaded: []string{"a", "b", "c"}, NewClasses: []string{"Ring"}, GoneClasses: []string{"T-shirt"}}, 3,
			[]string{": 3 of 3 tensors; 1 class new to it (Ring): its classifier weights start fresh; not in this training set: T-shirt"}, []string{"warning", "fresh (other"}},
		{graphs.WarmStart{Loaded: []string{"a"}, Fresh: []graphs.FreshVar{conv, head}, NewClasses: []string{"p", "q", "r"}}, 3,
			[]string{"warning: starting from", "1 of 3 tensors (most of this network", "none of these classes", "fresh (other shape or absent): model/conv1/kernel [3 3 1 4], the model's [3 3 1 8]"}, []string{"model/head"}},
		{graphs.WarmStart{Loaded: []string{"a", "b"}, NewClasses: []string{"x", "y"}}, 5,
			[]string{"2 classes new to it (x, y): their classifier weights"}, nil},
	} {
		got := describeWarmStart("m", c.ws, c.classes)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(got, n) {
				t.Errorf("%q has %q", got, n)
			}
		}
	}
}

// validate warns of an init_from folder that holds no model exported by pipeline, or a model
// of another architecture than the stage trains, naming the instance of a for_each stage it
// is about; a model of its own is fine.
func TestValidateWarnsOfAnUnusableInitFrom(t *testing.T) {
	const hcl = `
stage "train" "model" {
  for_each     = toset(["cnn", "vgg19", "vit"])
  architecture = each.key
  train        = "data/train"
  val          = "data/val"
  init_from    = "champion"
}

stage "train" "empty" {
  architecture = "cnn"
  train        = "data/train"
  val          = "data/val"
  init_from    = "empty"
}
`
	w := newWS(t, hcl)
	w.reg, _ = pipeline.NewRegistry(Train{})
	w.write("champion/saved_model/"+graphs.ModelInfoFile, []byte(`{"spec": {"architecture": "cnn"}, "classes": ["a", "b"]}`))
	w.write("champion/model.json", []byte(`{"id": "r1-cnn"}`))
	w.write("champion/saved_model/saved_model.pb", []byte("x"))
	w.write("empty/readme.txt", []byte("nothing here"))
	var got []string
	for _, d := range w.engine().Workflow.CheckSources(w.dir) {
		if d.Summary == "Unusable path" {
			got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Detail))
		}
	}
	want := []string{
		`7: In train.model[vgg19]: init_from "champion": it holds a cnn, and this stage trains a vgg19: the stage will fail when it runs unless that changes first.`,
		`7: In train.model[vit]: init_from "champion": it holds a cnn, and this stage trains a vit: the stage will fail when it runs unless that changes first.`,
		`14: init_from "empty": it holds no model exported by pipeline (no model.json): the stage will fail when it runs unless that changes first.`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate's warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// With init_mismatch = "seed", a model of another architecture is no problem: those
	// trainings start from the seed.
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, `init_from    = "champion"`, `init_from    = "champion"
  init_mismatch = "seed"`, 1)))
	got = nil
	for _, d := range w.engine().Workflow.CheckSources(w.dir) {
		if d.Summary == "Unusable path" {
			got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Detail))
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], `15: init_from "empty": it holds no model`) {
		t.Errorf("validate's warnings with init_mismatch = \"seed\":\n%s", strings.Join(got, "\n"))
	}
}

// validate warns of a cnn's or vgg19's pool larger than the grid its max-pools leave of the
// pipeline's images (the dense layer's inputs multiply for nothing), not of one that fits.
func TestValidateWarnsOfAPoolLargerThanTheFeatureMap(t *testing.T) {
	const hcl = `
pipeline {
  image_size = 64
}

stage "train" "big" {
  architecture = "cnn"
  train        = "data/train"
  val          = "data/val"
  options      = { channels = [8, 16], pool = 100 }
}

stage "train" "fits" {
  architecture = "cnn"
  train        = "data/train"
  val          = "data/val"
  options      = { channels = [8, 16, 32], pool = 8 }
}

stage "train" "vgg" {
  architecture = "vgg19"
  train        = "data/train"
  val          = "data/val"
  options      = { width = 0.25 }
}
`
	w := newWS(t, hcl)
	w.reg, _ = pipeline.NewRegistry(Train{})
	diags := w.diagnostics()
	var got []string
	for _, d := range diags {
		if d.Summary == "Pool larger than the feature map" {
			got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Detail))
		}
	}
	want := []string{
		"10: A cnn pool of 100 is larger than the 16×16 grid its 2 blocks leave of the pipeline's 64-pixel images: the pooling repeats values, and the dense layer takes 100×100×16 = 160000 inputs where 16×16×16 = 4096 hold the same information (more weights, slower steps). Choose a pool of at most 16, unless its split stores larger images.",
		"24: A vgg19 pool of 7 is larger than the 2×2 grid its 5 blocks leave of the pipeline's 64-pixel images: the pooling repeats values, and the dense layer takes 7×7×128 = 6272 inputs where 2×2×128 = 512 hold the same information (more weights, slower steps). Choose a pool of at most 2, unless its split stores larger images.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%q\nwant\n%q", got, want)
	}
}
