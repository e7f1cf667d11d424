package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pipeline/pipeline"
	"pipeline/stages"
)

// promoteFake runs the select stage's promotion in workspace ws for a fake model folder
// ws/<model> with value as its test_f1_macro, as run <run> would, and returns its note.
func promoteFake(t *testing.T, ws, run, model string, value float64) string {
	t.Helper()
	return promoteFakeTo(t, ws, run, model, value, "models/final_models")
}

// promoteFakeTo is promoteFake with select's promote_to set to to, and the model's classes
// (default a, b).
func promoteFakeTo(t *testing.T, ws, run, model string, value float64, to string, classes ...string) string {
	t.Helper()
	if classes == nil {
		classes = []string{"a", "b"}
	}
	smallModel(t, filepath.Join(ws, model), model, classes...)
	out := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(filepath.Join(out, "decision"), 0o755)
	dec := fmt.Sprintf(`{"metric":"test_f1_macro","direction":"max","gate_passed":true,"promote_to":%q,"must_beat_champion":true,
"ranking":[{"candidate":"cnn","architecture":"cnn","value":%g,"model":%q,"metrics":{"test_f1_macro":%g},"test_set":"ts1"}]}`, to, value, model, value)
	os.WriteFile(filepath.Join(out, "decision", "decision.json"), []byte(dec), 0o644)
	note, err := stages.Select{}.Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, run)
	if err != nil {
		t.Fatal(err)
	}
	return note
}

// TestPromoteRollbackIsRemembered checks promote --rollback and promote ID: the model rolled
// back is not promoted again by the next run, and promoting it by hand lifts that.
func TestPromoteRollbackIsRemembered(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "run1", "m1", 0.7)
	promoteFake(t, ws, "run2", "m2", 0.8)
	code, out, errs := runCLI("promote", "--to", to, "--rollback")
	if code != exitOK || !strings.Contains(out, "now points to final_models.d/run1-cnn") ||
		!strings.Contains(out, "run2-cnn will not be promoted again automatically (pipeline promote run2-cnn does it by hand)") ||
		!strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("promote --rollback: exit %d\n%s%s", code, out, errs)
	}
	if note := promoteFake(t, ws, "run3", "m2", 0.8); !strings.Contains(note, "run2-cnn, which was rolled back on ") {
		t.Fatalf("the next run promoted the model rolled back: %q", note)
	}
	// Nothing to do is no failure.
	if code, out, errs := runCLI("promote", "--to", to, "run1-cnn"); code != exitOK || !strings.HasPrefix(out, "run1-cnn is already the champion in "+to+"\nchampion run1-cnn") {
		t.Fatalf("promote the champion: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI("promote", "--to", to, "--rollback", "run2-cnn"); code != exitErr || !strings.Contains(errs, "not both") {
		t.Fatalf("promote ID --rollback: exit %d\n%s", code, errs)
	}
	code, out, errs = runCLI("promote", "--to", to, "run2-cnn")
	if code != exitOK || !strings.Contains(out, "now points to final_models.d/run2-cnn") || !strings.Contains(out, "run2-cnn was rolled back on ") ||
		!strings.Contains(out, "champion run2-cnn") {
		t.Fatalf("promote run2-cnn: exit %d\n%s%s", code, out, errs)
	}
	if note := promoteFake(t, ws, "run4", "m2", 0.8); !strings.Contains(note, "already the champion") {
		t.Fatalf("after promoting by hand: %q", note)
	}
	// Showing the champion lists where --rollback and promote ID can go, and what is set aside.
	code, out, errs = runCLI("promote", "--to", to)
	if code != exitOK || !strings.Contains(out, "earlier champions, newest first (--rollback goes to the first): run1-cnn") ||
		!strings.Contains(out, "not promoted again automatically: run1-cnn (set aside by a promotion by hand on ") {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errs)
	}
	// RUN/FOLDER, as the run folder names the model, is a model id too.
	if code, out, errs := runCLI("promote", "--to", to, "run1/cnn.cnn"); code != exitOK || !strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("promote RUN/FOLDER: exit %d\n%s%s", code, out, errs)
	}
}

