package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reporter receives run events; the command draws them as progress bars or log lines.
// Methods may be called from several goroutines.
type Reporter interface {
	// Planned announces the instances of the run in order, with their plan where known.
	Planned(stages []string)
	// Started says an instance began running (not called for cache hits).
	Started(addr string, reasons []string) Progress
	// Finished reports an instance's outcome (every instance gets one).
	Finished(res *StageResult)
	// Log carries a line a stage wrote.
	Log(addr, line string)
}

// RunOptions configure Run.
type RunOptions struct {
	Selection
	Jobs       int  // stages at once; 0 means the number of CPUs
	HeavySlots int  // heavy stages (training) at once; 0 means 1
	KeepGoing  bool // after a failure, keep running what does not depend on it
	RunsDir    string
	Reporter   Reporter
	Versions   map[string]string // recorded in run.json
	Trigger    string            // recorded in run.json (scheduled runs)
	Now        func() time.Time
	// Prepare, when set, runs once before the first stage that executes (a run where every
	// stage is cached never calls it); when it fails, every stage that would execute fails
	// with its error. The command uses it to make stages wait for libtensorflow, which loads
	// in the background while the engine plans.
	Prepare func() error
	// Started, when set, is told the run folder as soon as it is made (the scheduler logs it:
	// its run.log has the stages' lines as they come).
	Started func(dir string)
}

