package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	pathpkg "path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
)

// Engine plans and runs a workflow in a workspace.
type Engine struct {
	Workflow *Workflow
	Store    *Store
	// outDigests maps the store path of each upstream output handed to a stage to that
	// output's digest (Entry.Outputs), for the keys of the stages it is handed to.
	outDigests sync.Map
	// contents maps the same paths to their outputs' content digests (*outputContent), for
	// the attributes keyed ByContent.
	contents sync.Map
}

// outputContent is how an output handed to stages gets its content digest (Entry.Contents):
// from its entry, worked out the first time a key asks for it when the entry predates them.
type outputContent struct {
	output string
	of     *entryContents
}

// entryContents holds the content digests of one entry's outputs, loaded once.
type entryContents struct {
	once sync.Once
	load func() map[string]string
	m    map[string]string
}

func (c *entryContents) get() map[string]string {
	c.once.Do(func() { c.m = c.load() })
	return c.m
}

// Action is what a plan does with a stage instance.
type Action string

// Plan actions.
const (
	Cached Action = "cached" // its key has an intact output: reused
	Run    Action = "run"    // never ran, or something in its key changed
)

// Decision is the plan for one instance and why.
type Decision struct {
	Addr    string   `json:"stage"`
	Action  Action   `json:"action"`
	Reasons []string `json:"reasons"`
	// Known is false when the key depends on outputs of upstream stages that will run first.
	Known bool `json:"key_known"`
	// Certain is true when the stage runs whatever its upstream stages output, as far as
	// the plan can tell: its key is known and not stored, it is forced, it never ran, or its
	// own configuration changed since its last run and the store holds no output of the new
	// configuration from stages that output what they did last time.
	Certain bool   `json:"certain"`
	Key     string `json:"key,omitempty"`
	New     bool   `json:"new"` // never ran before

	inst   *Instance
	values *Values
	lines  []string
	// sources are the manifests of the files and folders in the key (see inputs.go), by
	// label: a Source attribute's name, or pathLabel for a path given where an output is
	// expected. They may hold only digests (StatCache.QuickManifest).
	sources map[string]Manifest
	roots   map[string]string     // label → absolute path
	trees   map[string]*treeState // label → what the walk that made its manifest saw
	stats   *StatCache
	entry   *Entry
	// earlier are the outputs the instance had before its last (State.Earlier), as a run's
	// Job.Earlier gives them, for the notes of a change back to settings it had before.
	earlier []*Job
}

// completeSources replaces every digest-only source manifest with the complete one (a walk
// of stats and cached digests), for explaining a change and for recording the state. A
// source whose digest is no longer the one in the key changed since it was planned: that is
// an error, the key would not describe what the stage reads.
func (d *Decision) completeSources() error {
	for name, m := range d.sources {
		if m.Files != nil {
			continue
		}
		// From the walk the plan made (no second walk: checkInputs sees what changes after it).
		full, err := d.stats.hashWalked(d.trees[name], treeMode{source: true, remember: true})
		if err != nil {
			return fmt.Errorf("hashing %s: %w", d.inputName(name), err)
		}
		if full.Digest != m.Digest {
			return fmt.Errorf("%s changed while it was being planned; run again", d.roots[name])
		}
		d.sources[name] = full
	}
	return nil
}

// digestOnly reports whether m carries only a digest (an empty folder's manifest has no files
// either, and JSON drops its empty list).
func digestOnly(m Manifest) bool {
	return m.Files == nil && m.Digest != "" && m.Digest != manifestDigest(nil)
}

// recordedSources returns the source manifests to record with a finished stage: complete
// ones as they are, digest-only ones (cached stages, sources unchanged) from the manifests
// recorded last time when their digest is the same, else completed now. A source that cannot
// be completed is recorded by digest alone (a later plan then explains a change less
// precisely); it never fails a stage whose output is published.
func (d *Decision) recordedSources(recorded map[string]Manifest) map[string]Manifest {
	out := make(map[string]Manifest, len(d.sources))
	for name, m := range d.sources {
		switch old, ok := recorded[name]; {
		case m.Files != nil:
			out[name] = m
		case ok && old.Files != nil && old.Digest == m.Digest:
			out[name] = old
		default:
			if full, err := d.stats.hashWalked(d.trees[name], treeMode{source: true, remember: true}); err == nil && full.Digest == m.Digest {
				m = full
			}
			out[name] = m
		}
	}
	return out
}

// Selection says which instances a plan or run covers.
type Selection struct {
	Targets    []string // stage selectors; empty means every stage
	Force      bool     // rerun the targets (all stages without targets) even when cached
	Downstream bool     // also everything that depends on the targets
}

// Select resolves a selection to instances in dependency order, plus the forced ones.
func (e *Engine) Select(sel Selection) ([]*Instance, map[string]bool, error) {
	w := e.Workflow
	want := map[string]bool{}
	forced := map[string]bool{}
	var targets []string
	for _, s := range sel.Targets {
		addrs, err := e.resolveSelector(s)
		if err != nil {
			return nil, nil, err
		}
		targets = append(targets, addrs...)
	}
	if len(sel.Targets) == 0 {
		for _, i := range w.Instances {
			targets = append(targets, i.Addr)
		}
	}
	for _, t := range targets {
		want[t] = true
		if sel.Force {
			forced[t] = true
		}
		if sel.Downstream {
			for _, d := range w.Graph.Descendants(t) {
				want[d] = true
			}
		}
	}
	for a := range want {
		for _, anc := range w.Graph.Ancestors(a) {
			want[anc] = true
		}
	}
	var out []*Instance
	for _, i := range w.Instances {
		if want[i.Addr] {
			out = append(out, i)
		}
	}
	return out, forced, nil
}

