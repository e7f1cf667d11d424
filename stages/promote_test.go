package stages

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
	"pipeline/pipeline/regular/regulartest"
)

// modelsWorkspace returns a workspace with a small model per arch in m1, m2, … (fakeModel)
// and the path of its promotion folder, models/final_models.
func modelsWorkspace(t *testing.T, archs ...string) (ws, final string) {
	t.Helper()
	ws = t.TempDir()
	for i, arch := range archs {
		fakeModel(t, filepath.Join(ws, fmt.Sprintf("m%d", i+1)), arch)
	}
	return ws, filepath.Join(ws, "models/final_models")
}

// fakeModel writes a small model folder (realModel) whose model.json names arch.
func fakeModel(t *testing.T, dir, arch string) string {
	t.Helper()
	return realModel(t, dir, arch)
}

// applyDecision runs Select.Apply on a hand-written decision.
func applyDecision(t *testing.T, ws string, dec Decision, run string) string {
	t.Helper()
	out := filepath.Join(ws, "decision-"+run)
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", dec); err != nil {
		t.Fatal(err)
	}
	note, err := Select{}.Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, run)
	if err != nil {
		t.Fatal(err)
	}
	return note
}

func decision(model string, value float64, minImpr float64) Decision {
	return Decision{Metric: "test_f1_macro", Direction: "max", GatePass: true, PromoteTo: "models/final_models", MustBeat: true, MinImpr: minImpr,
		Ranking: []Candidate{{Name: "cnn", Arch: "cnn", Value: metric(value), Model: model, Metrics: map[string]metric{"test_f1_macro": metric(value)}}}}
}

func TestPromotionGateAndRollback(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19")

	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run1"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("first promotion: %q", note)
	}
	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run2"); !strings.Contains(note, "already the champion") {
		t.Fatalf("same model again: %q", note)
	}
	// Better by float noise only (equal as fractions, summed in another order): no better.
	if note := applyDecision(t, ws, decision("m2", math.Nextafter(0.70, 1), 0), "run2b"); !strings.HasPrefix(note, "not promoted") || !strings.Contains(note, "ties the champion run1-cnn (0.7000): the same score does not replace it") {
		t.Fatalf("an improvement of one ulp: %q", note)
	}
	// Better, but not by the required margin.
	if note := applyDecision(t, ws, decision("m2", 0.72, 0.05), "run3"); !strings.HasPrefix(note, "not promoted") || !strings.HasSuffix(note, "by at least 0.05") {
		t.Fatalf("small improvement: %q", note)
	}
	// Worse.
	if note := applyDecision(t, ws, decision("m2", 0.60, 0), "run4"); !strings.HasPrefix(note, "not promoted") {
		t.Fatalf("worse model: %q", note)
	}
	// Gate on an absolute minimum.
	gated := decision("m2", 0.90, 0)
	gated.GatePass, gated.Gate = false, "test_f1_macro 0.9000 misses min_value 0.95"
	if note := applyDecision(t, ws, gated, "run5"); !strings.Contains(note, "misses min_value") {
		t.Fatalf("gate: %q", note)
	}
	if note := applyDecision(t, ws, decision("m3", 0.80, 0.05), "run6"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("clear improvement: %q", note)
	}
	card, err := ReadCard(final)
	if err != nil || card.Source != "m3" || card.Architecture != "vgg19" || card.Run != "run6" {
		t.Fatalf("champion after run6: %+v %v", card, err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "saved_model", "marker")); string(b) != "vgg19" {
		t.Fatalf("promoted files %q", b)
	}
	id, _, err := Rollback(final)
	if err != nil || id != "run1-cnn" {
		t.Fatalf("rollback: %q %v", id, err)
	}
	if card, _ := ReadCard(final); card.Source != "m1" {
		t.Fatalf("after rollback the champion is %+v", card)
	}
	if _, _, err := Rollback(final); err == nil {
		t.Fatal("rolled back past the first promotion")
	}
}

