package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// cli runs the command in-process and returns its exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"pipeline"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func workspace(t *testing.T, hcl string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(hcl), 0o644)
	for c := 0; c < 2; c++ {
		for i := 0; i < 6; i++ {
			img := image.NewGray(image.Rect(0, 0, 4, 4))
			for j := range img.Pix {
				img.Pix[j] = uint8(c*100 + i*10 + j)
			}
			p := filepath.Join(dir, "raw", fmt.Sprintf("class %d", c), fmt.Sprintf("%d.png", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, _ := os.Create(p)
			png.Encode(f, img)
			f.Close()
		}
	}
	return dir
}

const splitOnly = `
stage "split" "main" {
  source     = "raw"
  image_size = 4
  channels   = 1
  val        = 0.2
  test       = 0.2
}
`

// A flag a command does not have is said in a line with the nearest flag the command has,
// and a line saying where its flags are listed, not followed by the whole help.
func TestAMistypedFlagSuggestsTheNearest(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--stag", "x"}, "pipeline: plan has no flag --stag; did you mean --stage?\nrun 'pipeline plan --help' to see its flags\n"},
		{[]string{"plan", "pipeline.hcl", "-stag", "x"}, "pipeline: plan has no flag --stag; did you mean --stage?\nrun 'pipeline plan --help' to see its flags\n"},
		{[]string{"predict", "--tpo", "3", "x.png"}, "pipeline: predict has no flag --tpo; did you mean --top?\nrun 'pipeline predict --help' to see its flags\n"},
		{[]string{"serve", "--adr", ":0"}, "pipeline: serve has no flag --adr; did you mean --addr?\nrun 'pipeline serve --help' to see its flags\n"},
		{[]string{"run", "--hlep"}, "pipeline: run has no flag --hlep; did you mean --help?\nrun 'pipeline run --help' to see its flags\n"},
		{[]string{"--hlep"}, "pipeline: no flag --hlep before the command (a command's flags come after its name); did you mean --help?\nrun 'pipeline --help' to see its flags\n"},
		{[]string{"--verison"}, "pipeline: no flag --verison before the command (a command's flags come after its name); did you mean --version?\nrun 'pipeline --help' to see its flags\n"},
		// Nothing near, or one letter, which any other is near: no suggestion.
		{[]string{"plan", "--zzzzzz"}, "pipeline: plan has no flag --zzzzzz\nrun 'pipeline plan --help' to see its flags\n"},
		{[]string{"predict", "-x", "x.png"}, "pipeline: predict has no flag -x\nrun 'pipeline predict --help' to see its flags\n"},
		// Other usage errors keep their words, with the same line.
		{[]string{"predict", "--top", "abc", "x.png"}, "pipeline: invalid value \"abc\" for flag --top: parse error\nrun 'pipeline predict --help' to see its flags\n"},
	} {
		code, out, errs := runCLI(tc.args...)
		if code != exitErr || out != "" || errs != tc.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", tc.args, code, out, errs, exitErr, tc.want)
		}
	}
}

