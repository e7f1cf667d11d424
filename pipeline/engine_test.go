package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// workspace is a temporary workspace with a pipeline file and a source folder.
type workspace struct {
	t     *testing.T
	dir   string
	kinds *fakeKinds
	// clock, when set, is the stat cache's (StatCache.Clock).
	clock func() time.Time
}

func newWorkspace(t *testing.T, hcl string, files map[string]string) *workspace {
	t.Helper()
	ws := &workspace{t: t, dir: t.TempDir(), kinds: newFakeKinds()}
	ws.write("pipeline.hcl", hcl)
	for name, content := range files {
		ws.write(name, content)
	}
	return ws
}

func (ws *workspace) write(name, content string) {
	ws.t.Helper()
	p := filepath.Join(ws.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		ws.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		ws.t.Fatal(err)
	}
}

func (ws *workspace) engine(vars map[string]string) *Engine {
	ws.t.Helper()
	cfg, diags := LoadFile(filepath.Join(ws.dir, "pipeline.hcl"), ws.kinds.reg)
	if diags.HasErrors() {
		ws.t.Fatal(diags.Error())
	}
	wf, diags := Build(cfg, ws.kinds.reg, vars)
	if diags.HasErrors() {
		ws.t.Fatal(diags.Error())
	}
	st, err := OpenStore(ws.dir)
	if err != nil {
		ws.t.Fatal(err)
	}
	st.Stats.Clock = ws.clock
	return &Engine{Workflow: wf, Store: st}
}

// run runs the pipeline and returns the status of every stage.
func (ws *workspace) run(opts RunOptions) (map[string]string, *RunRecord, error) {
	ws.t.Helper()
	opts.RunsDir = filepath.Join(ws.dir, "models")
	rec, err := ws.engine(nil).Run(context.Background(), opts)
	status := map[string]string{}
	if rec != nil {
		for _, s := range rec.Stages {
			status[s.Addr] = s.Status
		}
	}
	return status, rec, err
}

func (ws *workspace) plan(sel Selection) map[string]*Decision {
	ws.t.Helper()
	ds, err := ws.engine(nil).Plan(sel)
	if err != nil {
		ws.t.Fatal(err)
	}
	m := map[string]*Decision{}
	for _, d := range ds {
		m[d.Addr] = d
	}
	return m
}

func expectStatus(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("%s: %s, want %s (all: %v)", addr, got[addr], w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("stages %v, want %v", got, want)
	}
}

const chainHCL = `
variable "suffix" {
  default = "!"
}

stage "gen" "src" {
  source = "raw"
}

stage "xform" "up" {
  input  = stage.gen.src.out
  suffix = var.suffix
}

stage "xform" "other" {
  input  = stage.gen.src.count
  epochs = 10
}

stage "xform" "final" {
  input = stage.xform.up.out
}
`

func chainFiles() map[string]string {
	return map[string]string{"raw/a.txt": "a", "raw/b.txt": "b", "raw/.hidden": "ignored"}
}

func TestRunThenEverythingCached(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	got, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "ran", "xform.other": "ran", "xform.final": "ran"})
	out, err := os.ReadFile(filepath.Join(rec.Dir(), "xform.final", "out"))
	if err != nil || string(out) != "AB!" {
		t.Fatalf("final output %q, %v; want AB!", out, err)
	}
	// run.json lists the stages in the plan's order: each after those it depends on.
	var saved struct {
		Stages []struct {
			Addr string `json:"stage"`
		}
	}
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "run.json")); err != nil || json.Unmarshal(b, &saved) != nil {
		t.Fatalf("run.json: %v", err)
	}
	pos := map[string]int{}
	for i, s := range saved.Stages {
		pos[s.Addr] = i
	}
	if len(pos) != 4 || pos["gen.src"] != 0 || pos["xform.up"] > pos["xform.final"] {
		t.Fatalf("run.json lists the stages as %v", saved.Stages)
	}
	got, _, err = ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "cached", "xform.up": "cached", "xform.other": "cached", "xform.final": "cached"})
	if n := ws.kinds.xform.runs.Load(); n != 3 {
		t.Fatalf("xform ran %d times, want 3", n)
	}
}

// run.json gives a start time to the stages that ran and none to those that did not (a cached
// stage has no "start": "0001-01-01T00:00:00Z"), and reads back.
func TestRunJSONGivesNoStartToStagesThatDidNotRun(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	for i, want := range []string{StatusRan, StatusCached} {
		_, rec, err := ws.run(RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(rec.Dir(), "run.json"))
		if err != nil {
			t.Fatal(err)
		}
		var raw struct{ Stages []map[string]any }
		var back RunRecord
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &back); err != nil || len(back.Stages) != len(raw.Stages) {
			t.Fatalf("run.json does not read back: %v", err)
		}
		for j, s := range raw.Stages {
			_, has := s["start"]
			if s["status"] != want || has != (want == StatusRan) || back.Stages[j].Start.IsZero() == has {
				t.Errorf("run %d: %v", i+1, s)
			}
		}
	}
}

// Prepare runs once, before the first stage that executes, and never in a run where
// everything is cached; its error fails the stages that would execute, and they do not run.
func TestPrepareRunsOnceOnlyWhenAStageExecutes(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	var calls atomic.Int32
	prepare := func() error { calls.Add(1); return nil }
	if _, _, err := ws.run(RunOptions{Prepare: prepare}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Prepare called %d times in a run of four stages, want 1", n)
	}
	if _, _, err := ws.run(RunOptions{Prepare: prepare}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a cached run called Prepare (%d calls in all)", n)
	}

	fresh := newWorkspace(t, chainHCL, chainFiles())
	got, _, err := fresh.run(RunOptions{KeepGoing: true, Prepare: func() error { return errors.New("libtensorflow: cannot load") }})
	if err == nil || !strings.Contains(err.Error(), "libtensorflow: cannot load") {
		t.Fatalf("run error %v, want Prepare's", err)
	}
	for addr, st := range got {
		if st != "failed" && st != "skipped" {
			t.Fatalf("%s %s after Prepare failed", addr, st)
		}
	}
	if n := fresh.kinds.xform.runs.Load() + fresh.kinds.gen.runs.Load(); n != 0 {
		t.Fatalf("%d stages ran after Prepare failed", n)
	}
}

func TestChangedAttributeRerunsOnlyThatStageAndWhatItFeeds(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `epochs = 10`, `epochs = 20`, 1))
	p := ws.plan(Selection{})
	if d := p["xform.other"]; d.Action != Run || d.Reasons[0] != "attribute epochs 10 → 20" {
		t.Fatalf("xform.other: %s %v", d.Action, d.Reasons)
	}
	for _, a := range []string{"gen.src", "xform.up", "xform.final"} {
		if p[a].Action != Cached {
			t.Errorf("%s: %s %v, want cached", a, p[a].Action, p[a].Reasons)
		}
	}
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "cached", "xform.up": "cached", "xform.other": "ran", "xform.final": "cached"})

	// A variable change propagates: up reruns, and final reruns because up's output changed.
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `default = "!"`, `default = "?"`, 1))
	p = ws.plan(Selection{})
	if d := p["xform.final"]; d.Action != Run || d.Known || !strings.Contains(d.Reasons[0], "known after upstream runs") {
		t.Fatalf("xform.final: %s known=%v %v", d.Action, d.Known, d.Reasons)
	}
	got, _, err = ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "cached", "xform.up": "ran", "xform.other": "cached", "xform.final": "ran"})
	// The next plan explains final's earlier rerun by its upstream.
	st, _ := ws.engine(nil).Store.LoadState("xform.final")
	if st == nil {
		t.Fatal("no state recorded for xform.final")
	}
}

func TestTouchedSourceRerunsNothingAddedFileRerunsChain(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(ws.dir, "raw/a.txt"), future, future)
	ws.write("raw/.DS_Store", "junk")
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for a, s := range got {
		if s != StatusCached {
			t.Errorf("after touch: %s %s, want cached", a, s)
		}
	}
	ws.write("raw/c.txt", "c")
	p := ws.plan(Selection{})
	if d := p["gen.src"]; d.Action != Run || d.Reasons[0] != "raw: 1 added, 0 changed, 0 removed (e.g. c.txt)" {
		t.Fatalf("gen.src: %s %v", d.Action, d.Reasons)
	}
	got, _, err = ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "ran", "xform.other": "ran", "xform.final": "ran"})
	p = ws.plan(Selection{})
	for a, d := range p {
		if d.Action != Cached {
			t.Errorf("after rerun: %s %s %v", a, d.Action, d.Reasons)
		}
	}
}

