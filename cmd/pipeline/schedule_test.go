package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeline/pipeline"
	"pipeline/stages"
)

const splitScheduled = splitOnly + `
schedule "nightly" {
  cron    = "0 3 * * *"
  targets = [stage.split.main]
}
`

// TestScheduleOnceExitsLikeRun checks that schedule --once, which the README offers for the
// OS's cron, exits as run does: non-zero with the error on stderr when the run fails or
// cannot be planned, 0 when it succeeds or nothing is out of date, and 0 with a message when
// another process holds the workspace lock (the next trigger tries again).
func TestScheduleOnceExitsLikeRun(t *testing.T) {
	// A stage fails: one class is too few for a classifier.
	dir := workspace(t, splitScheduled)
	file := filepath.Join(dir, "pipeline.hcl")
	os.RemoveAll(filepath.Join(dir, "raw", "class 1"))
	code, _, errs := runCLI("run", file, "--quiet")
	if code != exitErr || !strings.Contains(errs, "a classifier needs at least 2") {
		t.Fatalf("run with a failing stage: exit %d, want %d\n%s", code, exitErr, errs)
	}
	code, _, errs = runCLI("schedule", file, "--once")
	if code != exitErr || !strings.Contains(errs, "pipeline: schedule \"nightly\"") || !strings.Contains(errs, "failed") ||
		!strings.Contains(errs, "a classifier needs at least 2") {
		t.Fatalf("schedule --once with a failing stage: exit %d, want %d\n%s", code, exitErr, errs)
	}

	// The source folder does not exist: schedule refuses to start, as validate refuses the
	// file, rather than fail at its first trigger; a folder that goes missing later fails
	// that trigger's planning.
	dir = workspace(t, strings.Replace(splitScheduled, `"raw"`, `"rwa"`, 1))
	file = filepath.Join(dir, "pipeline.hcl")
	for _, args := range [][]string{{"--once"}, {"--print-crontab"}} {
		code, out, errs := runCLI(append([]string{"schedule", file}, args...)...)
		if code != exitErr || !strings.Contains(errs, `source "rwa" does not exist`) || out != "" {
			t.Fatalf("schedule %s with a missing source: exit %d, want %d\n%s%s", args[0], code, exitErr, out, errs)
		}
	}

	// Success, then nothing to do.
	dir = workspace(t, splitScheduled)
	file = filepath.Join(dir, "pipeline.hcl")
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "succeeded") ||
		!regexp.MustCompile(`: 1 stage to run; running in \S+/models/2\d{7}_\d{6} \(its run.log follows the stages\)\n`).MatchString(errs) {
		t.Fatalf("schedule --once: exit %d\n%s", code, errs)
	}
	// The run records the trigger as fired now, not as the schedule's next time.
	runs, _ := filepath.Glob(filepath.Join(dir, "models", "2*", "run.json"))
	var rec pipeline.RunRecord
	if b, err := os.ReadFile(runs[len(runs)-1]); err != nil || json.Unmarshal(b, &rec) != nil ||
		!regexp.MustCompile(`^schedule "nightly" fired by --once at 20\d\d-`).MatchString(rec.Trigger) {
		t.Errorf("run.json's trigger %q (%v)", rec.Trigger, err)
	}
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "up to date") {
		t.Fatalf("schedule --once with nothing to do: exit %d\n%s", code, errs)
	}

	// Another process holds the workspace lock while there is work to do.
	os.WriteFile(file, []byte(strings.Replace(splitScheduled, "val        = 0.2", "val        = 0.25", 1)), 0o644)
	lock, _, err := pipeline.AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "skipped") || !strings.Contains(errs, "workspace is in use") ||
		strings.Contains(errs, "running") {
		t.Fatalf("schedule --once while the workspace is locked: exit %d, want %d\n%s", code, exitOK, errs)
	}

	// A lock file left by a process that was killed, naming a live process (its pid reused:
	// here this one), holds nothing: the trigger runs, as run would.
	lock.Release()
	os.WriteFile(filepath.Join(dir, pipeline.StoreDir, "lock"), []byte(fmt.Sprintf(`{"pid": %d, "host": %q, "command": "pipeline schedule (killed)"}`, os.Getpid(), hostname(t))), 0o644)
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "succeeded") {
		t.Fatalf("schedule --once with a stale lock file: exit %d\n%s", code, errs)
	}
	if lock, _, err = pipeline.AcquireLock(dir); err != nil {
		t.Fatal(err)
	}

	// With overlap = "queue", the trigger waits for the workspace instead, and then runs.
	defer func(p time.Duration) { lockPoll = p }(lockPoll)
	lockPoll = 20 * time.Millisecond
	os.WriteFile(file, []byte(strings.Replace(strings.Replace(splitScheduled, "val        = 0.2", "val        = 0.3", 1),
		`cron    = "0 3 * * *"`, `cron    = "0 3 * * *"`+"\n  overlap = \"queue\"", 1)), 0o644)
	go func() {
		time.Sleep(300 * time.Millisecond)
		lock.Release()
	}()
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "workspace is in use") ||
		!strings.Contains(errs, `waiting for it to finish (overlap = "queue")`) || !strings.Contains(errs, "succeeded") {
		t.Fatalf("schedule --once, queueing, while the workspace is locked: exit %d, want %d\n%s", code, exitOK, errs)
	}
}