// TestAWinnerAheadByExactlyMinImprovementIsPromoted checks that min_improvement is a margin
// to reach, not to exceed: 0.75 against 0.70 (0.0499999… in floats) beats it by 0.05.
func TestAWinnerAheadByExactlyMinImprovementIsPromoted(t *testing.T) {
	ws, _ := modelsWorkspace(t, "cnn", "vit", "vgg19")
	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run1"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("first promotion: %q", note)
	}
	if note := applyDecision(t, ws, decision("m2", 0.75, 0.05), "run2"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("ahead by exactly min_improvement: %q", note)
	}
}

func TestSelectRanksWithTieBreak(t *testing.T) {
	ws := t.TempDir()
	// a and b score the same macro-F1 as fractions, apart in the last bit (as two sums in
	// different orders come out): a tie, which top-5 breaks.
	for name, v := range map[string][2]float64{"a": {0.79928229665071782, 0.95}, "b": {0.79928229665071771, 0.97}, "c": {0.7, 0.99}} {
		dir := filepath.Join(ws, name)
		writeFileJSON(dir, "metrics.json", Evaluation{Architecture: name, Model: name, TestF1Macro: metric(v[0]), TestTop5: metric(v[1])})
	}
	v := pipelineValues(t, Select{}, map[string]cty.Value{"candidates": cty.ObjectVal(map[string]cty.Value{
		"a": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("a")}),
		"b": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("b")}),
		"c": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("c")}),
	})})
	out := t.TempDir()
	if err := (Select{}).Run(context.Background(), &pipeline.Job{Workspace: ws, Out: out, Values: v, Log: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	var dec Decision
	readJSONFile(t, filepath.Join(out, "decision", "decision.json"), &dec)
	if dec.Winner != "b" || dec.Ranking[1].Name != "a" || dec.Ranking[2].Name != "c" {
		t.Fatalf("ranking %+v", dec.Ranking)
	}
}

// TestSelectRefusesScoresOnDifferentTestSets checks that candidates scored on different test
// sets are ranked but none is promoted for it: their scores do not compare.
func TestSelectRefusesScoresOnDifferentTestSets(t *testing.T) {
	ws := t.TempDir()
	for name, set := range map[string]string{"a": "ts1", "b": "ts2", "c": "ts1"} {
		writeFileJSON(filepath.Join(ws, name), "metrics.json", Evaluation{Architecture: name, Model: name, TestF1Macro: 0.8, TestSet: set})
	}
	v := pipelineValues(t, Select{}, map[string]cty.Value{"candidates": cty.ObjectVal(map[string]cty.Value{
		"a": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("a")}),
		"b": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("b")}),
		"c": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("c")}),
	})})
	out := t.TempDir()
	if err := (Select{}).Run(context.Background(), &pipeline.Job{Workspace: ws, Out: out, Values: v, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var dec Decision
	readJSONFile(t, filepath.Join(out, "decision", "decision.json"), &dec)
	if dec.GatePass || dec.Gate != "the candidates were scored on 2 different test sets (a, c; b), whose scores do not compare: evaluate them all on one split's test set" {
		t.Fatalf("gate %v %q", dec.GatePass, dec.Gate)
	}
}

// TestSelectNamesASingleEvaluationAfterItsArchitecture checks that candidates from an evaluate
// stage without for_each (stage.evaluate.test is then {evaluation = path}) are named after the
// model's architecture, as the run folder and the results table name it, and so is the
// promoted champion; not after the output ("evaluation").
func TestSelectNamesASingleEvaluationAfterItsArchitecture(t *testing.T) {
	ws := t.TempDir()
	fakeModel(t, filepath.Join(ws, "m1"), "cnn")
	writeFileJSON(filepath.Join(ws, "e"), "metrics.json", Evaluation{Architecture: "cnn", Model: "m1", TestF1Macro: 0.8, TestTop5: 0.9})
	v := pipelineValues(t, Select{}, map[string]cty.Value{"candidates": cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("e")})})
	if d := (Select{}).Validate(v); d.HasErrors() {
		t.Fatalf("validate: %v", d)
	}
	out := t.TempDir()
	job := &pipeline.Job{Workspace: ws, Out: out, Values: v, Log: os.Stderr}
	if err := (Select{}).Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	var dec Decision
	readJSONFile(t, filepath.Join(out, "decision", "decision.json"), &dec)
	if dec.Winner != "cnn" || len(dec.Ranking) != 1 || dec.Ranking[0].Name != "cnn" {
		t.Fatalf("winner %q, ranking %+v", dec.Winner, dec.Ranking)
	}
	note, err := Select{}.Apply(context.Background(), job, "run1")
	if err != nil || !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("apply: %q %v", note, err)
	}
	if card, err := ReadCard(filepath.Join(ws, "models/final_models")); err != nil || card.ID != "run1-cnn" {
		t.Fatalf("champion card %+v %v, want id run1-cnn", card, err)
	}
}