func (e *Engine) resolveSelector(s string) ([]string, error) {
	w := e.Workflow
	if i, ok := w.Instance(s); ok {
		return []string{i.Addr}, nil
	}
	block, key, hasKey := ParseInstanceSelector(s)
	if hasKey {
		if i, ok := w.Instance(InstanceAddr(block, key, true)); ok {
			return []string{i.Addr}, nil
		}
	}
	if insts := w.BlockInstances(s); len(insts) > 0 {
		var out []string
		for _, i := range insts {
			out = append(out, i.Addr)
		}
		return out, nil
	}
	return nil, w.CheckSelector(s) // says what s could have meant
}

// Plan decides, for every selected instance, whether it runs and why, without running
// anything.
func (e *Engine) Plan(sel Selection) ([]*Decision, error) {
	insts, forced, err := e.Select(sel)
	if err != nil {
		return nil, err
	}
	outs := Outputs{}
	// last is what each instance output when it last ran, or will reuse, as far as the store
	// holds it: the plan's guess at what a stage that runs will output (see keptFor). For a
	// stage whose key is known (it runs, or is forced) it is its previous output as recorded,
	// read from its state only when a stage below needs it (guessed): a damaged output is
	// made again as it was, so what was recorded is the guess.
	last := Outputs{}
	guessed := map[string]*Instance{}
	lastOf := func(addr string) {
		inst, ok := guessed[addr]
		if !ok {
			return
		}
		delete(guessed, addr)
		if st, ok := e.Store.LoadState(addr); ok {
			if entry, err := e.Store.readEntry(st.Key); err == nil {
				last[addr] = e.entryPaths(inst, entry)
			}
		}
	}
	willRun := map[string]bool{}
	var plan []*Decision
	for _, inst := range insts {
		var running []string
		for _, d := range inst.Deps {
			if willRun[d] {
				running = append(running, d)
			}
		}
		d, err := e.decide(inst, outs, forced[inst.Addr], running)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", inst.Addr, err)
		}
		switch {
		case d.Action == Cached:
			outs[inst.Addr] = e.outputPaths(d)
			last[inst.Addr] = outs[inst.Addr]
		case !d.Known && !d.New && !forced[inst.Addr]:
			// Its key waits on stages that run first: if they output what last holds, it
			// reuses the output kept for that key, if there is one, which the stages below
			// are then judged by (none kept: what it will output is not known).
			willRun[inst.Addr] = true
			for _, dep := range inst.Deps {
				lastOf(dep)
			}
			kept := e.keptFor(inst, last)
			if kept == nil {
				break
			}
			last[inst.Addr] = e.entryPaths(inst, kept)
			if d.Certain { // its own configuration changed, and an output of the new one is kept
				d.Certain = false
				d.Reasons = append(d.Reasons, fmt.Sprintf("an earlier output of this configuration is reused if %s %s what %s did last time",
					strings.Join(running, ", "), Agree(len(running), "outputs", "output"), Agree(len(running), "it", "they")))
			}
		default:
			willRun[inst.Addr] = true
			guessed[inst.Addr] = inst
		}
		plan = append(plan, d)
	}
	e.Store.Stats.Save()
	return plan, nil
}

// decide evaluates an instance against the outputs known so far and looks up its key. Its
// errors do not name the instance: callers that report several do.
func (e *Engine) decide(inst *Instance, outs Outputs, forced bool, upstreamRunning []string) (*Decision, error) {
	d := &Decision{Addr: inst.Addr, inst: inst}
	v, diags := e.Workflow.Evaluate(inst, outs)
	if diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	d.values = v
	st, hadState := e.Store.LoadState(inst.Addr)
	d.New = !hadState
	if !v.Known() {
		d.Action = Run
		upstream := "known after upstream runs (" + strings.Join(upstreamRunning, ", ") + " will run first)"
		var own []string
		switch {
		case forced:
			own = []string{"forced"}
		case !hadState:
			own = []string{"never ran"}
		default:
			var err error
			if own, err = e.ownChanges(inst, v, st); err != nil {
				return nil, err
			}
		}
		d.Certain = len(own) > 0
		if d.Certain {
			upstream = fmt.Sprintf("upstream %s %s first", strings.Join(upstreamRunning, ", "), Agree(len(upstreamRunning), "runs", "run"))
		}
		d.Reasons = append(own, upstream)
		return d, nil
	}
	if err := e.keyInputs(d, forced); err != nil {
		return nil, err
	}
	d.Key = keyOfLines(inst.Addr, d.lines)
	d.Known = true
	entry, err := e.Store.readEntry(d.Key)
	found, problem := err == nil, ""
	var unreadable *unreadableEntryError
	if found {
		problem = e.Store.Verify(entry)
	} else if errors.As(err, &unreadable) {
		// The stage ran with this key before (its entry is there): it runs again, and
		// publishing its output writes the entry anew.
		problem, d.New = unreadable.Error()+"; the run replaces it", false
	}
	if forced || !found || problem != "" {
		// The stage will run: its state records the complete manifests as planned.
		if err := d.completeSources(); err != nil {
			return nil, err
		}
	}
	d.Certain = forced || !found || problem != ""
	switch {
	case forced:
		d.Action, d.Reasons = Run, []string{"forced"}
	case found && problem == "":
		d.Action, d.entry = Cached, entry
		if hadState && st.Key != d.Key {
			d.Reasons = []string{"reusing an earlier output for this configuration"}
		}
	case problem != "":
		d.Action, d.Reasons = Run, []string{problem}
	case !hadState:
		d.Action, d.Reasons = Run, []string{"never ran"}
	case st.Key == d.Key:
		d.Action, d.Reasons = Run, []string{"output missing"}
	default:
		st.Sources = e.Store.LoadSources(inst.Addr)
		d.earlier = e.Store.historyJob(st).Earlier()
		d.Action, d.Reasons = Run, explain(st, d, v)
	}
	if r, ok := inst.Kind.(Resumer); ok && d.Action == Run && forced {
		if note := r.ResumeNote(e.Store.WorkPath(d.Key)); note != "" {
			d.Reasons = append(d.Reasons, "starts over; unforced, it "+note) // "… it resumes an interrupted training after its epoch 3"
		}
	} else if ok && d.Action == Run {
		if note := r.ResumeNote(e.Store.WorkPath(d.Key)); note != "" {
			if o := e.otherRun(); o != nil {
				// Not interrupted: the work folder is the live run's.
				note = fmt.Sprintf("%s holds the workspace, and may be running it now (its work so far: %s)", o.describe(), note)
			}
			d.Reasons = append(d.Reasons, note)
		}
	}
	return d, nil
}