// checkSources refuses a run before it starts, as plan does, when a source folder of the
// selected stages is missing or holds the store: a run folder would record only the failure.
func (e *Engine) checkSources(insts []*Instance) error {
	var problems []string
	file := filepath.Base(e.Workflow.Config.Path)
	for _, inst := range insts {
		v, diags := e.Workflow.Evaluate(inst, nil)
		if diags.HasErrors() {
			continue // the stage fails with them when it runs
		}
		for _, a := range inst.Kind.Attributes() {
			if a.Role != Source || !v.Get(a.Name).IsKnown() || v.Get(a.Name).IsNull() {
				continue
			}
			if p := checkSource(e.Store.Workspace, file, a.Name, v.String(a.Name)); p != nil {
				msg := inst.Addr + ": " + p.detail
				if p.suggestion != "" {
					msg += fmt.Sprintf("; did you mean %q?", p.suggestion)
				}
				problems = append(problems, msg)
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// Run brings the selected stages up to date and records the run in a new run folder. The
// returned record is non-nil whenever the run folder was created; err is non-nil when a stage
// failed or the run was cancelled.
func (e *Engine) Run(ctx context.Context, opts RunOptions) (*RunRecord, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.HeavySlots <= 0 {
		opts.HeavySlots = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Reporter == nil {
		opts.Reporter = nopReporter{}
	}
	if opts.RunsDir == "" {
		opts.RunsDir = filepath.Join(e.Store.Workspace, "models")
	}
	lock, stale, err := AcquireLock(e.Store.Workspace)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	e.Store.locked.Store(true)
	defer e.Store.locked.Store(false)
	insts, forced, err := e.Select(opts.Selection)
	if err != nil {
		return nil, err
	}
	if err := e.checkSources(insts); err != nil {
		return nil, err
	}
	if err := e.checkRunsDir(opts.RunsDir); err != nil {
		return nil, err
	}
	if err := e.Store.RecordRunsDir(opts.RunsDir); err != nil {
		return nil, fmt.Errorf("recording the runs folder for gc: %w", err)
	}
	rec, err := newRunRecord(opts.RunsDir, opts.Now())
	if err != nil {
		return nil, fmt.Errorf("creating the run folder: %w", err)
	}
	defer rec.close()
	lock.noteRun(rec.dir)
	if opts.Started != nil {
		opts.Started(rec.dir)
	}
	rec.Pipeline, rec.Seed, rec.Command, rec.Trigger = e.Workflow.Config.Path, e.Workflow.Seed, strings.Join(os.Args, " "), opts.Trigger
	for k, v := range opts.Versions {
		rec.Versions[k] = v
	}
	if stale != "" {
		rec.Logf("%s", stale)
		opts.Reporter.Log("", stale)
	}
	// Holding the lock, anything in tmp/ belongs to a run that died: its outputs were never
	// published, so they can go.
	if n := e.Store.cleanTemp(); n > 0 {
		rec.Logf("removed %s of an interrupted run", Plural(n, "unpublished output", "unpublished outputs"))
	}
	names := make([]string, len(insts))
	rec.order = map[string]int{}
	for i, inst := range insts {
		names[i] = inst.Addr
		rec.order[inst.Addr] = i + 1
	}
	opts.Reporter.Planned(names)
	rec.Logf("run %s: %s", rec.ID, Plural(len(insts), "stage", "stages"))
	// The command line, for `pipeline runs` to name a run killed before its run.json.
	rec.Logf("%s%s", CommandLogPrefix, lock.owner.Command)

	r := &runner{e: e, opts: opts, rec: rec, forced: forced, outs: Outputs{}, ctx: ctx,
		done: map[string]chan struct{}{}, results: map[string]*StageResult{}, artifactDirs: map[[2]string]string{},
		jobs: make(chan struct{}, opts.Jobs), heavy: make(chan struct{}, opts.HeavySlots)}
	for _, inst := range insts {
		r.done[inst.Addr] = make(chan struct{})
	}
	r.contested, r.chosen = contestedArtifactDirs(e.Workflow, insts, e.Store.Workspace)
	r.insts = insts
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Add(1)
		go func(inst *Instance) {
			defer wg.Done()
			defer close(r.done[inst.Addr])
			res := r.stage(ctx, inst)
			r.mu.Lock()
			r.results[inst.Addr] = res
			r.mu.Unlock()
			rec.mu.Lock()
			rec.Stages = append(rec.Stages, res)
			rec.mu.Unlock()
			why := "" // a stage that did not run says why, as run.json does
			if (res.Status == StatusSkipped || res.Status == StatusCancelled) && res.Error == "" && len(res.Reasons) > 0 {
				why = " (" + strings.Join(res.Reasons, "; ") + ")"
			}
			rec.Logf("%s: %s%s%s", res.Addr, res.Status, suffixIf(res.Error, ": "), why)
			opts.Reporter.Finished(res)
		}(inst)
	}
	wg.Wait()
	e.Store.Stats.Save()

	rec.Finished = opts.Now().UTC()
	rec.Status = "succeeded"
	var failed []string
	for _, s := range rec.Stages {
		switch s.Status {
		case StatusFailed:
			failed = append(failed, s.Addr+": "+s.Error)
			rec.Status = "failed"
		case StatusCancelled:
			if rec.Status == "succeeded" {
				rec.Status = "cancelled"
			}
		}
	}
	// Every stage has its result: one not run for an interruption is cancelled, above. A run
	// interrupted after every stage had finished (as its select promotes, which completes)
	// left nothing undone, and succeeded.
	if err := rec.Save(); err != nil {
		return rec, fmt.Errorf("writing run.json: %w", err)
	}
	switch {
	case len(failed) > 0 && ctx.Err() != nil: // interrupted too: callers tell it by context.Canceled
		return rec, fmt.Errorf("%w: %s; and the run was %w", ErrStageFailed, strings.Join(failed, "; "), context.Canceled)
	case len(failed) > 0:
		return rec, fmt.Errorf("%w: %s", ErrStageFailed, strings.Join(failed, "; "))
	case rec.Status == "cancelled":
		return rec, context.Canceled
	}
	return rec, nil
}

// ErrStageFailed is returned (wrapped) when a stage failed.
var ErrStageFailed = errors.New("stage failed")

type runner struct {
	ctx    context.Context
	e      *Engine
	opts   RunOptions
	rec    *RunRecord
	forced map[string]bool
	mu     sync.Mutex
	outs   Outputs
	// artifactDirs maps a folder of the run folder and a stage kind to the instance of that
	// kind it holds.
	artifactDirs map[[2]string]string
	done         map[string]chan struct{}
	results      map[string]*StageResult
	jobs         chan struct{}
	heavy        chan struct{}
	// contested are the folders several instances choose (contestedArtifactDirs).
	contested map[[2]string]bool
	// chosen are the folders instances that follow no input choose, whatever their kind
	// (contestedArtifactDirs).
	chosen map[string]bool
	// insts are the instances of the run.
	insts   []*Instance
	stop    atomic.Bool // a stage failed and --keep-going is off: start nothing new
	prepare sync.Once
	prepErr error
}

func (r *runner) stage(ctx context.Context, inst *Instance) *StageResult {
	res := &StageResult{Addr: inst.Addr}
	for _, d := range inst.Deps {
		<-r.done[d]
	}
	r.mu.Lock()
	var bad []string
	for _, d := range inst.Deps {
		if s := r.results[d]; s != nil && s.Status != StatusRan && s.Status != StatusCached {
			bad = append(bad, d+" "+s.Status) // "train.model[cnn] cancelled"
		}
	}
	outs := Outputs{}
	for k, v := range r.outs {
		outs[k] = v
	}
	r.mu.Unlock()
	switch {
	case len(bad) > 0:
		res.Status, res.Reasons = StatusSkipped, []string{"upstream " + strings.Join(bad, ", ")}
		return res
	case r.stopped(ctx, res):
		return res
	}
	if !r.acquire(ctx, r.jobs, res) {
		return res
	}
	holdsJob := true
	defer func() {
		if holdsJob {
			<-r.jobs
		}
	}()

	d, err := r.e.decide(inst, outs, r.forced[inst.Addr], nil)
	if err != nil {
		return r.fail(res, err) // the run's report names the instance
	}
	res.Key, res.Reasons = d.Key, d.Reasons
	if d.Action == Cached {
		res.Status, res.Output = StatusCached, d.entry.Output.Digest
		return r.finish(res, d)
	}
	if h, ok := inst.Kind.(Heavy); ok && h.Heavy(d.values) {
		select {
		case r.heavy <- struct{}{}:
		default:
			// Waiting for another training to end: give the job slot back meanwhile, so
			// that stages which need no training slot (an evaluation, a cached stage) run.
			<-r.jobs
			holdsJob = false
			if !r.acquire(ctx, r.heavy, res) {
				return res
			}
			if !r.acquire(ctx, r.jobs, res) {
				<-r.heavy
				return res
			}
			holdsJob = true
		}
		defer func() { <-r.heavy }()
	}
	return r.execute(ctx, res, d)
}

// acquire takes a slot of sem, waiting for one, and reports whether the stage may go on:
// false, with res set, when the run was cancelled meanwhile or a stage failed and
// --keep-going is off (checked after the wait, which may have lasted a whole training).
func (r *runner) acquire(ctx context.Context, sem chan struct{}, res *StageResult) bool {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		res.Status, res.Reasons = StatusCancelled, []string{"run cancelled before it started"}
		return false
	}
	if r.stopped(ctx, res) {
		<-sem
		return false
	}
	return true
}

// ready runs RunOptions.Prepare, once per run.
func (r *runner) ready() error {
	if r.opts.Prepare != nil {
		r.prepare.Do(func() { r.prepErr = r.opts.Prepare() })
	}
	return r.prepErr
}

// stopped reports, setting res, whether a stage about to start must not: the run was
// cancelled, or a stage failed and --keep-going is off. Checked again after each wait for a
// slot, since the failure may have come during the wait.
func (r *runner) stopped(ctx context.Context, res *StageResult) bool {
	switch {
	case ctx.Err() != nil:
		res.Status, res.Reasons = StatusCancelled, []string{"run cancelled before it started"}
	case r.stop.Load():
		res.Status, res.Reasons = StatusSkipped, []string{"not started: an earlier stage failed (use --keep-going to continue past failures)"}
	default:
		return false
	}
	res.Key, res.Output = "", ""
	return true
}

func (r *runner) execute(ctx context.Context, res *StageResult, d *Decision) *StageResult {
	inst := d.inst
	if err := r.ready(); err != nil {
		return r.fail(res, err)
	}
	tmp, err := r.e.Store.NewTemp()
	if err != nil {
		return r.fail(res, err)
	}
	defer os.RemoveAll(tmp) // gone after publish; removes half-written output otherwise
	var discarded int64
	if r.forced[inst.Addr] {
		// Forced means from scratch: what an interrupted run of this key left (a
		// training's checkpoints) is not resumed from, and the kind is told (Job.Forced)
		// not to reuse what its previous output holds.
		discarded = r.e.Store.RemoveWork(d.Key)
	}
	work, err := r.e.Store.WorkDir(d.Key, inst.Addr)
	if err != nil {
		return r.fail(res, err)
	}
	res.Start = time.Now().UTC()
	r.rec.Logf("%s: running (%s)", inst.Addr, strings.Join(d.Reasons, "; "))
	prog := r.opts.Reporter.Started(inst.Addr, d.Reasons)
	if prog == nil {
		prog = nopProgress{}
	}
	if discarded > 0 {
		msg := fmt.Sprintf("forced: starting over, without what an interrupted run left in its work area (%.1f MB)", float64(discarded)/1e6)
		r.rec.Logf("%s: %s", inst.Addr, msg)
		r.opts.Reporter.Log(inst.Addr, msg)
	}
	job := &Job{Addr: inst.Addr, Values: d.values, Seed: r.e.Workflow.Seed, Workspace: r.e.Store.Workspace,
		Out: tmp, Work: work, Forced: r.forced[inst.Addr], Log: &stageLog{r: r, addr: inst.Addr}, Progress: prog, written: &writtenFiles{dir: r.e.Store.Stats.spillDir(), root: filepath.Clean(absPath(tmp))}, stats: r.e.Store.Stats}
	// The records of the files written go with the job, whatever becomes of it: a stage that
	// fails, or an output that cannot be hashed, leaves no scratch file held open.
	defer job.written.forget()
	if st, ok := r.e.Store.LoadState(inst.Addr); ok {
		r.e.Store.withHistory(job, st)
	}
	runErr := runKind(ctx, inst.Kind, job)
	res.Duration = time.Since(res.Start).Seconds()
	if runErr != nil {
		if ctx.Err() != nil {
			res.Status, res.Error = StatusCancelled, "interrupted while running"
			return res
		}
		return r.fail(res, d.explainFailure(runErr))
	}
	for _, o := range inst.Kind.Outputs() {
		if _, err := os.Stat(filepath.Join(tmp, o)); err != nil {
			return r.fail(res, fmt.Errorf("stage kind %s did not write its output %q", inst.Kind.Name(), o))
		}
	}
	if err := d.checkInputs(); err != nil {
		// The key says the output was made from what the plan hashed: not so, so it is not
		// published, and the scratch kept under that key goes too.
		r.e.Store.RemoveWork(d.Key)
		return r.fail(res, err)
	}
	entry, err := r.e.Store.Publish(tmp, d.Key, inst.Addr, inst.Kind, d.lines, time.Since(res.Start), job.written)
	if err != nil {
		return r.fail(res, err)
	}
	r.e.Store.RemoveWork(d.Key)
	d.entry = entry
	res.Status, res.Output, res.Stats = StatusRan, entry.Output.Digest, job.recordedStats()
	return r.finish(res, d)
}

// runKind calls the kind, turning a panic into an error so one broken stage cannot take the
// whole run (and its records) down.
func runKind(ctx context.Context, k Kind, job *Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stage kind %s panicked: %v (stack in run.log)", k.Name(), p)
			fmt.Fprintf(job.Log, "panic: %v\n%s\n", p, debug.Stack())
		}
	}()
	return k.Run(ctx, job)
}

// recordState records the state of instance d once it is done. A cached instance whose
// recorded state is of the same key and output keeps the source manifests recorded with it
// (the key names their digests): only the state's date is written, not the manifests of
// every source file, read and written again.
func (r *runner) recordState(d *Decision) error {
	now := time.Now().UTC()
	var recorded map[string]Manifest
	if d.Action == Cached {
		if old, ok := r.e.Store.LoadState(d.Addr); ok && old.Key == d.Key && old.Output == d.entry.Output.Digest && r.e.Store.hasSources(old) {
			old.Updated = now
			return writeJSON(r.e.Store.statePath(d.Addr), old)
		}
		recorded = r.e.Store.LoadSources(d.Addr)
	}
	return r.e.Store.SaveState(&State{Addr: d.Addr, Key: d.Key, Lines: d.lines, Sources: d.recordedSources(recorded), Output: d.entry.Output.Digest, Updated: now})
}

// finish records the instance's state and outputs and links its artifacts into the run folder.
func (r *runner) finish(res *StageResult, d *Decision) *StageResult {
	if err := r.recordState(d); err != nil {
		return r.fail(res, fmt.Errorf("recording state: %w", err))
	}
	r.mu.Lock()
	r.outs[d.Addr] = r.e.outputPaths(d)
	r.mu.Unlock()
	name := r.claimArtifactDir(d)
	src := filepath.Join(r.e.Store.Workspace, ObjectRel(d.entry.Output.Digest))
	var bulk []string
	if b, ok := d.inst.Kind.(Bulky); ok {
		bulk = b.BulkDirs(d.values)
	}
	if err := linkArtifacts(src, filepath.Join(r.rec.dir, name), bulk); err != nil {
		return r.fail(res, fmt.Errorf("linking artifacts into %s: %w", r.rec.dir, err))
	}
	res.Artifacts = name
	if eff, ok := d.inst.Kind.(Effector); ok {
		r.mu.Lock()
		outs := maps.Clone(r.outs)
		r.mu.Unlock()
		job := &Job{Addr: d.Addr, Values: d.values, Seed: r.e.Workflow.Seed, Workspace: r.e.Store.Workspace,
			Out: src, Log: &stageLog{r: r, addr: d.Addr}, Progress: nopProgress{}, RunOutputs: outs, ready: r.ready}
		note, err := eff.Apply(r.ctx, job, r.rec.ID)
		if err != nil {
			return r.fail(res, err)
		}
		res.Effect, res.Summary = note, job.recordedSummary()
		r.rec.Logf("%s: %s", d.Addr, note)
	}
	return res
}

func (r *runner) fail(res *StageResult, err error) *StageResult {
	res.Status, res.Error = StatusFailed, err.Error()
	if !r.opts.KeepGoing {
		r.stop.Store(true)
	}
	return res
}

func suffixIf(s, sep string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// stageLog turns a stage's writes into log lines for the run log and the reporter.
type stageLog struct {
	r    *runner
	addr string
	mu   sync.Mutex
	buf  []byte
}

func (l *stageLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		l.r.rec.Logf("%s: %s", l.addr, line)
		l.r.opts.Reporter.Log(l.addr, line)
	}
	return len(p), nil
}

var _ io.Writer = (*stageLog)(nil)

type nopReporter struct{}

func (nopReporter) Planned([]string)                  {}
func (nopReporter) Started(string, []string) Progress { return nopProgress{} }
func (nopReporter) Finished(*StageResult)             {}
func (nopReporter) Log(string, string)                {}

type nopProgress struct{}

func (nopProgress) Start(string, int64) {}
func (nopProgress) Add(int64)           {}
func (nopProgress) Status(string)       {}

// contestedArtifactDirs returns the folders (with the kind) that more than one of insts
// choose (ArtifactNamer), by their attributes as far as they are known before the run (two
// train blocks of one architecture without for_each both choose cnn/): each of those gets
// its address instead, so that which gets the plain name does not depend on which ends first.
// It also returns every folder those instances (which follow no input) choose, of any kind:
// a follower whose input is none of this run's outputs does not take one of them.
func contestedArtifactDirs(w *Workflow, insts []*Instance, workspace string) (map[[2]string]bool, map[string]bool) {
	count := map[[2]string]int{}
	chosen := map[string]bool{}
	for _, inst := range insts {
		if _, follows := inst.Kind.(ArtifactFollower); follows {
			continue
		}
		if _, ok := inst.Kind.(ArtifactNamer); !ok {
			continue
		}
		v, diags := w.Evaluate(inst, nil)
		if diags.HasErrors() || v == nil {
			continue
		}
		// The name the run folder would give it, as claimArtifactDir finds it.
		name := artifactDirName(inst, v, workspace)
		count[[2]string{name, inst.Kind.Name()}]++
		chosen[name] = true
	}
	contested := map[[2]string]bool{}
	for k, c := range count {
		if c > 1 {
			contested[k] = true
		}
	}
	return contested, chosen
}

// claimArtifactDir returns the instance's folder in the run folder: for a kind that follows
// an input (ArtifactFollower), the folder of the instance whose output that input is;
// else artifactDirName, or the instance's address when another instance of the same kind
// has that folder already in this run: two such instances would write the same files (two
// trainings' saved_model/), and neither may write over the other's. Instances of different
// kinds may share a folder (an evaluation beside the model it evaluates).
func (r *runner) claimArtifactDir(d *Decision) string {
	name := artifactDirName(d.inst, d.values, r.e.Store.Workspace)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := d.inst.Kind.(ArtifactFollower); ok {
		// The instance the input comes from: one of this instance's dependencies (sorted),
		// so that the choice does not depend on map order when two published alike. Its
		// result, folder included, is recorded before this instance starts.
		followed := false
		if in := f.ArtifactFollows(d.values); in != "" {
			for _, dep := range d.inst.Deps {
				if res := r.results[dep]; res != nil && res.Artifacts != "" && slices.Contains(slices.Collect(maps.Values(r.outs[dep])), in) {
					followed = true
					name = res.Artifacts
					// Of several of its kind that follow that one (two evaluations of one
					// model), the first by address takes its folder, whichever ends first.
					if slices.ContainsFunc(r.insts, func(o *Instance) bool {
						_, follows := o.Kind.(ArtifactFollower)
						return follows && o.Kind.Name() == d.inst.Kind.Name() && o.Addr < d.Addr && slices.Contains(o.Deps, dep)
					}) {
						name = addrDirName(d.Addr)
					}
					break
				}
			}
		}
		if !followed && r.chosen[name] {
			// Its input is no output of this run (a model folder written as a path): the
			// folder another instance of this run chooses (the training of another model of
			// that architecture) would show that one's training beside this evaluation.
			name = addrDirName(d.Addr)
		}
	}
	kind := d.inst.Kind.Name()
	if r.contested[[2]string{name, kind}] {
		name = addrDirName(d.Addr) // several of its kind choose it: none gets it, whichever ends first
	} else if owner, ok := r.artifactDirs[[2]string{name, kind}]; ok && owner != d.Addr {
		name = addrDirName(d.Addr) // taken by another of its kind (two evaluations of one model)
	}
	r.artifactDirs[[2]string{name, kind}] = d.Addr
	return name
}

// CommandLogPrefix starts the line of run.log that gives the command line of the run.
const CommandLogPrefix = "command: "

// checkRunsDir refuses a runs folder inside the store, whose objects gc would take run folders
// for, or inside a stage's source folder (any stage's, selected or not), where every run
// folder would become files of the source, changing it while the stage reads it.
func (e *Engine) checkRunsDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	real := RealPath(abs) // the runs folder may lead there through a link
	within := func(root string) bool {
		return Inside(abs, root) || Inside(real, RealPath(root))
	}
	if within(e.Store.Root) {
		return fmt.Errorf("the runs folder %s is inside the store (%s): give another (--runs-dir), such as models", dir, e.Store.Root)
	}
	for _, inst := range e.Workflow.Instances {
		v, diags := e.Workflow.Evaluate(inst, nil)
		if diags.HasErrors() {
			continue
		}
		for _, a := range inst.Kind.Attributes() {
			if a.Role != Source || !v.Get(a.Name).IsKnown() || v.Get(a.Name).IsNull() {
				continue
			}
			if src := InWorkspace(e.Store.Workspace, v.String(a.Name)); within(src) {
				return fmt.Errorf("the runs folder %s is inside %s's %s folder (%s): its run folders would become files of the source; give another (--runs-dir), such as models", dir, inst.Addr, a.Name, v.String(a.Name))
			}
		}
	}
	return nil
}
