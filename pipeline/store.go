package pipeline

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// StoreDir is where the store lives, relative to the workspace.
const StoreDir = "data/intermediate"

// Store is the content-addressed home of stage outputs:
//
//	objects/<digest>/   published outputs, named by the digest of their content
//	keys/<kk>/<key>.json the action cache: which output a cache key produced
//	keys/<kk>/<key>.output.json  that output's manifest, read only to explain damage
//	state/<addr>.json   the last key of each stage instance, to explain reruns
//	tmp/                outputs being written (discarded if a run dies)
//	work/<key>/         scratch that survives an interrupted run (checkpoints)
//
// An output becomes visible only by the rename into objects/, and its key entry is written
// only after that rename, so a crash leaves either the old state or the new one.
type Store struct {
	Workspace string
	Root      string
	Stats     *StatCache
	// PinnedRuns are the run folders (by name) that GC keeps whatever keepRuns says: the runs
	// that trained the champions, whose folders hold their plots and metrics and can promote
	// them again (promote RUN/FOLDER).
	PinnedRuns map[string]bool
	// locked is set while this process holds the workspace's lock for a run: only then does
	// the store add to entries it did not just publish (contentsOf), so that a plan, which
	// takes no lock, never writes into the store gc may be clearing.
	locked atomic.Bool
}

// OpenStore opens (creating if needed) the store of a workspace.
func OpenStore(workspace string) (*Store, error) {
	root := filepath.Join(workspace, StoreDir)
	for _, d := range []string{"objects", "keys", "state", "tmp", "work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("opening the store: %w", err)
		}
	}
	os.Remove(filepath.Join(root, "statcache.gob")) // the cache's format before StatCacheFile
	return &Store{Workspace: workspace, Root: root, Stats: OpenStatCache(filepath.Join(root, StatCacheFile))}, nil
}

// Entry records that a cache key produced an output.
type Entry struct {
	Key    string   `json:"key"`
	Addr   string   `json:"addr"`
	Lines  []string `json:"lines"`
	Output Manifest `json:"output"`
	// Outputs is the digest of each named output (OutputDigests), which downstream keys
	// use; missing in entries published before it was recorded.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Contents is the content digest of each named output that has one (ContentDigester),
	// which the attributes keyed ByContent use; missing in entries published before it was
	// recorded (contentsOf works it out for those).
	Contents map[string]string `json:"contents,omitempty"`
	Created  time.Time         `json:"created"`
	Duration float64           `json:"duration_s"`
}

// ObjectRel is the workspace-relative path of an output object.
func ObjectRel(digest string) string {
	return filepath.ToSlash(filepath.Join(StoreDir, "objects", digest))
}

func (s *Store) keyPath(key string) string {
	return filepath.Join(s.Root, "keys", key[:2], key+".json")
}

// outputPath is the file beside a key entry that holds its output's manifest.
func (s *Store) outputPath(key string) string {
	return strings.TrimSuffix(s.keyPath(key), ".json") + ".output.json"
}

// Lookup returns the entry of key, if any. Its Output carries the digest; the file list is
// left in a file of its own (Verify reads it only to say what is damaged). An entry that
// cannot be read counts as none (see readEntry).
func (s *Store) Lookup(key string) (*Entry, bool) {
	e, err := s.readEntry(key)
	return e, err == nil
}

// readEntry returns the entry of key: an error wrapping fs.ErrNotExist when there is none,
// and an *unreadableEntryError when its file is there but cannot be read, does not parse, or
// is not the entry of key with an output (a file damaged in the store).
func (s *Store) readEntry(key string) (*Entry, error) {
	p := s.keyPath(key)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var e Entry
	if err == nil {
		err = json.Unmarshal(b, &e)
	}
	switch {
	case err != nil:
	case e.Output.Digest == "":
		err = errors.New("it names no output")
	case e.Key != key:
		err = fmt.Errorf("it is the entry of key %q", e.Key)
	default:
		return &e, nil
	}
	rel, _ := filepath.Rel(s.Workspace, p)
	return nil, &unreadableEntryError{path: filepath.ToSlash(rel), err: err}
}

// unreadableEntryError is the error of a cache entry whose file is there but of no use: the
// plan runs its stage again, and publishing the output replaces the file.
type unreadableEntryError struct {
	path string // relative to the workspace
	err  error
}

func (e *unreadableEntryError) Error() string {
	return fmt.Sprintf("its cache entry is unreadable (%s: %v)", e.path, e.err)
}

func (e *unreadableEntryError) Unwrap() error { return e.err }