// A source folder given by another path with the same files (absolute instead of relative)
// is said to be that, not a change of its files.
func TestSourceUnderAnotherPathIsSaidToHoldTheSameFiles(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	// Its absolute path is the same folder to the key.
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `source = "raw"`, fmt.Sprintf("source = %q", filepath.Join(ws.dir, "raw")), 1))
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Cached {
		t.Fatalf("gen.src by its absolute path: %s %q", d.Action, d.Reasons)
	}
	// So is a path outside the workspace that leads to it through a link.
	link := filepath.Join(t.TempDir(), "raw")
	os.Symlink(filepath.Join(ws.dir, "raw"), link)
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `source = "raw"`, fmt.Sprintf("source = %q", link), 1))
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Cached {
		t.Fatalf("gen.src through a link: %s %q", d.Action, d.Reasons)
	}
	// A copy outside it is another folder with the same files.
	other := filepath.Join(t.TempDir(), "raw")
	if err := os.CopyFS(other, os.DirFS(filepath.Join(ws.dir, "raw"))); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `source = "raw"`, fmt.Sprintf("source = %q", other), 1))
	d := ws.plan(Selection{})["gen.src"]
	if d.Action != Run || !slices.Contains(d.Reasons, other+": the same files, under the path given now") {
		t.Fatalf("gen.src: %s %q", d.Action, d.Reasons)
	}
}

func TestDeletedOutputRerunsOnlyThatStage(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(ws.dir, ObjectRel(rec.Result("xform.up").Output))
	os.Chmod(obj, 0o755)
	if err := os.RemoveAll(obj); err != nil {
		t.Fatal(err)
	}
	p := ws.plan(Selection{})
	if d := p["xform.up"]; d.Action != Run || d.Reasons[0] != "output missing" {
		t.Fatalf("xform.up: %s %v", d.Action, d.Reasons)
	}
	got, rec2, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The rerun reproduces the same output, so final stays cached.
	expectStatus(t, got, map[string]string{"gen.src": "cached", "xform.up": "ran", "xform.other": "cached", "xform.final": "cached"})
	if rec2.Result("xform.up").Output != rec.Result("xform.up").Output {
		t.Fatal("deterministic stage produced a different output digest")
	}
	// The old run folder is still complete: its files are hard links, not store paths.
	if b, err := os.ReadFile(filepath.Join(rec.Dir(), "xform.up", "out")); err != nil || string(b) != "AB!" {
		t.Fatalf("old run folder lost its artifact: %q %v", b, err)
	}
}

// runChainAndReadOutput runs the chain pipeline and returns the path and content of
// gen.src's published file "out".
func runChainAndReadOutput(t *testing.T) (*workspace, string, []byte) {
	t.Helper()
	ws := newWorkspace(t, chainHCL, chainFiles())
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(ws.dir, ObjectRel(rec.Result("gen.src").Output), "out")
	orig, err := os.ReadFile(f)
	if err != nil || len(orig) != 2 {
		t.Fatalf("published output %q %v", orig, err)
	}
	return ws, f, orig
}

func TestDamagedOutputIsDetected(t *testing.T) {
	ws, f, orig := runChainAndReadOutput(t)
	os.Chmod(f, 0o644)
	os.WriteFile(f, []byte("XY"), 0o644) // same size, different bytes
	p := ws.plan(Selection{})
	if d := p["gen.src"]; d.Action != Run || d.Reasons[0] != "output damaged (out changed)" {
		t.Fatalf("gen.src: %s %v", d.Action, d.Reasons)
	}
	// A file added to a published output is damage too.
	os.WriteFile(f, orig, 0o444)
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Cached {
		t.Fatalf("gen.src after restoring: %s %v", d.Action, d.Reasons)
	}
	os.WriteFile(f+".extra", []byte("x"), 0o644)
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Run || d.Reasons[0] != "output damaged (out.extra added)" {
		t.Fatalf("gen.src with an extra file: %s %v", d.Action, d.Reasons)
	}
}

func TestKeyEntriesKeepTheFileListBesideThem(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	e := ws.engine(nil)
	st, ok := e.Store.LoadState("gen.src")
	if !ok {
		t.Fatal("no state for gen.src")
	}
	entry, ok := e.Store.Lookup(st.Key)
	if !ok || entry.Output.Digest != st.Output {
		t.Fatalf("entry %+v for state %+v", entry, st)
	}
	if entry.Output.Files != nil {
		t.Fatal("the key entry carries the output's file list; plans should not have to decode it")
	}
	var m Manifest
	if err := readJSON(e.Store.outputPath(st.Key), &m); err != nil || m.Digest != st.Output || m.Files["out"] == "" {
		t.Fatalf("output manifest beside the entry: %+v %v", m, err)
	}
}

// TestAnUnreadableCacheEntryIsSaidAndReplaced damages the cache entry of a stage that ran
// and checks that the plan says so, naming the file, rather than "never ran", and that the
// run replaces the entry, after which the stage is cached again.
func TestAnUnreadableCacheEntryIsSaidAndReplaced(t *testing.T) {
	for _, tc := range []struct{ name, content, why string }{
		{"does not parse", "{bad\n", "invalid character"},
		{"names no output", "{}\n", "it names no output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWorkspace(t, chainHCL, chainFiles())
			if _, _, err := ws.run(RunOptions{}); err != nil {
				t.Fatal(err)
			}
			e := ws.engine(nil)
			st, _ := e.Store.LoadState("xform.final")
			rel := filepath.ToSlash(filepath.Join(StoreDir, "keys", st.Key[:2], st.Key+".json"))
			if err := os.WriteFile(filepath.Join(ws.dir, rel), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			d := ws.plan(Selection{})["xform.final"]
			if want := "its cache entry is unreadable (" + rel + ": "; d.Action != Run || d.New || len(d.Reasons) != 1 ||
				!strings.HasPrefix(d.Reasons[0], want) || !strings.Contains(d.Reasons[0], tc.why) || !strings.HasSuffix(d.Reasons[0], "; the run replaces it") {
				t.Fatalf("plan: %s (new %v) %q, want a rerun because %s…%s…", d.Action, d.New, d.Reasons, want, tc.why)
			}
			got, _, err := ws.run(RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			expectStatus(t, got, map[string]string{"gen.src": "cached", "xform.up": "cached", "xform.other": "cached", "xform.final": "ran"})
			if entry, ok := ws.engine(nil).Store.Lookup(st.Key); !ok || entry.Output.Digest != st.Output {
				t.Fatalf("the entry after the run: %+v %v, want one for %s", entry, ok, st.Output)
			}
			if d := ws.plan(Selection{})["xform.final"]; d.Action != Cached {
				t.Fatalf("plan after the run: %s %v", d.Action, d.Reasons)
			}
		})
	}
}

func TestForEachInstancesAndPreciseDependencies(t *testing.T) {
	const src = `
stage "gen" "src" {
  source = "raw"
}

stage "xform" "arch" {
  for_each = toset(["cnn", "vit"])
  input    = stage.gen.src.out
  suffix   = "-${each.key}"
}

stage "xform" "eval" {
  for_each = stage.xform.arch
  input    = each.value.out
  suffix   = format("(%s)", each.key)
}

stage "join" "all" {
  inputs = { for k, v in stage.xform.eval : k => v.out }
}
`
	ws := newWorkspace(t, src, chainFiles())
	e := ws.engine(nil)
	inst, ok := e.Workflow.Instance("xform.eval[vit]")
	if !ok {
		t.Fatal("no instance xform.eval[vit]")
	}
	if strings.Join(inst.Deps, ",") != "xform.arch[vit]" {
		t.Fatalf("xform.eval[vit] depends on %v, want only xform.arch[vit]", inst.Deps)
	}
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(rec.Dir(), "join.all", "out"))
	if string(b) != "cnn=AB-CNN(cnn)\nvit=AB-VIT(vit)" {
		t.Fatalf("join output %q", b)
	}
	// Selecting one instance runs it and what it needs, nothing else.
	p := ws.plan(Selection{Targets: []string{"xform.eval.cnn"}, Force: true})
	if len(p) != 3 || p["xform.eval[cnn]"].Action != Run || p["xform.arch[cnn]"].Action != Cached || p["gen.src"] == nil {
		t.Fatalf("plan for xform.eval.cnn: %v", keysOf(p))
	}
	// An output given through each.value is named by its content too, and a change of it
	// is said so.
	ws.write("raw/c.txt", "c")
	_, rec, err = ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rec.Stages {
		if s.Addr == "xform.eval[vit]" && (s.Status != StatusRan || strings.Join(s.Reasons, "; ") != "the upstream output given as input changed") {
			t.Fatalf("xform.eval[vit]: %s %v", s.Status, s.Reasons)
		}
	}
	if lines := ws.plan(Selection{})["xform.eval[vit]"].lines; !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, `attr input "string" "output `) }) {
		t.Fatalf("key lines of xform.eval[vit]: %q", lines)
	}
}

