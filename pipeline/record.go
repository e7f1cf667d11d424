package pipeline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"pipeline/pipeline/regular"
)

// RunRecord is run.json: what a run did with each stage and why.
type RunRecord struct {
	ID       string            `json:"id"`
	Pipeline string            `json:"pipeline"`
	Command  string            `json:"command,omitempty"`
	Trigger  string            `json:"trigger,omitempty"` // the schedule that started the run
	Status   string            `json:"status"`            // succeeded, failed, cancelled
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Seed     int64             `json:"seed"`
	Versions map[string]string `json:"versions"`
	Stages   []*StageResult    `json:"stages"`
	// Notes are free-form lines kinds or commands add (e.g. a selection decision).
	Notes []string `json:"notes,omitempty"`

	dir string
	mu  sync.Mutex
	log io.WriteCloser
	// order is each stage's place in the plan (dependency order), which Save lists them in.
	order map[string]int
}

// Stage statuses in a run record.
const (
	StatusRan       = "ran"
	StatusCached    = "cached"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusCancelled = "cancelled"
)

// StageResult is one instance's line in run.json.
type StageResult struct {
	Addr      string    `json:"stage"`
	Status    string    `json:"status"`
	Reasons   []string  `json:"reasons,omitempty"`
	Key       string    `json:"key,omitempty"`
	Output    string    `json:"output,omitempty"` // object digest
	Artifacts string    `json:"artifacts,omitempty"`
	Start     time.Time `json:"start,omitzero"` // left out for a stage that did not run (cached, skipped)
	Duration  float64   `json:"duration_s"`
	Error     string    `json:"error,omitempty"`
	// Effect is what the stage did outside the store (e.g. a promotion decision).
	Effect string `json:"effect,omitempty"`
	// Summary is that effect in a few words (Job.SetSummary), for listings of runs.
	Summary string `json:"summary,omitempty"`
	// Stats are figures about how the stage ran (Job.SetStat), such as a training's speed:
	// kept here, not in the output, which stays a function of the stage's inputs.
	Stats map[string]float64 `json:"stats,omitempty"`
}

// Dir returns the run folder.
func (r *RunRecord) Dir() string { return r.dir }

// Result returns the result of an instance, nil if it was not part of the run.
func (r *RunRecord) Result(addr string) *StageResult {
	for _, s := range r.Stages {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// newRunRecord creates models/<UTC timestamp>/ (suffixed when two runs start in one second)
// with its run.log.
func newRunRecord(runsDir string, now time.Time) (*RunRecord, error) {
	id := now.UTC().Format("20060102_150405")
	if err := os.MkdirAll(runsDir, 0o755); err != nil {
		return nil, err
	}
	dir := filepath.Join(runsDir, id)
	for n := 2; ; n++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		dir = filepath.Join(runsDir, fmt.Sprintf("%s-%d", id, n))
	}
	log, err := os.Create(filepath.Join(dir, "run.log"))
	if err != nil {
		return nil, err
	}
	return &RunRecord{ID: filepath.Base(dir), Started: now.UTC(), dir: dir, log: log, Versions: map[string]string{}}, nil
}

// Logf appends a timestamped line to run.log.
func (r *RunRecord) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil {
		fmt.Fprintf(r.log, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Save writes run.json atomically.
func (r *RunRecord) Save() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// In the order the stages depend on each other (the plan's), as they are read.
	sort.SliceStable(r.Stages, func(i, j int) bool {
		a, b := r.Stages[i].Addr, r.Stages[j].Addr
		if oa, ob := r.order[a], r.order[b]; oa != ob {
			return oa < ob
		}
		return a < b
	})
	return writeJSON(filepath.Join(r.dir, "run.json"), r)
}

func (r *RunRecord) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil {
		r.log.Close()
		r.log = nil
	}
}

// LinkTree makes dst a copy of the folder src built from hard links (copies where links are
// impossible, e.g. across file systems), which stays complete whatever becomes of src.
func LinkTree(src, dst string) error { return linkArtifacts(src, dst, nil) }

// linkArtifacts makes dst the run folder's view of the stage output src: LinkTree, except
// that each folder named in bulk (slash-separated, relative to src) becomes one relative
// symbolic link to its place in src.
func linkArtifacts(src, dst string, bulk []string) error {
	linked := map[string]bool{}
	for _, b := range bulk {
		linked[filepath.Clean(filepath.FromSlash(b))] = true
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if !d.IsDir() {
			// The walk made target's folder already (WalkDir visits a folder before its files).
			err := os.Link(p, target)
			if err == nil || errors.Is(err, fs.ErrExist) {
				return err // never over a file already there: it may be a link to another output
			}
			return copyFile(p, target)
		}
		if !linked[rel] {
			return os.MkdirAll(target, 0o755)
		}
		if err := symlinkDir(p, target); err != nil {
			// No symbolic links here (some file systems): a copy of hard links, as for the rest.
			if err := LinkTree(p, target); err != nil {
				return err
			}
		}
		return filepath.SkipDir
	})
}