// otherRun returns the live process other than this one that holds the workspace lock (a run
// in progress), nil when there is none.
func (e *Engine) otherRun() *LockOwner {
	o, err := LockHolder(e.Store.Workspace)
	if err != nil || o == nil {
		return nil
	}
	if host, _ := os.Hostname(); o.Host == host && o.PID == os.Getpid() {
		return nil
	}
	return o
}

// keyInputs hashes what goes into the key of d's instance besides its values (its source
// folders, and the paths given where stage outputs are expected; forced reads every file
// again, whatever the stat cache holds) and makes its key lines. A source folder that is
// missing or holds the store is an error.
func (e *Engine) keyInputs(d *Decision, forced bool) error {
	inst, v := d.inst, d.values
	d.sources, d.roots, d.trees, d.stats = map[string]Manifest{}, map[string]string{}, map[string]*treeState{}, e.Store.Stats
	for _, a := range inst.Kind.Attributes() {
		if a.Role != Source || !v.Get(a.Name).IsKnown() || v.Get(a.Name).IsNull() {
			continue
		}
		rel := v.String(a.Name)
		if p := checkSource(e.Store.Workspace, filepath.Base(e.Workflow.Config.Path), a.Name, rel); p != nil {
			if p.suggestion != "" {
				return fmt.Errorf("%s; did you mean %q?", p.detail, p.suggestion)
			}
			return errors.New(p.detail)
		}
		// A forced stage reads its sources again: a file rewritten keeping its identity would
		// otherwise stay what the stat cache says.
		if err := d.hashInput(a.Name, InWorkspace(e.Store.Workspace, rel), forced); err != nil {
			return hashingError(a.Name, rel, err)
		}
	}
	for _, p := range pathInputs(inst.Kind, v, e.Store.Workspace) {
		if err := d.hashInput(pathLabel(p.attr, p.path), p.abs, forced); err != nil {
			return hashingError(p.attr, p.path, err)
		}
	}
	var err error
	d.lines, err = keyLines(inst.Kind, v, d.sources, e.Workflow.Seed, e.outputDigest)
	return err
}

// hashingError is the error of hashing the input path given as attr: one that cannot be read
// for lack of permission (the folder itself; files and folders below it are the stage's to
// report) says so and what to do.
func hashingError(attr, path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %q cannot be read (permission denied): give the user running pipeline read access to it", attr, path)
	}
	return fmt.Errorf("hashing %s %q: %w", attr, path, err)
}

// ownChanges names what changed in an instance's own configuration since its last run
// (attributes, sources, seed, kind version, environment) when its key cannot be made yet,
// its upstream stages running first: any such change reruns it whatever they output.
func (e *Engine) ownChanges(inst *Instance, v *Values, st *State) ([]string, error) {
	d := &Decision{Addr: inst.Addr, inst: inst, values: v}
	if err := e.keyInputs(d, false); err != nil {
		return nil, err
	}
	if err := d.completeSources(); err != nil {
		return nil, err
	}
	st.Sources = e.Store.LoadSources(inst.Addr)
	d.earlier = e.Store.historyJob(st).Earlier()
	// What upstream stages give it is not known yet: only its own changes count.
	own, _, notes := explainChanges(st, d, v)
	return append(own, notes...), nil
}

// outputPaths returns the store paths of a decided instance's outputs, as downstream stages
// are given them, and notes each one's digest for their keys.
func (e *Engine) outputPaths(d *Decision) map[string]string {
	return e.entryPaths(d.inst, d.entry)
}

// entryPaths is outputPaths for the stored output entry of an instance.
func (e *Engine) entryPaths(inst *Instance, entry *Entry) map[string]string {
	m := map[string]string{}
	var contents *entryContents
	if cd, ok := inst.Kind.(ContentDigester); ok {
		contents = &entryContents{load: func() map[string]string { return e.Store.contentsOf(entry, cd) }}
	}
	for _, o := range inst.Kind.Outputs() {
		m[o] = ObjectRel(entry.Output.Digest) + "/" + o
		if dg, ok := entry.Outputs[o]; ok {
			e.outDigests.Store(m[o], dg)
		}
		if contents != nil {
			e.contents.Store(m[o], outputContent{o, contents})
		}
	}
	return m
}