// cronCommand returns what cron runs with sh -c for a crontab line (five time fields, then
// the command): the command up to its first unescaped '%', each "\%" made '%', as cronie and
// Vixie cron do.
func cronCommand(t *testing.T, line string) string {
	t.Helper()
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			t.Fatalf("not a crontab line: %q", line)
		}
		rest = rest[j:]
	}
	var cmd strings.Builder
	escaped := false
	for _, ch := range strings.TrimLeft(rest, " \t") {
		switch {
		case escaped && ch == '%':
			cmd.WriteRune('%')
		case escaped:
			cmd.WriteRune('\\')
			cmd.WriteRune(ch)
		case ch == '%':
			return cmd.String()
		case ch != '\\':
			cmd.WriteRune(ch)
		}
		escaped = !escaped && ch == '\\'
	}
	return cmd.String()
}

// crontabJobs returns the job lines of a crontab, each with the CRON_TZ in force for it ("" if
// none).
func crontabJobs(crontab string) (jobs, zones []string) {
	zone := ""
	for _, l := range strings.Split(crontab, "\n") {
		switch {
		case strings.HasPrefix(l, "CRON_TZ="):
			zone = strings.TrimPrefix(l, "CRON_TZ=")
		case l != "" && !strings.HasPrefix(l, "#"):
			jobs, zones = append(jobs, l), append(zones, zone)
		}
	}
	return jobs, zones
}