// A word that names no command is said with the nearest command; help, alone or before a
// command, shows the help.
func TestAMistypedCommandSuggestsTheNearest(t *testing.T) {
	code, out, errs := runCLI("plna", "pipeline.hcl")
	if want := "pipeline: no command \"plna\"; did you mean plan?\nrun 'pipeline --help' to see the commands\n"; code != exitErr || out != "" || errs != want {
		t.Errorf("plna: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, out, errs, exitErr, want)
	}
	if code, _, errs := runCLI("help", "plna"); code != exitErr || !strings.Contains(errs, `no command "plna"; did you mean plan?`) {
		t.Errorf("help plna: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI("xyzzy")
	if want := "pipeline: no command \"xyzzy\"\nrun 'pipeline --help' to see the commands\n"; code != exitErr || errs != want {
		t.Errorf("xyzzy: exit %d, stderr %q; want %q", code, errs, want)
	}
	if code, _, errs := runCLI("x"); code != exitErr || strings.Contains(errs, "did you mean") {
		t.Errorf("x: exit %d, stderr %q; want no suggestion for one letter", code, errs)
	}
	if code, _, errs := runCLI("predict", "--top"); code != exitErr || !strings.Contains(errs, "flag needs an argument: --top\n") {
		t.Errorf("predict --top: exit %d, stderr %q; want the flag named as the help names it", code, errs)
	}
	for args, want := range map[string]string{"": "pipeline - train", "help": "pipeline - train", "help help": "pipeline - train", "help plan": "pipeline plan - show"} {
		if code, out, errs := runCLI(strings.Fields(args)...); code != exitOK || !strings.Contains(out, want) || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want the help (%q)", args, code, out, errs, want)
		}
	}
}

func TestPlanExitCodesAndFlagsAfterTheFile(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	code, out, errs := runCLI("plan", file, "--json")
	if code != exitPending {
		t.Fatalf("plan before running: exit %d, want %d\n%s%s", code, exitPending, out, errs)
	}
	var plan struct {
		Stages []struct {
			Stage, Action string
			Reasons       []string
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan.Stages) != 1 || plan.Stages[0].Reasons[0] != "never ran" {
		t.Fatalf("plan -json: %v\n%s", err, out)
	}
	if code, out, _ := runCLI("run", "-n", file); code != exitPending || !strings.Contains(out, "+ split.main") {
		t.Fatalf("run -n before running: exit %d, want %d as plan's\n%s", code, exitPending, out)
	}
	if code, _, errs := runCLI("run", file, "-q", "-v"); code != exitErr || !strings.Contains(errs, "--quiet and --verbose ask for opposite things") {
		t.Fatalf("run -q -v: exit %d, want %d and an error\n%s", code, exitErr, errs)
	}
	if code, out, errs := runCLI("run", file, "--quiet", "--runs-dir", "runs"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err != nil {
		t.Fatalf("--runs-dir after the file was ignored: %v", err)
	}
	if code, out, _ := runCLI("plan", file); code != exitOK || !strings.Contains(out, "= split.main") {
		t.Fatalf("plan after running: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI("plan", file, "--json"); code != exitOK || !strings.Contains(out, `"reasons": []`) {
		t.Fatalf("plan --json of a cached stage: exit %d, want its reasons as []\n%s", code, out)
	}
	if code, out, _ := runCLI("run", "--dry-run", file); code != exitOK {
		t.Fatalf("run --dry-run after running: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI("plan", "--force", file); code != exitPending || !strings.Contains(out, "forced") {
		t.Fatalf("plan --force: exit %d\n%s", code, out)
	}
}

func TestInvalidFileGetsDiagnosticsWithSnippets(t *testing.T) {
	dir := workspace(t, strings.Replace(splitOnly, "image_size", "image_sise", 1))
	code, _, errs := runCLI("validate", filepath.Join(dir, "pipeline.hcl"))
	if code != exitErr {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Unsupported argument", `Did you mean "image_size"?`, "pipeline.hcl line 4", "image_sise = 4", "pipeline.hcl: 2 errors\n"} {
		if !strings.Contains(errs, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, errs)
		}
	}
}

// TestValidateNamesTheDefaultFile checks that validate without a FILE names the file it read.
func TestValidateNamesTheDefaultFile(t *testing.T) {
	t.Chdir(workspace(t, splitOnly))
	code, out, errs := runCLI("validate")
	if code != exitOK || out != "pipeline.hcl is valid: 1 stage (1 instance), 0 schedules\n" {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestUnknownStageSelectorSuggests(t *testing.T) {
	dir := workspace(t, splitOnly)
	code, _, errs := runCLI("plan", filepath.Join(dir, "pipeline.hcl"), "--stage", "split.mian")
	if code != exitErr || !strings.Contains(errs, `did you mean "split.main"?`) {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestStageWarningsReachTheConsoleWithoutVerbose(t *testing.T) {
	var buf strings.Builder
	r := newReporter(&buf, false, false)
	r.Log("split.main", "warning: 3 files rejected, e.g. raw/a/x.jpg: empty file (all in report/rejected.json)")
	r.Log("split.main", "found 120 files in 4 class folders of raw")
	if out := buf.String(); !strings.Contains(out, "warning: 3 files rejected") || strings.Contains(out, "found 120 files") {
		t.Fatalf("console:\n%s", out)
	}
	buf.Reset()
	q := newReporter(&buf, true, false)
	q.Log("split.main", "warning: 3 files rejected")
	if buf.Len() != 0 {
		t.Fatalf("--quiet printed %q", buf.String())
	}
}

// TestResumedTrainingIsSaidOnTheConsole checks that a training resumed from a checkpoint
// says so on the console, not only in run.log, and that the run's own lines (addressed to no
// stage) are printed without an empty stage name.
func TestResumedTrainingIsSaidOnTheConsole(t *testing.T) {
	var buf strings.Builder
	r := newReporter(&buf, false, false)
	r.Log("train.cnn", "resuming after epoch 3 of 5 (checkpoint in the stage's work area)")
	if !strings.Contains(buf.String(), "train.cnn: resuming after epoch 3 of 5") {
		t.Fatalf("console: %q", buf.String())
	}
	// A forced training says it does not resume.
	buf.Reset()
	r.Log("train.cnn", "forced: starting over, without what an interrupted run left in its work area (13.8 MB)")
	if !strings.Contains(buf.String(), "train.cnn: forced: starting over") {
		t.Fatalf("console: %q", buf.String())
	}
	// So does a forced split that makes every image again.
	buf.Reset()
	r.Log("split.main", "forced: storing every image again, linking none from the previous split")
	if !strings.Contains(buf.String(), "split.main: forced: storing every image again") {
		t.Fatalf("console: %q", buf.String())
	}
	// The run's own lines have no stage to name, and no ": " before them.
	buf.Reset()
	r.Log("", "pid 7 ended without releasing the workspace lock; taking it over")
	if _, line, _ := strings.Cut(buf.String(), " "); line != "pid 7 ended without releasing the workspace lock; taking it over\n" {
		t.Fatalf("console: %q", buf.String())
	}
}

// TestEachStageKeepsItsNumberFromStartToEnd checks the [k/N] count: stages are numbered in
// the order they are first reported, and a stage's outcome carries its start's number, even
// when stages run side by side and finish in another order.
func TestEachStageKeepsItsNumberFromStartToEnd(t *testing.T) {
	var buf strings.Builder
	r := newReporter(&buf, false, false)
	r.Planned([]string{"split.main", "train.a", "train.b", "report.r"})
	r.Finished(&pipeline.StageResult{Addr: "split.main", Status: pipeline.StatusCached})
	r.Started("train.a", []string{"new"})
	r.Started("train.b", []string{"new"})
	r.Finished(&pipeline.StageResult{Addr: "train.b", Status: pipeline.StatusRan, Duration: 1})
	r.Finished(&pipeline.StageResult{Addr: "train.a", Status: pipeline.StatusFailed, Error: "boom"})
	r.Finished(&pipeline.StageResult{Addr: "report.r", Status: pipeline.StatusSkipped})
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		_, rest, _ := strings.Cut(line, " ") // the timestamp of plain output
		got = append(got, rest)
	}
	want := []string{
		"[1/4] split.main: cached",
		"[2/4] train.a: running (new)",
		"[3/4] train.b: running (new)",
		"[3/4] train.b: done in 1s",
		"[2/4] train.a: FAILED: boom",
		"[4/4] report.r: skipped",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("console:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunsListsRunFoldersWhateverTheFolderIsCalled(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	if code, out, errs := runCLI("run", file, "--quiet", "--runs-dir", "runs [1]*"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := runCLI("runs", "--runs-dir", filepath.Join(dir, "runs [1]*"))
	if code != exitOK || strings.Count(out, "succeeded") != 1 {
		t.Fatalf("runs: exit %d, want one succeeded run listed\n%s%s", code, out, errs)
	}
}

func TestValidateReportsAMissingSourceWithTheClosestFolder(t *testing.T) {
	dir := workspace(t, strings.Replace(splitOnly, `"raw"`, `"rwa"`, 1))
	file := filepath.Join(dir, "pipeline.hcl")
	code, _, errs := runCLI("validate", file)
	if code != exitErr {
		t.Fatalf("validate: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"Source not found", "pipeline.hcl line 3", `source "rwa" does not exist`, `Did you mean "raw"?`, "pipeline.hcl: 1 error\n"} {
		if !strings.Contains(errs, want) {
			t.Errorf("validate diagnostics lack %q:\n%s", want, errs)
		}
	}
	if code, _, errs := runCLI("plan", file); code != exitErr || !strings.Contains(errs, `did you mean "raw"?`) {
		t.Errorf("plan: exit %d\n%s", code, errs)
	}
}

// TestVarValuesKeepTheirCommas checks that a -var value holding commas (a list, as the docs
// show) is one value, not several to split apart.
func TestVarValuesKeepTheirCommas(t *testing.T) {
	dir := workspace(t, `
variable "sizes" {
  type    = list(number)
  default = [4]
}

variable "note" {
  type    = string
  default = ""
}

stage "split" "main" {
  for_each   = toset([for s in var.sizes : tostring(s)])
  source     = "raw"
  image_size = tonumber(each.key)
  channels   = 1
  val        = 0.2
  test       = 0.2
}
`)
	code, out, errs := runCLI("plan", filepath.Join(dir, "pipeline.hcl"), "-var", "sizes=[4,6]", "-var", "note=a,b")
	if code != exitPending || !strings.Contains(out, `split.main["4"]`) || !strings.Contains(out, `split.main["6"]`) {
		t.Fatalf("plan with -var sizes=[4,6]: exit %d\n%s%s", code, out, errs)
	}
}

// TestHelpShowsOneDefaultPerFlag checks that no flag's help says its default twice (a usage
// text naming it and the one cli adds). promote's --to is left to its own change.
func TestHelpShowsOneDefaultPerFlag(t *testing.T) {
	_, out, _ := runCLI("--help")
	_, commands, _ := strings.Cut(out, "COMMANDS:\n")
	commands, _, _ = strings.Cut(commands, "\n\n")
	names := 0
	for _, line := range strings.Split(commands, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		name = strings.TrimSuffix(name, ",")
		if name == "" || name == "help" {
			continue
		}
		names++
		_, help, _ := runCLI(name, "--help")
		for _, l := range strings.Split(help, "\n") {
			if strings.Count(l, "(default:") > 1 && !(name == "promote" && strings.Contains(l, "--to")) {
				t.Errorf("%s --help: %s", name, strings.TrimSpace(l))
			}
		}
	}
	if names < 10 {
		t.Fatalf("found %d commands in --help:\n%s", names, out)
	}
}

// TestPlanWarnsOfAClassTooSmallToSplit checks that validate and plan warn of a class folder
// with fewer files than the split needs, at the source attribute, before the split fails on
// it; and that drop_small_classes, which leaves such a class out, is not warned of.
func TestPlanWarnsOfAClassTooSmallToSplit(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	for _, cmd := range []string{"validate", "plan"} {
		if _, _, errs := runCLI(cmd, file); strings.Contains(errs, "Unusable source") {
			t.Fatalf("%s with classes of 6 images: %s", cmd, errs)
		}
	}
	tiny := filepath.Join(dir, "raw", "tiny")
	os.MkdirAll(tiny, 0o755)
	for i := 0; i < 2; i++ {
		os.WriteFile(filepath.Join(tiny, fmt.Sprintf("%d.png", i)), []byte("not read"), 0o644)
	}
	want := `source "raw": class "tiny" has 2 files, and this split needs at least 3 images per class`
	// (run says it in the split's own words when the split fails.)
	for _, cmd := range []string{"validate", "plan"} {
		code, out, errs := runCLI(cmd, file)
		if !strings.Contains(errs, "Unusable source") || !strings.Contains(strings.Join(strings.Fields(errs), " "), want) || !strings.Contains(errs, "line 3") {
			t.Errorf("%s: exit %d, want a warning at line 3: %s\n%s%s", cmd, code, want, out, errs)
		}
	}
	os.WriteFile(file, []byte(strings.Replace(splitOnly, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)), 0o644)
	if code, out, errs := runCLI("plan", file); strings.Contains(errs, "Unusable source") {
		t.Errorf("plan with drop_small_classes: exit %d\n%s%s", code, out, errs)
	}
	// plan and run check the stages they would run; validate checks them all.
	other := strings.Replace(strings.Replace(splitOnly, `"main"`, `"other"`, 1), "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)
	os.WriteFile(file, []byte(splitOnly+other), 0o644)
	for cmd, warned := range map[string]bool{"plan": false, "run": false, "validate": true} {
		args := []string{cmd, file, "--stage", "split.other"}
		if cmd == "validate" {
			args = args[:2]
		}
		if code, out, errs := runCLI(args...); strings.Contains(errs, "Unusable source") != warned {
			t.Errorf("%q with split.main's class too small: exit %d, warned %v, want %v\n%s%s", args, code, !warned, warned, out, errs)
		}
	}
}

// TestQuotedStageReferenceIsRefusedBeforeRunning checks that validate, plan and run refuse a
// stage reference written in quotes where a stage output is expected, saying to remove the
// quotes, rather than validate warning of a missing path, plan giving a reason and run
// failing on the path.
func TestQuotedStageReferenceIsRefusedBeforeRunning(t *testing.T) {
	dir := workspace(t, splitOnly+`
stage "augment" "bal" {
  input       = "stage.split.main.train"
  max_augment = 2
}
`)
	file := filepath.Join(dir, "pipeline.hcl")
	want := `input "stage.split.main.train" is a string, not a reference: remove the quotes (input = stage.split.main.train).`
	for _, cmd := range []string{"validate", "plan", "run"} {
		args := []string{cmd, file}
		if cmd == "run" {
			args = append(args, "--runs-dir", filepath.Join(dir, "runs"))
		}
		code, out, errs := runCLI(args...)
		if code != exitErr || !strings.Contains(errs, "Error: Stage reference in quotes") || !strings.Contains(errs, "pipeline.hcl line 11") ||
			!strings.Contains(strings.Join(strings.Fields(errs), " "), want) || strings.Contains(errs, "Path not found") {
			t.Errorf("%s: exit %d, want an error at line 11 saying %s\n%s%s", cmd, code, want, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); !os.IsNotExist(err) {
		t.Errorf("run made a run folder: %v", err)
	}
}

// Instances of one split stage sharing a source are each checked with their own settings: a
// class too small for one instance's val is warned of whichever instance comes first.
func TestEachInstanceOfASplitIsCheckedForSmallClasses(t *testing.T) {
	for _, c := range []struct{ vals, short string }{{"{ a = 0, b = 0.2 }", "b"}, {"{ a = 0.2, b = 0 }", "a"}} {
		vals := c.vals
		dir := workspace(t, `
stage "split" "main" {
  for_each   = `+vals+`
  source     = "raw"
  image_size = 4
  channels   = 1
  val        = each.value
  test       = 0
}
`)
		os.MkdirAll(filepath.Join(dir, "raw", "tiny"), 0o755)
		os.WriteFile(filepath.Join(dir, "raw", "tiny", "1.png"), []byte("x"), 0o644)
		// the warning names the one instance that needs more (lines wrap at the terminal's width)
		code, out, errs := runCLI("plan", filepath.Join(dir, "pipeline.hcl"))
		want := `In split.main[` + c.short + `]: source "raw": class "tiny" has 1 file, and this split needs at least 2 images per class`
		if !strings.Contains(strings.Join(strings.Fields(errs), " "), want) {
			t.Errorf("for_each = %s: exit %d, want %q\n%s%s", vals, code, want, out, errs)
		}
	}
}

// selftest with too few steps fails, saying which architectures did not learn and that the
// default number of steps is what to try.
func TestSelftestSaysWhyItFailed(t *testing.T) {
	code, out, errs := runCLI("selftest", "--steps", "3", "--out", t.TempDir())
	if code != exitErr || !strings.Contains(errs, "cnn, vgg19, vit did not learn the synthetic problem in 3 steps") || !strings.Contains(errs, "try --steps 150") {
		t.Errorf("selftest --steps 3: exit %d\n%s%s", code, out, errs)
	}
}

// TestVarNeedsANameAndAValue checks that a -var without NAME=VALUE is refused as such.
func TestVarNeedsANameAndAValue(t *testing.T) {
	for _, bad := range []string{"=3", "epochs", " =3"} {
		if _, err := parseVars([]string{bad}); err == nil || !strings.Contains(err.Error(), "expected NAME=VALUE") {
			t.Errorf("-var %q: %v", bad, err)
		}
	}
	if vars, err := parseVars([]string{"epochs=3", "note=a=b"}); err != nil || vars["epochs"] != "3" || vars["note"] != "a=b" {
		t.Errorf("good -var values: %v %v", vars, err)
	}
}

// validate and graph only read the file: they neither create the store in the workspace nor
// fail where it cannot be written (a read-only checkout).
func TestValidateAndGraphLeaveTheWorkspaceAlone(t *testing.T) {
	dir := workspace(t, splitOnly)
	file := filepath.Join(dir, "pipeline.hcl")
	for _, args := range [][]string{{"validate", file}, {"graph", file}} {
		if code, out, errs := runCLI(args...); code != exitOK {
			t.Fatalf("%s: exit %d\n%s%s", args[0], code, out, errs)
		}
		if _, err := os.Stat(filepath.Join(dir, pipeline.StoreDir)); !os.IsNotExist(err) {
			t.Fatalf("%s made the store %s (stat: %v)", args[0], pipeline.StoreDir, err)
		}
	}
}

// selftest refuses a step count below 1 before it trains or writes anything (it trained none
// and printed negative images/s), and selftest and version refuse arguments they do not take,
// as the other commands do, rather than ignoring them.
func TestSelftestAndVersionRefuseWhatTheyDoNotTake(t *testing.T) {
	out := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"selftest", "--steps", "0", "--out", out}, "--steps 0: the training steps per architecture must be at least 1"},
		{[]string{"selftest", "--steps", "-1", "--out", out}, "--steps -1: the training steps per architecture must be at least 1"},
		{[]string{"selftest", "--out", out, "elsewhere"}, `selftest takes no arguments, got ["elsewhere"]`},
		{[]string{"version", "extra"}, `version takes no arguments, got ["extra"]`},
	} {
		code, stdout, errs := runCLI(tc.args...)
		if code != exitErr || !strings.Contains(errs, tc.want) || stdout != "" {
			t.Errorf("%q: exit %d, want 1 and %q\n%s%s", tc.args, code, tc.want, stdout, errs)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("a refused selftest wrote %s", entries[0].Name())
	}
}