func keysOf(m map[string]*Decision) []string {
	var out []string
	for k, d := range m {
		out = append(out, k+"="+string(d.Action))
	}
	return out
}

func TestFailureSkipsDependentsAndKeepGoingRunsTheRest(t *testing.T) {
	src := strings.Replace(chainHCL, `suffix = var.suffix`, "suffix = var.suffix\n  fail = true", 1)
	for _, keepGoing := range []bool{false, true} {
		ws := newWorkspace(t, src, chainFiles())
		ws.kinds.xform.block = nil
		got, rec, err := ws.run(RunOptions{KeepGoing: keepGoing, Jobs: 1})
		if !errors.Is(err, ErrStageFailed) {
			t.Fatalf("error %v, want ErrStageFailed", err)
		}
		if got["xform.up"] != StatusFailed || got["xform.final"] != StatusSkipped {
			t.Fatalf("keep-going=%v: %v", keepGoing, got)
		}
		if r := rec.Result("xform.final").Reasons; !slices.Equal(r, []string{"upstream xform.up failed"}) {
			t.Errorf("xform.final skipped for %q, want \"upstream xform.up failed\"", r)
		}
		if log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log")); !strings.Contains(string(log), "xform.final: skipped (upstream xform.up failed)\n") {
			t.Errorf("run.log does not say why xform.final was skipped:\n%s", log)
		}
		if rec.Status != "failed" || !strings.Contains(rec.Result("xform.up").Error, "asked to fail") {
			t.Fatalf("record: %s %+v", rec.Status, rec.Result("xform.up"))
		}
		if keepGoing && got["xform.other"] != StatusRan {
			t.Fatalf("with --keep-going the independent stage should run: %v", got)
		}
		// Without it, the independent stage runs only if it started first (one job at a
		// time): waiting for the slot while xform.up failed, it must not start after.
		if up, other := rec.Result("xform.up"), rec.Result("xform.other"); !keepGoing && other.Status == StatusRan && other.Start.After(up.Start) {
			t.Fatalf("xform.other started at %v, after xform.up (%v) failed", other.Start, up.Start)
		}
	}
}