// Verify checks that an entry's output is present and exactly as published (no file
// missing, changed or added), costing a stat per file when the files were not touched. It
// returns "" when intact, else what is wrong.
func (s *Store) Verify(e *Entry) string {
	dir := filepath.Join(s.Workspace, ObjectRel(e.Output.Digest))
	if _, err := os.Stat(dir); err != nil {
		return "output missing"
	}
	// Quick: an object whose files all kept their stat identity since it was last verified
	// (or published) costs only the stats, and holds no more than a folder's files at a time.
	if d, ok := s.Stats.quickStoreDigest(dir); ok && d == e.Output.Digest {
		return ""
	}
	// Otherwise every file's digest, from the cache where its identity is unchanged (no
	// second quick check: the walk above found no tree record, or not this one).
	cur, _, err := s.Stats.hashTree(dir, treeMode{remember: true})
	if err == nil && cur.Digest == e.Output.Digest {
		return ""
	}
	want := e.Output
	if want.Files == nil {
		readJSON(s.outputPath(e.Key), &want)
	}
	if err != nil || want.Files == nil {
		return "output damaged"
	}
	d := DiffManifests(want, cur)
	switch {
	case len(d.Removed) > 0:
		return fmt.Sprintf("output damaged (%s missing)", d.Removed[0])
	case len(d.Changed) > 0:
		return fmt.Sprintf("output damaged (%s changed)", d.Changed[0])
	case len(d.Added) > 0:
		return fmt.Sprintf("output damaged (%s added)", d.Added[0])
	}
	return "output damaged"
}

// NewTemp returns a fresh directory under tmp/ for a stage to write into.
func (s *Store) NewTemp() (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	dir := filepath.Join(s.Root, "tmp", hex.EncodeToString(b))
	return dir, os.MkdirAll(dir, 0o755)
}

// cleanTemp removes leftovers in tmp/; call it only while holding the workspace lock.
func (s *Store) cleanTemp() int {
	entries, _ := os.ReadDir(filepath.Join(s.Root, "tmp"))
	for _, e := range entries {
		os.RemoveAll(filepath.Join(s.Root, "tmp", e.Name()))
	}
	return len(entries)
}

// WorkPath is where the persistent scratch directory of a key is (see WorkDir), whether or
// not it exists.
func (s *Store) WorkPath(key string) string { return filepath.Join(s.Root, "work", key) }

// WorkDir returns the persistent scratch directory of a key (created), noting beside it the
// instance it is for (work/<key>.stage, outside the folder, which the stage may clean), for
// gc.
func (s *Store) WorkDir(key, addr string) (string, error) {
	dir := s.WorkPath(key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dir, err
	}
	return dir, os.WriteFile(dir+workStageSuffix, []byte(addr+"\n"), 0o644)
}

// RemoveWork removes the scratch directory of a key and its note, and returns the size of
// the files the directory held.
func (s *Store) RemoveWork(key string) int64 {
	dir := filepath.Join(s.Root, "work", key)
	n := DirSize(dir)
	os.RemoveAll(dir)
	os.Remove(dir + workStageSuffix)
	return n
}

// workStageSuffix, after a work folder's path, names the file that says whose scratch it is.
const workStageSuffix = ".stage"

