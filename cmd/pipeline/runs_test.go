package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pipeline/pipeline"
)

// runLine returns the line of runs' output about the run folder id.
func runLine(out, id string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, id+" ") {
			return l
		}
	}
	return ""
}

// TestRunsListsRunningAndIncompleteRuns checks that runs lists a run folder without run.json
// as "running" while the live process holding the workspace lock makes it, and as
// "incomplete" otherwise (a run killed with SIGKILL), and nothing else in the runs folder.
func TestRunsListsRunningAndIncompleteRuns(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	if code, out, errs := runCLI("run", file, "--quiet"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	models := filepath.Join(dir, "models")
	killed := filepath.Join(models, "20200101_000000")
	os.MkdirAll(killed, 0o755)
	os.WriteFile(filepath.Join(killed, "run.log"), []byte("00:00:00 run 20200101_000000: 1 stage\n00:00:00 command: pipeline run pipeline.hcl -var epochs=2\n"), 0o644)
	os.Chtimes(filepath.Join(killed, "run.log"), time.Time{}, time.Date(2020, 1, 1, 0, 5, 0, 0, time.UTC))
	now := time.Now().UTC()
	going := filepath.Join(models, now.Format("20060102_150405")+"-9")
	os.MkdirAll(going, 0o755)
	os.WriteFile(filepath.Join(going, "run.log"), nil, 0o644)
	os.MkdirAll(filepath.Join(models, "final_models.d", "x-cnn"), 0o755)
	os.WriteFile(filepath.Join(models, "final_models.d", "history.json"), []byte(`{"promotions":["x-cnn"]}`), 0o644)
	os.WriteFile(filepath.Join(models, "cron.log"), nil, 0o644)
	host, _ := os.Hostname()
	owner, _ := json.Marshal(pipeline.LockOwner{PID: os.Getpid(), Host: host, Command: "pipeline run pipeline.hcl -var epochs=3", Started: now, Run: going})
	lock := filepath.Join(dir, pipeline.StoreDir, "lock")
	held, _, err := pipeline.AcquireLock(dir) // the flock a running holder has
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	os.WriteFile(lock, owner, 0o644)

	// From another folder: runs looks in the pipeline file's workspace.
	t.Chdir(t.TempDir())
	code, out, errs := runCLI("runs", file)
	if code != exitOK || strings.Count(out, "\n") != 4 || strings.Count(out, "succeeded") != 1 ||
		!regexp.MustCompile(`incomplete  5m0s .*pipeline\.hcl +-var epochs=2 +-$`).MatchString(runLine(out, "20200101_000000")) || !strings.Contains(runLine(out, filepath.Base(going)), "running") ||
		!regexp.MustCompile(`pipeline\.hcl +-var epochs=3 +-$`).MatchString(runLine(out, filepath.Base(going))) {
		t.Fatalf("runs: exit %d, want a header, one succeeded, one incomplete (for 5m0s) and one running run\n%s%s", code, out, errs)
	}
	// A run the scheduler fired, its file the default: named as its record will name it.
	owner, _ = json.Marshal(pipeline.LockOwner{PID: os.Getpid(), Host: host, Command: "pipeline schedule --once -var epochs=4", Started: now, Run: going})
	os.WriteFile(lock, owner, 0o644)
	if code, out, errs := runCLI("runs", file); code != exitOK || !regexp.MustCompile(`running .*pipeline\.hcl +scheduled -var epochs=4 +-$`).MatchString(runLine(out, filepath.Base(going))) {
		t.Fatalf("runs with a scheduled run going: exit %d\n%s%s", code, out, errs)
	}
	// Flags with their values, and no file named: the default file.
	owner, _ = json.Marshal(pipeline.LockOwner{PID: os.Getpid(), Host: host, Command: "pipeline run --stage select.best -j 2", Started: now, Run: going})
	os.WriteFile(lock, owner, 0o644)
	if code, out, errs := runCLI("runs", file); code != exitOK || !regexp.MustCompile(`running .*pipeline\.hcl +--stage select.best -j 2 +-$`).MatchString(runLine(out, filepath.Base(going))) {
		t.Fatalf("runs with a run of one stage going: exit %d\n%s%s", code, out, errs)
	}
	// The lock released, or its holder gone: the run was killed.
	os.WriteFile(lock, nil, 0o644)
	if code, out, errs := runCLI("runs", file); code != exitOK || !strings.Contains(runLine(out, filepath.Base(going)), "incomplete") {
		t.Fatalf("runs after the lock was released: exit %d\n%s%s", code, out, errs)
	}
}

// TestRunsAndPromoteUseTheWorkspaceOfTheFile checks that runs and promote resolve their
// folders against the pipeline file's folder, as run does, and that runs says so when the
// runs folder does not exist instead of printing an empty table.
func TestRunsAndPromoteUseTheWorkspaceOfTheFile(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	t.Chdir(t.TempDir())
	code, out, errs := runCLI("runs", file)
	if code != exitErr || !strings.Contains(errs, filepath.Join(dir, "models")+" does not exist: no run of "+file) {
		t.Fatalf("runs before any run: exit %d, want %d and the runs folder named\n%s%s", code, exitErr, out, errs)
	}
	if code, _, errs := runCLI("runs"); code != exitErr || !strings.Contains(errs, "pipeline file pipeline.hcl does not exist, nor does the runs folder models") {
		t.Fatalf("runs in a folder without runs: exit %d\n%s", code, errs)
	}
	// A missing pipeline file is one line, whichever command is given it.
	for _, cmd := range []string{"runs", "promote", "validate", "plan", "run", "graph", "gc", "schedule"} {
		missing := filepath.Join(dir, "other.hcl")
		if code, _, errs := runCLI(cmd, missing); code != exitErr || errs != "pipeline: pipeline file "+missing+" does not exist\n" {
			t.Errorf("%s with a missing file: exit %d\n%s", cmd, code, errs)
		}
	}
	if code, _, errs := runCLI("gc"); code != exitErr || errs != "pipeline: pipeline file pipeline.hcl does not exist\n" {
		t.Errorf("gc without pipeline.hcl: exit %d\n%s", code, errs)
	}
	elsewhere := filepath.Join(t.TempDir(), "runs")
	if code, out, errs := runCLI("run", file, "--quiet", "--runs-dir", elsewhere); code != exitOK {
		t.Fatalf("run --runs-dir %s: exit %d\n%s%s", elsewhere, code, out, errs)
	}
	if code, out, errs := runCLI("runs", file, "--runs-dir", elsewhere); code != exitOK || strings.Count(out, "succeeded") != 1 {
		t.Fatalf("runs --runs-dir with an absolute path: exit %d\n%s%s", code, out, errs)
	}
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	if code, out, _ := runCLI("runs", file); code != exitOK || !strings.Contains(out, "holds no run folders") {
		t.Fatalf("runs with an empty runs folder: exit %d\n%s", code, out)
	}

	if code, _, errs := runCLI("promote", file); code != exitErr || !strings.Contains(errs, filepath.Join(dir, "models/final_models")+" holds no promoted model yet") {
		t.Fatalf("promote before any promotion: exit %d\n%s", code, errs)
	}
	promoteFake(t, dir, "run1", "m1", 0.7)
	promoteFake(t, dir, "run2", "m2", 0.8)
	if code, out, errs := runCLI("promote", file); code != exitOK || !strings.HasPrefix(out, "champion run2-cnn") {
		t.Fatalf("promote FILE: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI("promote", file, "--rollback"); code != exitOK || !strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("promote FILE --rollback: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI("promote", "run2-cnn", file); code != exitOK || !strings.Contains(out, "champion run2-cnn") {
		t.Fatalf("promote ID FILE: exit %d\n%s%s", code, out, errs)
	}
}

// TestRunsSaysWhichLinksLeadNowhere moves a workspace away from a runs folder outside it and
// checks that runs names the run folder's image link that leads nowhere with where the store
// has its images, and, once they are gone from the store, says so.
func TestRunsSaysWhichLinksLeadNowhere(t *testing.T) {
	dir := workspace(t, splitOnly)
	runs := filepath.Join(t.TempDir(), "runs")
	if code, out, errs := runCLI("run", filepath.Join(dir, "pipeline.hcl"), "--quiet", "--runs-dir", runs); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	file := filepath.Join(dir, "pipeline.hcl")
	if code, out, errs := runCLI("runs", file, "--runs-dir", runs); code != exitOK || strings.Contains(out, "leads nowhere") {
		t.Fatalf("runs before the move: exit %d\n%s%s", code, out, errs)
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(moved, "pipeline.hcl")
	code, out, errs := runCLI("runs", file, "--runs-dir", runs)
	relink := regexp.MustCompile(`(?m)^  ln -sfn ` + regexp.QuoteMeta(filepath.Join(moved, pipeline.StoreDir, "objects")) + `/[0-9a-f]{64}/images ` +
		regexp.QuoteMeta(runs) + `/[0-9_]+/split\.main/images$`)
	if code != exitOK || !strings.Contains(out, ": 1 link leads nowhere, made when the workspace's store was elsewhere") || !relink.MatchString(out) {
		t.Fatalf("runs after the workspace moved: exit %d, want the link named with where its images are\n%s%s", code, out, errs)
	}
	objects := filepath.Join(moved, pipeline.StoreDir, "objects")
	entries, _ := os.ReadDir(objects)
	for _, e := range entries {
		os.Chmod(filepath.Join(objects, e.Name()), 0o755)
		if err := os.RemoveAll(filepath.Join(objects, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errs := runCLI("runs", file, "--runs-dir", runs); code != exitOK || !strings.Contains(out, "split.main/images leads nowhere: the store no longer has output ") {
		t.Fatalf("runs after the store lost the images: exit %d\n%s%s", code, out, errs)
	}
}

// runs shows what a run was asked beyond its pipeline file.
func TestRunOptionsShowWhatARunWasAsked(t *testing.T) {
	for _, c := range []struct {
		rec  *pipeline.RunRecord
		want string
	}{
		{&pipeline.RunRecord{Command: "bin/pipeline run pipeline.hcl", Pipeline: "pipeline.hcl"}, ""},
		{&pipeline.RunRecord{Command: "bin/pipeline run pipeline.hcl --quiet -var epochs=3 --stage train.model[cnn] --force", Pipeline: "pipeline.hcl"}, "-var epochs=3 --stage train.model[cnn] --force"},
		{&pipeline.RunRecord{Command: "pipeline run /w/p.hcl -v", Pipeline: "/w/p.hcl"}, ""},
		{&pipeline.RunRecord{Command: "pipeline run My exp/pipeline.hcl --quiet=true -verbose --force", Pipeline: "My exp/pipeline.hcl"}, "--force"},
		{&pipeline.RunRecord{Command: "bin/pipeline schedule pipeline.hcl", Pipeline: "pipeline.hcl", Trigger: `schedule "nightly" due 2026-12-07T03:00:00Z`}, "scheduled"},
		{&pipeline.RunRecord{Command: "bin/pipeline schedule pipeline.hcl --once -var epochs=1", Pipeline: "pipeline.hcl", Trigger: `schedule "nightly" due 2026-12-07T03:00:00Z`}, "scheduled -var epochs=1"},
	} {
		if got := runOptions(c.rec); got != c.want {
			t.Errorf("%q: %q, want %q", c.rec.Command, got, c.want)
		}
	}
}

// runs shows what each run's select stages came to, named by stage when there are several.
func TestRunResultShowsWhatSelectDid(t *testing.T) {
	one := &pipeline.StageResult{Addr: "select.best", Summary: "cnn 0.8295, promoted"}
	two := &pipeline.StageResult{Addr: "select.small", Summary: "tiny 0.7000, not promoted"}
	train := &pipeline.StageResult{Addr: "train.model[cnn]"}
	for _, c := range []struct {
		stages []*pipeline.StageResult
		want   string
	}{
		{nil, "-"},
		{[]*pipeline.StageResult{train}, "-"},
		{[]*pipeline.StageResult{train, one}, "cnn 0.8295, promoted"},
		{[]*pipeline.StageResult{one, train, two}, "select.best: cnn 0.8295, promoted; select.small: tiny 0.7000, not promoted"},
	} {
		if got := runResult(&pipeline.RunRecord{Stages: c.stages}); got != c.want {
			t.Errorf("%d stages: %q, want %q", len(c.stages), got, c.want)
		}
	}
	// Runs recorded before select gave a summary: from its note.
	for effect, want := range map[string]string{
		"promoted cnn (test_f1_macro 0.8295; no champion yet) to models/final_models":                                                                        "cnn 0.8295, promoted",
		"models/final_models was missing: it points to the champion x again, as history.json says; promoted vit (test_top1 0.9100; champion x had 0.9) to m": "vit 0.9100, promoted",
		"cnn (test_f1_macro 0.8295) is already the champion in models/final_models":                                                                          "cnn 0.8295, champion",
		"not promoted: cnn test_f1_macro 0.7000 does not beat the champion x (0.8000) by more than 0":                                                        "not promoted",
		"": "-",
	} {
		if got := runResult(&pipeline.RunRecord{Stages: []*pipeline.StageResult{{Addr: "select.best", Effect: effect}}}); got != want {
			t.Errorf("effect %q: %q, want %q", effect, got, want)
		}
	}
}

// A run whose select did not promote its winner, promoted by hand since, says so; and one
// whose promoted model was rolled back since says that.
func TestRunsSaysARunWasPromotedByHandSince(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(splitOnly), 0o644)
	models := filepath.Join(dir, "models")
	for id, summary := range map[string]string{"20261206_110000": "cnn 0.8000, not promoted", "20261206_120000": "cnn 0.8000, not promoted",
		"20261206_130000": "vit 0.9000, promoted"} {
		os.MkdirAll(filepath.Join(models, id), 0o755)
		start := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
		rec := pipeline.RunRecord{ID: id, Status: "succeeded", Started: start, Finished: start.Add(time.Minute),
			Stages: []*pipeline.StageResult{{Addr: "select.best", Status: pipeline.StatusRan, Summary: summary}}}
		b, _ := json.Marshal(&rec)
		os.WriteFile(filepath.Join(models, id, "run.json"), b, 0o644)
	}
	os.MkdirAll(filepath.Join(models, "final_models.d", "20261206_120000-cnn"), 0o755)
	os.WriteFile(filepath.Join(models, "final_models.d", "history.json"), []byte(`{"promotions":["20261206_120000-cnn"],
		"rolled_back":[{"id":"20261206_130000-vit","source_model":"x","rolled_back_at":"2026-12-06T14:00:00Z","set_aside_by":"rollback"}]}`), 0o644)
	code, out, errs := runCLI("runs", filepath.Join(dir, "pipeline.hcl"))
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_120000"), "cnn 0.8000, not promoted (promoted by hand since)") ||
		!strings.HasSuffix(runLine(out, "20261206_110000"), "cnn 0.8000, not promoted") ||
		!strings.HasSuffix(runLine(out, "20261206_130000"), "vit 0.9000, promoted (rolled back since)") {
		t.Fatalf("runs: exit %d\n%s%s", code, out, errs)
	}
}

// A run whose select promoted one model, another of whose models was promoted by hand and then
// rolled back, does not say that its promoted model was rolled back: that one is the champion
// again.
func TestRunsNamesOnlyItsPromotedModelRolledBack(t *testing.T) {
	sel := &pipeline.StageResult{Addr: "select.best", Status: pipeline.StatusRan, Summary: "cnn2 0.7436, promoted"}
	file, models := runsFixture(t, "succeeded", sel)
	writePromotions(t, models, `{"promotions":["20261206_110000-cnn2"],
		"rolled_back":[{"id":"20261206_110000-cnn","source_model":"x","rolled_back_at":"2026-12-06T14:00:00Z","set_aside_by":"rollback"}]}`, "20261206_110000-cnn2")
	code, out, errs := runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "cnn2 0.7436, promoted") {
		t.Fatalf("runs: exit %d\n%s%s", code, out, errs)
	}
	// Once the promoted model itself is rolled back, it says so, also after a score that counts
	// test photos the model was trained on.
	writePromotions(t, models, `{"promotions":["20261206_110000-cnn"],
		"rolled_back":[{"id":"20261206_110000-cnn2","source_model":"x","rolled_back_at":"2026-12-06T14:00:00Z","set_aside_by":"rollback"}]}`)
	code, out, errs = runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "cnn2 0.7436, promoted (rolled back since)") {
		t.Fatalf("runs after the rollback of cnn2: exit %d\n%s%s", code, out, errs)
	}
	sel.Summary = "cnn2 0.7436 (trained on 3 of its test images), promoted"
	writeRunRecord(t, models, "succeeded", sel)
	code, out, errs = runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "cnn2 0.7436 (trained on 3 of its test images), promoted (rolled back since)") {
		t.Fatalf("runs after the rollback of cnn2, trained on test images: exit %d\n%s%s", code, out, errs)
	}
}

// A run whose select did not promote its winner, another model of which was promoted by hand
// since, names that model rather than saying its winner was promoted.
func TestRunsNamesTheModelPromotedByHand(t *testing.T) {
	sel := &pipeline.StageResult{Addr: "select.best", Status: pipeline.StatusRan, Summary: "cnn 0.2186, not promoted"}
	file, models := runsFixture(t, "succeeded", sel)
	writePromotions(t, models, `{"promotions":["20261206_110000-vit"]}`, "20261206_110000-vit")
	code, out, errs := runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "cnn 0.2186, not promoted (vit promoted by hand since)") {
		t.Fatalf("runs: exit %d\n%s%s", code, out, errs)
	}
	// The winner promoted by hand, after a score that counts test photos it was trained on.
	writePromotions(t, models, `{"promotions":["20261206_110000-cnn"]}`)
	sel.Summary = "cnn 0.2186 (trained on 3 of its test images), not promoted"
	writeRunRecord(t, models, "succeeded", sel)
	code, out, errs = runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "cnn 0.2186 (trained on 3 of its test images), not promoted (promoted by hand since)") {
		t.Fatalf("runs: exit %d\n%s%s", code, out, errs)
	}
}

// selectWinner reads the winner and its outcome from a run's result, whatever the candidate's
// name holds and after a note of test photos it was trained on, of the last select stage.
func TestSelectWinnerReadsTheResult(t *testing.T) {
	for result, want := range map[string]string{
		"cnn 0.8295, promoted":                                               "cnn promoted",
		"my model 0.8295, not promoted":                                      "my model not promoted",
		"cnn2 NaN, not promoted":                                             "cnn2 not promoted",
		"vit 0.9000 (trained on 3 of its test images), promoted":             "vit promoted",
		"select.a: cnn 0.8000, champion; select.b: big vit 0.9000, promoted": "big vit promoted",
		"not promoted": "",
		"-":            "",
	} {
		name, promoted, ok := selectWinner(result)
		got := ""
		if ok {
			got = name + map[bool]string{true: " promoted", false: " not promoted"}[promoted]
		}
		if got != want {
			t.Errorf("%q: %q, want %q", result, got, want)
		}
	}
}

// A run whose select did not run (a training failed), a model of which was promoted by hand
// since, says so instead of "-".
func TestRunsSaysAModelOfAFailedRunWasPromotedByHand(t *testing.T) {
	file, models := runsFixture(t, "failed", &pipeline.StageResult{Addr: "select.best", Status: pipeline.StatusSkipped})
	writePromotions(t, models, `{"promotions":["20261206_110000-cnn"]}`, "20261206_110000-cnn")
	code, out, errs := runCLI("runs", file)
	if code != exitOK || !strings.HasSuffix(runLine(out, "20261206_110000"), "  cnn promoted by hand since") {
		t.Fatalf("runs: exit %d\n%s%s", code, out, errs)
	}
}

// runsFixture makes a workspace of the split-only pipeline whose runs folder holds run
// 20261206_110000 of status, with select.best's result sel, and returns the pipeline file and
// the runs folder.
func runsFixture(t *testing.T, status string, sel *pipeline.StageResult) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(splitOnly), 0o644); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(dir, "models")
	writeRunRecord(t, models, status, sel)
	return filepath.Join(dir, "pipeline.hcl"), models
}

// writeRunRecord writes the record of run 20261206_110000 of status, with select.best's
// result sel, into the runs folder models.
func writeRunRecord(t *testing.T, models, status string, sel *pipeline.StageResult) {
	t.Helper()
	const id = "20261206_110000"
	start := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	rec := pipeline.RunRecord{ID: id, Status: status, Started: start, Finished: start.Add(time.Minute), Stages: []*pipeline.StageResult{sel}}
	b, _ := json.Marshal(&rec)
	if err := os.MkdirAll(filepath.Join(models, id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, id, "run.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writePromotions writes history.json of models/final_models's promotions folder, and makes
// the folders of promoted there.
func writePromotions(t *testing.T, models, history string, promoted ...string) {
	t.Helper()
	for _, id := range promoted {
		if err := os.MkdirAll(filepath.Join(models, "final_models.d", id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(models, "final_models.d", "history.json"), []byte(history), 0o644); err != nil {
		t.Fatal(err)
	}
}