func TestCancelLeavesNoOutputAndResumes(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	ws.kinds.xform.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ws.kinds.xform.runs.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	rec, err := ws.engine(nil).Run(ctx, RunOptions{RunsDir: filepath.Join(ws.dir, "models")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if rec.Status != "cancelled" || rec.Result("gen.src").Status != StatusRan {
		t.Fatalf("record %s, gen.src %s", rec.Status, rec.Result("gen.src").Status)
	}
	if entries, _ := os.ReadDir(filepath.Join(ws.dir, StoreDir, "tmp")); len(entries) != 0 {
		t.Fatalf("cancelled run left %d temporary outputs", len(entries))
	}
	close(ws.kinds.xform.block)
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got["gen.src"] != StatusCached || got["xform.final"] != StatusRan {
		t.Fatalf("after resume: %v", got)
	}
}

// TestAForcedStageStartsWithoutWhatAnInterruptedRunLeft checks that a stage finds in its
// work area what an interrupted run of its key left (a training resumes from it), unless it
// is forced: then it starts from scratch, and the run log says what went.
func TestAForcedStageStartsWithoutWhatAnInterruptedRunLeft(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	key := ws.plan(Selection{})["gen.src"].Key
	leave := func() {
		ws.write(filepath.Join(StoreDir, "work", key, "ckpt-2"), "epoch 2")
		ws.write(filepath.Join(StoreDir, "work", key, "state.json"), `{"epoch": 2}`)
	}
	var found []string
	ws.kinds.gen.probe = func(j *Job) {
		names, _ := os.ReadDir(j.Work)
		for _, n := range names {
			found = append(found, n.Name())
		}
	}
	leave()
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(found, []string{"ckpt-2", "state.json"}) {
		t.Fatalf("a plain run found %q in its work area, want what the interrupted run left", found)
	}
	found = nil
	leave()
	got, rec, err := ws.run(RunOptions{Selection: Selection{Targets: []string{"gen.src"}, Force: true}})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran"})
	if len(found) != 0 {
		t.Fatalf("a forced run found %q in its work area, want it empty", found)
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if want := "gen.src: forced: starting over, without what an interrupted run left in its work area (0.0 MB)"; !strings.Contains(string(log), want) {
		t.Fatalf("run.log does not say %q:\n%s", want, log)
	}
}

// A run interrupted after a stage failed (--keep-going) says both: callers that tell an
// interruption by context.Canceled (exit status 130) see it.
func TestCancelAfterAFailureIsStillACancel(t *testing.T) {
	const src = `
stage "gen" "src" {
  source = "raw"
}

stage "xform" "broken" {
  input = stage.gen.src.count
  fail  = true
}

stage "xform" "t" {
  input = stage.gen.src.out
}
`
	ws := newWorkspace(t, src, chainFiles())
	ws.kinds.xform.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ws.kinds.xform.runs.Load() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // xform.broken fails at once
		cancel()
	}()
	rec, err := ws.engine(nil).Run(ctx, RunOptions{RunsDir: filepath.Join(ws.dir, "models"), KeepGoing: true})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStageFailed) {
		t.Fatalf("error %v, want both a failed stage and context.Canceled", err)
	}
	if rec.Result("xform.broken").Status != StatusFailed || rec.Result("xform.t").Status != StatusCancelled {
		t.Fatalf("xform.broken %s, xform.t %s", rec.Result("xform.broken").Status, rec.Result("xform.t").Status)
	}
}

func TestSecondRunIsRefusedWithHolderNamed(t *testing.T) {
	dir := t.TempDir()
	l, _, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = AcquireLock(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second lock: %v", err)
	}
	l.Release()
	l2, stale, err := AcquireLock(dir)
	if err != nil || stale != "" {
		t.Fatalf("after release: %v %q", err, stale)
	}
	l2.Release()
}

func TestHeavyStagesDoNotOverlap(t *testing.T) {
	const src = `
stage "gen" "src" {
  source = "raw"
}

stage "xform" "t" {
  for_each = toset(["a", "b", "c"])
  input    = stage.gen.src.out
  suffix   = each.key
  heavy    = true
}
`
	ws := newWorkspace(t, src, chainFiles())
	ws.kinds.xform.block = make(chan struct{})
	done := make(chan error)
	go func() {
		_, _, err := ws.run(RunOptions{Jobs: 4, HeavySlots: 1})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if n := ws.kinds.xform.runs.Load(); n != 1 {
		t.Fatalf("%d heavy stages running at once with one slot", n)
	}
	close(ws.kinds.xform.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A stage waiting for the training slot does not hold a job slot meanwhile: a light stage
// that becomes ready while one heavy stage runs and another waits still runs.
func TestWaitingHeavyStageLeavesItsJobSlot(t *testing.T) {
	const src = `
stage "gen" "src" {
  source = "raw"
}

stage "gen" "slow" {
  source = "raw"
  repeat = 2
}

stage "xform" "t" {
  for_each = toset(["a", "b"])
  input    = stage.gen.src.out
  heavy    = true
}

stage "join" "light" {
  inputs = { x = stage.gen.slow.out }
}
`
	ws := newWorkspace(t, src, chainFiles())
	// gen.slow holds the second job slot until one heavy stage runs and the other waits for
	// that slot; the light stage becomes ready only when gen.slow ends.
	ws.kinds.gen.probe = func(j *Job) {
		if j.Addr == "gen.slow" {
			time.Sleep(150 * time.Millisecond)
		}
	}
	ws.kinds.xform.block = make(chan struct{})
	done := make(chan error)
	go func() {
		_, _, err := ws.run(RunOptions{Jobs: 2, HeavySlots: 1})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for ws.kinds.join.runs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ran := ws.kinds.join.runs.Load()
	heavy := ws.kinds.xform.runs.Load()
	close(ws.kinds.xform.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ran == 0 || heavy != 1 {
		t.Fatalf("while one heavy stage ran (%d started), the light stage ran %d times; want 1", heavy, ran)
	}
}

// A rerun after damage produces the same output again: the damaged object must be replaced,
// not reused (and its damaged file must not be re-keyed with the good digest).
func TestRerunRepairsADamagedOutput(t *testing.T) {
	ws, f, orig := runChainAndReadOutput(t)
	os.Remove(f) // as an editor saving through a link would: a new file, same size
	os.WriteFile(f, []byte("XY"), 0o644)
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got["gen.src"] != "ran" {
		t.Fatalf("gen.src after damage: %s", got["gen.src"])
	}
	if b, err := os.ReadFile(f); err != nil || string(b) != string(orig) {
		t.Fatalf("the published output still holds %q (%v), want %q", b, err, orig)
	}
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Cached {
		t.Fatalf("gen.src after the repairing run: %s %v", d.Action, d.Reasons)
	}
}

// A stage reruns when the upstream output it is given changes, not when another output of
// the same upstream stage does: an empty file changes gen's count but not its out.
func TestOnlyTheUpstreamOutputAStageIsGivenIsInItsKey(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("raw/empty.txt", "")
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "cached", "xform.other": "ran", "xform.final": "cached"})
	ws.write("raw/empty.txt", "now with text")
	got, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "ran", "xform.other": "cached", "xform.final": "ran"})
	for _, s := range rec.Stages {
		if s.Addr == "xform.up" && strings.Join(s.Reasons, "; ") != "upstream gen.src changed" {
			t.Fatalf("xform.up reran because %v", s.Reasons)
		}
	}
}

// An output's digest covers its own files and the object's parts that are no named output
// (which it may refer to), not the other named outputs; with the files each output uses
// outside its folder (OutputReferrer), those alone.
func TestOutputDigestsCoverSharedPartsNotOtherOutputs(t *testing.T) {
	outputs := []string{"train", "val", "report"}
	files := map[string]string{"train/manifest.json": "1", "val/manifest.json": "2", "report/r.json": "3", "images/a.png": "4",
		"images/b.png": "6", "extra.bin": "5"}
	refs := map[string][]string{"train": {"images/a.png"}, "val": {"images/b.png", "images/gone.png"}}
	// changed lists the outputs whose digest changes when rel's content does.
	changed := func(rel string, refs map[string][]string) string {
		f := maps.Clone(files)
		f[rel] = "9"
		base, got := OutputDigests(ManifestFiles(files), outputs, refs), OutputDigests(ManifestFiles(f), outputs, refs)
		var names []string
		for _, o := range outputs {
			if got[o] != base[o] {
				names = append(names, o)
			}
		}
		return strings.Join(names, " ")
	}
	for _, c := range []struct {
		rel               string
		without, withRefs string // outputs whose digest changes, in order
	}{
		{"report/r.json", "report", "report"},
		{"val/manifest.json", "val", "val"},
		{"train/new.json", "train", "train"},
		{"images/a.png", "train val report", "train report"},
		{"images/b.png", "train val report", "val report"},
		{"images/c.png", "train val report", "report"}, // a new image no set lists (say, a test image)
		{"extra.bin", "train val report", "report"},
	} {
		if got := changed(c.rel, nil); got != c.without {
			t.Errorf("changing %s changed %q, want %q", c.rel, got, c.without)
		}
		if got := changed(c.rel, refs); got != c.withRefs {
			t.Errorf("with refs, changing %s changed %q, want %q", c.rel, got, c.withRefs)
		}
	}
}

// gc keeps what the pipeline file's plan reuses, though other settings ran since: trying a
// variable's other value and deleting the run folders must not cost the file's own outputs.
func TestGCKeepsWhatThePipelineFileNeeds(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"#", "?"} { // "?" ran last: the stages' states hold it
		e := ws.engine(map[string]string{"suffix": v})
		if _, err := e.Run(context.Background(), RunOptions{RunsDir: filepath.Join(ws.dir, "models")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(ws.dir, "models")); err != nil {
		t.Fatal(err)
	}
	dry, err := ws.engine(nil).GC(filepath.Join(ws.dir, "models"), true, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What only "#" needs: xform.up's and xform.final's outputs with it.
	var addrs []string
	for _, o := range dry.Removed {
		addrs = append(addrs, o.Addrs...)
		if o.Bytes <= 0 || o.Created.IsZero() || len(o.Digest) != 64 {
			t.Errorf("removed output described as %+v", o)
		}
	}
	// (both wrote "AB#": one object, named with both instances)
	if dry.Objects != 1 || strings.Join(addrs, ",") != "xform.final,xform.up" {
		t.Fatalf("dry run would remove %d outputs of %v", dry.Objects, addrs)
	}
	// A link from outside the store (a promoted model) keeps the files: nothing is freed,
	// unless the folder holding the link is to go too.
	if dry.Freed != dry.Bytes || dry.Freed <= 0 {
		t.Fatalf("dry run frees %d of %d bytes, want all", dry.Freed, dry.Bytes)
	}
	obj := filepath.Join(ws.dir, ObjectRel(dry.Removed[0].Digest))
	keeper := filepath.Join(t.TempDir(), "model")
	os.MkdirAll(keeper, 0o755)
	filepath.WalkDir(obj, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Link(p, filepath.Join(keeper, d.Name()))
		}
		return nil
	})
	if linked, err := ws.engine(nil).GC(filepath.Join(ws.dir, "models"), true, -1, nil); err != nil || linked.Freed != 0 {
		t.Fatalf("with the files linked from elsewhere, a dry run frees %d bytes (%v), want 0", linked.Freed, err)
	}
	if both, err := ws.engine(nil).GC(filepath.Join(ws.dir, "models"), true, -1, func() ([]string, error) { return []string{keeper}, nil }); err != nil || both.Freed != dry.Bytes {
		t.Fatalf("with the linking folder to go too, a dry run frees %d bytes (%v), want %d", both.Freed, err, dry.Bytes)
	}
	os.RemoveAll(keeper)
	res, err := ws.engine(nil).GC(filepath.Join(ws.dir, "models"), false, -1, nil)
	if err != nil || res.Objects != 1 {
		t.Fatalf("gc removed %d outputs, %v", res.Objects, err)
	}
	for a, d := range ws.plan(Selection{}) {
		if d.Action != Cached {
			t.Errorf("after gc: %s %s %v", a, d.Action, d.Reasons)
		}
	}
	// The state's value is kept too; "#" is gone for good: its plan reruns it.
	for v, want := range map[string]Action{"?": Cached, "#": Run} {
		p, err := ws.engine(map[string]string{"suffix": v}).Plan(Selection{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p {
			if d.Addr == "xform.up" && d.Action != want {
				t.Errorf("suffix %s after gc: %s %s, want %s", v, d.Addr, d.Action, want)
			}
		}
	}
}

// gc removes the scratch (checkpoints) of interrupted stages that no run of the plan would
// resume, and keeps the one the plan's next run resumes from.
func TestGCRemovesScratchNoRunResumes(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	interrupt := func(v string) { interruptXform(ws, v, Selection{}) }
	interrupt("#") // a setting tried and dropped
	interrupt("?") // the setting the file will have
	work := func() []string { return scratchFolders(ws) }
	if n := len(work()); n != 2 {
		t.Fatalf("%d scratch folders after two interrupted runs, want 2", n)
	}
	e := ws.engine(map[string]string{"suffix": "?"})
	// While the run folders of the interrupted runs are there, either may be resumed.
	res, err := e.GC(filepath.Join(ws.dir, "models"), false, -1, nil)
	if err != nil || len(res.Work) != 0 {
		t.Fatalf("gc with the run folders there removed %+v (%v)", res.Work, err)
	}
	if err := os.RemoveAll(filepath.Join(ws.dir, "models")); err != nil {
		t.Fatal(err)
	}
	// A run killed before it wrote run.json does not say what it ran: all stay.
	killed := filepath.Join(ws.dir, "models", "20991231_000000")
	os.MkdirAll(killed, 0o755)
	if res, err := e.GC(filepath.Join(ws.dir, "models"), false, -1, nil); err != nil || len(res.Work) != 0 {
		t.Fatalf("gc with a killed run's folder there removed %+v (%v)", res.Work, err)
	}
	os.RemoveAll(killed)
	res, err = e.GC(filepath.Join(ws.dir, "models"), false, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Work) != 1 || res.Work[0].Addr != "xform.up" || res.Work[0].Bytes < 1000 || len(work()) != 1 {
		t.Fatalf("gc removed %+v, left %v", res.Work, work())
	}
	plan, err := e.Plan(Selection{})
	if err != nil {
		t.Fatal(err)
	}
	var kept string
	for _, d := range plan {
		if d.Addr == "xform.up" {
			kept = d.Key
		}
	}
	if work()[0] != kept {
		t.Fatalf("gc kept %s, not the scratch of the planned xform.up %s", work()[0], kept)
	}
}

// interruptXform runs the chain with the suffix v and the selection sel until an xform stage
// has written a checkpoint in its scratch, and cancels the run.
func interruptXform(ws *workspace, v string, sel Selection) {
	ws.kinds.xform.block = make(chan struct{})
	wrote := make(chan struct{})
	ws.kinds.xform.beforeBlock = func(j *Job) {
		// A kind may clean its scratch of everything but its checkpoints (train does).
		entries, _ := os.ReadDir(j.Work)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(j.Work, e.Name()))
		}
		os.WriteFile(filepath.Join(j.Work, "ckpt"), []byte(strings.Repeat("w", 1000)), 0o644)
		close(wrote)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-wrote; cancel() }()
	ws.engine(map[string]string{"suffix": v}).Run(ctx, RunOptions{Selection: sel, RunsDir: filepath.Join(ws.dir, "models")})
	ws.kinds.xform.block, ws.kinds.xform.beforeBlock = nil, nil
}

// scratchFolders lists the store's scratch folders, without their notes.
func scratchFolders(ws *workspace) []string {
	var dirs []string
	for _, n := range dirNames(filepath.Join(ws.dir, StoreDir, "work")) {
		if !strings.HasSuffix(n, workStageSuffix) {
			dirs = append(dirs, n)
		}
	}
	return dirs
}

// A forced run of a cached stage killed mid-way leaves scratch under a key that has its
// output: a run reuses the output and a forced run starts over, so gc removes it, even while
// the killed run's folder (without run.json) is there; the scratch of an interrupted run of a
// key not completed yet stays.
func TestGCRemovesScratchOfACompletedKey(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	e := ws.engine(nil)
	plan, err := e.Plan(Selection{})
	if err != nil {
		t.Fatal(err)
	}
	var cached string
	for _, d := range plan {
		if d.Addr == "xform.up" {
			cached = d.Key
		}
	}
	interruptXform(ws, "!", Selection{Targets: []string{"xform.up"}, Force: true})
	interruptXform(ws, "?", Selection{}) // a setting not run to the end yet
	if w := scratchFolders(ws); len(w) != 2 || !slices.Contains(w, cached) {
		t.Fatalf("scratch folders %v, want two, one of them %s", w, cached)
	}
	os.RemoveAll(filepath.Join(ws.dir, "models"))
	killed := filepath.Join(ws.dir, "models", "20991231_000000") // as kill -9 leaves it
	os.MkdirAll(killed, 0o755)
	res, err := e.GC(filepath.Join(ws.dir, "models"), false, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Work) != 1 || res.Work[0].Key != cached || res.Work[0].Addr != "xform.up" || res.Work[0].Bytes < 1000 {
		t.Fatalf("gc removed %+v, want the scratch of %s", res.Work, cached)
	}
	if w := scratchFolders(ws); len(w) != 1 || w[0] == cached {
		t.Fatalf("scratch folders left %v", w)
	}
	// The file set to the setting not completed: gc keeps its scratch, which the run resumes.
	os.RemoveAll(killed)
	if res, err := ws.engine(map[string]string{"suffix": "?"}).GC(filepath.Join(ws.dir, "models"), false, -1, nil); err != nil || len(res.Work) != 0 {
		t.Fatalf("gc removed %+v (%v), want the scratch the plan resumes from kept", res.Work, err)
	}
}

// A stage whose input is not known until its upstream runs may come out cached then: gc
// keeps its earlier outputs.
func TestGCKeepsTheOutputsOfStagesWaitingForUpstream(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	e := ws.engine(map[string]string{"suffix": "#"})
	if _, err := e.Run(context.Background(), RunOptions{RunsDir: filepath.Join(ws.dir, "models")}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(ws.dir, "models")); err != nil {
		t.Fatal(err)
	}
	ws.write("raw/empty.txt", "") // gen.src reruns; its out comes out as before
	if res, err := ws.engine(nil).GC(filepath.Join(ws.dir, "models"), false, -1, nil); err != nil || res.Objects != 0 {
		t.Fatalf("gc removed %d outputs (%v), want none", res.Objects, err)
	}
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "cached", "xform.other": "ran", "xform.final": "cached"})
}