// Publish moves a finished temp directory into objects/ under its content digest and records
// the key. Identical output already present is reused. kind (nil for none) is the stage's
// kind, whose named outputs get digests of their own (OutputDigests, and ContentDigester's
// where it is one); written (may be nil) holds the digests of the files the stage wrote with
// Job.WriteFile or linked with Job.LinkFile.
func (s *Store) Publish(tmp, key, addr string, kind Kind, lines []string, took time.Duration, written *writtenFiles) (_ *Entry, err error) {
	// Files are not read again when the stage wrote them with Job.WriteFile or Job.LinkFile
	// (still as written), or when they are hard links to files this cache knows (an input's
	// files).
	files, walked, err := s.Stats.hashOutput(tmp, written, true)
	if err != nil {
		return nil, fmt.Errorf("hashing the output of %s: %w", addr, err)
	}
	defer files.close()
	defer catchSpill(&err)
	sig, walkedAt := walked.sig, walked.at
	written.forget()
	digest := files.digest()
	obj := filepath.Join(s.Workspace, ObjectRel(digest))
	reused := false
	if _, err := os.Stat(obj); err == nil {
		// The same output was published before. Reuse it only if it is intact, read in full
		// without the stat cache: a rerun after "output damaged" lands here, and trusting
		// the damaged copy would hide the damage for good.
		if held, err := s.holds(obj, digest); err != nil {
			return nil, fmt.Errorf("checking the output %s of %s: %w", obj, addr, err)
		} else if held {
			os.RemoveAll(tmp)
			reused = true
		} else if err := os.RemoveAll(obj); err != nil {
			return nil, fmt.Errorf("replacing the damaged output %s of %s: %w", obj, addr, err)
		}
	}
	if !reused {
		if err := os.Rename(tmp, obj); err != nil {
			// Another stage of this run published the same content in the meantime (two
			// evaluations of one model, say): use its object if it is intact.
			if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
				return nil, fmt.Errorf("publishing the output of %s: %w", addr, err)
			}
			if held, herr := s.holds(obj, digest); herr != nil || !held {
				return nil, fmt.Errorf("publishing the output of %s: %w", addr, cmp.Or(herr, err))
			}
			os.RemoveAll(tmp)
			reused = true
		}
	}
	makeReadOnly(obj) // a reused object too, in case a crash came between its rename and this
	// Digests of the published files are the ones just computed; re-key the stat cache to
	// the new paths so verifying them later costs only stats.
	for i := range files.n {
		f := files.at(i)
		if _, marked := files.marks[f.rel]; marked {
			continue
		}
		p := filepath.Join(obj, filepath.FromSlash(f.rel))
		if fi, err := os.Stat(p); err == nil {
			s.Stats.remember(p, fi, f.sum)
		}
	}
	if !reused {
		// Renaming kept every file's inode and mtime, so the signature is the object's (a
		// reused object, just read in full, gets its record at its next verification).
		s.Stats.rememberTree(obj, false, sig, digest, files.len(), walkedAt)
	}
	// The manifest first, so an entry never points at a manifest that is not there.
	if err := writeOutputManifestJSON(s.outputPath(key), files, digest); err != nil {
		return nil, err
	}
	var contents map[string]string
	var outputs []string
	if kind != nil {
		outputs = kind.Outputs()
	}
	var used map[string][]string
	if referrer, ok := kind.(OutputReferrer); ok {
		if used, err = referrer.OutputRefs(obj); err != nil {
			return nil, fmt.Errorf("reading what the outputs of %s use: %w", addr, err)
		}
	}
	if cd, ok := kind.(ContentDigester); ok {
		// none when they cannot be worked out: the outputs are then keyed by their files
		contents, _ = cd.OutputContents(obj, files)
	}
	e := &Entry{Key: key, Addr: addr, Lines: lines, Output: Manifest{Digest: digest}, Outputs: OutputDigests(files, outputs, used),
		Contents: contents, Created: time.Now().UTC(), Duration: took.Seconds()}
	if err := writeJSON(s.keyPath(key), e); err != nil {
		return nil, err
	}
	// As Lookup returns it: the file list (a record per file of the output) is in its own
	// file, and holding it for the rest of the run would cost as much again.
	return e, nil
}

// contentsOf returns the content digests of the outputs of entry e, published by a stage of
// kind cd: Entry.Contents, or for an entry published before they were recorded, worked out
// from the object and its file list, and written into the entry for next time when this
// process holds the workspace's lock (a run; a plan works them out again). It returns nil
// when they cannot be worked out (the object is damaged or gone: the stage reruns, or its
// outputs are keyed by their files' digests).
func (s *Store) contentsOf(e *Entry, cd ContentDigester) map[string]string {
	if e.Contents != nil {
		return e.Contents
	}
	m := e.Output // entries published before the file list had its own file hold it
	if m.Files == nil {
		if err := readJSON(s.outputPath(e.Key), &m); err != nil {
			return nil
		}
	}
	obj := filepath.Join(s.Workspace, ObjectRel(e.Output.Digest))
	if m.Digest != e.Output.Digest || s.Verify(e) != "" {
		return nil
	}
	contents, err := cd.OutputContents(obj, ManifestFiles(m.Files))
	if err != nil || contents == nil {
		return nil
	}
	if s.locked.Load() {
		with := *e
		with.Contents = contents
		writeJSON(s.keyPath(e.Key), &with) // for next time: without it, worked out again then
	}
	return contents
}

// holds reports whether the object folder obj holds exactly the output of digest, read in
// full without the stat cache: false when it cannot be read; an error when its file list,
// once read, cannot be read back from its scratch file.
func (s *Store) holds(obj, digest string) (held bool, err error) {
	have, _, err := s.Stats.hashOutput(obj, nil, false)
	if err != nil {
		return false, nil
	}
	defer have.close()
	defer catchSpill(&err)
	return have.digest() == digest, nil
}

// makeReadOnly clears write permission on published files: outputs are shared by every run
// that reuses them, so editing one in place would corrupt all of them.
func makeReadOnly(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chmod(p, 0o444)
		}
		return nil
	})
}