// TestPrintCrontab runs the printed crontab lines as cron would: with the -var and --runs-dir
// given to schedule (quoted for sh, '%' escaped for cron), into a workspace without a runs
// folder, whose cron.log the line makes; each schedule under its own CRON_TZ (the machine's for
// one without a timezone, not the one before it); and a line started while the workspace is
// locked fails and says so in the log, as the printed notes tell.
func TestPrintCrontab(t *testing.T) {
	const src = "raw 50%'s"
	dir := workspace(t, `
variable "src" {
  default = "raw"
}
variable "frac" {
  default = 0.2
}
stage "split" "main" {
  source     = var.src
  image_size = 4
  channels   = 1
  val        = var.frac
  test       = 0.2
}
schedule "cph" {
  cron     = "0 3 * * *"
  timezone = "Europe/Copenhagen"
  targets  = [stage.split.main]
  overlap  = "queue"
}
schedule "local" {
  cron    = "30 4 * * 1"
  targets = [stage.split.main]
}
`)
	if err := os.Rename(filepath.Join(dir, "raw"), filepath.Join(dir, src)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "pipeline.hcl")
	// The machine's zone, read from the files below, is a schedule's without timezone when TZ
	// is not set (TestScheduleWithoutTimezoneAgreesWithCrontab sets it).
	if local := time.Local.String(); local != "Local" {
		t.Skipf("time.Local is %s (TZ is set, or there is no /etc/localtime), not the machine's zone", local)
	}
	defer func(l, z string) { localtimeFile, timezoneFile = l, z }(localtimeFile, timezoneFile)
	localtimeFile, timezoneFile = filepath.Join(t.TempDir(), "localtime"), filepath.Join(t.TempDir(), "timezone")
	if err := os.Symlink("../usr/share/zoneinfo/America/New_York", localtimeFile); err != nil {
		t.Fatal(err)
	}
	args := []string{"schedule", file, "--print-crontab", "--var", "src=" + src, "--var", "frac=0.25", "--runs-dir", "my runs"}
	code, out, errs := runCLI(args...)
	if code != exitOK {
		t.Fatalf("--print-crontab: exit %d\n%s%s", code, out, errs)
	}
	jobs, zones := crontabJobs(out)
	if len(jobs) != 2 || zones[0] != "Europe/Copenhagen" || zones[1] != "America/New_York" {
		t.Fatalf("jobs %q under CRON_TZ %q, want cph under Europe/Copenhagen and local under the machine's zone\n%s", jobs, zones, out)
	}
	if !strings.Contains(out, `overlap = "queue" cannot be reproduced by cron`) {
		t.Fatalf("the output does not say that cron cannot queue:\n%s", out)
	}

	// The local schedule's line, run as cron would, in a workspace with no runs folder yet.
	cronRun := func() (int, string) {
		cmd := exec.Command("sh", "-c", cronCommand(t, jobs[1]))
		cmd.Env = append(os.Environ(), mainHelperVar+"=1")
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		log, _ := os.ReadFile(filepath.Join(dir, "my runs", "cron.log"))
		return cmd.ProcessState.ExitCode(), string(log)
	}
	if code, log := cronRun(); code != exitOK {
		t.Fatalf("the crontab line: exit %d\n%s\nlog:\n%s", code, jobs[1], log)
	}
	if runs, _ := filepath.Glob(filepath.Join(dir, "my runs", "2*", "run.json")); len(runs) != 1 {
		t.Fatalf("run folders in the --runs-dir folder: %v", runs)
	}
	// The run used the variables: with them the plan is up to date, without them it is not.
	if code, out, errs := runCLI("plan", file, "--var", "src="+src, "--var", "frac=0.25"); code != exitOK {
		t.Fatalf("plan with the variables after the cron run: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runCLI("plan", file, "--var", "src="+src); code != exitPending {
		t.Fatalf("plan with frac at its default: exit %d, want %d", code, exitPending)
	}

	// A run cron starts while another holds the workspace fails at once, in the log.
	lock, _, err := pipeline.AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	code, log := cronRun()
	lock.Release()
	if code != exitErr || !strings.Contains(log, "workspace is in use") {
		t.Fatalf("the crontab line while the workspace is locked: exit %d, want %d\nlog:\n%s", code, exitErr, log)
	}

	// When the machine's zone cannot be named, CRON_TZ="" still resets an earlier one.
	os.Remove(localtimeFile)
	os.WriteFile(localtimeFile, []byte("TZif"), 0o644)
	if code, out, errs = runCLI(args...); code != exitOK {
		t.Fatalf("--print-crontab: exit %d\n%s%s", code, out, errs)
	}
	if _, zones := crontabJobs(out); len(zones) != 2 || zones[1] != `""` {
		t.Fatalf("CRON_TZ %q, want \"\" for the schedule without a timezone\n%s", zones, out)
	}
	os.WriteFile(timezoneFile, []byte("Asia/Tokyo\n"), 0o644) // Debian's /etc/timezone
	if code, out, errs = runCLI(args...); code != exitOK {
		t.Fatalf("--print-crontab: exit %d\n%s%s", code, out, errs)
	}
	if _, zones := crontabJobs(out); len(zones) != 2 || zones[1] != "Asia/Tokyo" {
		t.Fatalf("CRON_TZ %q, want Asia/Tokyo (from /etc/timezone) for the schedule without a timezone\n%s", zones, out)
	}
}

// selectOnly is a pipeline whose select stage ranks two evaluations made by hand (selectWorkspace),
// on a schedule.
const selectOnly = `
stage "select" "best" {
  candidates = { a = "evals/a", b = "evals/b" }
}

schedule "nightly" {
  cron    = "0 3 * * *"
  targets = [stage.select.best]
}
`

// selectWorkspace returns a workspace with selectOnly and the evaluations it ranks: a scores
// f1, b less, both on the test set ts1 of promoteFake's models, with a model each.
func selectWorkspace(t *testing.T, f1 float64) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "pipeline.hcl")
	files := map[string]string{"pipeline.hcl": selectOnly}
	for name, v := range map[string]float64{"a": f1, "b": f1 - 0.1} {
		files["evals/"+name+"/metrics.json"] = fmt.Sprintf(`{"architecture":"cnn","model":"trained/%s","data":"test","test_set":"ts1","test_f1_macro":%g,"test_top5":1}`, name, v)
		smallModel(t, filepath.Join(dir, "trained", name), name) // promotion loads it
	}
	for rel, body := range files {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, file
}

