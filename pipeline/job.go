package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Job is what a stage kind's Run receives.
type Job struct {
	// Addr is the instance address, e.g. "train.model[cnn]".
	Addr string
	// Values are the evaluated attributes; paths in them are relative to Workspace.
	Values *Values
	// Seed is the pipeline seed.
	Seed int64
	// Workspace is the folder holding the pipeline file.
	Workspace string
	// Out is an empty directory to write the declared outputs into. It is published only if
	// Run succeeds.
	Out string
	// Work is a scratch directory that survives an interrupted run of the same key (for
	// checkpoints) and is removed once the output is published.
	Work string
	// Previous is the output directory this instance published last time, "" if none. Only
	// kinds that must stay consistent with their own history use it (split keeps every image
	// in the split it was in); anything else depends on the key alone.
	Previous string
	// Forced is true when the run forces this instance (run --force): it reruns from
	// scratch, so a kind must make everything again rather than reuse what Previous holds
	// (the split's stored images, augment's copies), as a forced training starts without
	// the checkpoints of an interrupted run. Previous stays set for the history a kind keeps
	// consistent, such as the sets of the split's images.
	Forced bool
	// Log receives human-readable progress lines; they also go to the run's log.
	Log io.Writer
	// Progress reports completion towards a total for progress bars.
	Progress Progress
	// RunOutputs, for an Effector's Apply, are the outputs of the run's stages that are done
	// (run or cached), as store paths relative to Workspace by instance address and output
	// name: what a cached output of the stage, or of one it uses, names by an older path (a
	// store object gc may have removed since) may be in one of them.
	RunOutputs map[string]map[string]string

	// statsMu guards stats set by SetStat and the summary set by SetSummary.
	statsMu  sync.Mutex
	runStats map[string]float64
	summary  string

	// written, when set by the engine, collects the digests of files written with WriteFile.
	written *writtenFiles
	// stats, when set by the engine, is its stat cache, which holds the digests of the
	// sources it hashed for the key.
	stats *StatCache
	// prevRecord is the record of Previous's files as published (the store's manifest of
	// that output); prevFiles, read from it once.
	prevRecord string
	prevOnce   sync.Once
	prevFiles  FileDigests
	// ready, when set by the engine, is its RunOptions.Prepare, run once per run.
	ready func() error
	// store and earlier, set by the engine, are its store and the keys of the outputs this
	// instance had before Previous (State.Earlier).
	store   *Store
	earlier []string
	// lines, of a Job Earlier gives, are the key lines of its output (a plan's ChangeNoter
	// compares them with the key it has now).
	lines []string
}

// Earlier returns the outputs this instance had before Previous that are still in the store,
// newest first, each as a Job whose Previous is that output (PreviousChanged and
// PreviousDigest check its files against its record), for a kind that keeps its history
// consistent and may go back further than Previous: a split made again with the settings of
// an earlier one keeps that one's sets, not those of the settings tried in between.
func (j *Job) Earlier() []*Job {
	if j.store == nil {
		return nil
	}
	var out []*Job
	for _, e := range j.store.heldEntries(j.earlier) {
		if dir := filepath.Join(j.Workspace, ObjectRel(e.Output.Digest)); dir != j.Previous {
			out = append(out, &Job{Addr: j.Addr, Values: j.Values, Seed: j.Seed, Workspace: j.Workspace, Log: j.Log,
				Previous: dir, prevRecord: j.store.outputPath(e.Key), stats: j.stats, lines: e.Lines})
		}
	}
	return out
}

// historyJob returns a Job of the instance of recorded state st as a run of it would have it
// for its history, for gc to ask a HistoryKeeper (withHistory).
func (s *Store) historyJob(st *State) *Job {
	return s.withHistory(&Job{Addr: st.Addr, Workspace: s.Workspace, stats: s.Stats}, st)
}

// withHistory gives j, a Job of the instance of recorded state st, that instance's history
// and returns it: Previous is its current output (none when the store no longer holds it),
// with the record to check its files against, and Earlier gives the earlier ones. A run's Job
// and the one gc asks a HistoryKeeper about have it by this one rule, so that both see the
// same outputs.
func (s *Store) withHistory(j *Job, st *State) *Job {
	if st.Output != "" {
		prev := filepath.Join(s.Workspace, ObjectRel(st.Output))
		if _, err := os.Stat(prev); err == nil {
			j.Previous, j.prevRecord = prev, s.outputPath(st.Key)
		}
	}
	j.store, j.earlier = s, st.Earlier
	return j
}

// Ready runs what the run prepares before the first stage executes (RunOptions.Prepare, such
// as loading a library), if it has not run yet: for an Effector's Apply, which may come when
// every stage was cached and nothing was prepared.
func (j *Job) Ready() error {
	if j.ready == nil {
		return nil
	}
	return j.ready()
}

// SetStat records a figure about how the stage ran (a training's images per second), for the
// run record (StageResult.Stats). Such figures vary from run to run, so they belong there,
// not in the output: an output with them would differ at every run of the same inputs.
func (j *Job) SetStat(name string, v float64) {
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	if j.runStats == nil {
		j.runStats = map[string]float64{}
	}
	j.runStats[name] = v
}

// SetSummary sets a few words on the outcome of an Effector's Apply, for listings of runs
// (`pipeline runs`): select's "cnn 0.8295, promoted". The full note Apply returns goes into
// run.json beside it.
func (j *Job) SetSummary(s string) {
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	j.summary = s
}