// State is what the engine remembers about an instance's last successful run, to explain
// the next plan.
type State struct {
	Addr  string   `json:"addr"`
	Key   string   `json:"key"`
	Lines []string `json:"lines"`
	// Sources are the manifests of Source attributes, kept in a file of their own
	// (<state>.sources.json) because a plan reads them only to explain a change.
	Sources map[string]Manifest `json:"-"`
	// SourcesDigest is the SHA-256 of the file Sources are in, as written: a cached stage
	// keeps that file while it is intact, and writes it again once damaged or edited.
	SourcesDigest string    `json:"sources_digest,omitempty"`
	Output        string    `json:"output"`
	Updated       time.Time `json:"updated"`
	// Earlier are the keys of the outputs the instance had before Output, newest first
	// (at most maxEarlier): a kind that keeps its history consistent (the split) may go back
	// to one made with the settings it has again (Job.Earlier).
	Earlier []string `json:"earlier,omitempty"`
}

// maxEarlier is how many earlier keys a State keeps.
const maxEarlier = 8

// heldEntries returns the entries of keys (State.Earlier) whose outputs the store still holds,
// in their order.
func (s *Store) heldEntries(keys []string) []*Entry {
	var out []*Entry
	for _, k := range keys {
		if e, ok := s.Lookup(k); ok {
			if _, err := os.Stat(filepath.Join(s.Workspace, ObjectRel(e.Output.Digest))); err == nil {
				out = append(out, e)
			}
		}
	}
	return out
}

func (s *Store) statePath(addr string) string {
	return filepath.Join(s.Root, "state", strings.NewReplacer("/", "_", "\"", "", "[", "@", "]", "").Replace(addr)+".json")
}

// LoadState returns the recorded state of an instance (without its source manifests; see
// LoadSources).
func (s *Store) LoadState(addr string) (*State, bool) {
	var st State
	if err := readJSON(s.statePath(addr), &st); err != nil {
		return nil, false
	}
	return &st, true
}

// LoadSources returns the source manifests recorded with an instance's state.
func (s *Store) LoadSources(addr string) map[string]Manifest {
	var m map[string]Manifest
	readJSON(s.sourcesPath(addr), &m)
	return m
}

// hasSources reports whether the source manifests of state st are recorded as they were
// written (State.SourcesDigest): read through, not decoded.
func (s *Store) hasSources(st *State) bool {
	if st.SourcesDigest == "" {
		return false // recorded before the digest was: written again, with it
	}
	d, err := hashFile(s.sourcesPath(st.Addr))
	return err == nil && d == st.SourcesDigest
}

// sourcesPath is the file of the source manifests of an instance's state.
func (s *Store) sourcesPath(addr string) string {
	return strings.TrimSuffix(s.statePath(addr), ".json") + ".sources.json"
}

