package pipeline

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Kind is a stage kind (split, augment, train, …). The engine decodes a stage's attributes
// with the kind's schema, keys the stage by everything that can change its output, and calls
// Run only when that key has no published output yet.
type Kind interface {
	// Name is the first label of `stage "NAME" "…"`.
	Name() string
	// Version is part of every cache key: bump it when the same inputs give a different output.
	Version() int
	// Attributes is the schema of the stage body.
	Attributes() []Attribute
	// Outputs names what the stage produces: each is a file or folder of that name in the
	// output directory, and what `stage.KIND.NAME.OUTPUT` refers to.
	Outputs() []string
	// Run produces the outputs into job.Out.
	Run(ctx context.Context, job *Job) error
}

// Validator is implemented by kinds that check their evaluated attributes beyond types
// (ranges, combinations). Diagnostics should point at v.Range(name).
type Validator interface {
	Validate(v *Values) hcl.Diagnostics
}

// PathChecker is implemented by kinds that can tell from what is at a path, written in the
// pipeline file where a stage output is expected or as a source, that the stage will fail (a
// model of another architecture, a class folder with too few images). CheckPath gets the
// stage's values, the attribute and the path's absolute form, which exists; it returns why
// the stage will fail, or "". Validate warns with it, and plan and run for sources: the path
// may yet change before the stage runs.
type PathChecker interface {
	CheckPath(v *Values, attr, abs string) string
}

// PathWarner is implemented by kinds that can tell from what is at a source path, or at a
// path written where a stage output is expected, something the user should hear of that
// does not fail the stage (two class folders that a file system ignoring letter case would
// make one; a promotion folder where its SavedModel is meant). WarnPath gets what PathChecker's CheckPath gets and
// returns a sentence for each such thing; validate warns with them, and plan for the stages it
// will run. The stage itself says them again when it runs.
type PathWarner interface {
	WarnPath(v *Values, attr, abs string) []string
}

// Environmental is implemented by kinds whose output depends on something outside the
// workspace, such as the libtensorflow version. Each line Environment returns for an
// instance's values (some influences count only with some settings: the machine's core
// count only when the stage leaves its thread count to it) goes into the cache key; an
// error (an influence that cannot be found) fails the plan of the stage.
type Environmental interface {
	Environment(v *Values) ([]string, error)
}

// KeyNormalizer is implemented by kinds with attribute values that cannot change their
// output: a value equal to a default the kind resolves itself (an architecture's epochs),
// or a setting the chosen mode ignores (a plateau setting under a cosine schedule).
// KeyValues returns, by attribute name, the value to key instead of the one given (what
// leaving the attribute out gives), so that writing such a value out, or changing it, does
// not rerun the stage. Attributes it leaves out are keyed as given.
type KeyNormalizer interface {
	KeyValues(v *Values) map[string]cty.Value
}

// DefaultShower is implemented by kinds with an attribute whose default depends on the
// stage's other settings, so that Attribute.Default cannot hold it (a split's test: 0.1,
// unless test_source is the test set). DefaultShown returns the value a plan names for
// attribute name left unset, given the lines of the same key by label (keyed("attr
// test_source") is `string "held"`, "" without that line), or "" to name it "(default)".
type DefaultShower interface {
	DefaultShown(name string, keyed func(label string) string) string
}

// ChangeNoter is implemented by kinds for which some changes have consequences a plan should
// say beyond the change itself (the split draws its sets afresh when its fractions or the
// seed change). ChangeNotes gets the instance's values now and the attributes whose keyed
// values changed, by name, with their old and new values as keys hold them (canonical JSON
// after the type, "null" when left out), and "seed" with the old and new seed, and again,
// which returns the outputs the instance had before its last (still in the store) that had the
// key lines it has now under every label given ("attr val", "seed"), newest first, each as a
// run's Job.Earlier gives it (so that the kind can check its files as a run would): a change
// back to settings it had before; it returns what to add to the reasons.
type ChangeNoter interface {
	ChangeNotes(v *Values, changed map[string][2]string, again func(labels ...string) []*Job) []string
}