func pipelineValues(t *testing.T, k pipeline.Kind, given map[string]cty.Value) *pipeline.Values {
	t.Helper()
	v, err := pipeline.NewValues(k, given)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Only an object whose one attribute is evaluation is a single evaluate stage's output; a
// map of paths that happens to name a candidate "evaluation" keeps every candidate.
func TestCandidateNamedEvaluationIsNotMistakenForOneStage(t *testing.T) {
	got, err := candidatePaths(cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("x"), "b": cty.StringVal("y")}))
	if err != nil || len(got) != 2 || got["evaluation"] != "x" || got["b"] != "y" {
		t.Fatalf("candidates %v, %v", got, err)
	}
	if got, err := candidatePaths(cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal("x")})); err != nil || len(got) != 1 || got[""] != "x" {
		t.Fatalf("one evaluate stage: %v, %v", got, err)
	}
}

// TestCandidatesAreCheckedByTypeBeforeTheirPathsAreKnown checks that select's validation
// rejects candidates of the wrong shape while the evaluations' paths are still unknown (as
// they are when a pipeline file is validated), and that a map of maps, which tomap makes,
// is read rather than taken for an object.
func TestCandidatesAreCheckedByTypeBeforeTheirPathsAreKnown(t *testing.T) {
	unknown := cty.UnknownVal(cty.String)
	eval := cty.ObjectVal(map[string]cty.Value{"evaluation": unknown})
	model := cty.ObjectVal(map[string]cty.Value{"saved_model": unknown})
	for _, c := range []struct {
		candidates cty.Value
		want       string
	}{
		{cty.ObjectVal(map[string]cty.Value{"cnn": eval, "vit": eval}), ""},
		{eval, ""},
		{cty.ObjectVal(map[string]cty.Value{"cnn": unknown}), ""},
		{cty.MapVal(map[string]cty.Value{"cnn": cty.MapVal(map[string]cty.Value{"evaluation": unknown})}), ""},
		{cty.ObjectVal(map[string]cty.Value{"cnn": eval, "vit": model}), `candidate "vit" is an object without evaluation`},
		{cty.TupleVal([]cty.Value{unknown}), "got a tuple"},
		{cty.EmptyObjectVal, "no candidates"},
		{cty.MapVal(map[string]cty.Value{"cnn": cty.ListVal([]cty.Value{unknown})}), "every candidate is a list of string"},
	} {
		v := pipelineValues(t, Select{}, map[string]cty.Value{"candidates": c.candidates})
		diags := Select{}.Validate(v)
		switch {
		case c.want == "" && len(diags) > 0:
			t.Errorf("%#v: %s", c.candidates, diags.Error())
		case c.want != "" && (len(diags) != 1 || diags[0].Summary != "Invalid candidates" || !strings.Contains(diags[0].Detail, c.want)):
			t.Errorf("%#v: want Invalid candidates with %q, got %v", c.candidates, c.want, diags)
		}
	}
	m := cty.MapVal(map[string]cty.Value{"cnn": cty.MapVal(map[string]cty.Value{"evaluation": cty.StringVal("e")})})
	if got, err := candidatePaths(m); err != nil || len(got) != 1 || got["cnn"] != "e" {
		t.Fatalf("map of maps: %v, %v", got, err)
	}
}

