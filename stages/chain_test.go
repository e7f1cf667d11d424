package stages

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"pipeline/graphs"
	"pipeline/pipeline"
)

const chainHCL = smallSplitHCL + `
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 2
}

stage "train" "model" {
  for_each      = toset(["cnn", "vgg19", "vit"])
  architecture  = each.key
  train         = stage.augment.balanced.output
  val           = stage.split.main.val
  epochs        = 4
  batch_size    = 16
  learning_rate = 2e-3
  optimizer     = "adam"
  options = {
    cnn   = { channels = [8, 16], pool = 2, dense = 32 }
    vgg19 = { width = 0.125, classifier = 32, pool = 1, batch_norm = true, dropout = 0.1 }
    vit   = { patch = 4, dim = 32, depth = 2, heads = 2, mlp_ratio = 2, dropout = 0 }
  }[each.key]
}

stage "evaluate" "test" {
  for_each = stage.train.model
  model    = each.value.saved_model
  data     = stage.split.main.test
}

stage "select" "best" {
  candidates = stage.evaluate.test
  metric     = "test_f1_macro"
}
`

// writeSynthetic writes graphs.Synthetic images as PNG files into raw/<class>/.
func writeSynthetic(t *testing.T, w *ws, n int, classes []string) {
	t.Helper()
	b := graphs.Synthetic(n, int64(len(classes)), 16, 16, 3, 11)
	for i := 0; i < n; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for p := 0; p < 256; p++ {
			for c := 0; c < 3; c++ {
				img.Pix[p*4+c] = uint8(b.Images[i*768+p*3+c])
			}
			img.Pix[p*4+3] = 255
		}
		f := filepath.Join(w.dir, "raw", classes[b.Labels[i]], fmt.Sprintf("%03d.png", i))
		os.MkdirAll(filepath.Dir(f), 0o755)
		data, err := (storedFormat{format: FormatPNG, compression: CompressionFast}).encode(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWholeChain runs split → augment → train ×3 → evaluate ×3 → select on a small
// synthetic dataset, then again with nothing changed.
func TestWholeChain(t *testing.T) {
	w := newWS(t, chainHCL)
	w.reg, _ = pipeline.NewRegistry(Split{}, Augment{}, Train{}, Evaluate{}, Select{})
	writeSynthetic(t, w, 240, []string{"circle", "square", "stripes", "dots", "cross", "ring"})
	rec, _ := w.run(false)
	for _, arch := range []string{"cnn", "vgg19", "vit"} {
		dir := filepath.Join(rec.Dir(), arch)
		for _, f := range []string{"saved_model/saved_model.pb", "saved_model/variables/variables.index", "saved_model/model.json",
			"metrics.json", "history.json", "metrics.png", "evaluation/metrics.json", "evaluation/confusion_matrix.png",
			"evaluation/confusion_matrix.json", "evaluation/misclassified.json"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", arch, err)
			}
		}
		var m map[string]any
		readJSONFile(t, filepath.Join(dir, "metrics.json"), &m)
		for _, k := range []string{"val_f1", "val_loss", "val_top1", "val_top3", "val_top5", "train_f1", "train_loss", "best_epoch", "epochs_run", "params", "normalization_mean", "normalization_std"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s metrics.json lacks %s", arch, k)
			}
		}
		// The speed is in the run record, not the output, which is a function of its inputs.
		if st := rec.Result("train.model[" + arch + "]"); st.Stats[StatTrainImagesPerS] <= 0 || st.Stats[StatTrainSeconds] <= 0 {
			t.Errorf("%s stats: %v", arch, st.Stats)
		}
		for _, f := range []string{"metrics.json", "history.json"} {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); strings.Contains(string(b), "images_per_s") || strings.Contains(string(b), "seconds") {
				t.Errorf("%s %s holds timings", arch, f)
			}
		}
		var ev Evaluation
		readJSONFile(t, filepath.Join(dir, "evaluation/metrics.json"), &ev)
		if ev.TestTop1 < 0.5 {
			t.Errorf("%s: test top-1 %.2f on an easy problem", arch, ev.TestTop1)
		}
	}
	sel := rec.Result("select.best")
	if sel == nil || !strings.HasPrefix(sel.Effect, "promoted ") || !regexp.MustCompile(`^[a-z0-9]+ [01]\.\d{4}, promoted$`).MatchString(sel.Summary) {
		t.Fatalf("select: %+v", sel)
	}
	card, err := ReadCard(filepath.Join(w.dir, "models/final_models"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := graphs.LoadModel(filepath.Join(w.dir, "models/final_models/saved_model"), 0); err != nil {
		t.Fatalf("promoted model does not load: %v", err)
	}
	if card.Run != rec.ID || len(card.Classes) != 6 {
		t.Fatalf("card %+v", card)
	}

	// Nothing changed: nothing trains, and the champion stays.
	rec2, _ := w.run(false)
	for _, s := range rec2.Stages {
		if s.Status != pipeline.StatusCached {
			t.Errorf("second run: %s %s", s.Addr, s.Status)
		}
	}
	if sel := rec2.Result("select.best"); !strings.Contains(sel.Effect, "already the champion") || sel.Summary != strings.Replace(rec.Result("select.best").Summary, "promoted", "champion", 1) {
		t.Errorf("second run's select: %q (%q)", sel.Effect, sel.Summary)
	}
	b, _ := os.ReadFile(filepath.Join(rec2.Dir(), "run.json"))
	var rj map[string]any
	json.Unmarshal(b, &rj)
	if rj["status"] != "succeeded" {
		t.Errorf("run.json status %v", rj["status"])
	}
}

// Two trainings of one architecture, keyed by their settings, each get a folder of their own
// with their evaluation beside them, the winner is marked in the table, and no stored output
// is written over (they once shared cnn/, and copying one's files onto the other's hard links
// truncated stored split images).
func TestTwoTrainingsOfOneArchitecture(t *testing.T) {
	src := fmt.Sprintf(twoCNNsHCL, 2) + `
stage "select" "best" {
  candidates = stage.evaluate.test
  metric     = "test_f1_macro"
}
`
	w := newWS(t, src)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{}, Evaluate{}, Select{})
	writeSynthetic(t, w, 60, []string{"circle", "square", "stripes"})
	rec, _ := w.run(false)
	for _, key := range []string{"fast", "slow"} {
		for _, f := range []string{"saved_model/saved_model.pb", "metrics.json", "evaluation/metrics.json"} {
			if _, err := os.Stat(filepath.Join(rec.Dir(), "cnn."+key, f)); err != nil {
				t.Errorf("cnn.%s: %v", key, err)
			}
		}
		var m, stored map[string]any
		readJSONFile(t, filepath.Join(rec.Dir(), "cnn."+key, "metrics.json"), &m)
		readJSONFile(t, filepath.Join(w.dir, pipeline.ObjectRel(rec.Result("train.model["+key+"]").Output), "metrics.json"), &stored)
		if fmt.Sprint(m) != fmt.Sprint(stored) {
			t.Errorf("cnn.%s's metrics.json is not its stored output's", key)
		}
	}
	s := Summarize(rec)
	marked := 0
	for _, r := range s.Rows {
		if r.Winner {
			marked++
		}
	}
	if len(s.Rows) != 2 || marked != 1 {
		t.Fatalf("table rows %+v, %d marked", s.Rows, marked)
	}
	// Every stored output is as published: a second run finds nothing damaged.
	rec2, _ := w.run(false)
	for _, st := range rec2.Stages {
		if st.Status != pipeline.StatusCached {
			t.Errorf("second run: %s %s %v", st.Addr, st.Status, st.Reasons)
		}
	}
	// Retrained, a model comes out the same (same data, settings and seed): its output is
	// the same object, so its evaluation stays cached and select keeps its champion.
	cfg, diags := pipeline.LoadFile(filepath.Join(w.dir, "pipeline.hcl"), w.reg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wf, diags := pipeline.Build(cfg, w.reg, nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st, err := pipeline.OpenStore(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	rec3, err := (&pipeline.Engine{Workflow: wf, Store: st}).Run(context.Background(), pipeline.RunOptions{
		RunsDir:   filepath.Join(w.dir, "models"),
		Selection: pipeline.Selection{Targets: []string{"train.model[fast]"}, Force: true, Downstream: true}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rec.Result("train.model[fast]"), rec3.Result("train.model[fast]"); b.Status != pipeline.StatusRan || a.Output != b.Output {
		t.Errorf("retrained: %s, output %s, was %s", b.Status, b.Output, a.Output)
	}
	if ev := rec3.Result("evaluate.test[fast]"); ev.Status != pipeline.StatusCached {
		t.Errorf("the evaluation of the retrained model: %s %v", ev.Status, ev.Reasons)
	}
	if sel := rec3.Result("select.best"); !strings.Contains(sel.Effect, "already the champion") {
		t.Errorf("select after the retrain: %q", sel.Effect)
	}
	// A winner the min_value gate refuses (1: a perfect score, which these models are far from)
	// is still the ranking's winner in the table; the selection line says it was not promoted.
	w.write("pipeline.hcl", []byte(strings.Replace(src, `metric     = "test_f1_macro"`, "metric     = \"test_f1_macro\"\n  min_value  = 1", 1)))
	rec4, _ := w.run(false)
	if sel := rec4.Result("select.best"); !strings.Contains(sel.Effect, "not promoted") || !strings.HasSuffix(sel.Summary, ", not promoted") {
		t.Fatalf("select with an impossible min_value: %q (%q)", sel.Effect, sel.Summary)
	}
	marked = 0
	for _, r := range Summarize(rec4).Rows {
		if r.Winner {
			marked++
		}
	}
	if marked != 1 {
		t.Errorf("%d rows marked as the winner the gate refused", marked)
	}
}

// championHCL splits raw, trains a small cnn on it, evaluates it and selects it: the tests
// of champions change it.
const championHCL = smallSplitHCL + `
stage "train" "model" {
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = 8
  batch_size    = 16
  learning_rate = 1e-2
  options       = { channels = [4], pool = 2, dense = 8 }
}

stage "evaluate" "test" {
  model = stage.train.model.saved_model
  data  = stage.split.main.test
}

stage "select" "best" {
  candidates = stage.evaluate.test
  metric     = "test_f1_macro"
}
`

// A champion's score on an earlier test set is not compared with a candidate's on another:
// the champion is evaluated on the run's test set (once, kept in its folder), and a champion
// of other classes is not compared at all.
func TestChampionIsScoredOnTheRunsTestSet(t *testing.T) {
	const src = championHCL
	w := newWS(t, src)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{}, Evaluate{}, Select{})
	classes := []string{"circle", "square", "stripes"}
	writeSynthetic(t, w, 60, classes)
	rec, _ := w.run(false)
	if eff := rec.Result("select.best").Effect; !strings.Contains(eff, "no champion yet") {
		t.Fatalf("first run's select: %q", eff)
	}
	champDir, err := ChampionDir(filepath.Join(w.dir, "models/final_models"))
	if err != nil {
		t.Fatal(err)
	}
	card, err := ReadCard(champDir)
	if err != nil {
		t.Fatal(err)
	}
	var ev Evaluation
	readJSONFile(t, w.output(rec, "evaluate.test", "evaluation/metrics.json"), &ev)
	if card.TestSet == "" || card.TestSet != ev.TestSet {
		t.Fatalf("card's test set %q, evaluation's %q", card.TestSet, ev.TestSet)
	}

	// More photos: a new test set. The champion is scored on it, as evaluate would, and
	// (the new model barely trained) stays.
	writeSynthetic(t, w, 90, classes)
	w.write("pipeline.hcl", []byte(strings.Replace(strings.Replace(src, "learning_rate = 1e-2", "learning_rate = 1e-7", 1), "epochs        = 8", "epochs        = 1", 1)))
	rec, _ = w.run(false)
	var ev2 Evaluation
	readJSONFile(t, w.output(rec, "evaluate.test", "evaluation/metrics.json"), &ev2)
	if ev2.TestSet == ev.TestSet {
		t.Fatal("the test set did not change")
	}
	model, err := graphs.LoadModel(filepath.Join(champDir, "saved_model"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := evaluateModel(context.Background(), model, filepath.Join(w.dir, ev2.Data), w.dir, 64, nopProgress{}, nil, false)
	model.Close()
	if err != nil {
		t.Fatal(err)
	}
	eff := rec.Result("select.best").Effect
	on := fmt.Sprintf("%.4f on this run's test set, %.4f on the one it was promoted on", float64(want.ev.TestF1Macro), float64(card.Metrics["test_f1_macro"]))
	if !strings.HasPrefix(eff, "not promoted: ") || !strings.Contains(eff, on) {
		t.Fatalf("second run's select: %q, want the champion's %s", eff, on)
	}
	var scores map[string]map[string]metric
	readJSONFile(t, filepath.Join(champDir, championScores), &scores)
	// kept by test set and the photos left out (none here: the split keeps its sets as
	// photos come)
	var kept string
	for k := range scores {
		if strings.HasPrefix(k, ev2.TestSet+" less ") {
			kept = k
		}
	}
	if len(scores) != 1 || scores[kept]["test_f1_macro"] != want.ev.TestF1Macro || scores[kept][leftOutKey] != 0 || int(scores[kept][comparedKey]) != ev2.Images {
		t.Fatalf("kept scores %v", scores)
	}
	// Kept: a run that changes nothing reads it instead of evaluating again.
	scores[kept]["test_f1_macro"] = 0.123456
	b, _ := json.Marshal(scores)
	w.write(filepath.Join(strings.TrimPrefix(champDir, w.dir), championScores), b)
	rec, _ = w.run(false)
	if eff := rec.Result("select.best").Effect; !strings.Contains(eff, "0.1235 on this run's test set") {
		t.Fatalf("third run's select: %q, want the kept score", eff)
	}

	// A winner's test set no longer in the store (an evaluation cached across a republished
	// split, the old object collected since): the champion cannot be scored there.
	gone := Candidate{Name: "cnn", Data: "data/intermediate/objects/0000/test", TestSet: "another"}
	if _, err := scoreChampion(context.Background(), &pipeline.Job{Workspace: w.dir}, champDir, gone, &sawLists{}); !errors.Is(err, errTestSetGone) {
		t.Fatalf("scoring on a test set that is gone: %v", err)
	}
	// The same test set as an output of this run's stages (the split republished, the
	// evaluation cached naming the old object): scored there.
	var log strings.Builder
	moved := Candidate{Name: "cnn", Data: gone.Data, TestSet: ev2.TestSet, Evaluation: filepath.Dir(ev2.Data)}
	job := &pipeline.Job{Workspace: w.dir, Log: &log, Progress: nopProgress{},
		RunOutputs: map[string]map[string]string{"split.main": {"train": strings.TrimSuffix(ev2.Data, "test") + "train", "test": ev2.Data}}}
	os.Remove(filepath.Join(champDir, championScores))
	if c, err := scoreChampion(context.Background(), job, champDir, moved, &sawLists{}); err != nil || c.champ["test_f1_macro"] != want.ev.TestF1Macro {
		t.Fatalf("scoring on the test set found among the run's outputs: %v, %+v (log %s)", err, c, log.String())
	}

	// A class renamed: the champion knows other classes and is not compared.
	if err := os.Rename(filepath.Join(w.dir, "raw", "stripes"), filepath.Join(w.dir, "raw", "lines")); err != nil {
		t.Fatal(err)
	}
	rec, _ = w.run(false)
	hand := fmt.Sprintf("pipeline promote %s/cnn makes it the champion by hand", rec.ID)
	if eff := rec.Result("select.best").Effect; !strings.HasPrefix(eff, "not promoted: ") ||
		!strings.Contains(eff, `on this run's test set: it adds "lines"; drops "stripes"`) || !strings.Contains(eff, hand) {
		t.Fatalf("after renaming a class, select: %q", eff)
	}
	// As the run says, by hand.
	promoted, _, _, err := PromoteFromRun(filepath.Join(w.dir, "models/final_models"), rec.Dir(), "cnn")
	if err != nil || promoted.Run != rec.ID || !slices.Contains(promoted.Classes, "lines") {
		t.Fatalf("promoting by hand: %v %+v", err, promoted)
	}

	// A new class: the champion cannot be scored on it, and the winner, which only adds a
	// class, is promoted.
	for i := range 12 {
		w.write(fmt.Sprintf("raw/zigzag/%d.png", i), randomPNG(9, uint64(i), 16, 16))
	}
	rec, _ = w.run(false)
	if eff := rec.Result("select.best").Effect; !strings.HasPrefix(eff, "promoted ") || !strings.Contains(eff, `cannot be compared on this run's test set: it lacks "zigzag"`) {
		t.Fatalf("after adding a class, select: %q", eff)
	}

	// A new class that sorts before some of the champion's gives them other ids: a client
	// that keeps class ids would misread them, so a person decides.
	for i := range 12 {
		w.write(fmt.Sprintf("raw/dots/%d.png", i), randomPNG(11, uint64(i), 16, 16))
	}
	rec, _ = w.run(false)
	sel := rec.Result("select.best")
	wantEffect := `it adds "dots"; the ids of 3 classes move ("lines" 1 → 2, "square" 2 → 3, "zigzag" 3 → 4): a client that keeps class ids would read them as other classes`
	if !strings.HasPrefix(sel.Effect, "not promoted: ") || !strings.Contains(sel.Effect, wantEffect) ||
		!strings.Contains(sel.Effect, fmt.Sprintf("pipeline promote %s/cnn makes it the champion by hand", rec.ID)) || !strings.HasSuffix(sel.Summary, ", not promoted") {
		t.Fatalf("after adding a class before others, select: %q (%q)", sel.Effect, sel.Summary)
	}
	// class_ids_may_move = true promotes it, saying which ids move.
	w.write("pipeline.hcl", []byte(strings.Replace(src, `metric     = "test_f1_macro"`, "metric     = \"test_f1_macro\"\n  class_ids_may_move = true", 1)))
	rec, _ = w.run(false)
	sel = rec.Result("select.best")
	if !strings.HasPrefix(sel.Effect, "promoted cnn") || !strings.Contains(sel.Effect, `it adds "dots"; the ids of 3 classes move ("lines" 1 → 2, "square" 2 → 3, "zigzag" 3 → 4) (class_ids_may_move)`) {
		t.Fatalf("with class_ids_may_move = true, select: %q", sel.Effect)
	}
	if _, _, err := Rollback(filepath.Join(w.dir, "models/final_models")); err != nil {
		t.Fatal(err)
	}
	// must_beat_champion = false promotes it, saying what changes and on which test set the
	// champion's score was.
	// (Another model than the one rolled back: a rolled-back model is not promoted again.)
	mustBeat := strings.Replace(src, `metric     = "test_f1_macro"`, "metric     = \"test_f1_macro\"\n  must_beat_champion = false", 1)
	w.write("pipeline.hcl", []byte(strings.Replace(mustBeat, "epochs        = 8", "epochs        = 9", 1)))
	rec, _ = w.run(false)
	sel = rec.Result("select.best")
	for _, want := range []string{"promoted cnn", `on the test set it was promoted on, not this run's; it adds "dots"; the ids of 3 classes move`, "must_beat_champion = false promotes it whatever its classes"} {
		if !strings.Contains(sel.Effect, want) {
			t.Errorf("with must_beat_champion = false, select: %q, want %q in it", sel.Effect, want)
		}
	}
}

// nopProgress reports nothing.
type nopProgress struct{}

func (nopProgress) Start(string, int64) {}
func (nopProgress) Add(int64)           {}
func (nopProgress) Status(string)       {}

// A champion trained on photos that a split drawn afresh has put in the test set would score
// too well there: select compares it with the winner on the test photos it never saw, and
// an evaluation of it there says how many it saw.
func TestChampionIsComparedOnTestImagesItNeverSaw(t *testing.T) {
	const src = championHCL
	w := newWS(t, src)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{}, Evaluate{}, Select{})
	writeSynthetic(t, w, 1000, []string{"circle", "square", "stripes"})
	rec, _ := w.run(false)
	champDir, err := ChampionDir(filepath.Join(w.dir, "models/final_models"))
	if err != nil {
		t.Fatal(err)
	}
	// The model lists the originals of its training and validation sets, and no test photo.
	seen, err := readTrainedOn(SavedModelOf(champDir))
	if err != nil {
		t.Fatal(err)
	}
	digests := func(set string) []string {
		t.Helper()
		m, err := ReadManifest(w.output(rec, "split.main", set))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range m.Images {
			out = append(out, e.Digest)
		}
		return out
	}
	trained := append(digests(TrainSet), digests(ValSet)...)
	slices.Sort(trained)
	if len(seen) != len(slices.Compact(trained)) || !seen.has(trained[0]) || !seen.has(trained[len(trained)-1]) {
		t.Fatalf("%s lists %d photos, want the %d of the train and val sets", TrainedOnFile, len(seen), len(trained))
	}
	for _, d := range digests(TestSet) {
		if seen.has(d) {
			t.Fatalf("%s lists the test photo %s", TrainedOnFile, d)
		}
	}

	// The sets drawn afresh, and a model that barely trains: the champion saw most of the new
	// test set.
	redrawn := strings.Replace(src, "  test   = 0.2\n", "  test   = 0.2\n  seed   = 99\n", 1)
	redrawn = strings.Replace(strings.Replace(redrawn, "learning_rate = 1e-2", "learning_rate = 1e-7", 1), "epochs        = 8", "epochs        = 1", 1)
	w.write("pipeline.hcl", []byte(redrawn))
	rec, _ = w.run(false)
	test := digests(TestSet)
	var unseen int
	for _, d := range test {
		if !seen.has(d) {
			unseen++
		}
	}
	if unseen == 0 || unseen == len(test) {
		t.Fatalf("the redrawn test set has %d of %d photos the champion did not see: the test cannot tell", unseen, len(test))
	}
	var ev Evaluation
	readJSONFile(t, w.output(rec, "evaluate.test", "evaluation/metrics.json"), &ev)
	if ev.SeenInTraining != 0 {
		t.Fatalf("the new model saw %d of its own test photos", ev.SeenInTraining)
	}
	model, err := graphs.LoadModel(SavedModelOf(champDir), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	data := filepath.Join(w.dir, ev.Data)
	champ, err := evaluateModel(context.Background(), model, data, w.dir, 64, nopProgress{}, seen, true)
	if err != nil || champ.ev.Images != unseen || champ.ev.SeenInTraining != len(test)-unseen || champ.ev.TestSet != ev.TestSet {
		t.Fatalf("the champion on the photos it did not see: %v, %+v", err, champ.ev)
	}
	all := slices.Clone(seen)
	for _, d := range test {
		var b [32]byte
		hex.Decode(b[:], []byte(d))
		all = append(all, b)
	}
	slices.SortFunc(all, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	if _, err := evaluateModel(context.Background(), model, data, w.dir, 64, nopProgress{}, slices.Compact(all), true); !errors.Is(err, errNoneUnseen) {
		t.Fatalf("a model trained on every test photo: %v", err)
	}
	eff := rec.Result("select.best").Effect
	want := fmt.Sprintf("%.4f on the %d of this run's %d test images neither model was trained on, where cnn has ", float64(champ.ev.TestF1Macro), unseen, len(test))
	if !strings.Contains(eff, want) {
		t.Fatalf("select: %q, want %q in it", eff, want)
	}
	var scores map[string]map[string]metric
	readJSONFile(t, filepath.Join(champDir, championScores), &scores)
	var champKey, winnerKey string
	for k := range scores {
		switch {
		case strings.HasPrefix(k, ev.TestSet+" less "):
			champKey = k
		case strings.HasPrefix(k, "winner "):
			winnerKey = k
		}
	}
	if len(scores) != 2 || scores[champKey]["test_f1_macro"] != champ.ev.TestF1Macro || int(scores[champKey][comparedKey]) != unseen || scores[winnerKey] == nil {
		t.Fatalf("kept scores %v", scores)
	}
	// Too few photos of a class left to compare on (fewer than minComparedPerClass): none.
	saw := readSawLists(&pipeline.Job{Workspace: w.dir}, champDir, Candidate{Model: ev.Model})
	m, err := ReadManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, e := range m.Images {
		if e.Label == 1 && !saw.union.has(e.Digest) {
			if left++; left > 2 { // all but two of class 1's photos seen
				var d [32]byte
				hex.Decode(d[:], []byte(e.Digest))
				saw.union = append(saw.union, d)
			}
		}
	}
	slices.SortFunc(saw.union, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	few := Candidate{Name: "cnn", Model: ev.Model, Data: ev.Data, TestSet: ev.TestSet}
	if c, err := scoreChampion(context.Background(), &pipeline.Job{Workspace: w.dir, Log: io.Discard, Progress: nopProgress{}}, champDir, few, saw); !errors.Is(err, errTooFewUnseen) || c.short != 1 || c.shortLeft != 2 {
		t.Fatalf("with too few photos of a class left: %v, %+v", err, c)
	}
	rec, _ = w.run(false) // the kept score, and the winner scored again on the same photos
	redrawnRun := rec
	if eff2 := rec.Result("select.best").Effect; eff2 != eff {
		t.Fatalf("select again: %q, before %q", eff2, eff)
	}

	// The champion evaluated on the new test set says how many of its photos it saw; so does
	// a model fine-tuned from it on the new split, whose list holds the champion's, and the
	// run's report.
	w.write("pipeline.hcl", []byte(strings.Replace(redrawn, "candidates = stage.evaluate.test", "candidates = { model = stage.evaluate.test, tuned = stage.evaluate.tuned }", 1)+`
stage "evaluate" "champion" {
  model = "models/final_models/saved_model"
  data  = stage.split.main.test
}

stage "train" "tuned" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 1
  batch_size   = 16
  options      = { channels = [4], pool = 2, dense = 8 }
  init_from    = "models/final_models/saved_model"
}

stage "evaluate" "tuned" {
  model = stage.train.tuned.saved_model
  data  = stage.split.main.test
}
`))
	rec, _ = w.run(false)
	var evc, evt Evaluation
	readJSONFile(t, w.output(rec, "evaluate.champion", "evaluation/metrics.json"), &evc)
	readJSONFile(t, w.output(rec, "evaluate.tuned", "evaluation/metrics.json"), &evt)
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if evc.SeenInTraining != len(test)-unseen || evc.Images != len(test) ||
		!strings.Contains(string(log), fmt.Sprintf("was trained on %d of the %d test images", len(test)-unseen, len(test))) {
		t.Fatalf("the champion's evaluation: seen %d of %d; log:\n%s", evc.SeenInTraining, evc.Images, log)
	}
	tuned, err := readTrainedOn(w.output(rec, "train.tuned", "saved_model"))
	if err != nil || len(tuned) <= len(seen) || !tuned.has(trained[0]) || evt.SeenInTraining != len(test)-unseen {
		t.Fatalf("the fine-tuned model: %v, lists %d photos (the champion %d), saw %d test images", err, len(tuned), len(seen), evt.SeenInTraining)
	}
	page, err := Summarize(rec).WriteHTML()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(page); !strings.Contains(string(b), fmt.Sprintf("was trained on %d of its %d test images", evt.SeenInTraining, evt.Images)) {
		t.Fatalf("report.html does not warn of the fine-tuned model's test images")
	}
	// Select ranks it first (its score flattered), and says so.
	if sel := rec.Result("select.best"); !strings.HasPrefix(sel.Summary, fmt.Sprintf("tuned %.4f (trained on %d of its test images), ", float64(evt.TestF1Macro), evt.SeenInTraining)) ||
		!strings.HasPrefix(sel.Effect, fmt.Sprintf("warning: tuned was trained on %d of its test images", evt.SeenInTraining)) {
		t.Fatalf("select with the fine-tuned model: %q (%q)", sel.Effect, sel.Summary)
	}
	// The champion's kept scores hold that winner's, not the earlier winner's any more.
	scores = nil
	readJSONFile(t, filepath.Join(champDir, championScores), &scores)
	var winners []string
	for k := range scores {
		if strings.HasPrefix(k, "winner ") {
			winners = append(winners, k)
		}
	}
	if len(winners) != 1 || !strings.HasPrefix(winners[0], "winner "+evt.Model+" on ") {
		t.Fatalf("kept winners' scores %v, want the fine-tuned model's alone", winners)
	}

	// Promoted by hand from the run that trained it, then from a run that found it cached:
	// one promotion, under its first id.
	final := filepath.Join(w.dir, "models/final_models")
	first, _, _, err := PromoteFromRun(final, redrawnRun.Dir(), "cnn")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Rollback(final); err != nil {
		t.Fatal(err)
	}
	again, _, _, err := PromoteFromRun(final, rec.Dir(), "train.model")
	promotions, _, _ := History(final)
	if err != nil || again.ID != first.ID || slices.Contains(promotions, sanitizeID(rec.ID+"-train.model")) {
		t.Fatalf("promoting a model found cached: %v, %+v (first %s), history %v", err, again, first.ID, promotions)
	}
}

// A run with two select stages summarises both: each one's note, in address order whichever
// ends last, and each one's winner marked (the summary once kept the note and winner of the
// select stage that happened to finish last, so -q did not say that the other promoted).
func TestSummaryGivesEverySelection(t *testing.T) {
	src := fmt.Sprintf(twoCNNsHCL, 1) + `
stage "select" "b" {
  candidates = { slow = stage.evaluate.test["slow"].evaluation }
  promote_to = "models/slow_final"
}

stage "select" "a" {
  candidates = { fast = stage.evaluate.test["fast"].evaluation }
}
`
	w := newWS(t, src)
	w.reg, _ = pipeline.NewRegistry(Split{}, Train{}, Evaluate{}, Select{})
	writeSynthetic(t, w, 60, []string{"circle", "square", "stripes"})
	rec, _ := w.run(false)
	s := Summarize(rec)
	for _, r := range s.Rows {
		if !r.Winner {
			t.Errorf("%s, each select stage's winner, is not marked", r.Name)
		}
	}
	a, b := rec.Result("select.a").Effect, rec.Result("select.b").Effect
	if want := "select.a: " + a + "; select.b: " + b; a == "" || b == "" || s.Decision != want {
		t.Errorf("decision %q\nwant %q", s.Decision, want)
	}
	var table strings.Builder
	s.WriteTable(&table)
	if !strings.Contains(table.String(), "selection: select.a: promoted fast") || !strings.Contains(table.String(), "select.b: promoted slow") {
		t.Errorf("table:\n%s", table.String())
	}
}

// twoCNNsHCL is a split, two trainings of the CNN (for_each fast and slow learning rates, %d
// epochs each) and their evaluations, for the select stages a test adds.
const twoCNNsHCL = smallSplitHCL + `
stage "train" "model" {
  for_each      = { fast = 3e-3, slow = 1e-5 }
  architecture  = "cnn"
  train         = stage.split.main.train
  val           = stage.split.main.val
  epochs        = %d
  batch_size    = 16
  learning_rate = each.value
  options       = { channels = [4], pool = 2, dense = 8 }
}

stage "evaluate" "test" {
  for_each = stage.train.model
  model    = each.value.saved_model
  data     = stage.split.main.test
}

`