// champion returns the id of the champion in the workspace's models/final_models ("" when none).
func champion(t *testing.T, dir string) string {
	t.Helper()
	champ, err := stages.ChampionDir(filepath.Join(dir, "models", "final_models"))
	if err != nil || champ == "" {
		return ""
	}
	card, err := stages.ReadCard(champ)
	if err != nil {
		t.Fatal(err)
	}
	return card.ID
}

// TestScheduleOncePromotesWhenUpToDate checks that a trigger with nothing out of date still
// does select's promotion, as run does, so that it follows the current champion: it retries
// a promotion that failed (history.json could not be read, then was repaired), and promotes
// the cached winner over a weaker champion that promote --rollback brought back.
func TestScheduleOncePromotesWhenUpToDate(t *testing.T) {
	dir, file := selectWorkspace(t, 0.7)
	history := filepath.Join(dir, "models", "final_models.d", "history.json")
	os.MkdirAll(filepath.Dir(history), 0o755)
	os.WriteFile(history, []byte("{"), 0o644)
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitErr || !strings.Contains(errs, "history.json") {
		t.Fatalf("schedule --once with a broken history.json: exit %d, want %d\n%s", code, exitErr, errs)
	}
	os.Remove(history)
	if code, out, errs := runCLI("plan", file); code != exitOK || !strings.Contains(out, "= select.best") {
		t.Fatalf("plan: exit %d, want select.best cached\n%s%s", code, out, errs)
	}
	code, _, errs := runCLI("schedule", file, "--once")
	if code != exitOK || !strings.Contains(errs, "up to date; running anyway, every stage cached, for the effect of select.best") ||
		!strings.Contains(errs, "promoted a (test_f1_macro 0.7000; no champion yet)") {
		t.Fatalf("schedule --once after history.json was repaired: exit %d\n%s", code, errs)
	}
	if id := champion(t, dir); !strings.HasSuffix(id, "-a") {
		t.Fatalf("the champion is %q, want the winner a", id)
	}
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "a (test_f1_macro 0.7000) is already the champion") {
		t.Fatalf("schedule --once again: exit %d\n%s", code, errs)
	}

	// A weak champion, then a strong one the winner does not beat, rolled back.
	dir, file = selectWorkspace(t, 0.7)
	promoteFake(t, dir, "run1", "weak", 0.5)
	promoteFake(t, dir, "run2", "strong", 0.9)
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, "does not beat the champion run2-cnn") {
		t.Fatalf("schedule --once under a stronger champion: exit %d\n%s", code, errs)
	}
	if code, out, errs := runCLI("promote", "--to", filepath.Join(dir, "models", "final_models"), "--rollback"); code != exitOK || !strings.Contains(out, "champion run1-cnn") {
		t.Fatalf("promote --rollback: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runCLI("schedule", file, "--once")
	if code != exitOK || !strings.Contains(errs, "promoted a (test_f1_macro 0.7000; champion run1-cnn had 0.5000)") {
		t.Fatalf("schedule --once after the rollback: exit %d\n%s", code, errs)
	}
	if id := champion(t, dir); !strings.HasSuffix(id, "-a") {
		t.Fatalf("the champion is %q, want the winner a", id)
	}
}

// helperRun runs the command line in a process of its own (TestMain) with the environment
// variable TZ set to tz, or unset when tz is nil, and returns its exit status and output.
func helperRun(t *testing.T, tz *string, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TZ=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, mainHelperVar+"=1")
	if tz != nil {
		cmd.Env = append(cmd.Env, "TZ="+*tz)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestScheduleWithoutTimezoneAgreesWithCrontab checks that a schedule without timezone fires
// in the same zone under pipeline schedule and under the crontab --print-crontab writes: TZ's
// when it is set (Go's time.Local follows it), UTC when TZ is empty, the machine's otherwise.
func TestScheduleWithoutTimezoneAgreesWithCrontab(t *testing.T) {
	dir := workspace(t, splitScheduled)
	file := filepath.Join(dir, "pipeline.hcl")
	str := func(s string) *string { return &s }
	machine := machineZone()
	for _, c := range []struct {
		tz   *string
		zone string
	}{
		{str("Europe/Copenhagen"), "Europe/Copenhagen"},
		{str(":America/New_York"), "America/New_York"},
		{str("/usr/share/zoneinfo/Asia/Tokyo"), "Asia/Tokyo"},
		{str(""), "UTC"},
		{nil, machine},
	} {
		if c.zone == "" {
			continue // the machine's zone cannot be named here
		}
		name := "TZ unset"
		if c.tz != nil {
			name = fmt.Sprintf("TZ=%q", *c.tz)
		}
		code, out, errs := helperRun(t, c.tz, "schedule", file, "--print-crontab")
		if _, zones := crontabJobs(out); code != exitOK || len(zones) != 1 || zones[0] != c.zone {
			t.Errorf("%s: --print-crontab: exit %d, CRON_TZ %q, want %s\n%s%s", name, code, zones, c.zone, out, errs)
			continue
		}
		// --once logs the trigger it fires: 03:00 in that zone, with its offset.
		code, _, errs = helperRun(t, c.tz, "schedule", file, "--once")
		m := regexp.MustCompile(`firing schedule "nightly" now \(its next time would be (\S+)\)`).FindStringSubmatch(errs)
		if code != exitOK || m == nil {
			t.Errorf("%s: --once: exit %d\n%s", name, code, errs)
			continue
		}
		due, err := time.Parse(time.RFC3339, m[1])
		loc, _ := time.LoadLocation(c.zone)
		if in := due.In(loc); err != nil || in.Hour() != 3 || in.Minute() != 0 || in.Format(time.RFC3339) != m[1] {
			t.Errorf("%s: --once fired the trigger due %s, want 03:00 in %s", name, m[1], c.zone)
		}
		t.Logf("%s: CRON_TZ=%s, --once due %s", name, c.zone, m[1])
	}
}

// TestScheduleReloadsTheFile checks that the scheduler applies edits to a schedule's cron
// while it runs, logging the change and the next time, fires at the new times, and keeps the
// schedules it has when the file no longer validates, saying where the error is.
func TestScheduleReloadsTheFile(t *testing.T) {
	dir := workspace(t, splitScheduled)
	file := filepath.Join(dir, "pipeline.hcl")
	edit := func(cron string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(strings.Replace(splitScheduled, `"0 3 * * *"`, cron, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startPipeline(t, "schedule", file) // a minute a second: see fastClock
	p.waitUntil("the scheduler waits", func() bool { return strings.Contains(p.stderr(), `next: schedule "nightly" due`) })
	edit(`"@every 2m"`)
	p.waitUntil("the cron is reloaded", func() bool {
		return strings.Contains(p.stderr(), `schedule "nightly": cron changed from "0 3 * * *" to "@every 2m"; next due `)
	})
	p.waitUntil("the schedule fires at its new time", func() bool { return strings.Contains(p.stderr(), "succeeded") })
	edit(`"0 0 30 2 *"`)
	p.waitUntil("the file's error is logged", func() bool {
		return strings.Contains(p.stderr(), "the schedules stay as they were: "+file+" has 1 error: "+file+":11,13-25: Cron expression never fires")
	})
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr())
	}
	if errs := p.stderr(); strings.Count(errs, "the schedules stay as they were") != 1 || !strings.Contains(errs, "Cron expression never fires") {
		t.Fatalf("the file's error is not logged once:\n%s", errs)
	}
}

// TestScheduleLoopSkipsAPromotionAlreadyApplied checks that the scheduler's loop does not make
// a run folder per trigger to say the champion is already the champion: a trigger runs the
// cached select again only when something its promotion depends on changed (here, the
// champion's weights deleted).
func TestScheduleLoopSkipsAPromotionAlreadyApplied(t *testing.T) {
	dir, file := selectWorkspace(t, 0.7)
	if err := os.WriteFile(file, []byte(strings.Replace(selectOnly, `"0 3 * * *"`, `"@every 1m"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, "schedule", file) // a minute a second: see fastClock
	p.waitUntil("the first trigger promotes", func() bool { return strings.Contains(p.stderr(), "promoted a (test_f1_macro 0.7000; no champion yet)") })
	p.waitUntil("a trigger runs nothing", func() bool { return strings.Contains(p.stderr(), "nothing to run") })
	champ, err := stages.ChampionDir(filepath.Join(dir, "models", "final_models"))
	if err != nil || champ == "" {
		t.Fatalf("champion %q: %v", champ, err)
	}
	if err := os.RemoveAll(filepath.Join(champ, "saved_model", "variables")); err != nil {
		t.Fatal(err)
	}
	// The first trigger ran select because it had never run; this one, with every stage
	// cached, for its effect.
	p.waitUntil("the damaged champion is replaced", func() bool { return strings.Count(p.stderr(), "running anyway") == 1 })
	p.waitUntil("then nothing to run again", func() bool {
		errs := p.stderr()
		return strings.Count(errs[strings.LastIndex(errs, "running anyway"):], "nothing to run") > 0
	})
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr())
	}
	if errs := p.stderr(); strings.Count(errs, "running anyway") != 1 || strings.Count(errs, "to run; running") != 1 {
		t.Fatalf("runs: %d of the cached select, want 1, and %d with select out of date, want 1:\n%s",
			strings.Count(errs, "running anyway"), strings.Count(errs, "to run; running"), errs)
	}
}

// TestScheduleLoopLogsAFailedRunOnce checks that the scheduler logs a failed run in one line
// saying both its run folder and its error, not a line with the folder then one with the
// error.
func TestScheduleLoopLogsAFailedRunOnce(t *testing.T) {
	dir := workspace(t, strings.Replace(splitScheduled, `"0 3 * * *"`, `"@every 1m"`, 1))
	file := filepath.Join(dir, "pipeline.hcl")
	os.RemoveAll(filepath.Join(dir, "raw", "class 1")) // one class is too few for a classifier
	p := startPipeline(t, "schedule", file)            // a minute a second: see fastClock
	p.waitUntil("a run fails", func() bool { return strings.Contains(p.stderr(), "a classifier needs at least 2") })
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr())
	}
	errs := p.stderr()
	line := regexp.MustCompile(`: run (2\d{7}_\d{6}) failed \((\S+/models/2\d{7}_\d{6})\): stage failed: split\.main: 1 usable class in raw; a classifier needs at least 2\n`).FindStringSubmatch(errs)
	if line == nil || filepath.Base(line[2]) != line[1] {
		t.Fatalf("no line says the failed run's folder and its error:\n%s", errs)
	}
	if n := strings.Count(errs, "run "+line[1]+" failed"); n != 1 {
		t.Fatalf("the failed run %s is logged in %d lines, want 1:\n%s", line[1], n, errs)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestScheduleReloaderRefusesAFileThatDoesNotValidate checks that the scheduler's reload keeps
// the schedules as they were when the edited file no longer validates for a reason beyond
// its syntax (a schedule target or a -var the file no longer declares), rather than applying
// the new cron and leaving the error to the next trigger, hours later.
func TestScheduleReloaderRefusesAFileThatDoesNotValidate(t *testing.T) {
	const withVar = `
variable "size" {
  type    = number
  default = 4
}
` + splitScheduled
	dir := workspace(t, withVar)
	file := filepath.Join(dir, "pipeline.hcl")
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	reload := scheduleReloader(file, reg, map[string]string{"size": "4"})
	// write replaces the file's content, with a modification time of its own: the reloader
	// reads a file again when its size, time or inode changed, and two writes a moment apart
	// can share a time, these contents a size.
	mtime := time.Now().Add(-time.Hour)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if scheds, err := reload(); err != nil || len(scheds) != 1 || scheds[0].Cron != "0 3 * * *" {
		t.Fatalf("first read: %v, %v", scheds, err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"an undeclared target", "targets = [stage.split.main]", "targets = [stage.split.mian]", "Reference to undeclared stage"},
		{"a -var the file no longer declares", `variable "size"`, `variable "width"`, `-var size`},
	} {
		edited := strings.Replace(strings.Replace(withVar, tc.from, tc.to, 1), `"0 3 * * *"`, `"0 4 * * *"`, 1)
		write(edited)
		scheds, err := reload()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload returned %v, %v; want an error with %q (the schedules stay as they were)", tc.name, scheds, err, tc.want)
		}
		write(withVar)
		if scheds, err := reload(); err != nil || len(scheds) != 1 {
			t.Fatalf("%s: the file put back: %v, %v", tc.name, scheds, err)
		}
	}
}

// TestScheduleOnceFiresTheScheduleNamed checks that --once --schedule NAME fires that schedule:
// an OS cron line at a nightly's 03:00 running --once alone fires whichever schedule is due
// next (here the hourly one, whose next time always comes before the yearly's).
func TestScheduleOnceFiresTheScheduleNamed(t *testing.T) {
	const two = splitOnly + `
schedule "hourly" {
  cron    = "@hourly"
  targets = [stage.split.main]
}

schedule "yearly" {
  cron    = "@yearly"
  targets = [stage.split.main]
}
`
	dir := workspace(t, two)
	file := filepath.Join(dir, "pipeline.hcl")
	code, _, errs := runCLI("schedule", file, "--once", "--schedule", "yearly")
	if code != exitOK || !strings.Contains(errs, `--once: firing schedule "yearly" now`) || !strings.Contains(errs, `schedule "yearly" fired by --once at `) {
		t.Fatalf("schedule --once --schedule yearly: exit %d\n%s", code, errs)
	}
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, `--once: firing schedule "hourly" now`) {
		t.Fatalf("schedule --once: exit %d, want the schedule due next fired\n%s", code, errs)
	}
	if code, _, errs := runCLI("schedule", file, "--once", "--schedule", "nightly"); code != exitErr ||
		!strings.Contains(errs, `--schedule "nightly": the file has no such schedule (it has "hourly", "yearly")`) {
		t.Fatalf("schedule --once --schedule nightly: exit %d\n%s", code, errs)
	}
	if code, _, errs := runCLI("schedule", file, "--schedule", "yearly"); code != exitErr || !strings.Contains(errs, "--schedule goes with --once") {
		t.Fatalf("schedule --schedule without --once: exit %d\n%s", code, errs)
	}
}

// TestScheduleOnceRefusesPrintCrontab checks that schedule refuses --once with
// --print-crontab, which ask for different things, instead of printing the crontab and
// ignoring --once.
func TestScheduleOnceRefusesPrintCrontab(t *testing.T) {
	dir := workspace(t, splitOnly+`
schedule "hourly" {
  cron    = "@hourly"
  targets = [stage.split.main]
}
`)
	file := filepath.Join(dir, "pipeline.hcl")
	code, out, errs := runCLI("schedule", file, "--once", "--print-crontab")
	if code != exitErr || out != "" || !strings.Contains(errs, "--once and --print-crontab ask for different things") {
		t.Fatalf("schedule --once --print-crontab: exit %d, want %d and an error\nstdout:\n%s\nstderr:\n%s", code, exitErr, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); !os.IsNotExist(err) {
		t.Fatalf("schedule --once --print-crontab ran the schedule: %v", err)
	}
}

// TestScheduleOnceQueuedSaysWhenStopped checks that schedule --once with overlap = "queue",
// waiting for a workspace another process holds, says that a SIGTERM dropped its trigger: it
// ended with status 0 and nothing in the log half the time (the signal both stops and cancels
// it, and only the stop was logged).
func TestScheduleOnceQueuedSaysWhenStopped(t *testing.T) {
	dir := workspace(t, strings.Replace(splitScheduled, `cron    = "0 3 * * *"`, `cron    = "0 3 * * *"`+"\n  overlap = \"queue\"", 1))
	file := filepath.Join(dir, "pipeline.hcl")
	lock, _, err := pipeline.AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	for i := 0; i < 10; i++ {
		p := startPipeline(t, "schedule", file, "--once")
		p.waitUntil("the trigger waits", func() bool { return strings.Contains(p.stderr(), `waiting for it to finish (overlap = "queue")`) })
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK || !strings.Contains(p.stderr(), "dropped while waiting for the workspace") {
			t.Fatalf("exit %d, want 0 with the trigger said dropped:\n%s", code, p.stderr())
		}
	}
}

// TestScheduleQueuedTriggerReadsTheFileAgain checks that a trigger that waited for the
// workspace (overlap = "queue") reads the pipeline file and plans again once it is free: it
// ran the file as it was when the trigger came, maybe hours before, so that an edit made
// meanwhile was not run (and the plan it logged was stale).
func TestScheduleQueuedTriggerReadsTheFileAgain(t *testing.T) {
	queued := strings.Replace(splitScheduled, `cron    = "0 3 * * *"`, `cron    = "0 3 * * *"`+"\n  overlap = \"queue\"", 1)
	dir := workspace(t, queued)
	file := filepath.Join(dir, "pipeline.hcl")
	lock, _, err := pipeline.AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func(p time.Duration) { lockPoll = p }(lockPoll)
	lockPoll = 20 * time.Millisecond
	go func() { // while the trigger waits, the file is edited, then the workspace let go of
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(file, []byte(strings.Replace(queued, "val        = 0.2", "val        = 0.4", 1)), 0o644)
		lock.Release()
	}()
	if code, _, errs := runCLI("schedule", file, "--once"); code != exitOK || !strings.Contains(errs, `waiting for it to finish (overlap = "queue")`) ||
		!strings.Contains(errs, "succeeded") {
		t.Fatalf("schedule --once, queueing: exit %d\n%s", code, errs)
	}
	if code, out, errs := runCLI("plan", file); code != exitOK {
		t.Fatalf("after the queued trigger ran, plan of the edited file: exit %d, want 0 (nothing to do)\n%s%s", code, out, errs)
	}
}

// TestOnceAndCrontabWarnOfARunningScheduler checks that schedule --once and --print-crontab
// warn when a scheduler in the foreground already fires the workspace's schedules (both would
// fire each trigger), naming it, and say nothing once it has stopped.
func TestOnceAndCrontabWarnOfARunningScheduler(t *testing.T) {
	dir := workspace(t, splitScheduled)
	file := filepath.Join(dir, "pipeline.hcl")
	other, release, err := pipeline.SchedulerLock(dir)
	if err != nil || other != nil {
		t.Fatalf("scheduler lock: %v %v", other, err)
	}
	want := fmt.Sprintf("warning: a scheduler already fires this workspace's schedules (pid %d on ", os.Getpid())
	code, out, errs := runCLI("schedule", file, "--print-crontab")
	if code != exitOK || !strings.Contains(errs, want) || !strings.Contains(errs, "these lines would fire them as well") || strings.Contains(out, "warning") {
		t.Errorf("--print-crontab beside a scheduler: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, _, errs = runCLI("schedule", file, "--once")
	if code != exitOK || !strings.Contains(errs, want) || !strings.Contains(errs, "--once fires one as well, so it may run twice") {
		t.Errorf("--once beside a scheduler: exit %d\n%s", code, errs)
	}
	release()
	for _, args := range [][]string{{"--print-crontab"}, {"--once"}} {
		if code, _, errs := runCLI(append([]string{"schedule", file}, args...)...); code != exitOK || strings.Contains(errs, "a scheduler already fires") {
			t.Errorf("%v with no scheduler running: exit %d\n%s", args, code, errs)
		}
	}
}