// TestPromotedModelIsReadableLikeARunFolder checks that a promoted model's folder gets 0755
// less the umask, as run folders do, and not the 0700 of os.MkdirTemp, so that a server
// running as another user can load the champion.
func TestPromotedModelIsReadableLikeARunFolder(t *testing.T) {
	for _, c := range []struct {
		umask        int
		folder, file os.FileMode
	}{{0o022, 0o755, 0o644}, {0o027, 0o750, 0o640}} {
		old := syscall.Umask(c.umask)
		t.Cleanup(func() { syscall.Umask(old) })
		ws := t.TempDir()
		fakeModel(t, filepath.Join(ws, "m1"), "cnn")
		applyDecision(t, ws, decision("m1", 0.7, 0), "run1")
		root := filepath.Join(ws, "models/final_models.d")
		for path, want := range map[string]os.FileMode{
			root: c.folder, filepath.Join(root, "run1-cnn"): c.folder, filepath.Join(root, "run1-cnn", "saved_model"): c.folder,
			filepath.Join(root, "run1-cnn", "model.json"): c.file, filepath.Join(root, "history.json"): c.file,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("umask %03o: %s is %v, want %v", c.umask, path, fi.Mode().Perm(), want)
			}
		}
	}
}

// TestRolledBackModelIsNotPromotedAgain checks that a rollback is remembered: the model
// rolled back is not promoted again by select (which says why), other models still are, and
// promoting it by hand lifts the block until the next rollback.
func TestRolledBackModelIsNotPromotedAgain(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19")
	champion := func() string {
		t.Helper()
		card, err := ReadCard(final)
		if err != nil {
			t.Fatal(err)
		}
		return card.ID
	}
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")
	if id, _, err := Rollback(final); err != nil || id != "run1-cnn" {
		t.Fatalf("rollback: %q %v", id, err)
	}
	note := applyDecision(t, ws, decision("m2", 0.80, 0), "run3")
	if !strings.HasPrefix(note, "not promoted: cnn (test_f1_macro 0.8000) is run2-cnn, which was rolled back on ") || !strings.Contains(note, "pipeline promote run2-cnn") {
		t.Fatalf("the rolled-back model again: %q", note)
	}
	if id := champion(); id != "run1-cnn" {
		t.Fatalf("champion %s after select met the rolled-back model, want run1-cnn", id)
	}
	if _, err := os.Stat(filepath.Join(ws, "models/final_models.d/run3-cnn")); err == nil {
		t.Fatal("the rolled-back model was copied again")
	}
	// Another model is promoted as before.
	if note := applyDecision(t, ws, decision("m3", 0.75, 0), "run4"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("another model: %q", note)
	}
	if _, _, err := Rollback(final); err != nil {
		t.Fatal(err)
	}
	// By hand, by id or as RUN/CANDIDATE; select then treats the model as any other.
	if _, _, _, err := PromoteAgain(final, "run9-cnn"); err == nil || !strings.Contains(err.Error(), "run1-cnn, run2-cnn, run4-cnn") {
		t.Fatalf("an unknown id: %v", err)
	}
	card, lifted, _, err := PromoteAgain(final, "run2/cnn")
	if err != nil || card.ID != "run2-cnn" || lifted == nil || lifted.ID != "run2-cnn" || champion() != "run2-cnn" {
		t.Fatalf("promoting run2-cnn by hand: %+v %+v %v, champion %s", card, lifted, err, champion())
	}
	if note := applyDecision(t, ws, decision("m2", 0.80, 0), "run5"); !strings.Contains(note, "already the champion") {
		t.Fatalf("after promoting by hand: %q", note)
	}
	// The champion set aside by hand is not put back by the next run, even when it wins.
	if note := applyDecision(t, ws, decision("m1", 0.90, 0), "run5b"); !strings.Contains(note, "not promoted") || !strings.Contains(note, "run1-cnn, which was set aside by a promotion by hand on ") {
		t.Fatalf("the champion set aside by hand, winning: %q", note)
	}
	if id, _, err := Rollback(final); err != nil || id != "run1-cnn" {
		t.Fatalf("rollback after promoting by hand: %q %v", id, err)
	}
	if note := applyDecision(t, ws, decision("m2", 0.80, 0), "run6"); !strings.Contains(note, "run2-cnn, which was rolled back on ") {
		t.Fatalf("rolled back a second time: %q", note)
	}
	h, err := readHistory(final + ".d")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.RolledBack) != 2 || h.RolledBack[0].Source != "m3" || h.RolledBack[1].Source != "m2" || !slices.Equal(h.Promotions, []string{"run1-cnn"}) ||
		h.RolledBack[0].By != SetAsideByRollback || h.RolledBack[1].By != SetAsideByRollback {
		t.Fatalf("history %+v", h)
	}
	// A history written before it said what set a model aside: the note says either.
	h.RolledBack[1].By = ""
	if err := writeJSONAtomic(filepath.Join(final+".d", "history.json"), h); err != nil {
		t.Fatal(err)
	}
	if note := applyDecision(t, ws, decision("m2", 0.80, 0), "run7"); !strings.Contains(note, "run2-cnn, which was rolled back, or set aside by a promotion by hand, on ") {
		t.Fatalf("a record without what set it aside: %q", note)
	}
}