// SourceNoter is implemented by kinds that can say what a change to the files of one of
// their Source attributes means for their output (a split: the classes that come and go, the
// photos that change class). SourceNotes gets the stage's values now, the attribute's name
// and the digests of its files before and now, by slash-separated path (Manifest.Files,
// folders as "NAME/"), and returns notes for the plan.
type SourceNoter interface {
	SourceNotes(v *Values, attr string, was, now map[string]string) []string
}

// Heavy is implemented by kinds that saturate the CPU (training). Heavy stages take one of
// a limited number of tokens, so two never fight for the same cores.
type Heavy interface {
	Heavy(v *Values) bool
}

// Effector is implemented by kinds with an effect outside the store (select promotes a
// model). Apply runs after the stage's output is available, whether the stage ran or was
// reused, so the effect always follows the current decision; it must be idempotent. job.Out
// is then the published (read-only) output. The note it returns goes into run.json and the
// log; Job.SetSummary gives it in a few words for listings of runs.
type Effector interface {
	Apply(ctx context.Context, job *Job, runID string) (note string, err error)
}

// Bulky is implemented by kinds whose output holds folders of many files (the data stages'
// images). A run folder gets each such folder as one symbolic link into the store instead of
// a hard link per file: at 50,000 photos that would be some 150,000 links in every run
// folder, cached runs included. gc keeps what run folders link to. Paths are slash-separated
// and relative to the stage's output.
type Bulky interface {
	BulkDirs(v *Values) []string
}

// OutputReferrer is implemented by kinds whose named outputs use files of their output
// object outside their own folders (a split's train, val and test list the images of its
// shared images/ folder). OutputRefs returns, for the published object at dir, the files
// each such output uses outside its folder, slash-separated and relative to dir. The digest
// of an output it names (see OutputDigests) then covers its own files and those alone, not
// every part of the object that is no named output: a photo added to the test set leaves the
// training set's digest, and so the trainings, as they were.
type OutputReferrer interface {
	OutputRefs(dir string) (map[string][]string, error)
}

// ContentDigester is implemented by kinds some of whose named outputs have a digest of what
// they hold that leaves out how their files are named (a split's sets: each image's class,
// content and copy, not the photo's file name). OutputContents returns, for the published
// object at dir whose files (slash-separated, relative to dir) have the SHA-256 digests in
// files, that digest for each output that has one. An attribute with Attribute.ByContent is
// keyed by it, so that renaming photos, which rewrites the sets' manifests but not what they
// hold, does not rerun a training. Entries keep the digests for good: a change to what they
// cover must come with a new Version of the kind, so that its outputs are made again.
type ContentDigester interface {
	OutputContents(dir string, files FileDigests) (map[string]string, error)
}

// AttrRole says how the engine treats an attribute beyond passing its value on.
type AttrRole int

const (
	// Plain attributes are part of the cache key by value.
	Plain AttrRole = iota
	// Source attributes name a file or folder in the workspace whose content (not its name
	// alone) is part of the cache key.
	Source
)

// Attribute describes one attribute of a stage body.
type Attribute struct {
	Name     string
	Type     cty.Type  // cty.DynamicPseudoType accepts anything (e.g. a map of upstream outputs)
	Required bool      // else Default applies (cty.NilVal: null)
	Default  cty.Value // used when the body and the pipeline block leave it unset
	Role     AttrRole
	Doc      string
	// Accepts names the output types (see OutputTyper) that stage outputs reaching this
	// attribute may have, directly or inside a map or object; a reference to an output of
	// another type is an error before anything runs. Empty accepts any output; literal values
	// and the outputs of kinds without OutputTypes are never checked.
	Accepts []string
	// KeyedWhenSet leaves the attribute out of cache keys while its value is null, so that a
	// kind can gain an optional attribute without rerunning every stage it made before.
	KeyedWhenSet bool
	// NonEmpty refuses, before anything runs, a stage output that its kind says will be empty
	// (see EmptyOutputter): a training set or a test set with nothing in it.
	NonEmpty bool
	// ByContent keys the attribute by the content digest of each stage output it is given
	// (ContentDigester) where the output has one, instead of the digest of its files. It is
	// for a kind whose result depends on what an output holds, not on its files' names (a
	// training), and such a kind must read the output in an order of its own, not in the
	// order of those names.
	ByContent bool
}