// SaveState records an instance's state, its source manifests first so the state never
// points at manifests that are not there.
func (s *Store) SaveState(st *State) error {
	if old, ok := s.LoadState(st.Addr); ok && st.Earlier == nil {
		// The key given way to goes first in the history; the new one leaves it.
		seen := map[string]bool{st.Key: true, "": true}
		for _, k := range append([]string{old.Key}, old.Earlier...) {
			if !seen[k] && len(st.Earlier) < maxEarlier {
				seen[k] = true
				st.Earlier = append(st.Earlier, k)
			}
		}
	}
	if err := writeSourcesJSON(s.sourcesPath(st.Addr), st.Sources); err != nil {
		return err
	}
	d, err := hashFile(s.sourcesPath(st.Addr))
	if err != nil {
		return err
	}
	st.SourcesDigest = d
	return writeJSON(s.statePath(st.Addr), st)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON writes v to path atomically (temporary file and rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to path through a new temporary file beside it (0644 less the
// umask), synced to disk before it replaces path in one rename: readers see the old content
// or the new, never part of it, even after a crash.
func WriteFileAtomic(path string, data []byte) error {
	return writeFileAtomicStream(path, func(w *bufio.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// GCResult counts what GC removed (or would remove).
type GCResult struct {
	Objects, Keys, Kept int
	// Bytes is the size of the removed outputs' files; Freed, of those no other path kept
	// links to (an output's files are often hard links to an upstream output's, or to a
	// run folder's).
	Bytes, Freed int64
	// Removed lists the outputs removed (or that would be), largest first.
	Removed []GCOutput
	// Runs lists the run folders removed (or that would be), oldest first: those beyond
	// the newest ones GC was asked to keep.
	Runs []string
	// Pinned lists the run folders beyond those kept that were kept all the same, oldest
	// first: Store.PinnedRuns.
	Pinned []string
	// Work lists the scratch folders (an interrupted training's checkpoints) removed, largest
	// first: those no run would resume from (their key has a completed output, or no stage
	// of the plan has it).
	Work []GCWork
}

// GCWork is a removed scratch folder: its key, the instance it was for ("" when not noted)
// and its size.
type GCWork struct {
	Key, Addr string
	Bytes     int64
}

// GCOutput is a removed output: its digest, size, and the stage instances whose cache
// entries pointed at it, with when the newest of them was made.
type GCOutput struct {
	Digest  string
	Bytes   int64
	Addrs   []string
	Created time.Time
}

// GC removes outputs that neither keep, a cache entry of an instance in keepAll, an
// instance's current state nor a run folder refers to (its run.json, or for a run that died
// before writing one, its symbolic links into the store), the cache entries pointing at
// them, and leftovers of dead runs in tmp/. It looks
// in runsDir and in every runs folder a run of this workspace has used (RecordRunsDir). Run
// folders hold hard links to everything but the data stages' image folders, so removing an
// object never breaks one. Engine.GC also keeps what the pipeline file's plan reuses.
//
// Scratch folders (work/<key>) go too, unless planned has their key (a run of the plan would
// run that stage and resume from them), a run folder still there has a stage of that key
// interrupted or failed, or they may belong to an instance in keepAll, whose key is not known
// until its upstream runs; while a run folder without run.json (a killed run) is there, they
// stay. Whatever else holds, the scratch of a key that has a cache entry whose output gc keeps
// goes unless planned has it: a run reuses that output, and a forced run starts over without
// the scratch, so nothing resumes from it (a forced training killed, say).
//
// With keepRuns ≥ 0, the run folders in runsDir but the newest keepRuns that succeeded and the
// newest keepRuns of the others (cancelled, failed or killed) are removed first (runFolders,
// keptRuns), and count for nothing. A dry run takes the folders removing as removed too when
// it counts what is freed (see Engine.GC).
func (s *Store) GC(runsDir string, dryRun bool, keep, keepAll, planned map[string]bool, keepRuns int, removing ...string) (GCResult, error) {
	var res GCResult
	l, _, err := AcquireLock(s.Workspace)
	// A dry run only looks: one who may not write the workspace (the lock file) may still
	// ask what gc would remove.
	if err != nil && !(dryRun && errors.Is(err, fs.ErrPermission)) {
		return res, err
	}
	defer l.Release()
	// Run folders beyond the newest keepRuns go first (holding the lock, none is running),
	// and what only they used goes with them.
	pruned := map[string]bool{}
	if !dryRun {
		// Run folders a gc was removing when it was killed (see below).
		for _, name := range dirNames(runsDir) {
			if strings.HasPrefix(name, removingPrefix) {
				os.RemoveAll(filepath.Join(runsDir, name))
			}
		}
	}
	if keepRuns >= 0 {
		runs := runFolders(runsDir)
		kept := keptRuns(runs, keepRuns)
		for _, d := range runs {
			if kept[d] {
				continue
			}
			if s.PinnedRuns[filepath.Base(d)] {
				res.Pinned = append(res.Pinned, filepath.Base(d))
				continue
			}
			pruned[d] = true
			res.Runs = append(res.Runs, filepath.Base(d))
			if !dryRun {
				// Renamed out of the way first, in one step: a gc killed while deleting its
				// files leaves no part of a run folder that looks like one (without its
				// run.json, such a folder would keep every scratch folder for good).
				gone := filepath.Join(runsDir, removingPrefix+filepath.Base(d))
				if err := os.Rename(d, gone); err != nil {
					return res, fmt.Errorf("removing the run folder %s: %w", d, err)
				}
				if err := os.RemoveAll(gone); err != nil {
					return res, fmt.Errorf("removing the run folder %s (renamed %s): %w", d, gone, err)
				}
			}
		}
	}
	used := map[string]bool{}
	for d := range keep {
		used[d] = true
	}
	for _, name := range dirNames(filepath.Join(s.Root, "state")) {
		if !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".sources.json") {
			continue
		}
		var st State
		if readJSON(filepath.Join(s.Root, "state", name), &st) == nil {
			used[st.Output] = true
		}
	}
	// A stage interrupted or failed in a run folder still there may resume from its scratch
	// (the run with other settings, say); a run killed before writing run.json does not say
	// which, so while one is there every scratch folder stays.
	resumable, unknownRuns := map[string]bool{}, false
	for _, runs := range append([]string{runsDir}, s.runsDirs()...) {
		for _, name := range dirNames(runs) {
			d := filepath.Join(runs, name)
			if pruned[d] {
				continue
			}
			var rec RunRecord
			if readJSON(filepath.Join(d, "run.json"), &rec) == nil {
				for _, st := range rec.Stages {
					used[st.Output] = true // its links lead only to these
					if st.Status == StatusCancelled || st.Status == StatusFailed {
						resumable[st.Key] = true
					}
				}
				continue
			}
			if fi, err := os.Stat(d); err == nil && fi.IsDir() && strings.HasPrefix(name, "2") {
				unknownRuns = true // a run folder (they are named by their UTC time) without run.json
			}
			s.linkedObjects(d, used)
		}
	}
	// The cache entries, and which of them point at each output.
	var keys []string
	entries := map[string]Entry{}
	byOutput := map[string][]Entry{}
	for _, kk := range dirNames(filepath.Join(s.Root, "keys")) {
		for _, name := range dirNames(filepath.Join(s.Root, "keys", kk)) {
			if !strings.HasSuffix(name, ".json") {
				continue
			}
			p := filepath.Join(s.Root, "keys", kk, name)
			keys = append(keys, p)
			var e Entry
			if !strings.HasSuffix(name, ".output.json") && readJSON(p, &e) == nil {
				entries[p] = e
				byOutput[e.Output.Digest] = append(byOutput[e.Output.Digest], e)
				if keepAll[e.Addr] {
					used[e.Output.Digest] = true
				}
			}
		}
	}
	objs, _ := os.ReadDir(filepath.Join(s.Root, "objects"))
	var gone []string // the folders removed: outputs, and in a dry run the run folders too
	for _, o := range objs {
		if !used[o.Name()] {
			gone = append(gone, filepath.Join(s.Root, "objects", o.Name()))
		}
	}
	if dryRun {
		gone = append(gone, slices.Sorted(maps.Keys(pruned))...)
		gone = append(gone, removing...)
	}
	res.Freed = FreedBytes(gone, filepath.Join(s.Root, "objects"))
	for _, o := range objs {
		if used[o.Name()] {
			res.Kept++
			continue
		}
		p := filepath.Join(s.Root, "objects", o.Name())
		out := GCOutput{Digest: o.Name(), Bytes: DirSize(p)}
		for _, e := range byOutput[o.Name()] {
			if !slices.Contains(out.Addrs, e.Addr) {
				out.Addrs = append(out.Addrs, e.Addr)
			}
			if e.Created.After(out.Created) {
				out.Created = e.Created
			}
		}
		slices.Sort(out.Addrs)
		res.Objects++
		res.Bytes += out.Bytes
		res.Removed = append(res.Removed, out)
		if !dryRun {
			os.RemoveAll(p) // files are read-only, their folders are not
		}
	}
	slices.SortStableFunc(res.Removed, func(a, b GCOutput) int {
		if a.Bytes != b.Bytes {
			return cmp.Compare(b.Bytes, a.Bytes)
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	for _, p := range keys {
		if main, ok := strings.CutSuffix(p, ".output.json"); ok {
			if _, err := os.Stat(main + ".json"); err != nil && !dryRun {
				os.Remove(p) // left by a run that died between the two writes
			}
			continue
		}
		if e, ok := entries[p]; ok && used[e.Output.Digest] {
			continue
		}
		res.Keys++
		if !dryRun {
			os.Remove(p)
			os.Remove(strings.TrimSuffix(p, ".json") + ".output.json")
		}
	}
	completed := map[string]bool{} // keys with an output that stays
	for _, e := range entries {
		if used[e.Output.Digest] {
			completed[e.Key] = true
		}
	}
	for _, name := range dirNames(filepath.Join(s.Root, "work")) {
		dir := filepath.Join(s.Root, "work", name)
		if key, ok := strings.CutSuffix(name, workStageSuffix); ok {
			if _, err := os.Stat(filepath.Join(s.Root, "work", key)); errors.Is(err, fs.ErrNotExist) && !dryRun {
				os.Remove(dir) // the note of a folder removed without it
			}
			continue
		}
		b, _ := os.ReadFile(dir + workStageSuffix)
		addr := strings.TrimSpace(string(b))
		if planned[name] || (!completed[name] && (resumable[name] || keepAll[addr] || unknownRuns || (addr == "" && len(keepAll) > 0))) {
			continue
		}
		w := GCWork{Key: name, Addr: addr}
		if dryRun {
			w.Bytes = DirSize(dir)
		} else {
			w.Bytes = s.RemoveWork(name)
		}
		res.Work = append(res.Work, w)
	}
	slices.SortStableFunc(res.Work, func(a, b GCWork) int {
		if a.Bytes != b.Bytes {
			return cmp.Compare(b.Bytes, a.Bytes)
		}
		return strings.Compare(a.Key, b.Key)
	})
	if !dryRun {
		s.cleanTemp()
		s.Stats.Prune()
		if err := s.Stats.Save(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// removingPrefix begins the name a run folder gc removes takes while its files are deleted.
const removingPrefix = ".removing-"

// runFolders lists the run folders in runsDir, oldest first: folders named by their UTC
// start time that hold a run.json or a run.log (not a promotion folder, nor another folder
// kept there).
func runFolders(runsDir string) []string {
	var out []string
	for _, name := range dirNames(runsDir) {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		d := filepath.Join(runsDir, name)
		for _, f := range []string{"run.json", "run.log"} {
			if fi, err := os.Lstat(filepath.Join(d, f)); err == nil && fi.Mode().IsRegular() {
				out = append(out, d)
				break
			}
		}
	}
	sort.Strings(out) // by start time
	return out
}

// keptRuns returns the run folders of runs (oldest first) that gc --keep-runs n keeps: the
// newest n runs that succeeded (run.json says so), and the newest n of the others (cancelled,
// failed, or killed without a run.json), so that broken runs neither push out the last good
// ones nor pile up while every run fails.
func keptRuns(runs []string, n int) map[string]bool {
	kept := map[string]bool{}
	succeeded, others := 0, 0
	for i := len(runs) - 1; i >= 0; i-- {
		var rec RunRecord
		if readJSON(filepath.Join(runs[i], "run.json"), &rec) == nil && rec.Status == "succeeded" {
			if succeeded < n {
				kept[runs[i]] = true
			}
			succeeded++
		} else {
			if others < n {
				kept[runs[i]] = true
			}
			others++
		}
	}
	return kept
}

// linkDepth is how deep below a run folder linkedObjects looks for symbolic links: the
// stage's folder, then a bulk folder's path in its output (augment's output/images is 3).
const linkDepth = 4

// linkedObjects marks in used the store objects that symbolic links in the run folder dir
// point into (a data stage's images, see Bulky), comparing real paths. A link that leads
// nowhere keeps the object its target names, if the store has it: the link was made when the
// store was elsewhere (the workspace moved without this runs folder), and it leads there
// again once the two are put back side by side.
func (s *Store) linkedObjects(dir string, used map[string]bool) {
	objects, err := filepath.EvalSymlinks(filepath.Join(s.Root, "objects"))
	if err != nil {
		return
	}
	walkRunLinks(dir, func(link, to string) {
		real, err := filepath.EvalSymlinks(link)
		if err != nil {
			if d := objectNamed(to); d != "" {
				if _, err := os.Stat(filepath.Join(s.Root, "objects", d)); err == nil {
					used[d] = true
				}
			}
			return
		}
		if real != objects && Inside(real, objects) { // both real paths, clean
			r, _ := filepath.Rel(objects, real)
			used[strings.Split(r, string(filepath.Separator))[0]] = true
		}
	})
}

// walkRunLinks calls fn with every symbolic link in the run folder dir, down to linkDepth,
// and what it holds.
func walkRunLinks(dir string, fn func(link, to string)) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel != "." && strings.Count(rel, string(filepath.Separator)) >= linkDepth-1 {
			return filepath.SkipDir // links are at most linkDepth levels down
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if to, err := os.Readlink(p); err == nil {
			fn(p, to)
		}
		return nil
	})
}

// objectNamed returns the digest of the store object a link target names
// (…/data/intermediate/objects/DIGEST/…), "" if it names none.
func objectNamed(target string) string {
	parts := strings.Split(filepath.ToSlash(target), "/")
	store := strings.Split(StoreDir+"/objects", "/")
	for i := 0; i+len(store) < len(parts); i++ {
		if slices.Equal(parts[i:i+len(store)], store) && parts[i+len(store)] != "" {
			return parts[i+len(store)]
		}
	}
	return ""
}

// BrokenLink is a symbolic link of a run folder into the store that leads nowhere.
type BrokenLink struct {
	Link   string // relative to the run folder, slash-separated
	Target string // what the link holds
	// Object is the digest of the store object the target names ("" if none); Now is where
	// the workspace's store has the target (absolute), "" when it does not.
	Object, Now string
}

// BrokenLinks returns the symbolic links into the store of the run folder runDir (a data
// stage's images) that lead nowhere: their object was removed, or the run folder and the
// store of workspace no longer sit where they did when the link was made.
func BrokenLinks(workspace, runDir string) []BrokenLink {
	var out []BrokenLink
	walkRunLinks(runDir, func(link, to string) {
		if _, err := os.Stat(link); err == nil {
			return
		}
		rel, _ := filepath.Rel(runDir, link)
		b := BrokenLink{Link: filepath.ToSlash(rel), Target: to, Object: objectNamed(to)}
		if b.Object != "" {
			_, below, _ := strings.Cut(filepath.ToSlash(to), "/"+b.Object)
			now := filepath.Join(workspace, ObjectRel(b.Object), filepath.FromSlash(below))
			if _, err := os.Stat(now); err == nil {
				b.Now, _ = filepath.Abs(now)
			}
		}
		out = append(out, b)
	})
	return out
}

// dirNames lists the names in dir, none if it cannot be read. (Not filepath.Glob, which
// finds nothing when the path itself holds a pattern character such as '['.)
func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// runsDirsFile lists, one per line, every runs folder a run of this workspace has used: one
// inside the workspace relative to it (slash-separated), so that the list holds when the
// workspace moves, one outside it absolute.
const runsDirsFile = "runs_dirs"

// RecordRunsDir adds dir to the runs folders gc looks in: run folders link the data stages'
// image folders into the store, so gc must see every run folder wherever it was made. It
// makes dir if needed (a run is about to put its run folder there). Entries of older
// versions, which were all absolute, are rewritten relative when they name a folder inside
// the workspace; the others stay as they are (runsDirs finds where they went when the
// workspace moved, and one not there now may be on a disk not mounted).
func (s *Store) RecordRunsDir(dir string) error {
	ws, err := filepath.Abs(s.Workspace)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	old := s.runsDirLines()
	var lines []string
	add := func(l string) {
		if !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	for _, l := range old {
		if _, err := os.Stat(l); err == nil && filepath.IsAbs(l) {
			l = runsDirEntry(ws, filepath.Clean(l))
		}
		add(l)
	}
	add(runsDirEntry(ws, abs))
	if slices.Equal(lines, old) {
		return nil
	}
	return WriteFileAtomic(filepath.Join(s.Root, runsDirsFile), []byte(strings.Join(lines, "\n")+"\n"))
}

// runsDirs returns the runs folders recorded by RecordRunsDir, as absolute paths.
func (s *Store) runsDirs() []string {
	ws, err := filepath.Abs(s.Workspace)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, l := range s.runsDirLines() {
		for _, d := range resolveRunsDir(ws, l) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// runsDirLines returns the lines of the runs folders file, none if it cannot be read.
func (s *Store) runsDirLines() []string {
	b, err := os.ReadFile(filepath.Join(s.Root, runsDirsFile))
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// runsDirEntry is how the runs folder abs (absolute) is recorded in the workspace ws
// (absolute): relative to ws when it is inside it, lexically or once links are resolved (a
// workspace reached through a link), else abs.
func runsDirEntry(ws, abs string) string {
	if rel, err := filepath.Rel(ws, abs); err == nil && filepath.IsLocal(rel) {
		return filepath.ToSlash(rel)
	}
	realWS, err1 := filepath.EvalSymlinks(ws)
	realDir, err2 := filepath.EvalSymlinks(abs)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(realWS, realDir); err == nil && filepath.IsLocal(rel) {
			return filepath.ToSlash(rel)
		}
	}
	return abs
}

// resolveRunsDir returns the runs folders a line of the runs folders file stands for in the
// workspace ws (absolute): a relative line, the folder under ws. An absolute line (a folder
// outside the workspace, or any line of a version before runs folders inside it were
// recorded relative to it) stands for itself when it is there, and for the folder at the
// same place under ws when that is there (recorded while the workspace was elsewhere, it
// names a folder in the workspace's old place): the longest ending of its path that is a
// folder under ws. Both count when both are there (a copied workspace: gc looking in one
// folder too many keeps more, never less); when neither is, the line as it is.
func resolveRunsDir(ws, line string) []string {
	if !filepath.IsAbs(line) {
		return []string{filepath.Join(ws, filepath.FromSlash(line))}
	}
	line = filepath.Clean(line)
	var out []string
	if _, err := os.Stat(line); err == nil {
		out = append(out, line)
	}
	parts := strings.Split(strings.TrimPrefix(line, string(filepath.Separator)), string(filepath.Separator))
	for i := range parts {
		moved := filepath.Join(append([]string{ws}, parts[i:]...)...)
		if moved == line {
			continue
		}
		if fi, err := os.Stat(moved); err == nil && fi.IsDir() {
			out = append(out, moved)
			break
		}
	}
	if len(out) == 0 {
		out = append(out, line) // not there now (a disk not mounted, say): kept as recorded
	}
	return out
}

// FreedBytes returns the size of the files under the folders dirs, counting only those in
// folders below under, that no path outside dirs links to: what removing dirs frees (gc's
// outputs, whose files are often hard links to others', and promoted models, hard links to the
// store's).
func FreedBytes(dirs []string, under string) int64 {
	type file struct {
		size  int64
		links uint64 // its hard links
		seen  uint64 // those under dirs
		count bool   // one is under under
	}
	files := map[[2]uint64]*file{}
	for _, dir := range dirs {
		counts := strings.HasPrefix(dir, under+string(filepath.Separator))
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return nil
			}
			id := [2]uint64{uint64(st.Dev), st.Ino}
			f := files[id]
			if f == nil {
				f = &file{size: fi.Size(), links: uint64(st.Nlink)}
				files[id] = f
			}
			f.seen++
			f.count = f.count || counts
			return nil
		})
	}
	var n int64
	for _, f := range files {
		if f.count && f.seen >= f.links {
			n += f.size
		}
	}
	return n
}

// DirSize returns the size of the regular files under dir.
func DirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