// Trainings of one architecture under different for_each keys get folders of their own in a
// run folder, and their evaluations follow them.
func TestArchitectureFolderNamesCarryADifferentKey(t *testing.T) {
	for _, c := range [][3]string{{"cnn", "", "cnn"}, {"cnn", "cnn", "cnn"}, {"cnn", "fast", "cnn.fast"}, {"vit", "a/b", "vit.a_b"}} {
		if got := archDir(c[0], c[1]); got != c[2] {
			t.Errorf("archDir(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// A history.json that cannot be parsed stops promotion and rollback, and stays as it was:
// writing a new one would lose every promotion and rollback it records.
func TestUnreadablePromotionHistoryIsNotOverwritten(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "cnn")
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	hist := filepath.Join(final+".d", "history.json")
	if err := os.WriteFile(hist, []byte(`{"promotions": ["run1-cnn"`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(ws, "decision-run2")
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", decision("m2", 0.90, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := (Select{}).Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, "run2"); err == nil || !strings.Contains(err.Error(), "history.json") {
		t.Fatalf("promotion over a broken history: %v", err)
	}
	if _, _, err := Rollback(final); err == nil {
		t.Fatal("rollback over a broken history")
	}
	if b, _ := os.ReadFile(hist); string(b) != `{"promotions": ["run1-cnn"` {
		t.Fatalf("history.json now holds %s", b)
	}
}

// Promoting by hand over a champion folder put there by hand adopts it (history keeps it) and
// sets it aside under its own id; a second id of the champion's own model is not set aside.
func TestPromoteAgainOverAHandPlacedChampion(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn")
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	if err := os.Remove(final); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(final, 0o755)
	if err := writeJSON(filepath.Join(final, "model.json"), Card{ID: "by-hand", Source: "hand-made"}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := PromoteAgain(final, "run1-cnn"); err != nil {
		t.Fatal(err)
	}
	promotions, setAside, err := History(final)
	if err != nil {
		t.Fatal(err)
	}
	if len(promotions) != 3 || !strings.HasPrefix(promotions[1], "legacy-") || promotions[2] != "run1-cnn" ||
		len(setAside) != 1 || setAside[0].ID != promotions[1] || setAside[0].Source != "hand-made" {
		t.Fatalf("promotions %v, set aside %+v", promotions, setAside)
	}
	// The same model promoted again under a second id (run3-cnn, m1 again after m2):
	// promoting its first id by hand sets nothing aside, since the champion is that model.
	fakeModel(t, filepath.Join(ws, "m2"), "cnn")
	if note := applyDecision(t, ws, decision("m2", 0.80, 0), "run2"); !strings.HasPrefix(note, "promoted") {
		t.Fatalf("m2: %q", note)
	}
	if note := applyDecision(t, ws, decision("m1", 0.90, 0), "run3"); !strings.HasPrefix(note, "promoted") {
		t.Fatalf("m1 again: %q", note)
	}
	if _, _, _, err := PromoteAgain(final, "run1-cnn"); err != nil {
		t.Fatal(err)
	}
	if _, setAside, _ = History(final); len(setAside) != 1 || setAside[0].Source != "hand-made" {
		t.Fatalf("set aside %+v", setAside)
	}
}

// Candidates whose metric is NaN (diverged models) rank last, in name order, every time.
func TestSelectRanksNaNCandidatesStably(t *testing.T) {
	ws := t.TempDir()
	nan := metric(math.NaN())
	for name, v := range map[string][2]metric{"d": {nan, nan}, "b": {nan, nan}, "a": {0.5, 0.9}, "c": {nan, nan}, "e": {nan, nan}} {
		writeFileJSON(filepath.Join(ws, name), "metrics.json", Evaluation{Architecture: name, Model: name, TestF1Macro: v[0], TestTop5: v[1]})
	}
	cands := map[string]cty.Value{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		cands[n] = cty.ObjectVal(map[string]cty.Value{"evaluation": cty.StringVal(n)})
	}
	v := pipelineValues(t, Select{}, map[string]cty.Value{"candidates": cty.ObjectVal(cands)})
	for range 20 {
		out := t.TempDir()
		if err := (Select{}).Run(context.Background(), &pipeline.Job{Workspace: ws, Out: out, Values: v, Log: io.Discard}); err != nil {
			t.Fatal(err)
		}
		var dec Decision
		readJSONFile(t, filepath.Join(out, "decision", "decision.json"), &dec)
		var names []string
		for _, c := range dec.Ranking {
			names = append(names, c.Name)
		}
		if strings.Join(names, "") != "abcde" {
			t.Fatalf("ranking %v", names)
		}
	}
}

// The history is the record of promotions: one whose link cannot be switched leaves the
// history as it was (nothing promoted, and the error says so), and one cut off after
// recording itself (a kill between the history and the link) is finished by the next
// promotion, rollback or select, never left with a link and a history that disagree.
func TestPromotionHistoryAndLinkNeverDisagree(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19")
	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run1"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("first promotion: %q", note)
	}
	if note := applyDecision(t, ws, decision("m2", 0.80, 0), "run2"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("second promotion: %q", note)
	}
	history := func() []string {
		t.Helper()
		ps, _, err := History(final)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	link := func() string {
		t.Helper()
		target, err := os.Readlink(final)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Base(target)
	}

	// The link cannot be switched (its temporary name is taken by a folder that is not empty).
	blocker := final + ".link-tmp"
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	dec := decision("m3", 0.90, 0)
	out := filepath.Join(ws, "decision-run3")
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", dec); err != nil {
		t.Fatal(err)
	}
	if _, err := (Select{}).Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, "run3"); err == nil {
		t.Fatal("a promotion whose link could not be switched succeeded")
	}
	if got := history(); !slices.Equal(got, []string{"run1-cnn", "run2-cnn"}) || link() != "run2-cnn" {
		t.Fatalf("after a failed promotion: history %v, link %s; want the champion run2-cnn in both", got, link())
	}
	if _, err := os.Stat(filepath.Join(final+".d", "run3-cnn")); err == nil {
		t.Fatal("the failed promotion left its folder, which later messages offer as a champion of before")
	}
	if _, _, err := Rollback(final); err == nil {
		t.Fatal("a rollback whose link could not be switched succeeded")
	}
	if _, rb, _ := History(final); !slices.Equal(history(), []string{"run1-cnn", "run2-cnn"}) || len(rb) != 0 || link() != "run2-cnn" {
		t.Fatalf("after a failed rollback: history %v, set aside %v, link %s", history(), rb, link())
	}
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}

	// A link switched otherwise (by hand, or by an older release that switched it before
	// writing the history) is no cut-off promotion: it is left alone.
	if err := pointTo(final, "run1-cnn"); err != nil {
		t.Fatal(err)
	}
	if _, err := PruneChampions(final, 5, false); err != nil {
		t.Fatal(err)
	}
	if link() != "run1-cnn" {
		t.Fatalf("a link switched by hand was switched back to %s", link())
	}
	if err := pointTo(final, "run2-cnn"); err != nil {
		t.Fatal(err)
	}

	// A rollback killed after writing the history: history says run1-cnn, pending, the link
	// run2-cnn.
	h, err := readHistory(final + ".d")
	if err != nil {
		t.Fatal(err)
	}
	old := h.clone()
	h.Promotions = h.Promotions[:1]
	h.change(filepath.Join(final+".d", "run2-cnn"), "run1-cnn", "m1", SetAsideByRollback)
	h.Pending = "run1-cnn"
	if err := writeJSONAtomic(filepath.Join(final+".d", "history.json"), h); err != nil {
		t.Fatal(err)
	}
	if len(old.Promotions) != 2 {
		t.Fatalf("clone shares the promotions: %v", old.Promotions)
	}
	// A promotion killed while copying left its temporary folder.
	if err := os.MkdirAll(filepath.Join(final+".d", ".promote-123", "saved_model"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The next select finds the rolled-back model's run again: it is not promoted, and the
	// link now says what the history says.
	note := applyDecision(t, ws, decision("m2", 0.80, 0), "run4")
	if link() != "run1-cnn" {
		t.Fatalf("after a cut-off rollback and a select: link %s, history %v (%s)", link(), history(), note)
	}
	if strings.HasPrefix(note, "promoted") || !strings.Contains(note, "cut off") {
		t.Fatalf("after a cut-off rollback: %q, want it finished and said, and the rolled-back model not promoted again", note)
	}
	if h, _ := readHistory(final + ".d"); h.Pending != "" {
		t.Fatalf("still pending: %q", h.Pending)
	}
	// The next change to the promotions (gc --keep-champions here) removes the folder.
	if _, err := PruneChampions(final, 5, true); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(final+".d", ".promote-*")); len(left) != 1 {
		t.Fatalf("a dry run removed a killed promotion's temporary folder: %v", left)
	}
	if _, err := PruneChampions(final, 5, false); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(final+".d", ".promote-*")); len(left) != 0 {
		t.Fatalf("a killed promotion's temporary folder is left: %v", left)
	}

	// A promotion cut off, whose folder was deleted since: it is taken off the record, and
	// the next select works as usual.
	h, _ = readHistory(final + ".d")
	h.Promotions, h.Pending = append(h.Promotions, "ghost-cnn"), "ghost-cnn"
	if err := writeJSONAtomic(filepath.Join(final+".d", "history.json"), h); err != nil {
		t.Fatal(err)
	}
	note = applyDecision(t, ws, decision("m3", 0.60, 0), "run5")
	if got := history(); slices.Contains(got, "ghost-cnn") || link() != "run1-cnn" || !strings.HasPrefix(note, "not promoted") {
		t.Fatalf("after a cut-off promotion whose folder is gone: history %v, link %s, %q", got, link(), note)
	}
	// A rollback cut off, whose pending champion (already on the record, the link still
	// leading to the later one) was deleted since: no entry is taken off the record.
	// (A rollback from run1-cnn to gone-cnn records [other, gone-cnn], the link still at
	// run1-cnn.)
	h, _ = readHistory(final + ".d")
	h.Promotions, h.Pending = []string{"other-cnn", "gone-cnn"}, "gone-cnn"
	if err := writeJSONAtomic(filepath.Join(final+".d", "history.json"), h); err != nil {
		t.Fatal(err)
	}
	if _, _, err := settle(final); err != nil {
		t.Fatal(err)
	}
	if h, _ := readHistory(final + ".d"); h.Pending != "" || !slices.Equal(h.Promotions, []string{"other-cnn", "gone-cnn"}) || link() != "run1-cnn" {
		t.Fatalf("a rollback cut off, its champion gone: history %v (pending %q), link %s", h.Promotions, h.Pending, link())
	}
}

// A champion whose files were damaged on disk (they are hard links to the store's output, so
// the store's copy too, which the engine then makes again as a new file) is installed again
// from the store when select finds it the winner once more, not left broken as "already the
// champion".
func TestDamagedChampionIsInstalledAgainFromTheStore(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn")
	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run1"); !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("first promotion: %q", note)
	}
	marker := filepath.Join(final, "saved_model", "marker")
	if err := os.Truncate(marker, 0); err != nil { // both names of the file
		t.Fatal(err)
	}
	store := filepath.Join(ws, "m1", "marker")
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store, []byte("cnn"), 0o644); err != nil { // made again
		t.Fatal(err)
	}
	note := applyDecision(t, ws, decision("m1", 0.70, 0), "run2")
	if !strings.Contains(note, "already the champion") || !strings.Contains(note, "installed again from the store") {
		t.Fatalf("a damaged champion: %q", note)
	}
	if b, _ := os.ReadFile(marker); string(b) != "cnn" {
		t.Fatalf("the champion's file holds %q after the repair", b)
	}
	if note := applyDecision(t, ws, decision("m1", 0.70, 0), "run3"); strings.Contains(note, "installed again") {
		t.Fatalf("an intact champion installed again: %q", note)
	}
	if ps, _, _ := History(final); !slices.Equal(ps, []string{"run1-cnn"}) {
		t.Fatalf("the repair is not a promotion: history %v", ps)
	}
}