// SeedOwner is implemented by kinds whose stages can take a seed of their own (a split's
// seed, to redraw the sets without reseeding training). KeySeed returns the seed a stage with
// values v uses, given the pipeline's: its key has that seed, so that a new pipeline seed
// does not rerun a stage that uses its own.
type SeedOwner interface {
	KeySeed(v *Values, pipeline int64) int64
}

// HistoryKeeper is implemented by kinds that go back to an earlier output of theirs made with
// the settings they have again (Job.Earlier: a split keeps the sets of an earlier split when
// its settings are put back, so that settings tried for a while move no photo for good): gc
// keeps the earlier outputs (of the last keys State.Earlier records) the kind would go back
// to, while the stage is in the pipeline, as it keeps the current one.
type HistoryKeeper interface {
	// EarlierToKeep returns which of the earlier outputs (their folders, each the Previous of
	// one of earlier, newest first, as Job.Earlier gives them) a stage may go back to, given
	// current, whose Previous is its current output ("" for none). Each Job checks its
	// output's files against their record (PreviousChanged), as a run's do, so that the kind
	// can pass over one it would not trust.
	EarlierToKeep(current *Job, earlier []*Job) []string
}

// SettingReader is implemented by kinds whose checks read pipeline settings other than their
// attributes (Values.Setting): such a setting is in use wherever a stage of the kind is.
type SettingReader interface {
	ReadsSettings() []string
}

// Resumer is implemented by kinds that keep what an interrupted run did in the work folder
// of its key and resume from it. ResumeNote says, from that folder (which may not exist),
// what the next run of the key resumes from, or "" when it starts afresh.
type Resumer interface {
	ResumeNote(workDir string) string
}

// EmptyOutputter is implemented by kinds some of whose outputs come out empty with some
// values (a split's val set with val = 0). EmptyOutputs maps each such output to why,
// phrased to follow "which will be empty: ".
type EmptyOutputter interface {
	EmptyOutputs(v *Values) map[string]string
}

// OutputTyper is implemented by kinds that say what each output holds, so that a reference to
// one given to an attribute that takes something else (a split's test set as evaluate's
// model) is reported by validate rather than failing at run time (see Attribute.Accepts).
type OutputTyper interface {
	// OutputTypes maps output names to what they hold: a short noun such as "image set" or
	// "trained model", matched against Attribute.Accepts and quoted in messages.
	OutputTypes() map[string]string
}

// Registry maps kind names to kinds.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry returns a registry holding kinds.
func NewRegistry(kinds ...Kind) (*Registry, error) {
	r := &Registry{kinds: map[string]Kind{}}
	for _, k := range kinds {
		if err := r.Register(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a kind; names must be unique.
func (r *Registry) Register(k Kind) error {
	if _, dup := r.kinds[k.Name()]; dup {
		return fmt.Errorf("stage kind %q registered twice", k.Name())
	}
	if t, ok := k.(OutputTyper); ok {
		for _, o := range sortedKeys(t.OutputTypes()) {
			if !contains(k.Outputs(), o) {
				return fmt.Errorf("stage kind %q gives a type to %q, which is not one of its outputs", k.Name(), o)
			}
		}
	}
	r.kinds[k.Name()] = k
	return nil
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names returns the registered kind names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