// recordedSummary returns what SetSummary set, "" when nothing.
func (j *Job) recordedSummary() string {
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	return j.summary
}

// recordedStats returns the figures SetStat recorded, nil when none.
func (j *Job) recordedStats() map[string]float64 {
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	return j.runStats
}

// KnownDigest returns the SHA-256 (hex) of the file at path, whose stat is fi, when the engine
// already knows it for that stat identity (size, modification and change times, inode): the
// files of a stage's sources were hashed for its cache key, and a stage reading them need not
// hash them again. A file modified or changed less than racyMargin before it was hashed is
// never known: a rewrite within the same clock tick as the hashing would keep its identity.
func (j *Job) KnownDigest(path string, fi os.FileInfo) (string, bool) {
	if j.stats == nil {
		return "", false
	}
	return j.stats.cachedDigest(absPath(path), keyOf(fi), true)
}

// PreviousDigest returns the SHA-256 (hex) of a file of Previous, the output this instance
// published last time, when the file is still as published: its digest then (from the
// output's record) is the one the engine knows for the file's present stat identity fi, or,
// when the engine knows none for that path and identity (a workspace moved or copied since),
// the one it reads from the file now. A stage can link such a file into its new output
// knowing it is intact; one deleted, changed or re-hashed since (an "output damaged" check
// records the damaged digest) is not.
func (j *Job) PreviousDigest(path string, fi os.FileInfo) (string, bool) {
	if j.stats == nil || j.Previous == "" {
		return "", false
	}
	abs := absPath(path)
	rel, err := filepath.Rel(absPath(j.Previous), abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	files := j.previousFiles()
	if files == nil {
		return "", false
	}
	want, ok := files.Digest(filepath.ToSlash(rel))
	if !ok {
		return "", false
	}
	got, err := j.stats.fileDigest(abs, keyOf(fi).object(), false, false, j.stats.now())
	return want, err == nil && got == want
}

// PreviousChanged reports whether the file at path of Previous is gone or differs from what
// was published there, reading it and comparing its digest with the output's record; false
// when there is no record to compare with. For a stage's small records (manifests, reports)
// that it must not trust once changed.
func (j *Job) PreviousChanged(path string) bool {
	if j.Previous == "" {
		return false
	}
	rel, err := filepath.Rel(absPath(j.Previous), absPath(path))
	if err != nil || !filepath.IsLocal(rel) {
		return false
	}
	files := j.previousFiles()
	if files == nil {
		return false
	}
	want, ok := files.Digest(filepath.ToSlash(rel))
	if !ok {
		return false // not a file of that output
	}
	got, err := hashFile(absPath(path))
	return err != nil || got != want
}

// previousFiles returns the digests of Previous's files as published, by slash path; nil
// when the output's record cannot be read or is not that output's. A record whose entries
// are not in path order (names that are not UTF-8, which JSON replaces) is read whole.
func (j *Job) previousFiles() FileDigests {
	j.prevOnce.Do(func() {
		if j.prevRecord == "" {
			return
		}
		files, digest, err := readOutputFiles(j.prevRecord)
		if err == nil && digest == filepath.Base(j.Previous) {
			j.prevFiles = files
			return
		}
		var m Manifest
		if err != nil && readJSON(j.prevRecord, &m) == nil && m.Digest == filepath.Base(j.Previous) {
			j.prevFiles = ManifestFiles(m.Files)
		}
	})
	return j.prevFiles
}

// WriteFile writes data to path (mode 0644, like os.WriteFile) and returns its SHA-256 as
// hex. When the engine publishes the output, it takes that digest instead of reading the file
// again, as long as the file at that path keeps the size, modification time and inode it had
// once written: a file written this way must not be rewritten by other means within the same
// clock tick, and two calls must not write the same path at once.
func (j *Job) WriteFile(path string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", err
	}
	if j.written != nil {
		if fi, err := os.Stat(path); err == nil {
			j.written.add(absPath(path), keyOf(fi).object(), sum)
		}
	}
	return hex.EncodeToString(sum[:]), nil
}

// LinkFile hard-links src to dst (copying where linking fails), creating dst's folder, as
// the package's LinkFile does. When src is a file of the store whose digest the engine knows
// (an input's file), that digest is recorded for dst as WriteFile records its own: the
// output is then published without reading the file or looking for what it links to.
func (j *Job) LinkFile(src, dst string) error {
	if err := LinkFile(src, dst); err != nil {
		return err
	}
	if j.written == nil || j.stats == nil {
		return nil
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return nil
	}
	// A store file's entry leaves out the change time (statKey.object), which the link just
	// changed: the same identity is the same inode, unchanged since it was hashed. A copy, or
	// a link to a source file (whose entry holds the change time), is not recorded.
	k := keyOf(fi).object()
	if sum, ok := j.stats.cachedSum(absPath(src), k, false); ok {
		j.written.add(absPath(dst), k, sum)
	}
	return nil
}

// Path resolves a workspace-relative path from the Values.
func (j *Job) Path(rel string) string {
	return InWorkspace(j.Workspace, rel)
}

// Logf writes one log line.
func (j *Job) Logf(format string, args ...any) {
	fmt.Fprintf(j.Log, format+"\n", args...)
}

// Progress is how a stage reports completion; the engine draws it.
type Progress interface {
	// Start begins a phase of total units described by label (e.g. "epoch 3/10", 1200 images).
	Start(label string, total int64)
	// Add records n more units done.
	Add(n int64)
	// Status sets a short trailing text (e.g. "loss 0.412, 812 img/s").
	Status(s string)
}