// TestNamedPipesInAModelAreNotPromoted checks that promotion never reads a named pipe in a
// model's folder, which would wait for ever: a model holding one is refused, the file named,
// and a champion's file replaced by one is damage, installed again from the store.
func TestNamedPipesInAModelAreNotPromoted(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn")
	pipe := filepath.Join(ws, "m1", "requests.fifo")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	apply := func(run string, pipes ...string) (string, error) {
		t.Helper()
		out := filepath.Join(ws, "decision-"+run)
		if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", decision("m1", 0.70, 0)); err != nil {
			t.Fatal(err)
		}
		var note string
		err := regulartest.Within(t, run+": the promotion", func() error {
			var err error
			note, err = Select{}.Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, run)
			return err
		}, pipes...)
		return note, err
	}
	want := pipe + " is not a regular file: it is a named pipe; a model holds only regular files and folders: remove it"
	if note, err := apply("run1", pipe); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a model holding a named pipe: note %q, error %v; want an error saying %q", note, err, want)
	}
	if _, err := os.Lstat(final); err == nil {
		t.Fatal("a model holding a named pipe was promoted")
	}

	os.Remove(pipe)
	if note, err := apply("run2"); err != nil || !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("the model without it: %q, %v", note, err)
	}
	// The store's file made again empty, the champion's replaced by a named pipe: the same
	// size, another time, which a read compared.
	marker, store := filepath.Join(final, "saved_model", "marker"), filepath.Join(ws, "m1", "marker")
	os.Remove(marker)
	os.Remove(store)
	if err := os.WriteFile(store, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Mkfifo(marker, 0o644)
	os.Chtimes(marker, time.Unix(1, 0), time.Unix(1, 0))
	note, err := apply("run3", marker)
	if err != nil || !strings.Contains(note, "installed again from the store") {
		t.Fatalf("a champion's file replaced by a named pipe: %q, %v", note, err)
	}
	if fi, err := os.Stat(marker); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the champion's file after the repair: %v, %v", fi, err)
	}
	// A named pipe in the store's copy of the champion: the comparison of its files fails,
	// which the run says, not "already the champion" alone.
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Fatal(err)
	}
	note, err = apply("run4", pipe)
	if err == nil || !strings.Contains(err.Error(), "is already the champion in models/final_models, but its files could not be compared with the model in the store") || !strings.Contains(err.Error(), want) {
		t.Fatalf("the champion's model in the store holding a named pipe: note %q, error %v", note, err)
	}
}