// symlinkDir makes link a symbolic link to the folder dir, relative between their real
// locations (so that the workspace can move with its run folders, and a runs folder that is
// itself a link elsewhere still resolves), else absolute; it checks that the link leads to
// dir and removes it if not.
func symlinkDir(dir, link string) error {
	realDir, err1 := filepath.EvalSymlinks(dir)
	realParent, err2 := filepath.EvalSymlinks(filepath.Dir(link))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	want, err := os.Stat(dir)
	if err != nil {
		return err
	}
	targets := []string{realDir}
	if r, err := filepath.Rel(realParent, realDir); err == nil {
		targets = []string{r, realDir}
	}
	var last error
	for _, to := range targets {
		if err := os.Symlink(to, link); err != nil {
			return err
		}
		if got, err := os.Stat(link); err == nil && os.SameFile(got, want) {
			return nil
		}
		last = fmt.Errorf("%s → %s does not lead to %s", link, to, dir)
		if err := os.Remove(link); err != nil {
			return err
		}
	}
	return last
}

// LinkFile hard-links src to dst, creating dst's folder, and copies when linking fails.
func LinkFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	return copyFile(src, dst)
}

// copyFile copies src to a new file dst; it never writes into an existing dst, which may be
// a hard link to a stored output that must stay as published. Only a regular file is copied
// (regular.Open): a named pipe in a folder being linked would be waited on for ever.
func copyFile(src, dst string) error {
	in, _, err := regular.Open(src)
	if notRegular := (*regular.Error)(nil); errors.As(err, &notRegular) {
		return fmt.Errorf("%w, which is not copied", err)
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// The copy keeps the original's modification time: a copy whose time or size differs
	// from its original's has changed since (a promoted model's, see stages.filesDiffer).
	if fi, err := in.Stat(); err == nil {
		os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	}
	return nil
}

// artifactDirName is the run-folder subdirectory of an instance: the kind's choice, else the
// address with brackets turned into dots ("train.model[cnn]" → "train.model.cnn").
func artifactDirName(inst *Instance, v *Values, workspace string) string {
	if n, ok := inst.Kind.(ArtifactNamer); ok {
		if name := n.ArtifactDir(inst.Key, v, workspace); name != "" && filepath.IsLocal(name) {
			return name
		}
	}
	return addrDirName(inst.Addr)
}

// addrDirName is an instance address as a folder name ("train.model[cnn]" →
// "train.model.cnn"), unique to the instance.
func addrDirName(addr string) string {
	r := strings.NewReplacer("[", ".", "]", "", "\"", "", "/", "_", " ", "_")
	return r.Replace(addr)
}

// ArtifactNamer is implemented by kinds that choose their folder in a run folder (train
// uses the architecture name: models/<timestamp>/cnn/). key is the instance's for_each key
// ("" without); paths in v are relative to workspace. Two instances of a run choosing the
// same folder would share it: the runner gives each its address instead (addrDirName), so
// a kind should put the key in the name where several instances can choose alike.
type ArtifactNamer interface {
	ArtifactDir(key string, v *Values, workspace string) string
}

// ArtifactFollower is implemented by kinds whose folder in a run folder is that of the
// instance an input comes from (an evaluation goes beside the model it evaluates, whatever
// folder that model got): ArtifactFollows returns the input's value, an upstream output's
// store path ("" for none). When that instance has no folder in this run, ArtifactNamer
// or the address decides.
type ArtifactFollower interface {
	ArtifactFollows(v *Values) string
}