// A stage that cannot be planned in a run is named once in the error.
func TestRunErrorNamesTheStageOnce(t *testing.T) {
	ws := newWorkspace(t, strings.Replace(chainHCL, `source = "raw"`, `source = "rae"`, 1), chainFiles())
	_, _, err := ws.run(RunOptions{})
	if err == nil || strings.Contains(err.Error(), "gen.src: gen.src") || !strings.Contains(err.Error(), `gen.src: source "rae" does not exist`) {
		t.Fatalf("error %v", err)
	}
}

// sameDirKind writes its text to out and asks for the run-folder folder "same", whatever the
// instance.
type sameDirKind struct{}

func (sameDirKind) Name() string      { return "samedir" }
func (sameDirKind) Version() int      { return 1 }
func (sameDirKind) Outputs() []string { return []string{"out"} }
func (sameDirKind) Attributes() []Attribute {
	return []Attribute{{Name: "text", Type: cty.String, Required: true, Doc: "what to write"}}
}
func (sameDirKind) ArtifactDir(string, *Values, string) string { return "same" }
func (sameDirKind) Run(ctx context.Context, j *Job) error {
	return os.WriteFile(filepath.Join(j.Out, "out"), []byte(j.Values.String("text")), 0o644)
}

// Two instances of a kind that choose the same run-folder folder do not share it: both get
// their addresses (whichever ends first), and neither's files (hard links to its stored
// output) are written over.
func TestInstancesChoosingOneArtifactFolderGetTwo(t *testing.T) {
	reg, err := NewRegistry(sameDirKind{})
	if err != nil {
		t.Fatal(err)
	}
	ws := &workspace{t: t, dir: t.TempDir(), kinds: &fakeKinds{reg: reg}}
	ws.write("pipeline.hcl", `
stage "samedir" "a" {
  text = "from a"
}
stage "samedir" "b" {
  text = "from b"
}
`)
	_, rec, err := ws.run(RunOptions{Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range rec.Stages {
		b, err := os.ReadFile(filepath.Join(rec.Dir(), s.Artifacts, "out"))
		if err != nil {
			t.Fatal(err)
		}
		got[s.Addr] = s.Artifacts + ": " + string(b)
		stored, _ := os.ReadFile(filepath.Join(ws.dir, ObjectRel(s.Output), "out"))
		if string(stored) != string(b) {
			t.Errorf("%s's stored output holds %q", s.Addr, stored)
		}
	}
	if a, b := got["samedir.a"], got["samedir.b"]; a != "samedir.a: from a" || b != "samedir.b: from b" {
		t.Fatalf("run folder: %v", got)
	}
	// One alone in a run keeps the folder it chooses.
	_, rec, err = ws.run(RunOptions{Selection: Selection{Targets: []string{"samedir.a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := rec.Result("samedir.a"); res == nil || res.Artifacts != "same" {
		t.Fatalf("alone: %+v", res)
	}
}

// Linking or copying onto a file that exists fails and changes neither file.
func TestLinkFileNeverWritesOverAFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.WriteFile(src, []byte("new"), 0o644)
	os.WriteFile(dst, []byte("kept"), 0o644)
	if err := LinkFile(src, dst); err == nil {
		t.Fatal("linked over an existing file")
	}
	if err := copyFile(src, dst); err == nil {
		t.Fatal("copied over an existing file")
	}
	if b, _ := os.ReadFile(dst); string(b) != "kept" {
		t.Fatalf("dst holds %q", b)
	}
	if b, _ := os.ReadFile(src); string(b) != "new" {
		t.Fatalf("src holds %q", b)
	}
}

// followKind writes a note beside the output it is given: it asks for the folder "same" too,
// but follows its input's instance.
type followKind struct{}

func (followKind) Name() string      { return "follow" }
func (followKind) Version() int      { return 1 }
func (followKind) Outputs() []string { return []string{"note"} }
func (followKind) Attributes() []Attribute {
	return []Attribute{{Name: "of", Type: cty.String, Required: true, Doc: "an upstream output"}}
}
func (followKind) ArtifactDir(string, *Values, string) string { return "same" }
func (followKind) ArtifactFollows(v *Values) string           { return v.String("of") }
func (followKind) Run(ctx context.Context, j *Job) error {
	b, err := os.ReadFile(j.Path(j.Values.String("of")))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(j.Out, "note"), append([]byte("about "), b...), 0o644)
}

// An instance that follows its input goes into the folder of the instance that input comes
// from, whichever folder that one got.
func TestFollowersGoBesideTheirInput(t *testing.T) {
	reg, err := NewRegistry(sameDirKind{}, followKind{})
	if err != nil {
		t.Fatal(err)
	}
	ws := &workspace{t: t, dir: t.TempDir(), kinds: &fakeKinds{reg: reg}}
	ws.write("pipeline.hcl", `
stage "samedir" "a" {
  text = "a"
}
stage "samedir" "b" {
  text = "b"
}
stage "follow" "of_b" {
  of = stage.samedir.b.out
}
stage "follow" "of_a" {
  of = stage.samedir.a.out
}
stage "follow" "of_a_too" {
  of = stage.samedir.a.out
}
`)
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two followers of one input: the first by address takes its folder, whichever ends
	// first; the other gets its address.
	first, second := rec.Result("follow.of_a"), rec.Result("follow.of_a_too")
	if first.Artifacts != rec.Result("samedir.a").Artifacts || second.Artifacts != "follow.of_a_too" {
		t.Errorf("two followers of samedir.a are in %s and %s", first.Artifacts, second.Artifacts)
	}
	for _, pair := range [][2]string{{"follow.of_b", "samedir.b"}} {
		f, p := rec.Result(pair[0]), rec.Result(pair[1])
		if f.Artifacts != p.Artifacts {
			t.Errorf("%s is in %s, %s in %s", pair[0], f.Artifacts, pair[1], p.Artifacts)
		}
		b, _ := os.ReadFile(filepath.Join(rec.Dir(), f.Artifacts, "note"))
		if string(b) != "about "+pair[1][len("samedir."):] {
			t.Errorf("%s/note: %q", f.Artifacts, b)
		}
	}
}

// A follower whose input is no output of this run (a path written in the file: an evaluation
// of a model folder) does not take the folder an instance of this run chooses (the training
// of another model, named alike by its architecture): that folder would show one model's
// training beside another's evaluation, and push the training's own evaluation out of it.
func TestFollowerOfAPathLeavesARunInstancesFolderAlone(t *testing.T) {
	reg, err := NewRegistry(sameDirKind{}, followKind{})
	if err != nil {
		t.Fatal(err)
	}
	ws := &workspace{t: t, dir: t.TempDir(), kinds: &fakeKinds{reg: reg}}
	ws.write("elsewhere.txt", "elsewhere")
	ws.write("pipeline.hcl", `
stage "follow" "ext" {
  of = "elsewhere.txt"
}
stage "samedir" "a" {
  text = "a"
}
stage "follow" "of_a" {
  of = stage.samedir.a.out
}
`)
	_, rec, err := ws.run(RunOptions{Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	ext, a, ofA := rec.Result("follow.ext"), rec.Result("samedir.a"), rec.Result("follow.of_a")
	if ext.Artifacts != "follow.ext" || a.Artifacts != "same" || ofA.Artifacts != "same" {
		t.Fatalf("follow.ext is in %s, samedir.a in %s, follow.of_a in %s", ext.Artifacts, a.Artifacts, ofA.Artifacts)
	}
	if b, _ := os.ReadFile(filepath.Join(rec.Dir(), "same", "note")); string(b) != "about a" {
		t.Errorf("same/note: %q", b)
	}
	// Alone in a run, with no instance choosing that folder, it keeps the folder it chooses.
	_, rec, err = ws.run(RunOptions{Selection: Selection{Targets: []string{"follow.ext"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := rec.Result("follow.ext"); res == nil || res.Artifacts != "same" {
		t.Fatalf("alone: %+v", res)
	}
}

// A file moved, or a folder renamed, within a source is said as such, not as files added
// and removed.
func TestPlanSaysWhatMoved(t *testing.T) {
	ws := newWorkspace(t, `
stage "gen" "src" {
  source = "raw"
}
`, map[string]string{"raw/Amanita/1.jpg": "one", "raw/Amanita/2.jpg": "two", "raw/Boletus/3.jpg": "three"})
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	rename := func(from, to string) {
		os.MkdirAll(filepath.Dir(filepath.Join(ws.dir, to)), 0o755)
		if err := os.Rename(filepath.Join(ws.dir, from), filepath.Join(ws.dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	rename("raw/Amanita", "raw/Amanita muscaria")
	want := "raw: 0 added, 0 changed, 0 removed, 2 moved (folder Amanita renamed Amanita muscaria) (e.g. Amanita/1.jpg → Amanita muscaria/1.jpg, Amanita/2.jpg → Amanita muscaria/2.jpg)"
	if d := ws.plan(Selection{})["gen.src"]; d.Action != Run || d.Reasons[0] != want {
		t.Fatalf("after renaming a folder: %s %v\nwant %s", d.Action, d.Reasons, want)
	}
	rename("raw/Boletus/3.jpg", "raw/Amanita muscaria/3.jpg")
	ws.write("raw/Boletus/4.jpg", "four")
	want = "raw: 1 added, 0 changed, 0 removed, 3 moved (e.g. Boletus/4.jpg, Amanita/1.jpg → Amanita muscaria/1.jpg, Amanita/2.jpg → Amanita muscaria/2.jpg)"
	if d := ws.plan(Selection{})["gen.src"]; d.Reasons[0] != want {
		t.Fatalf("after moving a file too: %v\nwant %s", d.Reasons, want)
	}
}

// A number worked out in the pipeline file is shown as the float64 the stage receives, not
// with the dozens of digits of HCL's arbitrary-precision arithmetic; two values that only
// those digits tell apart are shown in full.
func TestPlanShowsComputedNumbersShort(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `epochs = 10`, `epochs = 0.0001 * 1.1`, 1))
	if d := ws.plan(Selection{})["xform.other"]; d.Reasons[0] != "attribute epochs 10 → 0.00011" {
		t.Fatalf("xform.other: %s %v", d.Action, d.Reasons)
	}
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `epochs = 10`, `epochs = 0.00011`, 1))
	d := ws.plan(Selection{})["xform.other"]
	if d.Action != Run || len(d.Reasons) != 1 {
		t.Fatalf("xform.other: %s %v", d.Action, d.Reasons)
	}
	old, cur, ok := strings.Cut(strings.TrimPrefix(d.Reasons[0], "attribute epochs "), " → ")
	if !ok || old == cur || !strings.HasPrefix(old, "0.000109999") || cur != "0.00011" {
		t.Fatalf("a change only the full digits show is shown as %q", d.Reasons[0])
	}
}

func TestShortNumbersLeavesStringsAndIntegers(t *testing.T) {
	in := `{"lr":0.000109999999999999999999999999995,"name":"0.500000000000000000001","n":100000000000000000000,"w":[-2.50000000000000000000001e-7,1.5]}`
	want := `{"lr":0.00011,"name":"0.500000000000000000001","n":100000000000000000000,"w":[-2.5e-07,1.5]}`
	if got := shortNumbers(in); got != want {
		t.Fatalf("shortNumbers(%s) =\n%s, want\n%s", in, got, want)
	}
}

// stage.X.Y[each.key] depends on that instance alone (as for_each = stage.X.Y with each.value
// does); a reference to the whole stage, or by a key from each.value, on all its instances.
func TestIndexedStageReferenceDependsOnOneInstance(t *testing.T) {
	const src = `
variable "pick" {
  default = "vit"
}

stage "gen" "src" {
  source = "raw"
}

stage "xform" "arch" {
  for_each = toset(["cnn", "vit"])
  input    = stage.gen.src.out
  suffix   = "-${each.key}"
}

stage "xform" "eval" {
  for_each = toset(["cnn", "vit"])
  input    = stage.xform.arch[each.key].out
  suffix   = "(${each.key})"
}

stage "xform" "picked" {
  input = stage.xform.arch[var.pick].out
}

stage "xform" "both" {
  for_each = toset(["cnn", "vit"])
  input    = stage.xform.arch[each.key].out
  suffix   = join(",", keys(stage.xform.arch))
}
`
	ws := newWorkspace(t, src, chainFiles())
	e := ws.engine(nil)
	for addr, want := range map[string]string{
		"xform.eval[vit]": "xform.arch[vit]",
		"xform.eval[cnn]": "xform.arch[cnn]",
		"xform.picked":    "xform.arch[vit]",
		"xform.both[cnn]": "xform.arch[cnn],xform.arch[vit]",
	} {
		inst, ok := e.Workflow.Instance(addr)
		if !ok {
			t.Fatalf("no instance %s", addr)
		}
		if got := strings.Join(inst.Deps, ","); got != want {
			t.Errorf("%s depends on %s, want %s", addr, got, want)
		}
	}
	got, rec, err := ws.run(RunOptions{Selection: Selection{Targets: []string{"xform.eval[cnn]"}}})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.arch[cnn]": "ran", "xform.eval[cnn]": "ran"})
	b, _ := os.ReadFile(filepath.Join(rec.Dir(), "xform.eval.cnn", "out"))
	if string(b) != "AB-CNN(cnn)" {
		t.Fatalf("xform.eval[cnn] output %q", b)
	}
}

// A stage whose key waits on upstream stages still runs for certain when its own
// configuration changed, it never ran or it is forced: plan says so and why, and leaves "may
// run" to those that run only if their inputs come out changed.
func TestPlanKnowsOwnChangesBehindRunningUpstreams(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	p := ws.plan(Selection{})
	if d := p["xform.final"]; d.Known || !d.Certain || d.Reasons[0] != "never ran" || d.Reasons[1] != "upstream xform.up runs first" {
		t.Fatalf("fresh workspace: xform.final known=%v certain=%v %q", d.Known, d.Certain, d.Reasons)
	}
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("raw/a.txt", "changed")
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `epochs = 10`, `epochs = 20`, 1))
	p = ws.plan(Selection{})
	if d := p["xform.other"]; d.Known || !d.Certain || strings.Join(d.Reasons, "; ") != "attribute epochs 10 → 20; upstream gen.src runs first" {
		t.Errorf("own change behind an upstream: xform.other known=%v certain=%v %q", d.Known, d.Certain, d.Reasons)
	}
	for _, a := range []string{"xform.up", "xform.final"} {
		if d := p[a]; d.Known || d.Certain || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "known after upstream runs") {
			t.Errorf("%s: known=%v certain=%v %q, want may run", a, d.Known, d.Certain, d.Reasons)
		}
	}
	if d := ws.plan(Selection{Targets: []string{"xform.final"}, Force: true})["xform.final"]; !d.Certain || d.Reasons[0] != "forced" {
		t.Errorf("forced: certain=%v %q", d.Certain, d.Reasons)
	}
	if d := p["gen.src"]; !d.Known || !d.Certain {
		t.Errorf("gen.src: known=%v certain=%v %q", d.Known, d.Certain, d.Reasons)
	}

	// Back to epochs 10, which has an output for gen.src's output of the first run, while a
	// label reruns gen.src (its output the same): xform.other may be reused, and is.
	ws.write("raw/a.txt", "a")
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", strings.Replace(chainHCL, `source = "raw"`, "source = \"raw\"\n  label = \"x\"", 1))
	p = ws.plan(Selection{})
	want := "attribute epochs 20 → 10; upstream gen.src runs first; an earlier output of this configuration is reused if gen.src outputs what it did last time"
	if d := p["xform.other"]; d.Known || d.Certain || strings.Join(d.Reasons, "; ") != want {
		t.Errorf("own change with an output kept: xform.other known=%v certain=%v %q, want may run: %s", d.Known, d.Certain, d.Reasons, want)
	}
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.up": "cached", "xform.other": "cached", "xform.final": "cached"})
}

// A stage that may reuse a kept output of its new configuration is the output the stages
// below it are judged by, through any stage between: one whose own change has an output kept
// for it may run, one whose kept output was made from another runs.
func TestPlanJudgesStagesBelowAKeptOutputByIt(t *testing.T) {
	hcl := func(label, suffix string, epochs int) string {
		return fmt.Sprintf(`
stage "gen" "src" {
  source = "raw"
  label  = %q
}

stage "xform" "mid" {
  input  = stage.gen.src.out
  suffix = %q
}

stage "xform" "pass" {
  input = stage.xform.mid.out
}

stage "xform" "down" {
  input  = stage.xform.pass.out
  epochs = %d
}
`, label, suffix, epochs)
	}
	ws := newWorkspace(t, hcl("a", "1", 10), chainFiles())
	for _, c := range []struct {
		suffix string
		epochs int
	}{{"1", 10}, {"2", 30}, {"2", 20}} {
		ws.write("pipeline.hcl", hcl("a", c.suffix, c.epochs))
		if _, _, err := ws.run(RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// gen.src reruns for its label and outputs the same; mid goes back to suffix 1, kept.
	for _, c := range []struct {
		label   string // new each time: gen.src runs
		epochs  int
		certain bool
		status  string
	}{
		{"b", 10, false, "cached"}, // kept for suffix 1's output
		{"c", 30, true, "ran"},     // kept for suffix 2's output only
	} {
		ws.write("pipeline.hcl", hcl(c.label, "1", c.epochs))
		p := ws.plan(Selection{})
		if d := p["xform.mid"]; d.Certain || !strings.Contains(strings.Join(d.Reasons, "; "), "an earlier output of this configuration is reused if gen.src outputs") {
			t.Fatalf("epochs %d: xform.mid certain=%v %q", c.epochs, d.Certain, d.Reasons)
		}
		if d := p["xform.down"]; d.Certain != c.certain {
			t.Errorf("epochs %d: xform.down certain=%v %q, want %v", c.epochs, d.Certain, d.Reasons, c.certain)
		}
		got, _, err := ws.run(RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.mid": "cached", "xform.pass": "cached", "xform.down": c.status})
		ws.write("pipeline.hcl", hcl("a", "2", 20)) // back to the state before
		if _, _, err := ws.run(RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// A stage that reruns to restore its damaged output is taken to output what it recorded: the
// stage below, whose own change has an output kept for that, may run, and is reused.
func TestPlanTakesADamagedOutputForWhatItRecorded(t *testing.T) {
	hcl := func(epochs int) string {
		return fmt.Sprintf(`
stage "gen" "src" {
  source = "raw"
}

stage "xform" "down" {
  input  = stage.gen.src.out
  epochs = %d
}
`, epochs)
	}
	ws := newWorkspace(t, hcl(10), chainFiles())
	for _, e := range []int{10, 30} {
		ws.write("pipeline.hcl", hcl(e))
		if _, _, err := ws.run(RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := ws.engine(nil).Store.LoadState("gen.src")
	out := filepath.Join(ws.dir, ObjectRel(st.Output), "out")
	os.Chmod(out, 0o644)
	if err := os.WriteFile(out, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws.write("pipeline.hcl", hcl(10))
	p := ws.plan(Selection{})
	if d := p["gen.src"]; d.Action != Run || !strings.HasPrefix(d.Reasons[0], "output damaged") {
		t.Fatalf("gen.src: %s %q", d.Action, d.Reasons)
	}
	if d := p["xform.down"]; d.Certain || !strings.Contains(strings.Join(d.Reasons, "; "), "an earlier output of this configuration is reused if gen.src outputs what it did last time") {
		t.Errorf("xform.down: certain=%v %q, want may run", d.Certain, d.Reasons)
	}
	got, _, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, map[string]string{"gen.src": "ran", "xform.down": "cached"})
}

// A file name that is not UTF-8 (JSON records it with U+FFFD) is the same file in the next
// plan, not a move; one added is shown escaped, not as a raw byte.
func TestPlanKeepsNamesThatAreNotUTF8(t *testing.T) {
	files := chainFiles()
	files["raw/bad\xffname.txt"] = "x"
	ws := newWorkspace(t, chainHCL, files)
	if _, _, err := ws.run(RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ws.write("raw/c.txt", "c")
	ws.write("raw/new\xfe.txt", "n")
	d := ws.plan(Selection{})["gen.src"]
	if d.Action != Run || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], `raw: 2 added, 0 changed, 0 removed (e.g. c.txt, new\xfe.txt)`) {
		t.Fatalf("gen.src: %s %q", d.Action, d.Reasons)
	}
}

// A --stage that names no stage is answered with what it could have meant: the keys of the
// block it names, the closest key; the stage of the kind it names; every stage with its keys.
func TestCheckSelectorListsKeysAndStages(t *testing.T) {
	src := `
stage "gen" "src" {
  source = "raw"
}

stage "xform" "arch" {
  for_each = toset(["cnn", "vgg19", "vit"])
  input    = stage.gen.src.out
}
`
	w := newWorkspace(t, src, chainFiles()).engine(nil).Workflow
	for _, ok := range []string{"gen.src", "xform.arch", "xform.arch[vit]", `xform.arch["vit"]`, "xform.arch.vit"} {
		if err := w.CheckSelector(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for sel, want := range map[string]string{
		"xform.arch[resnet]": `no stage "xform.arch[resnet]" in ` + w.Config.Path + `: xform.arch has no instance "resnet"; its keys are "cnn", "vgg19" and "vit"`,
		"xform.arch[vgg]":    `: xform.arch has no instance "vgg"; its keys are "cnn", "vgg19" and "vit"; did you mean "xform.arch[vgg19]"?`,
		"gen.src[a]":         `: gen.src has no for_each, so no instances; use --stage gen.src`,
		"xform":              `; xform is a stage kind: did you mean "xform.arch" (xform.arch[cnn, vgg19, vit])?`,
		"zzz":                `; stages: gen.src, xform.arch[cnn, vgg19, vit]`,
	} {
		err := w.CheckSelector(sel)
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s: %v, want it to end in %q", sel, err, want)
		}
		// The engine refuses it too.
		e := &Engine{Workflow: w}
		if _, _, err := e.Select(Selection{Targets: []string{sel}}); err == nil {
			t.Errorf("%s: Select takes it", sel)
		}
	}
}

// gc with keepRuns removes the run folders but the newest, oldest first, and then what only
// they used; the promotion folder and other folders beside them stay, and so do the links of
// the run folder kept.
func TestGCKeepsTheNewestRuns(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	runs := filepath.Join(ws.dir, "models")
	clock := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	var names []string
	for _, v := range []string{"#", "%", "?"} { // "?" last: the stages' states hold it
		clock = clock.Add(24 * time.Hour)
		now := clock
		rec, err := ws.engine(map[string]string{"suffix": v}).Run(context.Background(), RunOptions{RunsDir: runs, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(rec.Dir()))
	}
	os.MkdirAll(filepath.Join(runs, "final_models.d", "x"), 0o755)
	os.WriteFile(filepath.Join(runs, "README.md"), []byte("runs"), 0o644)

	dry, err := ws.engine(map[string]string{"suffix": "?"}).GC(runs, true, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Runs, names[:2]) || dry.Objects != 2 {
		t.Fatalf("dry run: run folders %v (want %v), %d outputs (want those of # and %%)", dry.Runs, names[:2], dry.Objects)
	}
	if _, err := os.Stat(filepath.Join(runs, names[0])); err != nil {
		t.Fatalf("the dry run removed a run folder: %v", err)
	}
	// What a gc killed while deleting a run folder's files left (renamed out of the way
	// first): the next gc finishes it.
	if err := os.MkdirAll(filepath.Join(runs, removingPrefix+"20261130_030000", "xform.final"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ws.engine(map[string]string{"suffix": "?"}).GC(runs, false, 1, nil)
	if err != nil || !slices.Equal(res.Runs, names[:2]) || res.Objects != 2 {
		t.Fatalf("gc: %v, %d outputs, %v", res.Runs, res.Objects, err)
	}
	left, _ := os.ReadDir(runs)
	var got []string
	for _, e := range left {
		got = append(got, e.Name())
	}
	if want := []string{names[2], "README.md", "final_models.d"}; !slices.Equal(got, want) {
		t.Fatalf("left in the runs folder: %v, want %v", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(runs, names[2], "xform.final", "out")); err != nil || string(b) != "AB?" {
		t.Fatalf("the run folder kept: %q, %v", b, err)
	}
	if res, err := ws.engine(map[string]string{"suffix": "?"}).GC(runs, false, 1, nil); err != nil || len(res.Runs) != 0 || res.Objects != 0 {
		t.Fatalf("gc again: %v, %d outputs, %v", res.Runs, res.Objects, err)
	}
}

// --keep-runs N keeps the newest N runs that succeeded and the newest N of the others: broken
// runs neither push the good ones out nor pile up.
func TestKeepRunsKeepsGoodAndBrokenRunsApart(t *testing.T) {
	dir := t.TempDir()
	var runs []string
	for i, status := range []string{"succeeded", "cancelled", "succeeded", "failed", ""} {
		d := filepath.Join(dir, fmt.Sprintf("20261201_00000%d", i))
		os.MkdirAll(d, 0o755)
		if status == "" { // killed: a log, no run.json
			os.WriteFile(filepath.Join(d, "run.log"), []byte("started\n"), 0o644)
		} else if err := writeJSON(filepath.Join(d, "run.json"), RunRecord{Status: status}); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, d)
	}
	if got := runFolders(dir); !slices.Equal(got, runs) {
		t.Fatalf("runFolders: %v", got)
	}
	for n, want := range [][]int{nil, {2, 4}, {0, 2, 3, 4}, {0, 1, 2, 3, 4}} {
		var got []int
		for i, d := range runs {
			if keptRuns(runs, n)[d] {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("keeping %d: kept %v, want %v", n, got, want)
		}
	}
}

// TestStateRemembersEarlierKeys checks that an instance's state keeps the keys it had before,
// newest first, each once, without the current one, at most maxEarlier of them.
func TestStateRemembersEarlierKeys(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "a", "c", "c", "d", "e", "f", "g", "h", "i", "j"} {
		if err := s.SaveState(&State{Addr: "split.main", Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.LoadState("split.main")
	if want := []string{"i", "h", "g", "f", "e", "d", "c", "a"}; st.Key != "j" || !slices.Equal(st.Earlier, want) {
		t.Fatalf("key %s, earlier %q; want j, %q", st.Key, st.Earlier, want)
	}
}

// TestRunsFolderInsideASourceOrTheStoreIsRefused checks that a runs folder inside a stage's
// source folder (where run folders would become photos) or inside the store is refused before
// anything runs, naming the folder, and that nothing is written there.
func TestRunsFolderInsideASourceOrTheStoreIsRefused(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	for dir, want := range map[string]string{
		filepath.Join(ws.dir, "raw", "runs"):       "is inside gen.src's source folder (raw)",
		filepath.Join(ws.dir, "raw"):               "is inside gen.src's source folder (raw)",
		filepath.Join(ws.dir, StoreDir, "objects"): "is inside the store",
	} {
		_, err := ws.engine(nil).Run(context.Background(), RunOptions{RunsDir: dir})
		if err == nil || !strings.Contains(err.Error(), "the runs folder "+dir+" "+want) {
			t.Errorf("--runs-dir %s: %v, want %q", dir, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ws.dir, "raw", "runs")); err == nil {
		t.Error("a runs folder was made in the source")
	}
	// Through a link, too.
	link := filepath.Join(t.TempDir(), "runs")
	os.Symlink(filepath.Join(ws.dir, "raw"), link)
	if _, err := ws.engine(nil).Run(context.Background(), RunOptions{RunsDir: filepath.Join(link, "sub")}); err == nil || !strings.Contains(err.Error(), "is inside gen.src's source folder (raw)") {
		t.Errorf("a runs folder leading into the source through a link: %v", err)
	}
}

// cancelAfter is a Reporter that cancels the run once n stages have finished (Finished is
// called from the stages' goroutines).
type cancelAfter struct {
	nopReporter
	n      atomic.Int64
	cancel func()
}

func (c *cancelAfter) Finished(*StageResult) {
	if c.n.Add(-1) == 0 {
		c.cancel()
	}
}

// A run interrupted once every stage has finished (a Ctrl-C as its select promotes, say,
// which completes) left nothing undone: it succeeded, and is not counted among the cancelled.
func TestInterruptAfterTheLastStageIsASuccess(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := &cancelAfter{cancel: cancel}
	stop.n.Store(4)
	rec, err := ws.engine(nil).Run(ctx, RunOptions{RunsDir: filepath.Join(ws.dir, "models"), Reporter: stop})
	if err != nil || rec.Status != "succeeded" || ctx.Err() == nil {
		t.Fatalf("interrupted after its last stage: %v, status %s (context %v)", err, rec.Status, ctx.Err())
	}
}

// TestJobHistoryFromState checks the one rule by which a run's Job and gc's find an instance's
// history in its state: Previous is its output while the store holds it, with the record of
// its files, and nothing when the output is gone or the state names none.
func TestJobHistoryFromState(t *testing.T) {
	ws := t.TempDir()
	s, err := OpenStore(ws)
	if err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(ws, ObjectRel("abc"))
	if err := os.MkdirAll(held, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		output, want string
	}{{"abc", held}, {"gone", ""}, {"", ""}} {
		st := &State{Addr: "split.main", Key: "k1", Output: c.output, Earlier: []string{"k0"}}
		run := s.withHistory(&Job{Addr: st.Addr, Out: "tmp"}, st)
		gc := s.historyJob(st)
		for _, j := range []*Job{run, gc} {
			if j.Previous != c.want || (c.want != "") != (j.prevRecord == s.outputPath("k1")) || j.store != s || !slices.Equal(j.earlier, st.Earlier) {
				t.Errorf("output %q: Previous %q, record %q, earlier %q; want Previous %q", c.output, j.Previous, j.prevRecord, j.earlier, c.want)
			}
		}
		if run.Out != "tmp" {
			t.Errorf("withHistory changed the Job's other fields: Out %q", run.Out)
		}
	}
}