// TestPromoteHelpShowsOneDefault checks that --to's default is said once, as the file's.
func TestPromoteHelpShowsOneDefault(t *testing.T) {
	_, out, _ := runCLI("promote", "--help")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "--to ") {
			if strings.Count(line, "(default:") != 1 || !strings.Contains(line, "(default: the file's select promote_to, else models/final_models)") {
				t.Fatalf("--to in promote --help: %q", line)
			}
			return
		}
	}
	t.Fatalf("promote --help has no --to:\n%s", out)
}

// TestPromoteUsesTheFilesPromotionFolder checks that promote FILE looks where FILE's select
// stage promotes to, and asks for --to when that cannot be told.
func TestPromoteUsesTheFilesPromotionFolder(t *testing.T) {
	ws := t.TempDir()
	promoteFakeTo(t, ws, "run1", "m1", 0.7, "models/champions")
	repo, err := os.ReadFile("../../pipeline.hcl")
	if err != nil {
		t.Fatal(err)
	}
	custom := strings.Replace(string(repo), `promote_to = "models/final_models"`, `promote_to = "models/champions"`, 1)
	if custom == string(repo) {
		t.Fatal("pipeline.hcl has no promote_to to change")
	}
	file := filepath.Join(ws, "pipeline.hcl")
	write := func(src string) {
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(custom)
	if code, out, errs := runCLI("promote", file); code != exitOK || !strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("promote FILE: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI("promote", "--to", "models/final_models", file); code != exitErr || !strings.Contains(errs, "final_models holds no promoted model yet") {
		t.Fatalf("promote --to: exit %d\n%s", code, errs)
	}
	write(custom + `
stage "select" "other" {
  candidates = stage.evaluate.test
  promote_to = "models/other"
}
`)
	if code, _, errs := runCLI("promote", file); code != exitErr || !strings.Contains(errs, "promotes to more than one folder: models/champions (select.best); models/other (select.other); choose one with --to") {
		t.Fatalf("two folders: exit %d\n%s", code, errs)
	}
	write(custom + "\nstage \"nope\" \"x\" {}\n")
	if code, _, errs := runCLI("promote", file); code != exitErr || !strings.Contains(errs, "give the folder with --to") {
		t.Fatalf("a broken file: exit %d\n%s", code, errs)
	}
	if code, out, errs := runCLI("promote", "--to", "models/champions", file); code != exitOK || !strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("a broken file with --to: exit %d\n%s%s", code, out, errs)
	}
}