// keptFor returns the intact output the store holds of inst for the key it would have if
// every stage it uses output what last holds, or nil: for a stage whose own configuration
// changed while stages it uses run first, the output it may yet reuse.
func (e *Engine) keptFor(inst *Instance, last Outputs) *Entry {
	v, diags := e.Workflow.Evaluate(inst, last)
	if diags.HasErrors() || !v.Known() {
		return nil
	}
	d := &Decision{Addr: inst.Addr, inst: inst, values: v}
	if err := e.keyInputs(d, false); err != nil {
		return nil
	}
	entry, err := e.Store.readEntry(keyOfLines(inst.Addr, d.lines))
	if err != nil || e.Store.Verify(entry) != "" {
		return nil
	}
	return entry
}

// outputDigest is what the key of an attribute given the output at a store path that
// outputPaths handed out says of it: "content DIGEST", its content digest, for an attribute
// keyed byContent when the output has one, else "output DIGEST", the digest of its files.
func (e *Engine) outputDigest(path string, byContent bool) (string, bool) {
	if c, ok := e.contents.Load(path); ok && byContent {
		oc := c.(outputContent)
		if d, ok := oc.of.get()[oc.output]; ok {
			return "content " + d, true
		}
	}
	d, ok := e.outDigests.Load(path)
	if !ok {
		return "", false
	}
	return "output " + d.(string), true
}

// upstreamDigest matches an upstream output as a key line gives it (see keyLines).
var upstreamDigest = regexp.MustCompile(`"(output|content) [0-9a-f]{64}"`)

// keyedAnew reports whether two values of an attribute's key line differ only in how the
// upstream outputs in them are keyed: one by the digest of its files ("output …"), the
// other by its content digest ("content …"), as when a kind's attribute becomes keyed
// ByContent or an upstream entry has no content digests. Whether the output itself changed
// cannot be told from them.
func keyedAnew(o, c string) bool {
	if o == "" || c == "" || strings.Contains(o, `"content `) == strings.Contains(c, `"content `) {
		return false
	}
	return upstreamDigest.ReplaceAllString(o, "U") == upstreamDigest.ReplaceAllString(c, "U")
}

// explain names what changed between the last recorded key and this one: the instance's own
// changes, then its upstream stages', then the kind's notes on its own changes.
func explain(st *State, d *Decision, v *Values) []string {
	own, up, notes := explainChanges(st, d, v)
	reasons := slices.Concat(own, up, notes)
	if len(reasons) == 0 {
		reasons = append(reasons, "configuration changed")
	}
	return reasons
}

// explainChanges is explain's reasons by kind: the instance's own changes (attributes,
// sources, seed, kind version, environment), the upstream outputs it is given that changed,
// and the kind's notes on its own changes (ChangeNoter).
func explainChanges(st *State, d *Decision, v *Values) (own, up, notes []string) {
	old, cur := splitLines(st.Lines), splitLines(d.lines)
	var reasons, uncounted, recounted []string
	rekeyed := map[bool][]string{} // attributes now keyed by content (true) or by files (false)
	changed := map[string][2]string{}
	upstream := map[string]bool{}
	for _, label := range unionKeys(old, cur) {
		o, c := old[label], cur[label]
		if o == c {
			continue
		}
		kind, name, _ := strings.Cut(label, " ")
		switch kind {
		case "kind":
			reasons = append(reasons, fmt.Sprintf("stage kind %s changed (version %s → %s)", name, o, c))
		case "attr":
			if keyedAnew(o, c) {
				// the same upstream output, keyed by its content where it was keyed by its
				// files (or back): it tells nothing of the upstream stage
				byContent := strings.Contains(c, `"content `)
				rekeyed[byContent] = append(rekeyed[byContent], name)
				continue
			}
			if refs := v.refs[name]; len(refs) > 0 {
				for _, r := range refs {
					upstream[r] = true
				}
				continue
			}
			if strings.Contains(o+c, `"output `) || strings.Contains(o+c, `"content `) || objectPathJSON.MatchString(o+c) {
				// an upstream output given through each.value, which names no stage
				up = append(up, fmt.Sprintf("the upstream output given as %s changed", name))
				continue
			}
			was, now := displayValue(o), displayValue(c)
			if sw, sn := shortNumbers(was), shortNumbers(now); sw != sn {
				was, now = sw, sn
			}
			changed[name] = [2]string{o, c}
			if a := v.Get(name); strings.HasSuffix(c, " null") && a.IsWhollyKnown() && !a.IsNull() {
				// keyed as left out (KeyNormalizer) though set: its value as set, or, when
				// that is the same as before, that it no longer counts
				if actual := shortNumbers(displayValue(canonicalJSON(a))); actual != was {
					now = actual
				} else {
					uncounted = append(uncounted, name)
					continue
				}
			}
			if strings.HasSuffix(o, " null") && isDefault(d.inst.Kind, name, v.Get(name)) {
				// keyed as left out before (KeyNormalizer: a keyed attribute with a default
				// is null in no other way), and at its default now: it counts again
				recounted = append(recounted, name)
				continue
			}
			reasons = append(reasons, fmt.Sprintf("attribute %s %s → %s", name, unsetShown(d.inst.Kind, name, was, old), unsetShown(d.inst.Kind, name, now, cur)))
		case "source", "path":
			shown := CleanPath(v.String(name))
			if attr, path, ok := cutPathLabel(name); ok {
				shown = path
				switch {
				case o == "":
					// no path line before: written before paths were hashed, or not there then
					// (the attribute's own change, named above, says it all)
					if _, named := changed[attr]; !named {
						reasons = append(reasons, fmt.Sprintf("%s (given as %s) is now keyed by its content", path, attr))
					}
					continue
				case c == "":
					// not in the key now: gone, or no longer given (the attribute's own change
					// says so)
					if _, named := changed[attr]; !named {
						reasons = append(reasons, fmt.Sprintf("%s (given as %s) is gone", path, attr))
					}
					continue
				}
			}
			// decide completed the manifests of stages that run; an incomplete one (or a
			// recorded one without files) can only be named, not listed.
			if digestOnly(d.sources[name]) || digestOnly(st.Sources[name]) {
				reasons = append(reasons, fmt.Sprintf("%s changed", shown))
				continue
			}
			old := st.Sources[name]
			cur := asRecorded(d.sources[name], old)
			reasons = append(reasons, describeSourceChange(shown, DiffManifests(old, cur), old.Files, cur.Files))
			if sn, ok := d.inst.Kind.(SourceNoter); ok && kind == "source" {
				notes = append(notes, sn.SourceNotes(v, name, old.Files, cur.Files)...)
			}
		case "seed":
			if _, ok := changed["seed"]; ok {
				continue // an attribute seed changed with it, and says so (SeedOwner)
			}
			if a := cur["attr seed"]; a != "" && a == old["attr seed"] && strings.HasSuffix(a, " "+c) {
				// its own seed, unchanged, where the key had the pipeline's (SeedOwner): the
				// same seed as before is used, only the key says it now
				reasons = append(reasons, "now keyed by its own seed ("+c+") instead of the pipeline's")
				continue
			}
			reasons = append(reasons, fmt.Sprintf("seed %s → %s", orNone(o), orNone(c)))
			changed["seed"] = [2]string{o, c}
		case "env":
			reasons = append(reasons, fmt.Sprintf("environment changed (%s → %s)", orNone(o), orNone(c)))
		}
	}
	if len(uncounted) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s no longer %s with these settings", JoinList(uncounted, "and"), Agree(len(uncounted), "counts", "count")))
	}
	if len(recounted) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s %s again with these settings, at %s %s", JoinList(recounted, "and"),
			Agree(len(recounted), "counts", "count"), Agree(len(recounted), "its", "their"), Agree(len(recounted), "default", "defaults")))
	}
	for _, byContent := range []bool{true, false} {
		if names := rekeyed[byContent]; len(names) > 0 {
			by := Agree(len(names), "what the upstream output holds, not its files' names", "what the upstream outputs hold, not their files' names")
			if !byContent {
				by = Agree(len(names), "the upstream output's files", "the upstream outputs' files")
			}
			reasons = append(reasons, fmt.Sprintf("%s %s %s now keyed by %s", Agree(len(names), "attribute", "attributes"), JoinList(names, "and"), Agree(len(names), "is", "are"), by))
		}
	}
	for _, u := range sortedKeys(upstream) {
		up = append(up, fmt.Sprintf("upstream %s changed", u))
	}
	if n, ok := d.inst.Kind.(ChangeNoter); ok && len(changed) > 0 {
		again := func(labels ...string) []*Job { return keyedBefore(d.earlier, cur, labels) }
		notes = append(notes, n.ChangeNotes(v, changed, again)...)
	}
	return reasons, up, notes
}