// A promote_to naming a folder that holds something other than a model (the runs folder, a
// folder of photos) is refused, and the folder stays where it is with all it holds; an empty
// folder there is taken as no champion.
func TestPromotionRefusesAFolderThatIsNotAModel(t *testing.T) {
	ws, _ := modelsWorkspace(t, "cnn")
	run := filepath.Join(ws, "models", "20261206_110000")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(run, "run.log"), []byte("log\n"), 0o644)
	dec := decision("m1", 0.70, 0)
	dec.PromoteTo = "models"
	out := filepath.Join(ws, "decision-run1")
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", dec); err != nil {
		t.Fatal(err)
	}
	_, err := Select{}.Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, "run1")
	if err == nil || !strings.Contains(err.Error(), "holds no model") {
		t.Fatalf("promotion to the runs folder: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(ws, "models")); err != nil || !fi.IsDir() {
		t.Fatalf("the runs folder is no longer a folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(run, "run.log")); err != nil {
		t.Fatalf("the run folder lost its files: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(ws, "models.d")); err == nil {
		t.Fatal("a refused promotion made models.d")
	}
	// An empty folder made by hand at promote_to is no champion: the winner replaces it.
	os.MkdirAll(filepath.Join(ws, "empty"), 0o755)
	dec.PromoteTo = "empty"
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", dec); err != nil {
		t.Fatal(err)
	}
	if note, err := (Select{}).Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, "run1"); err != nil || !strings.HasPrefix(note, "promoted cnn") {
		t.Fatalf("promotion over an empty folder: %q, %v", note, err)
	}
}