// TestPromoteSaysWhenTheClassesChange checks that switching the champion by hand to a model
// with other classes says how they differ, since servers then answer with those.
func TestPromoteSaysWhenTheClassesChange(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFakeTo(t, ws, "run1", "m1", 0.7, "models/final_models", "Cantharellus", "Morchella")
	promoteFakeTo(t, ws, "run2", "m2", 0.8, "models/final_models", "Craterellus", "Morchella", "Amanita")
	code, out, errs := runCLI("promote", "--to", to, "--rollback")
	if code != exitOK || !strings.Contains(out, `note: run1-cnn has other classes than run2-cnn: adds "Cantharellus"; drops "Craterellus", "Amanita"`) {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("promote", "--to", to, "run2-cnn")
	if code != exitOK || !strings.Contains(out, `note: run2-cnn has other classes than run1-cnn: adds "Craterellus", "Amanita"; drops "Cantharellus"`) {
		t.Fatalf("promote ID: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCLI("promote", "--to", to); code != exitOK || strings.Contains(out, "note:") {
		t.Fatalf("showing the champion: exit %d\n%s", code, out)
	}
	if got := stages.ClassChange([]string{"a", "b"}, []string{"b", "a"}); !strings.Contains(got, "another order") {
		t.Fatalf("reordered: %q", got)
	}
}

// TestPromoteAModelOfARunByHand checks promote RUN/FOLDER for a model select did not promote:
// it becomes the champion with its evaluation's metrics, the champion set aside is blocked,
// and the same model cannot be promoted twice that way.
func TestPromoteAModelOfARunByHand(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "run1", "m1", 0.7)
	run := filepath.Join(ws, "models", "20261206_120000")
	digest := strings.Repeat("ab", 32)
	smallModel(t, filepath.Join(run, "cnn/saved_model"), "by hand", "a", "b", "c")
	for rel, body := range map[string]string{
		"run.json":                    `{"id":"20261206_120000","status":"succeeded","stages":[{"stage":"train.model[cnn]","status":"ran","output":"` + digest + `","artifacts":"cnn","duration_s":1}]}`,
		"cnn/evaluation/metrics.json": `{"architecture":"cnn","test_set":"ts1","test_f1_macro":0.61,"test_top5":1}`,
	} {
		p := filepath.Join(run, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI("promote", "--to", to, "--runs-dir", filepath.Join(ws, "models"), "20261206_120000/cnn")
	if code != exitOK || !strings.Contains(out, "now points to final_models.d/20261206_120000-cnn") ||
		!strings.Contains(out, "run1-cnn, set aside, will not be promoted again automatically") || !strings.Contains(out, `adds "c"`) ||
		!strings.Contains(out, "note: 20261206_120000-cnn scores worse than run1-cnn on the same test set (test_f1_macro 0.6100 against 0.7000)") {
		t.Fatalf("promote RUN/FOLDER: exit %d\n%s%s", code, out, errs)
	}
	card, err := stages.ReadCard(filepath.Join(ws, "models/final_models.d/20261206_120000-cnn"))
	if err != nil {
		t.Fatal(err)
	}
	if card.Source != "data/intermediate/objects/"+digest+"/saved_model" || float64(card.Metrics["test_f1_macro"]) != 0.61 || card.TestSet != "ts1" || card.Run != "20261206_120000" {
		t.Fatalf("card %+v", card)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "models/final_models/saved_model/marker")); string(b) != "by hand" {
		t.Fatalf("the champion's SavedModel holds %q", b)
	}
	if code, out, errs := runCLI("promote", "--to", to, "--runs-dir", filepath.Join(ws, "models"), "20261206_120000/cnn"); code != exitOK ||
		!strings.HasPrefix(out, "20261206_120000-cnn is already the champion in "+to+"\nchampion 20261206_120000-cnn") {
		t.Fatalf("promoting it again: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI("promote", "--to", to, "--runs-dir", filepath.Join(ws, "models"), "20261206_120000/vit"); code != exitErr || !strings.Contains(errs, "no trained model in a folder \"vit\"; its models: cnn") {
		t.Fatalf("a folder without a model: exit %d\n%s", code, errs)
	}

	// RUN/CANDIDATE as select names it: the run's decision says which model that is.
	run2 := filepath.Join(ws, "models", "20261206_130000")
	d2 := strings.Repeat("cd", 32)
	smallModel(t, filepath.Join(run2, "cnn.0.01/saved_model"), "by name", "a", "b", "c")
	for rel, body := range map[string]string{
		"run.json":                           `{"id":"20261206_130000","status":"succeeded","stages":[{"stage":"train.lr[\"0.01\"]","status":"ran","output":"` + d2 + `","artifacts":"cnn.0.01","duration_s":1}]}`,
		"select.best/decision/decision.json": `{"ranking":[{"candidate":"fast","model":"data/intermediate/objects/` + d2 + `/saved_model"}]}`,
	} {
		p := filepath.Join(run2, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = runCLI("promote", "--to", to, "--runs-dir", filepath.Join(ws, "models"), "20261206_130000/fast")
	if code != exitOK || !strings.Contains(out, "now points to final_models.d/20261206_130000-cnn.0.01") ||
		!strings.Contains(out, "note: 20261206_130000-cnn.0.01 has no evaluation; a run's select scores it") {
		t.Fatalf("promote RUN/CANDIDATE: exit %d\n%s%s", code, out, errs)
	}
}

// TestGCKeepChampions checks gc --keep-champions: it removes the promoted models of the file's
// select stage but the champion and those --rollback goes back through, and promote then says
// which earlier champions' folders are gone.
func TestGCKeepChampions(t *testing.T) {
	ws, file := repoWorkspace(t)
	for i, run := range []string{"run1", "run2", "run3"} {
		promoteFake(t, ws, run, fmt.Sprintf("m%d", i+1), 0.6+0.1*float64(i))
	}
	d := filepath.Join(ws, "models/final_models.d")
	code, out, errs := runCLI("gc", "-n", "--keep-champions", "1", file)
	if code != exitOK || !regexp.MustCompile(`would remove 1 promoted model from models/final_models.d, keeping the champion and up to 1 champion before it: frees [0-9.]+ MB \([0-9.]+ MB in their files, the rest held by stored outputs\)\n  run1-cnn +[0-9.]+ MB  promoted 20`).MatchString(out) {
		t.Fatalf("gc -n --keep-champions 1: exit %d\n%s%s", code, out, errs)
	}
	dry := out
	if _, err := os.Stat(filepath.Join(d, "run1-cnn")); err != nil {
		t.Fatalf("a dry run removed a model: %v", err)
	}
	if code, out, errs := runCLI("gc", "--keep-champions", "1", file); code != exitOK || strings.ReplaceAll(out, "removed ", "would remove ") != dry {
		t.Fatalf("gc --keep-champions 1: exit %d\n%s%s\nwant what the dry run said:\n%s", code, out, errs, dry)
	}
	if _, err := os.Stat(filepath.Join(d, "run1-cnn")); err == nil {
		t.Fatal("run1-cnn was kept")
	}
	for _, id := range []string{"run2-cnn", "run3-cnn"} {
		if _, err := os.Stat(filepath.Join(d, id, "model.json")); err != nil {
			t.Fatalf("%s was removed: %v", id, err)
		}
	}
	code, out, errs = runCLI("promote", file)
	if code != exitOK || !strings.Contains(out, "champion run3-cnn") ||
		!strings.Contains(out, "earlier champions, newest first (--rollback goes to the first): run2-cnn, run1-cnn (folder removed)\n") {
		t.Fatalf("promote after gc: exit %d\n%s%s", code, out, errs)
	}
	// Run folders beyond the newest N that succeeded: the ones removed are named; a killed
	// run newer than those kept stays.
	for _, run := range []string{"20261201_000000", "20261202_000000", "20261203_000000"} {
		os.MkdirAll(filepath.Join(ws, "models", run), 0o755)
		os.WriteFile(filepath.Join(ws, "models", run, "run.log"), []byte("log\n"), 0o644)
		if run != "20261203_000000" {
			os.WriteFile(filepath.Join(ws, "models", run, "run.json"), []byte(`{"status": "succeeded"}`), 0o644)
		}
	}
	if code, out, errs := runCLI("gc", "-n", "--keep-runs", "1", file); code != exitOK || !strings.HasPrefix(out, "would remove 1 run folder (20261201_000000), keeping the newest 1 that succeeded and the newest 1 of the others\n") {
		t.Fatalf("gc -n --keep-runs 1: exit %d\n%s%s", code, out, errs)
	}
	for _, j := range []string{"-1", "-3"} {
		if code, _, errs := runCLI("run", "-j", j, file); code != exitErr || !strings.Contains(errs, "--jobs "+j+": the number of stages to run at once must be 1 or more (0: the number of CPUs)") {
			t.Errorf("run -j %s: exit %d\n%s", j, code, errs)
		}
	}
	if code, _, errs := runCLI("gc", "--keep-champions", "-1", file); code != exitErr || !strings.Contains(errs, "--keep-champions -1: the number of earlier champions to keep must be 0 or more") {
		t.Fatalf("gc --keep-champions -1: exit %d\n%s", code, errs)
	}
}

// repoWorkspace returns a workspace holding the repository's pipeline file, and the file: its
// source folders there, empty.
func repoWorkspace(t *testing.T) (string, string) {
	t.Helper()
	ws := t.TempDir()
	repo, err := os.ReadFile("../../pipeline.hcl")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ws, "pipeline.hcl")
	if err := os.WriteFile(file, repo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"data/raw/train", "data/raw/test"} { // the file's sources
		if err := os.MkdirAll(filepath.Join(ws, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ws, file
}

// gc --keep-runs keeps the run folder that trained the champion, however old: its plots and
// metrics, and promote RUN/FOLDER, which installs the champion again from it.
func TestGCKeepsTheChampionsRun(t *testing.T) {
	ws, file := repoWorkspace(t)
	for _, run := range []string{"20261201_000000", "20261202_000000", "20261203_000000"} {
		os.MkdirAll(filepath.Join(ws, "models", run), 0o755)
		os.WriteFile(filepath.Join(ws, "models", run, "run.json"), []byte(`{"status": "succeeded"}`), 0o644)
	}
	promoteFake(t, ws, "20261201_000000", "m1", 0.7)
	code, out, errs := runCLI("gc", "-n", "--keep-runs", "1", file)
	if code != exitOK || !strings.HasPrefix(out, "would remove 1 run folder (20261202_000000), keeping the newest 1 that succeeded and the newest 1 of the others, and the run folder that trained the champion (20261201_000000)\n") {
		t.Fatalf("gc -n --keep-runs 1: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI("gc", "--keep-runs", "1", file); code != exitOK {
		t.Fatalf("gc --keep-runs 1: exit %d\n%s%s", code, out, errs)
	}
	for run, want := range map[string]bool{"20261201_000000": true, "20261202_000000": false, "20261203_000000": true} {
		if _, err := os.Stat(filepath.Join(ws, "models", run)); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", run, err == nil, want)
		}
	}
}

// promote in a folder that is no workspace (no pipeline file, no promotion folder) says so,
// as runs does, rather than that no model was promoted yet.
func TestPromoteOutsideAWorkspaceSaysSo(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"promote"}, {"promote", "--rollback"}} {
		code, _, errs := runCLI(args...)
		if code != exitErr || !strings.Contains(errs, "pipeline file pipeline.hcl does not exist, nor does the promotion folder models/final_models; name the pipeline file, or run this in its folder") {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}

// TestModelArgTakesWhatPredictTakes checks that promote reads a model's folder in the runs
// folder, and its SavedModel, as the RUN/FOLDER they name, from the workspace or outside it.
func TestModelArgTakesWhatPredictTakes(t *testing.T) {
	ws := t.TempDir()
	runs := filepath.Join(ws, "models")
	for in, want := range map[string]string{
		"20261206_110000/vit":                                  "20261206_110000/vit",
		"20261206_110000/vit/":                                 "20261206_110000/vit",
		"models/20261206_110000/vit":                           "20261206_110000/vit",
		"models/20261206_110000/vit/saved_model":               "20261206_110000/vit",
		"models/20261206_110000/vit/saved_model/":              "20261206_110000/vit",
		"20261206_110000/vit/saved_model":                      "20261206_110000/vit",
		filepath.Join(runs, "20261206_110000/vit/saved_model"): "20261206_110000/vit",
		"20261206_110000-vit":                                  "20261206_110000-vit",
	} {
		if got := modelArg(in, "models", runs); got != want {
			t.Errorf("modelArg(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPromoteToAFolderOfRunsSaysItHoldsNoChampion checks that promote --to a folder that is no
// promotion folder (the runs folder) says it holds no champion, rather than that a champion
// cannot serve; a folder put there by hand that holds a model but no card still cannot serve.
func TestPromoteToAFolderOfRunsSaysItHoldsNoChampion(t *testing.T) {
	ws := t.TempDir()
	runs := filepath.Join(ws, "models")
	os.MkdirAll(filepath.Join(runs, "20261206_110000", "cnn"), 0o755)
	want := "pipeline: " + runs + " holds no champion: it is not a promotion folder (no promotion has been made there, and it holds no model); --to names the folder a select stage promotes to (its promote_to, models/final_models by default)\n"
	if code, out, errs := runCLI("promote", "--to", runs); code != exitErr || errs != want {
		t.Errorf("promote --to the runs folder: exit %d\n%s%s\nwant %s", code, out, errs, want)
	}
	byHand := filepath.Join(ws, "champion")
	smallModel(t, filepath.Join(byHand, "saved_model"), "cnn")
	if code, out, errs := runCLI("promote", "--to", byHand); code != exitErr || !strings.Contains(errs, "the champion champion cannot serve: ") {
		t.Errorf("promote --to a model without a card: exit %d\n%s%s", code, out, errs)
	}
}