// keyedBefore returns those of the earlier outputs (their Jobs, from Job.Earlier) whose key
// lines had, for every label, the line cur has now: the outputs of a change back, newest
// first.
func keyedBefore(earlier []*Job, cur map[string]string, labels []string) []*Job {
	var out []*Job
	for _, ej := range earlier {
		el, same := splitLines(ej.lines), true
		for _, label := range labels {
			same = same && el[label] == cur[label]
		}
		if same {
			out = append(out, ej)
		}
	}
	return out
}

// splitLines maps each key line's label ("attr epochs", "seed", "env …") to the rest.
func splitLines(lines []string) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 3)
		switch parts[0] {
		case "kind":
			m["kind "+parts[1]] = parts[2]
		case "attr", "source":
			m[parts[0]+" "+parts[1]] = parts[2]
		case "path":
			// "path ATTR "PATH" DIGEST": keyed by attribute and path, as the label of its input
			rest := strings.Join(parts[1:], " ")
			if i := strings.LastIndexByte(rest, ' '); i > 0 {
				m["path "+rest[:i]] = rest[i+1:]
			}
		case "seed":
			m["seed"] = strings.Join(parts[1:], " ")
		case "env":
			// Environment lines are "env NAME VALUE…": keyed by their first word.
			rest := strings.Join(parts[1:], " ")
			name, _, _ := strings.Cut(rest, " ")
			m["env "+name] = rest
		}
	}
	return m
}

func unionKeys(a, b map[string]string) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	return sortedKeys(set)
}

// displayValue shows a canonical attribute value ("TYPE VALUE") without its type.
func displayValue(canon string) string {
	if canon == "" {
		return "(unset)"
	}
	if _, val, ok := strings.Cut(canon, " "); ok {
		return val
	}
	return canon
}

// shortNumbers rewrites the fractional numbers of a JSON value as the float64 a stage decodes
// them to, in the fewest digits that give it back: HCL computes in arbitrary precision, so
// learning_rate = 1e-4 * 1.1 is 0.000109999… to 150 digits. Integers and strings are left
// as they are.
func shortNumbers(js string) string {
	var b strings.Builder
	inString, escaped := false, false
	for i := 0; i < len(js); i++ {
		ch := js[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '-' || ch >= '0' && ch <= '9':
			j := i + 1
			for j < len(js) && strings.IndexByte("0123456789.eE+-", js[j]) >= 0 {
				j++
			}
			tok := js[i:j]
			if f, err := strconv.ParseFloat(tok, 64); err == nil && strings.ContainsAny(tok, ".eE") {
				if short := strconv.FormatFloat(f, 'g', -1, 64); len(short) < len(tok) {
					tok = short
				}
			}
			b.WriteString(tok)
			i = j - 1
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// unsetShown is how a change names an attribute's value as keyed: "null", an attribute left
// unset (or keyed as left out, see KeyNormalizer), is "(default)" when kind gives it a
// default (Default, or one its documentation names, such as a train stage's learning_rate,
// its architecture's), else "(not set)"; "(default 0.1)" when kind names the default its
// key lines stand for (DefaultShower).
func unsetShown(k Kind, name, shown string, lines map[string]string) string {
	if shown != "null" {
		return shown
	}
	if ds, ok := k.(DefaultShower); ok {
		if s := ds.DefaultShown(name, func(label string) string { return lines[label] }); s != "" {
			return "(default " + s + ")"
		}
	}
	for _, a := range k.Attributes() {
		if a.Name == name && a.Default.IsNull() && !strings.Contains(a.Doc, "default") {
			return "(not set)"
		}
	}
	return "(default)"
}

// isDefault reports whether val is the default of kind k's attribute name, which has one.
func isDefault(k Kind, name string, val cty.Value) bool {
	for _, a := range k.Attributes() {
		if a.Name == name {
			return a.Default != cty.NilVal && !a.Default.IsNull() && val.IsWhollyKnown() && !val.IsNull() &&
				canonicalJSON(a.Default) == canonicalJSON(val)
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// describeSourceChange says how a source folder changed: files added, changed and removed,
// and moved (a removed file's bytes at an added path; was and now are the digests before and
// after), with a folder renamed as a whole said as such; then the folders added or removed
// that no file change accounts for (an empty class folder, say).
func describeSourceChange(path string, d ManifestDiff, was, now map[string]string) string {
	if d.Empty() {
		// The same files under the path given now: the folder moved or renamed, or written
		// another way (absolute, say); what a stage writes may name files by that path.
		return path + ": the same files, under the path given now"
	}
	d, unreadable := takeUnreadable(d, was, now)
	if d.Empty() {
		return path + ": " + unreadable
	}
	files, folders := splitFolderChanges(d)
	if files.Empty() && len(folders.Removed) == 0 && listsNoFolders(was) {
		// Recorded by a version that listed no folders: none was added, they are now counted.
		return path + ": its folders now count in the key (an empty one changes what a split does)"
	}
	// A folder added or removed with all its files (a new class) is said as one, with its
	// count of files, which the counts of files leave out. A folder with a file whose bytes
	// are elsewhere on the other side (a move: a folder renamed) is left to the files, as are
	// all folders of a manifest recorded before folders were listed.
	var addedIn, removedIn map[string]int
	if !listsNoFolders(was) {
		gone, came := map[string]bool{}, map[string]bool{}
		for _, f := range files.Removed {
			gone[was[f]] = HasContent(was[f])
		}
		for _, f := range files.Added {
			came[now[f]] = HasContent(now[f])
		}
		files.Added, addedIn = takeUnder(files.Added, d.Added, func(f string) bool { return gone[now[f]] })
		files.Removed, removedIn = takeUnder(files.Removed, d.Removed, func(f string) bool { return came[was[f]] })
	}
	var parts []string
	if !files.Empty() {
		parts = append(parts, describeFileChanges(files, was, now))
	}
	for _, f := range []struct {
		empty      []string
		filled     map[string]int
		one, other string
	}{{folders.Added, addedIn, "folder added", "folders added"}, {folders.Removed, removedIn, "folder removed", "folders removed"}} {
		list, total := slices.Sorted(maps.Keys(f.filled)), 0
		for _, n := range f.filled {
			total += n
		}
		for _, e := range f.empty { // an empty folder below a counted one is said with it
			if !eachFolderAbove(e, func(a string) bool { return f.filled[a] > 0 }) {
				list = append(list, e)
			}
		}
		if len(list) == 0 {
			continue
		}
		slices.Sort(list)
		shown := make([]string, 0, 4)
		for _, n := range list[:min(3, len(list))] {
			if c := f.filled[n]; c > 0 {
				shown = append(shown, fmt.Sprintf("%s (%s)", showName(n), Plural(c, "file", "files")))
			} else {
				shown = append(shown, showName(n))
			}
		}
		what := Agree(len(list), f.one, f.other)
		if len(list) > 3 {
			shown = append(shown, "…")
			what = fmt.Sprintf("%s (%d, %s)", what, len(list), Plural(total, "file", "files"))
		}
		parts = append(parts, what+": "+strings.Join(shown, ", "))
	}
	if unreadable != "" {
		parts = append(parts, unreadable)
	}
	return path + ": " + strings.Join(parts, "; ")
}

// takeUnreadable takes out of d the files and folders that can no longer be read (marked
// unreadableMark now), with what was listed below such a folder, those added that cannot be
// read, and those readable again, with what is listed below them now (one gone since is left
// to be said removed); it returns the rest and says what it took ("cannot be read now
// (permission denied): frog/ (20 files before)"), or "" for none.
func takeUnreadable(d ManifestDiff, was, now map[string]string) (ManifestDiff, string) {
	listed := func(m map[string]string, f string) bool {
		_, file := m[f]
		_, folder := m[f+"/"]
		return file || folder
	}
	// locked: readable before, not now; lockedNew: new, and not readable; opened: not
	// readable before, readable now (one gone since is only removed)
	var locked, lockedNew, opened []string
	for _, f := range append(slices.Clone(d.Added), d.Changed...) {
		switch {
		case now[f] != unreadableMark:
		case listed(was, f):
			locked = append(locked, f)
		default:
			lockedNew = append(lockedNew, f)
		}
	}
	for _, f := range append(slices.Clone(d.Removed), d.Changed...) {
		if was[f] == unreadableMark && listed(now, f) && now[f] != unreadableMark {
			opened = append(opened, f)
		}
	}
	if len(locked)+len(lockedNew)+len(opened) == 0 {
		return d, ""
	}
	taken := map[string]bool{}
	below := func(list []string, dir string) int {
		n := 0
		for _, e := range list {
			if strings.HasPrefix(e, dir+"/") {
				taken[e] = true
				if !isFolderEntry(e) {
					n++
				}
			}
		}
		return n
	}
	say := func(names []string, list []string, what, when string) string {
		shown := make([]string, 0, 4)
		for _, n := range names[:min(3, len(names))] {
			taken[n] = true
			if c := below(list, n); c > 0 {
				shown = append(shown, fmt.Sprintf("%s/ (%s %s)", showName(n), Plural(c, "file", "files"), when))
			} else {
				shown = append(shown, showName(n))
			}
		}
		for _, n := range names[min(3, len(names)):] {
			taken[n] = true
			below(list, n)
		}
		if len(names) > 3 {
			shown = append(shown, "…")
		}
		return what + ": " + strings.Join(shown, ", ")
	}
	var parts []string
	if len(locked) > 0 {
		parts = append(parts, say(locked, d.Removed, "cannot be read now (permission denied)", "before"))
	}
	if len(lockedNew) > 0 {
		parts = append(parts, say(lockedNew, nil, "added, cannot be read (permission denied)", ""))
	}
	if len(opened) > 0 {
		parts = append(parts, say(opened, d.Added, "readable again", "now"))
	}
	keep := func(list []string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(e string) bool { return taken[e] })
	}
	return ManifestDiff{Added: keep(d.Added), Changed: keep(d.Changed), Removed: keep(d.Removed)}, strings.Join(parts, "; ")
}

// takeUnder takes out of files those below a folder listed in entries (a manifest diff's
// added or removed entries, folders ending in "/") that is not itself below one, and counts
// them by that outermost folder; but a folder with a file keep says to leave (a move) keeps
// all its files.
func takeUnder(files, entries []string, keep func(string) bool) ([]string, map[string]int) {
	dirs := map[string]bool{}
	for _, e := range entries {
		if isFolderEntry(e) && !eachFolderAbove(e, func(a string) bool { return dirs[a] }) {
			dirs[e] = true // entries are sorted: a folder comes before those below it
		}
	}
	top := func(f string) string {
		var t string
		eachFolderAbove(f, func(a string) bool {
			if dirs[a] {
				t = a
				return true
			}
			return false
		})
		return t
	}
	for _, f := range files {
		if t := top(f); t != "" && keep(f) {
			delete(dirs, t)
		}
	}
	counts := map[string]int{}
	var rest []string
	for _, f := range files {
		if t := top(f); t != "" {
			counts[t]++
			continue
		}
		rest = append(rest, f)
	}
	return rest, counts
}

// asRecorded is m with each file name that is not UTF-8 written as recorded holds it, when
// it does: JSON writes each byte of such a name that is not part of a character as U+FFFD,
// so the file compares equal to its record (two names that differ only there compare as
// one: a rename between them goes unseen, the manifest's digest still tells the change).
// Names recorded holds no form of keep their bytes, for messages to show escaped.
func asRecorded(m, recorded Manifest) Manifest {
	var out Manifest
	for name := range m.Files {
		if utf8.ValidString(name) {
			continue
		}
		if _, ok := recorded.Files[jsonName(name)]; !ok {
			continue
		}
		if out.Files == nil {
			out = Manifest{Files: maps.Clone(m.Files), Sizes: maps.Clone(m.Sizes), Digest: m.Digest}
		}
		rec := jsonName(name)
		out.Files[rec], out.Sizes[rec] = out.Files[name], out.Sizes[name]
		delete(out.Files, name)
		delete(out.Sizes, name)
	}
	if out.Files == nil {
		return m
	}
	return out
}

// jsonName is name as encoding/json writes it: each byte that is not part of a UTF-8
// character becomes U+FFFD.
func jsonName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

// showName is a file name as messages show it: as is when it is UTF-8, else with Go's
// escapes for the bytes that are not (bad\xffname.jpg), never a raw byte.
func showName(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	q := strconv.Quote(name)
	return q[1 : len(q)-1]
}

// splitFolderChanges separates the files of a diff from its folders (listed with a trailing
// slash, see HashTree), leaving out the folders that a file added or removed below them
// accounts for, and those below another folder listed.
func splitFolderChanges(d ManifestDiff) (files, folders ManifestDiff) {
	files.Changed = d.Changed
	split := func(list []string) (fs, ds []string) {
		for _, e := range list {
			if isFolderEntry(e) {
				ds = append(ds, e)
			} else {
				fs = append(fs, e)
			}
		}
		return fs, ds
	}
	var added, removed []string
	files.Added, added = split(d.Added)
	files.Removed, removed = split(d.Removed)
	keep := func(dirs, files []string) []string {
		// Sets of folders, not a search of the files per folder: 5,000 new folders of 50,000
		// new files cost one pass, not their product.
		filled := map[string]bool{} // folders a file is below
		for _, f := range files {
			eachFolderAbove(f, func(a string) bool { filled[a] = true; return false })
		}
		kept := map[string]bool{}
		var out []string
		for _, dir := range dirs { // sorted, so a folder comes before those below it
			if filled[dir] || eachFolderAbove(dir, func(a string) bool { return kept[a] }) {
				continue
			}
			kept[dir] = true
			out = append(out, dir)
		}
		return out
	}
	folders.Added, folders.Removed = keep(added, files.Added), keep(removed, files.Removed)
	return files, folders
}

// eachFolderAbove calls f with each folder above the slash path p ("a/" and "a/b/" above
// "a/b/c" or "a/b/c/"), outermost first, until f returns true, and reports whether it did.
func eachFolderAbove(p string, f func(folder string) bool) bool {
	for i := 0; i < len(p)-1; i++ {
		if p[i] == '/' && f(p[:i+1]) {
			return true
		}
	}
	return false
}

// movedFolders returns the folders a file moved from and to (slash-separated, "." for the
// top): those of from and to less the path components they end in alike ("Bag/2024/x.jpg"
// to "bag/2024/x.jpg": "Bag" and "bag"), or their own folders when only the name is alike
// or nothing is.
func movedFolders(from, to string) (string, string) {
	f, t := strings.Split(from, "/"), strings.Split(to, "/")
	n := 0
	for n < len(f)-1 && n < len(t)-1 && f[len(f)-1-n] == t[len(t)-1-n] {
		n++
	}
	if n == 0 {
		return pathpkg.Dir(from), pathpkg.Dir(to)
	}
	return strings.Join(f[:len(f)-n], "/"), strings.Join(t[:len(t)-n], "/")
}

// isFolderEntry reports whether a manifest entry is a folder (see HashTree).
func isFolderEntry(rel string) bool { return strings.HasSuffix(rel, "/") }

// listsNoFolders reports whether files, a manifest's, lists files in subfolders but not the
// folders themselves, as manifests recorded before folders were listed do.
func listsNoFolders(files map[string]string) bool {
	nested := false
	for rel := range files {
		if isFolderEntry(rel) {
			return false
		}
		nested = nested || strings.Contains(rel, "/")
	}
	return nested
}

// describeFileChanges says how the files of a source folder changed (see describeSourceChange).
func describeFileChanges(d ManifestDiff, was, now map[string]string) string {
	// Moved: each added file paired with a removed one of the same bytes, in name order (not
	// entries without content, such as broken links: they share a marker, not bytes).
	from := map[string][]string{}
	for _, f := range d.Removed {
		from[was[f]] = append(from[was[f]], f)
	}
	var added, removed []string
	var moved [][2]string
	paired := map[string]bool{}
	for _, f := range d.Added {
		if l := from[now[f]]; HasContent(now[f]) && len(l) > 0 {
			moved = append(moved, [2]string{l[0], f})
			from[now[f]], paired[l[0]] = l[1:], true
			continue
		}
		added = append(added, f)
	}
	for _, f := range d.Removed {
		if !paired[f] {
			removed = append(removed, f)
		}
	}
	s := fmt.Sprintf("%d added, %d changed, %d removed", len(added), len(d.Changed), len(removed))
	if len(moved) > 0 {
		s += fmt.Sprintf(", %d moved", len(moved)) + describeMoves(moved, was, now)
	}
	// Examples of files added, changed and removed, each said as which when they are of more
	// than one of the three ("added Bag/5.jpg, removed Dress/2.jpg").
	var ex []string
	kinds := 0
	for _, l := range [][]string{added, d.Changed, removed} {
		if len(l) > 0 {
			kinds++
		}
	}
	for i, l := range [][]string{added, d.Changed, removed} {
		for _, f := range l {
			if len(ex) < 3 {
				if kinds > 1 {
					ex = append(ex, []string{"added ", "changed ", "removed "}[i]+showName(f))
				} else {
					ex = append(ex, showName(f))
				}
			}
		}
	}
	for _, m := range moved {
		if len(ex) < 3 {
			ex = append(ex, showName(m[0])+" → "+showName(m[1]))
		}
	}
	if len(ex) > 0 {
		s += " (e.g. " + strings.Join(ex, ", ") + ")"
	}
	return s
}

// GC removes stored outputs nothing needs (Store.GC): besides what every instance's current
// state and the run folders use, it keeps each output the pipeline file's plan would reuse
// (with the workflow's variables), so that gc after trying other settings keeps what the file
// itself needs. An instance whose key is not known until an upstream stage runs may reuse
// any of its earlier outputs then (its input may come out as before), so all of them are
// kept. With keepRuns ≥ 0 it first removes the run folders in runsDir beyond the newest
// keepRuns, so that what only they used goes too (< 0 keeps them all). It refuses when the
// plan cannot be made. first, when not nil, runs once the plan is made and before anything
// in the store is removed (gc --keep-champions removes promoted models there, whose files are
// hard links to the store's); it returns the folders outside the store it removed, or in a
// dry run would remove, which count as gone for what removing the outputs frees.
func (e *Engine) GC(runsDir string, dryRun bool, keepRuns int, first func() ([]string, error)) (GCResult, error) {
	plan, err := e.Plan(Selection{})
	if err != nil {
		return GCResult{}, fmt.Errorf("finding what %s needs (gc removes nothing until it can): %w", filepath.Base(e.Workflow.Config.Path), err)
	}
	var removing []string
	if first != nil {
		if removing, err = first(); err != nil {
			return GCResult{}, err
		}
	}
	keep, pending, planned := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, d := range plan {
		if hk, ok := d.inst.Kind.(HistoryKeeper); ok {
			if st, ok := e.Store.LoadState(d.Addr); ok {
				current := e.Store.historyJob(st)
				for _, dir := range hk.EarlierToKeep(current, current.Earlier()) {
					keep[filepath.Base(dir)] = true
				}
			}
		}
		switch {
		case d.Action == Cached && d.entry != nil:
			keep[d.entry.Output.Digest] = true
		case !d.Known:
			pending[d.Addr] = true
		}
		if d.Known && d.Action != Cached {
			planned[d.Key] = true // a run resumes from its scratch
		}
	}
	return e.Store.GC(runsDir, dryRun, keep, pending, planned, keepRuns, removing...)
}
