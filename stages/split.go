package stages

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages/raster"
)

// Split is the split stage kind: it discovers the images of a source folder, rejects bad
// files with reasons, stores every usable image at the configured size (or, with
// store_images = false, none: its manifests name the originals), and divides them into
// stratified train/val/test sets that stay stable across retrains.
type Split struct{}

// SplitConfig is a split stage's attributes.
type SplitConfig struct {
	Source           string   `cty:"source"`
	TestSource       *string  `cty:"test_source"`
	Val              float64  `cty:"val"`
	Test             *float64 `cty:"test"`
	ImageSize        int      `cty:"image_size"`
	Channels         int      `cty:"channels"`
	Resize           string   `cty:"resize"`
	MaxPixels        int64    `cty:"max_pixels"`
	MinSide          int      `cty:"min_side"`
	DropSmallClasses bool     `cty:"drop_small_classes"`
	Format           string   `cty:"format"`
	Quality          int      `cty:"quality"`
	Compression      string   `cty:"compression"`
	NearDuplicates   bool     `cty:"near_duplicates"`
	StoreImages      *bool    `cty:"store_images"`
	Seed             *int64   `cty:"seed"`
}

// seed is the seed the sets are drawn with: the stage's own, else the pipeline's.
func (cfg SplitConfig) seed(job *pipeline.Job) int64 {
	if cfg.Seed != nil {
		return *cfg.Seed
	}
	return job.Seed
}

// stores reports whether the split stores its images (store_images, true unless set false).
func (cfg SplitConfig) stores() bool { return cfg.StoreImages == nil || *cfg.StoreImages }

// storesImages is SplitConfig.stores for a stage's values.
func storesImages(v *pipeline.Values) bool {
	s := v.Get("store_images")
	return !s.IsKnown() || s.IsNull() || s.True()
}

// Name implements pipeline.Kind.
func (Split) Name() string { return "split" }

// EarlierToKeep implements pipeline.HistoryKeeper: of the earlier splits (newest first), the
// newest made with each seed, val, test and test_source whose records are as they were
// written (recordsChanged), unless the current split is one made with them whose records are:
// the split goes back to that one when those settings are put back, or when the current
// split's records are damaged (Job.Earlier), and passes over one whose records changed. Not
// those that differ only in how images are stored, whose sets the one kept has. Settings are
// compared as the split compares them (splitSettings.inWorkspace).
func (Split) EarlierToKeep(current *pipeline.Job, earlier []*pipeline.Job) []string {
	settingsOf := func(j *pipeline.Job) (splitSettings, bool) {
		if j == nil || j.Previous == "" {
			return splitSettings{}, false
		}
		var rep splitReport
		b, err := os.ReadFile(filepath.Join(j.Previous, "report", "split.json"))
		if err != nil || json.Unmarshal(b, &rep) != nil || rep.Settings == nil {
			return splitSettings{}, false
		}
		return rep.Settings.inWorkspace(j.Workspace), true
	}
	seen := map[splitSettings]bool{}
	if s, ok := settingsOf(current); ok && recordsChanged(current, current.Previous) == "" {
		seen[s] = true
	}
	var keep []string
	for _, ej := range earlier {
		// The records are read only for settings not yet seen: a few files an output.
		if s, ok := settingsOf(ej); ok && !seen[s] && recordsChanged(ej, ej.Previous) == "" {
			seen[s] = true
			keep = append(keep, ej.Previous)
		}
	}
	return keep
}

// Version implements pipeline.Kind. (14: split.json names files by their folder as
// configured, as rejected.json does, telling a test_source file from a source file of the
// same name; 15: min_side, in stored_with; 16: rejected.json's reasons; 17: a JPEG image/jpeg
// calls unsupported in its header is decoded by libjpeg-turbo, kept when that works; 18: the
// JPEG check of a split storing no images follows arithmetic-conditioning segments,
// jpegCheckVersion; 19: per-class counts by largest remainder; 20: files stored as one image
// are one image of their class, listed once; 21: near-duplicates compared by colour too; 22:
// class folders that are one folder through symbolic links fail the split; 23: HEIC, AVIF,
// SVG and ICO files rejected as unsupported, long class names shortened on the plot,
// dropped_class_images; 24: an unreadable folder's reason without its absolute path; 25:
// copies left out of the manifests recorded; 26: sets.bin, every file placed now or before;
// 27: an 8×8 colour grid, compared block by block too; 28: a class folder inside another
// through symbolic links fails the split; 29: Windows cursors rejected as unsupported; 30:
// damaged_jpegs, what libjpeg-turbo said of the JPEGs it decoded past damage in; 31: stored
// images of version 16 (a JPEG's crop decoded with context around it, a TIFF's
// Orientation, a GIF's frame in its place on the canvas, translucent colour rounded to the
// nearest level), manifests of stored JPEGs name their decoder (read_with); 32: read_with
// names the libtensorflow of the decoder. Stored images have a version of their own,
// storedImagesVersion: a split of this version links those a split of 31 stored.)
func (Split) Version() int { return 32 }

// BulkDirs implements pipeline.Bulky: run folders link the stored images' folder as a whole.
func (Split) BulkDirs(v *pipeline.Values) []string {
	if !storesImages(v) {
		return nil
	}
	return []string{"images"}
}

// OutputRefs implements pipeline.OutputReferrer: each set uses the stored images its
// manifest lists, so a set's digest changes with its own images only.
func (Split) OutputRefs(dir string) (map[string][]string, error) {
	return manifestRefs(dir, TrainSet, ValSet, TestSet)
}

// manifestRefs returns, for each of sets (folders of dir holding a manifest), the files
// outside its folder and inside dir that its manifest lists, slash-separated and relative
// to dir.
func manifestRefs(dir string, sets ...string) (map[string][]string, error) {
	refs := map[string][]string{}
	for _, set := range sets {
		used := []string{}
		_, err := EachManifestEntry(filepath.Join(dir, set), func(e Entry) error {
			if e.Path == "" {
				return nil // not stored: its original is a source, not an output
			}
			rel := path.Clean(path.Join(set, filepath.ToSlash(e.Path)))
			if filepath.IsLocal(rel) && !strings.HasPrefix(rel, set+"/") {
				used = append(used, rel)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		refs[set] = used
	}
	return refs, nil
}

// Environment implements pipeline.Environmental: JPEGs are decoded by TensorFlow's
// libjpeg-turbo, the rest by Go and its image modules, and the report plots class names
// (splitEnvironment).
func (Split) Environment(*pipeline.Values) ([]string, error) {
	return append([]string{"libtensorflow " + graphs.TensorFlowVersion()}, splitEnvironment()...), nil
}

// Outputs implements pipeline.Kind: three data folders with a manifest each, and a report.
func (Split) Outputs() []string { return []string{TrainSet, ValSet, TestSet, "report"} }

// OutputTypes implements pipeline.OutputTyper.
func (Split) OutputTypes() map[string]string {
	return map[string]string{TrainSet: typeImages, ValSet: typeImages, TestSet: typeImages, "report": typeReport}
}

// Attributes implements pipeline.Kind.
func (Split) Attributes() []pipeline.Attribute {
	return []pipeline.Attribute{
		{Name: "source", Type: cty.String, Required: true, Role: pipeline.Source, Doc: "folder of <class>/<image> files"},
		{Name: "test_source", Type: cty.String, Role: pipeline.Source, Doc: "a separate folder for the test set; source is then split into train and val only"},
		{Name: "val", Type: cty.Number, Default: cty.NumberFloatVal(0.1), Doc: "fraction of each class for validation"},
		{Name: "test", Type: cty.Number, Doc: "fraction of each class for testing (default 0.1; not with test_source)"},
		{Name: "seed", Type: cty.Number, KeyedWhenSet: true, Doc: "the seed the sets are drawn with (default: the pipeline's seed); a new one draws them afresh without seeding augmentation and training anew"},
		{Name: "image_size", Type: cty.Number, Required: true, Doc: "side of the stored square images, in pixels"},
		{Name: "channels", Type: cty.Number, Default: cty.NumberIntVal(3), Doc: "3 for RGB, 1 for grey"},
		{Name: "resize", Type: cty.String, Default: cty.StringVal(ResizeCenterCrop), Doc: "center_crop, pad or squash"},
		{Name: "max_pixels", Type: cty.Number, Default: cty.NumberIntVal(DefaultMaxPixels), Doc: "larger images are rejected unread"},
		{Name: "min_side", Type: cty.Number, Default: cty.NumberIntVal(DefaultMinSide), Doc: "images narrower or lower than this many pixels are rejected from their header (tracking pixels; set it higher for icons and thumbnails)"},
		{Name: "drop_small_classes", Type: cty.Bool, Default: cty.False, Doc: "drop classes too small to split instead of failing"},
		{Name: "format", Type: cty.String, Default: cty.StringVal(FormatPNG), Doc: "png (lossless) or jpeg"},
		{Name: "quality", Type: cty.Number, Default: cty.NumberIntVal(95), Doc: "JPEG quality"},
		{Name: "compression", Type: cty.String, Default: cty.StringVal(CompressionNone), Doc: "PNG compression: none (fastest to write and read) or fast (about half the size)"},
		{Name: "near_duplicates", Type: cty.Bool, Default: cty.True, Doc: "keep copies of one picture at other sizes or JPEG qualities in one set, like identical files"},
		{Name: "store_images", Type: cty.Bool, KeyedWhenSet: true, Doc: "true (the default): store every image fitted to image_size; false: store none, the manifests name the originals, which augment, train and evaluate fit as they read them (no second copy on disk, a decode per read; a JPEG is then checked from its markers, not decoded, unless near_duplicates needs its pixels)"},
	}
}

// EmptyOutputs implements pipeline.EmptyOutputter: val = 0 leaves the val set empty, and test
// = 0 (without test_source) the test set.
func (Split) EmptyOutputs(v *pipeline.Values) map[string]string {
	out := map[string]string{}
	if usable(v, "val") && num(v, "val") == 0 {
		out[ValSet] = "the split sets val = 0"
	}
	if usable(v, "test") && num(v, "test") == 0 && v.Get("test_source").IsNull() {
		out[TestSet] = "the split sets test = 0"
	}
	return out
}

// Validate implements pipeline.Validator.
func (Split) Validate(v *pipeline.Values) hcl.Diagnostics {
	var d diagList
	d.fraction(v, "val", true)
	if !v.Get("test").IsNull() {
		d.fraction(v, "test", true)
		if !v.Get("test_source").IsNull() {
			d.add(v, "test", "test and test_source together", "With test_source, the test set is that folder; remove test (source is then split into train and val only).")
		}
	}
	// test has a default without test_source (with it, that folder is the test set).
	test, testIs := num(v, "test"), "test"
	if v.Get("test").IsNull() && v.Get("test_source").IsNull() {
		test, testIs = defaultTest, "test (its default)"
	}
	if sum := num(v, "val") + test; known(v, "val", "test", "test_source") && sum >= 1 {
		at := "val" // the larger of the two, where a test written alone is pointed at
		if !v.Get("test").IsNull() && test > num(v, "val") {
			at = "test"
		}
		d.add(v, at, "No images left for training", fmt.Sprintf("val = %g and %s = %g leave nothing for train; keep val + test below 1.", num(v, "val"), testIs, test))
	}
	d.intRange(v, "image_size", 4, 4096)
	if usable(v, "seed") && !v.Inherited("seed") { // the pipeline block's is checked there
		if _, acc := v.Get("seed").AsBigFloat().Int64(); acc != big.Exact {
			d.add(v, "seed", "Invalid seed", fmt.Sprintf("seed = %s: use a whole number (of 64 bits).", hclValue(v.Get("seed"))))
		}
	}
	d.oneOf(v, "channels", "1", "3")
	d.oneOf(v, "resize", ResizePolicies...)
	d.oneOf(v, "format", FormatPNG, FormatJPEG)
	d.intRange(v, "quality", 1, 100)
	d.oneOf(v, "compression", CompressionNone, CompressionFast)
	d.intRange(v, "max_pixels", 1, 1<<40)
	d.intRange(v, "min_side", 1, 1<<20)
	d.sizeLimits(v)
	if s := v.Get("store_images"); s.IsKnown() && !s.IsNull() && s.False() {
		// (not compression, which a pipeline block may set for augment's copies too)
		defaults := attributeDefaults(Split{}.Attributes())
		for _, name := range []string{"format", "quality"} {
			if val := v.Get(name); val.IsWhollyKnown() && !val.IsNull() && !val.Equals(defaults[name]).True() {
				d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Setting without effect",
					Detail: name + " says how stored images are written, and store_images = false stores none: remove it, or store the images.", Subject: v.Range(name)})
			}
		}
	}
	validateFolders(&d, v)
	return d.diags
}

// sizeLimits reports min_side and max_pixels that together reject every image: one with both
// sides at least min_side has at least min_side² pixels, more than max_pixels allows. The
// error points at min_side, or at max_pixels when min_side is left at its default.
func (d *diagList) sizeLimits(v *pipeline.Values) {
	side, okSide := wholeNumber(v, "min_side", 1, 1<<20)
	most, okMost := wholeNumber(v, "max_pixels", 1, 1<<40)
	if !okSide || !okMost || side*side <= most {
		return
	}
	at := "min_side"
	if side == DefaultMinSide {
		at = "max_pixels"
	}
	d.add(v, at, "No image can pass min_side and max_pixels",
		fmt.Sprintf("min_side = %d rejects images with a side under %d pixels, and max_pixels = %d those of more than %d pixels: an image %d×%d or larger has at least %d pixels, so every image is rejected. Lower min_side, or raise max_pixels to at least %d.",
			side, side, most, most, side, side, side*side, side*side))
}

// CheckPath implements pipeline.PathChecker for the source and test_source folders: what
// their listings show will fail the stage (layoutProblems); and, in source, a class folder
// holding fewer files than the split needs images per class fails it, unless
// drop_small_classes leaves it out. Files are counted from their folders' listings, not read
// (countClassFiles), so a class with enough files can still fall short by its bad or
// identical images; the stage says so.
func (Split) CheckPath(v *pipeline.Values, attr, abs string) string {
	if attr != "source" && attr != "test_source" {
		return ""
	}
	l, err := listClasses(abs)
	if err != nil {
		return "" // the stage's own error says what is wrong with the folder
	}
	if why := layoutProblems(v, attr, l); why != "" {
		return why
	}
	need, drop, ok := sourceNeed(v)
	if attr != "source" || !ok || drop {
		return ""
	}
	classes, count, unreadable := countClassFiles(abs, l)
	var small []string
	for _, c := range classes {
		if count[c] < need {
			has := fmt.Sprintf("%q has %s", c, plural(count[c], "file", "files"))
			if why := unreadable[c]; why != "" {
				has += " (" + why + ")"
			}
			small = append(small, has)
		}
	}
	if len(small) == 0 {
		return ""
	}
	return fmt.Sprintf("class %s, and this split needs at least %d images per class (one per split): add images, or set drop_small_classes = true to leave such classes out",
		pipeline.ListSome(small, 5), need)
}

// defaultTest is the test fraction when test is not set and there is no test_source.
const defaultTest = 0.1

// minPerClass is the fewest images a class needs for the configured split.
// sourceNeed returns, from a split's values, the fewest images a class of its source needs
// (minPerClass) and whether drop_small_classes leaves smaller ones out; ok is false while any
// of the settings it depends on is not known yet.
func sourceNeed(v *pipeline.Values) (need int, drop, ok bool) {
	if !known(v, "val", "test", "test_source", "drop_small_classes") {
		return 0, false, false
	}
	test := num(v, "test")
	if v.Get("test").IsNull() {
		test = defaultTest
	}
	if !v.Get("test_source").IsNull() {
		test = 0
	}
	d := v.Get("drop_small_classes")
	return minPerClass(num(v, "val"), test), !d.IsNull() && d.True(), true
}

func minPerClass(val, test float64) int {
	n := 1
	if val > 0 {
		n++
	}
	if test > 0 {
		n++
	}
	return n
}

// splitReport is report/split.json.
type splitReport struct {
	Classes    []classCounts `json:"classes"`
	Total      classCounts   `json:"total"`
	Rejected   int           `json:"rejected"`
	Duplicates [][]string    `json:"duplicates,omitempty"` // groups of files stored as the same image
	Conflicts  [][]string    `json:"label_conflicts,omitempty"`
	// Near are groups of files that are one picture at different sizes or qualities (each
	// group with at least two different stored images); NearConflicts those across classes.
	Near          [][]string     `json:"near_duplicates,omitempty"`
	NearConflicts [][]string     `json:"near_duplicate_label_conflicts,omitempty"`
	Dropped       []string       `json:"dropped_classes,omitempty"`
	DroppedImages map[string]int `json:"dropped_class_images,omitempty"` // usable images of each (drop)
	Kept          int            `json:"kept_from_previous_split"`
	Settings      *splitSettings `json:"settings,omitempty"`
	TestSource    bool           `json:"separate_test_source"`
	Leaked        []string       `json:"removed_from_train_val,omitempty"` // also in test_source, or near-duplicates of its images
	Moved         []movedImage   `json:"moved_from_previous_split,omitempty"`
	Stored        string         `json:"stored_with"` // what stored images depend on besides their source (storedWith)
	// conflictExample and nearConflictExample describe the first group of Conflicts and of
	// NearConflicts for the log (labelConflictExample).
	conflictExample, nearConflictExample string
	// shortHeldOut warns of classes with fewer val or test images than their quotas, and
	// noTestImages of each class whose test_source folder gave no usable image, for the log.
	shortHeldOut string
	noTestImages []string
	// Fallbacks are the digests of the JPEGs decoded by image/jpeg, which a rerun decodes again.
	Fallbacks []string `json:"decoded_by_image_jpeg,omitempty"`
	// Damaged are the JPEGs libjpeg-turbo decoded past damage in, which a rerun decodes again
	// (to list them again).
	Damaged []DamagedJPEG `json:"damaged_jpegs,omitempty"`
}

// movedImage is an image that was in another set in the previous split: it joined a group
// (identical or near-identical images) whose files were in several sets, and the group took
// the held-out one; or its group moved to give its class an image in a set it had none in.
type movedImage struct {
	Path string `json:"path"`
	From string `json:"from"`
	To   string `json:"to"`
}

// splitSettings are what an image's set depends on besides its content. A previous split
// is reused (images keep their sets) only when it was made with the same settings.
type splitSettings struct {
	Seed       int64   `json:"seed"`
	Val        float64 `json:"val"`
	Test       float64 `json:"test"`
	TestSource string  `json:"test_source"` // the folder, "" without one
}

// inWorkspace returns recorded settings as a split run with them in workspace records them
// now, to compare with other settings: a test_source recorded as written (before paths were
// cleaned, and before an absolute path inside the workspace was made relative) is cleaned
// and made relative to the workspace.
func (s splitSettings) inWorkspace(workspace string) splitSettings {
	if s.TestSource != "" {
		s.TestSource = pipeline.CleanPath(pipeline.WorkspaceRel(workspace, s.TestSource))
	}
	return s
}

type classCounts struct {
	Name  string `json:"name"`
	Train int    `json:"train"`
	Val   int    `json:"val"`
	Test  int    `json:"test"`
	Total int    `json:"total"`
}

// processed is a usable image after loading and storing.
type processed struct {
	cand   candidate
	digest string
	stored string       // relative to the output folder
	pixels string       // SHA-256 of the stored file: equal for files that become the same image
	exact  string       // the smallest digest among the files stored as that same image
	group  string       // the smallest exact among its near-duplicates: what shares a set
	print  *fingerprint // with near_duplicates on (nil otherwise: a third of a kilobyte per file)
	test   bool         // from test_source
	// fallback: a JPEG libjpeg-turbo refused, decoded by image/jpeg (a later split decodes it
	// again rather than reuse it, in case libjpeg-turbo was what failed)
	fallback bool
}

// source is the file as a manifest's Source names it: its path in the source folder, or in
// test_source after testPrefix.
func (p processed) source() string {
	if p.test {
		return testPrefix + p.cand.Rel
	}
	return p.cand.Rel
}

// shown is the path the split's reports name a file by: its folder as configured (source, or
// test_source for its files) joined with its path there.
func (cfg SplitConfig) shown(p processed) string {
	folder := cfg.Source
	if p.test {
		folder = *cfg.TestSource
	}
	return filepath.ToSlash(filepath.Join(folder, p.cand.Rel))
}

// Run implements pipeline.Kind.
func (Split) Run(ctx context.Context, job *pipeline.Job) error {
	var cfg SplitConfig
	if err := job.Values.Decode(&cfg); err != nil {
		return err
	}
	// As the key has them: "./raw/" and "raw" are one folder, which makes one output.
	cfg.Source = pipeline.CleanPath(cfg.Source)
	if cfg.TestSource != nil {
		ts := pipeline.CleanPath(*cfg.TestSource)
		cfg.TestSource = &ts
	}
	testFrac := defaultTest
	if cfg.Test != nil {
		testFrac = *cfg.Test
	}
	if cfg.TestSource != nil {
		testFrac = 0
	}
	files, classes, rejected, err := discover(job.Path(cfg.Source))
	if err != nil {
		return fmt.Errorf("source %s: %w", cfg.Source, err)
	}
	prefixPaths(rejected, cfg.Source)
	if len(classes) == 0 {
		return errNoClasses(cfg.Source)
	}
	for _, w := range nameClashes(classes, cfg.Source) {
		job.Logf("warning: %s", w)
	}
	var testFiles []candidate
	var tclasses []string // test_source's class folders
	if cfg.TestSource != nil {
		tf, tcs, trej, err := discover(job.Path(*cfg.TestSource))
		if err != nil {
			return fmt.Errorf("test_source %s: %w", *cfg.TestSource, err)
		}
		tclasses = tcs
		if err := testClassesNotInSource(*cfg.TestSource, cfg.Source, tclasses, classes); err != nil {
			return err
		}
		for _, c := range classes {
			if !contains(tclasses, c) {
				job.Logf("warning: test_source %s has no folder for class %q: the test set has no images of it", *cfg.TestSource, c)
			}
		}
		testFiles = tf
		prefixPaths(trej, *cfg.TestSource)
		rejected = append(rejected, trej...)
	}
	if cfg.TestSource != nil {
		job.Logf("found %s in %s of %s, and %d in %s", plural(len(files), "file", "files"), plural(len(classes), "class folder", "class folders"), cfg.Source, len(testFiles), *cfg.TestSource)
	} else {
		job.Logf("found %s in %s of %s", plural(len(files), "file", "files"), plural(len(classes), "class folder", "class folders"), cfg.Source)
	}

	previous := readPreviousSplit(job, job.Previous)
	var damaged damagedJPEGs
	procs, rej, err := storeImages(ctx, job, cfg, files, testFiles, previousStored(job, previous, storedWith(cfg), cfg.Format), &damaged)
	if err != nil {
		return err
	}
	rejected = append(rejected, rej...)
	sort.Slice(rejected, func(i, j int) bool { return rejected[i].Path < rejected[j].Path })

	// Groups of files that become the same stored image (byte-identical files, and the same
	// picture in two lossless encodings), joined with their near-duplicates (the same picture
	// at another size or JPEG quality) unless turned off; test_source copies win, so no test
	// image leaks into training. A group is named by its smallest file digest: a group of one
	// is named, and so ordered by the seed, by its file's own digest.
	first := map[string]string{}
	for _, p := range procs {
		if d, ok := first[p.pixels]; !ok || p.digest < d {
			first[p.pixels] = p.digest
		}
	}
	for i := range procs {
		procs[i].exact = first[procs[i].pixels]
		procs[i].group = procs[i].exact
	}
	if cfg.NearDuplicates {
		joinNearDuplicates(procs)
	}
	groups := map[string]*group{}
	fixed := map[string]string{}
	for _, p := range procs {
		g := groups[p.group]
		if g == nil {
			g = &group{Digest: p.group}
			groups[p.group] = g
		}
		g.Members = append(g.Members, member{Class: p.cand.Class, Rel: p.cand.Rel, Shown: cfg.shown(p), Test: p.test, Exact: p.exact})
		if p.test {
			fixed[p.group] = TestSet
		}
	}
	rep := splitReport{TestSource: cfg.TestSource != nil}
	var leaked []string
	for _, p := range procs {
		if fixed[p.group] == TestSet && !p.test {
			leaked = append(leaked, cfg.shown(p))
		}
	}
	rep.Leaked = leaked

	// Class sizes and the too-small check. Identical and near-identical files share a set, so
	// it counts a class's distinct images (groups): three files, two of them copies, are two
	// images, which cannot give train, val and test one each.
	perClass, leakedIn := map[string]int{}, map[string]int{}
	distinct := map[string]map[string]bool{} // class → its groups
	for _, p := range procs {
		// test_source images are outside the split, and training copies of them leave it
		switch {
		case p.test:
		case fixed[p.group] == TestSet:
			leakedIn[p.cand.Class]++
		default:
			perClass[p.cand.Class]++
			if distinct[p.cand.Class] == nil {
				distinct[p.cand.Class] = map[string]bool{}
			}
			distinct[p.cand.Class][p.group] = true
		}
	}
	need := minPerClass(cfg.Val, testFrac)
	if cfg.TestSource != nil {
		need = minPerClass(cfg.Val, 0)
	}
	var kept, small, limits []string
	for _, c := range classes {
		n, files := len(distinct[c]), perClass[c]
		if n >= need {
			kept = append(kept, c)
			continue
		}
		desc := fmt.Sprintf("%q (%d", c, n)
		if files != n {
			desc = fmt.Sprintf("%q (%d files but only %s", c, files, plural(n, "distinct image", "distinct images"))
		}
		if n := leakedIn[c]; n > 0 {
			desc += fmt.Sprintf("; %d left out as %s", n, agree(n, "a copy of a test_source image", "copies of test_source images"))
		}
		if in := rejectedIn(rejected, c); len(in) > 0 {
			why, settings := rejectedWhy(rejected, &c)
			desc += fmt.Sprintf("; %s rejected: %s", rejectedCount(in), why)
			for _, s := range settings {
				if !slices.Contains(limits, s) {
					limits = append(limits, s)
				}
			}
		}
		small = append(small, desc+")")
		if cfg.DropSmallClasses {
			rep.drop(c, n)
			have := plural(n, "usable image", "usable images")
			if files != n {
				have = fmt.Sprintf("%d usable files but only %s", files, plural(n, "distinct image", "distinct images"))
			}
			job.Logf("warning: dropping class %q: %s, %d needed", c, have, need)
		}
	}
	if len(small) > 0 && !cfg.DropSmallClasses {
		logRejected(job, rejected, "")
		advice := strings.Join(append([]string{"Add images"}, limitAdvice(limits)...), ", ")
		return fmt.Errorf("too few usable images in class %s; this split needs at least %d per class (one per split; identical or near-identical files count once). %s, or set drop_small_classes = true to leave such classes out", strings.Join(small, ", class "), need, advice)
	}
	rep.Settings = &splitSettings{Seed: cfg.seed(job), Val: cfg.Val, Test: testFrac}
	if cfg.TestSource != nil {
		rep.Settings.TestSource = *cfg.TestSource
	}
	prevFiles, why := previous.sets(*rep.Settings)
	from := previous // the split whose sets are kept
	if why != "" || previous == nil {
		// The last split made with other settings (tried for a while), or gone or changed
		// since: an earlier one made with these keeps its sets, so that going back to them
		// moves nothing.
		for _, ej := range job.Earlier() {
			if e := readPreviousSplit(ej, ej.Previous); e != nil && e.changed == "" && e.rep != nil && e.rep.Settings != nil {
				if files, w := e.sets(*rep.Settings); w == "" {
					job.Logf("keeping the sets of an earlier split made with these settings, not those of the last one (%s)", cmp.Or(why, "gone from the store"))
					prevFiles, why, from = files, "", e
					break
				}
			}
		}
	}
	// Earlier manifests list files by their own digest; a group keeps the set of any of its
	// files (a held-out one first, so that nothing held out moves into training). A file
	// changed in place (saved again by an editor or an optimiser, touched up) is the same
	// photo to its user: it keeps the set the file at its path had.
	var prevPaths map[string]string
	if why == "" {
		prevPaths = from.sourceSets()
	}
	wasIn := func(p processed) string {
		if s, ok := prevFiles[p.digest]; ok {
			return s
		}
		return prevPaths[p.source()]
	}
	// A set known by a file's content comes before one known by its path alone: a file
	// saved over a held-out photo with a training photo's picture takes the training
	// photo's set, rather than pull it into a held-out one.
	prev, byPath := map[string]string{}, map[string]string{}
	for _, p := range procs {
		s, known := prevFiles[p.digest]
		to := prev
		if !known {
			s, to = prevPaths[p.source()], byPath
		}
		if s != "" && (to[p.group] == "" || splitRank(s) < splitRank(to[p.group])) {
			to[p.group] = s
		}
	}
	for g, s := range byPath {
		if _, known := prev[g]; !known {
			prev[g] = s
		}
	}
	if cfg.TestSource != nil {
		// The test set is exactly that folder: an image that has left it does not stay in
		// test because it was there before.
		for d, s := range prev {
			if s == TestSet && fixed[d] != TestSet {
				delete(prev, d)
			}
		}
	}
	if why != "" {
		sets := "train, val and test"
		if cfg.TestSource != nil {
			sets = "train and val (the test set is test_source's)"
		}
		job.Logf("warning: not keeping the previous split's sets (%s): images may move between %s", why, sets)
	}

	// A file in two classes takes one set for all of them: classes whose images are such
	// files may have enough of them and still no way to fill every set.
	var gs []*group
	var res splitResult
	for {
		gs = keptGroups(groups, kept)
		res = splitGroups(pictures(gs), prev, fixed, cfg.Val, testFrac, cfg.seed(job))
		if cfg.DropSmallClasses && len(prev) > 0 {
			// Which classes are dropped depends on the photos alone, not on the previous
			// sets, which steer the search: an unchanged rerun keeps the classes the first
			// split kept.
			if fresh := splitGroups(pictures(gs), nil, fixed, cfg.Val, testFrac, cfg.seed(job)); len(fresh.failed) > 0 {
				res = fresh
			}
		}
		if len(res.failed) == 0 {
			break
		}
		if !cfg.DropSmallClasses {
			return errUnsplittable(res.failed, need)
		}
		for _, u := range res.failed {
			for _, c := range u.short {
				rep.drop(c, len(distinct[c]))
				job.Logf("warning: dropping %s", unsplitReason(u, []string{c}, need))
				kept = slices.DeleteFunc(kept, func(k string) bool { return k == c })
			}
		}
		sort.Strings(rep.Dropped)
	}
	if len(kept) < 2 {
		return errTooFewClasses(job, cfg, kept, rep.Dropped, rejected)
	}
	label := map[string]int{}
	for i, c := range kept {
		label[c] = i
	}
	// The first group of each kind of label conflict (by its first path, as sortPaths orders
	// them) is described in the log.
	type conflict struct {
		members []member
		group   string
		all     []member // the whole group's, whose test_source files decide what is left out
	}
	var firstConflict, firstNearConflict conflict
	placedBefore := map[string]bool{} // classes with images the previous split placed
	firstOf := func(first *conflict, ms []member, g *group) {
		if first.members == nil || ms[0].Shown < first.members[0].Shown {
			*first = conflict{ms, g.Digest, g.Members}
		}
	}
	for _, g := range gs {
		exact := map[string][]member{}
		for _, m := range g.Members {
			exact[m.Exact] = append(exact[m.Exact], m)
		}
		for _, e := range exact {
			if len(e) > 1 {
				paths, mixed := memberPaths(e)
				rep.Duplicates = append(rep.Duplicates, paths)
				if mixed {
					rep.Conflicts = append(rep.Conflicts, paths)
					firstOf(&firstConflict, e, g)
				}
			}
		}
		if len(exact) > 1 {
			paths, mixed := memberPaths(g.Members)
			rep.Near = append(rep.Near, paths)
			if mixed {
				rep.NearConflicts = append(rep.NearConflicts, paths)
				firstOf(&firstNearConflict, g.Members, g)
			}
		}
		if p := prev[g.Digest]; p != "" && fixed[g.Digest] == "" {
			if res.sets[g.Digest] == p {
				rep.Kept++
			}
			for _, m := range g.Members {
				placedBefore[m.Class] = true
			}
		}
	}
	sortPaths(rep.Duplicates)
	sortPaths(rep.Conflicts)
	sortPaths(rep.Near)
	sortPaths(rep.NearConflicts)
	assigned := res.sets
	if c := firstConflict; c.members != nil {
		rep.conflictExample = labelConflictExample(c.members, c.all, assigned[c.group])
	}
	if c := firstNearConflict; c.members != nil {
		rep.nearConflictExample = labelConflictExample(c.members, c.all, assigned[c.group])
	}

	// Manifests: entries sorted by label, then source path; files stored as one image are one
	// image of their class, listed once (by the first path), so that a photo copied within a
	// class weighs no more in training or evaluation than any other.
	stored := map[string]string{}
	for _, p := range procs {
		stored[p.digest] = p.stored
	}
	manifests := map[string]*Manifest{}
	var searchedMoves []movedImage // of res.moved's groups
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		manifests[s] = &Manifest{Split: s, Classes: kept, Size: cfg.ImageSize, Channels: cfg.Channels, Resize: cfg.Resize}
		if cfg.stores() && cfg.Format == FormatJPEG {
			manifests[s].ReadWith = storedJPEGReader()
		}
		if !cfg.stores() {
			m := manifests[s]
			m.SourceDir, m.FittedWith = filepath.ToSlash(cfg.Source), fittedWith(cfg.ImageSize, cfg.Channels, cfg.Resize)
			if s == TestSet && cfg.TestSource != nil {
				// the test set is test_source's files, whose Sources begin "test:"
				m.SourceDir, m.SourcePrefix = filepath.ToSlash(*cfg.TestSource), testPrefix
			}
		}
	}
	exacts := map[string][]string{} // by set, beside its manifest's entries: each file's exact
	for _, p := range procs {
		l, ok := label[p.cand.Class]
		if !ok {
			continue
		}
		s := assigned[p.group]
		if fixed[p.group] == TestSet && !p.test {
			continue // a training-folder copy of a test_source image: listed in the report
		}
		src := p.source()
		if was := wasIn(p); was != "" && was != s && !p.test {
			rep.Moved = append(rep.Moved, movedImage{Path: cfg.shown(p), From: was, To: s})
			if res.moved[p.group] {
				searchedMoves = append(searchedMoves, rep.Moved[len(rep.Moved)-1])
			}
		}
		e := Entry{Label: l, Digest: p.digest, Source: src}
		if st := stored[p.digest]; st != "" {
			e.Path = "../" + st
		}
		manifests[s].Images = append(manifests[s].Images, e)
		exacts[s] = append(exacts[s], p.exact)
	}
	sort.Slice(rep.Moved, func(i, j int) bool { return rep.Moved[i].Path < rep.Moved[j].Path })
	logAfresh(job, res)
	logSearchedMoves(job, res, searchedMoves)
	counts := map[string][]int{}
	var placed []placedFile // setsFile's records: every file placed now, then those placed before
	for _, s := range splitNames {
		m := manifests[s]
		for _, e := range m.Images {
			placed = append(placed, placedFile{e.Digest, byte(slices.Index(splitNames, s))})
		}
		sort.Sort(entriesByPath{m.Images, exacts[s]})
		// Files stored as one image are one image of their class: the first by path listed.
		seen := map[string]bool{}
		n := 0
		for i, e := range m.Images {
			if k := fmt.Sprintf("%d %s", e.Label, exacts[s][i]); !seen[k] {
				seen[k] = true
				m.Images[n] = e
				n++
			}
		}
		m.Images = slices.Clip(m.Images[:n])
		delete(exacts, s)
		if err := m.Write(filepath.Join(job.Out, s)); err != nil {
			return err
		}
		counts[s] = m.Counts()
	}
	for i, c := range kept {
		cc := classCounts{Name: c, Train: counts[TrainSet][i], Val: counts[ValSet][i], Test: counts[TestSet][i]}
		cc.Total = cc.Train + cc.Val + cc.Test
		rep.Classes = append(rep.Classes, cc)
		rep.Total.Train += cc.Train
		rep.Total.Val += cc.Val
		rep.Total.Test += cc.Test
	}
	rep.Total.Name, rep.Total.Total = "total", rep.Total.Train+rep.Total.Val+rep.Total.Test
	rep.shortHeldOut = shortHeldOut(rep.Classes, placedBefore, cfg.Val, testFrac, cfg.TestSource != nil)
	if cfg.TestSource != nil {
		for _, cc := range rep.Classes {
			// A class without a folder there was warned of above.
			if cc.Test == 0 && contains(tclasses, cc.Name) {
				rep.noTestImages = append(rep.noTestImages, noTestImages(*cfg.TestSource, cc.Name, rejected))
			}
		}
	}
	rep.Rejected = len(rejected)
	rep.Stored = storedWith(cfg)
	for _, p := range procs {
		if p.fallback && !slices.Contains(rep.Fallbacks, p.digest) {
			rep.Fallbacks = append(rep.Fallbacks, p.digest)
		}
	}
	sort.Strings(rep.Fallbacks)
	rep.Damaged = damaged.sorted()
	if cfg.NearDuplicates {
		if err := writeFingerprints(job, procs); err != nil {
			return err
		}
	}
	if !cfg.stores() {
		if err := writePixelKeys(job, procs); err != nil {
			return err
		}
	}
	// Files earlier splits placed that this one does not have (removed, or rejected now) keep
	// their sets for when they come back.
	for d, s := range prevFiles {
		placed = append(placed, placedFile{d, byte(slices.Index(splitNames, s))})
	}
	if err := writeSets(job, placed); err != nil {
		return err
	}
	return writeSplitReport(job, kept, rep, rejected)
}

// labelConflictExample describes files of different classes that share a set, ms, for the
// log: the files (the first four) with their classes, the set they share, and what that
// means: every file keeps its class folder's label, so the picture is in that set under each
// label; or, when their group (all, ms with their near-duplicates) has test_source files,
// that the training folder's copies are left out and the test set has the picture under the
// test_source files' labels.
func labelConflictExample(ms, all []member, set string) string {
	var files, classes, testClasses []string
	nonTest := false
	for i, m := range ms {
		nonTest = nonTest || !m.Test
		if i < 4 {
			files = append(files, fmt.Sprintf("%q (%s)", m.Shown, logName(m.Class)))
		}
		if !slices.Contains(classes, m.Class) {
			classes = append(classes, m.Class)
		}
	}
	for _, m := range all {
		if m.Test && !slices.Contains(testClasses, m.Class) {
			testClasses = append(testClasses, m.Class)
		}
	}
	if len(ms) > 4 {
		files = append(files, fmt.Sprintf("%d more", len(ms)-4))
	}
	if len(testClasses) > 0 {
		classes = testClasses
	}
	as := make([]string, len(classes))
	for i, c := range classes {
		as[i] = "as " + logName(c)
	}
	if len(testClasses) > 0 && nonTest {
		return fmt.Sprintf("e.g. %s: the copies in the training folder are left out of training (removed_from_train_val) and the test set has this picture %s; keep each picture in one class folder",
			pipeline.JoinList(files, "and"), pipeline.JoinList(as, "and"))
	}
	use := map[string]string{TrainSet: "trained", ValSet: "validated", TestSet: "tested"}[set]
	return fmt.Sprintf("e.g. %s, all in %s: a group shares one set and each file keeps its class folder's label, so the model is %s on this picture %s; keep each picture in one class folder",
		pipeline.JoinList(files, "and"), set, use, pipeline.JoinList(as, "and"))
}

// memberPaths returns the members' paths (sorted, as the members are) and whether they carry
// more than one class.
func memberPaths(ms []member) ([]string, bool) {
	paths := make([]string, len(ms))
	for i, m := range ms {
		paths[i] = m.Shown
	}
	for _, m := range ms[1:] {
		if m.Class != ms[0].Class {
			return paths, true
		}
	}
	return paths, false
}

// pictures returns gs with one member per class for each set of files stored as one image
// (the first by path), the images the quotas count: files a class holds twice are one
// image of it, near-identical files one each.
func pictures(gs []*group) []*group {
	out := make([]*group, len(gs))
	for i, g := range gs {
		if len(g.Members) == 1 {
			out[i] = g // most groups: nothing to leave out, nothing to copy
			continue
		}
		seen := map[[2]string]bool{}
		var ms []member
		for _, m := range g.Members {
			if k := [2]string{m.Class, m.Exact}; !seen[k] {
				seen[k] = true
				ms = append(ms, m)
			}
		}
		out[i] = &group{Digest: g.Digest, Members: ms}
	}
	return out
}

// keptGroups returns the groups with only their members of the kept classes (sorted by path),
// leaving out those with none, sorted by digest.
func keptGroups(groups map[string]*group, kept []string) []*group {
	isKept := map[string]bool{}
	for _, c := range kept {
		isKept[c] = true
	}
	var gs []*group
	for _, g := range groups {
		var ms []member
		for _, m := range g.Members {
			if isKept[m.Class] {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].Shown < ms[j].Shown })
		gs = append(gs, &group{Digest: g.Digest, Members: ms})
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Digest < gs[j].Digest })
	return gs
}

// joinNearDuplicates puts near-duplicate images into one group: each image's group becomes
// the smallest exact-group name among the images it is transitively near. One fingerprint
// per stored image is compared.
func joinNearDuplicates(procs []processed) {
	index := map[string]int{} // exact group → position in names/prints
	var names []string
	var prints []*fingerprint
	for i, p := range procs {
		if _, ok := index[p.exact]; !ok {
			index[p.exact] = len(names)
			names = append(names, p.exact)
			if procs[i].print == nil {
				procs[i].print = &fingerprint{} // not comparable
			}
			prints = append(prints, procs[i].print)
		}
	}
	parent := make([]int, len(names))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, pr := range nearDuplicatesOf(prints) {
		a, b := find(pr[0]), find(pr[1])
		if names[b] < names[a] {
			a, b = b, a
		}
		parent[b] = a // the root keeps the smallest name
	}
	for i := range procs {
		procs[i].group = names[find(index[procs[i].exact])]
	}
}

func prefixPaths(rs []Rejected, root string) {
	for i := range rs {
		rs[i].Path = filepath.ToSlash(filepath.Join(root, rs[i].Path))
	}
}

func sortPaths(groups [][]string) {
	sort.Slice(groups, func(i, j int) bool { return groups[i][0] < groups[j][0] })
}

// storeImages loads every file in parallel, rejects bad ones, and writes each distinct image
// once, resized, into images/. Memory holds one decoded image per worker.
func storeImages(ctx context.Context, job *pipeline.Job, cfg SplitConfig, files, testFiles []candidate, prev reusable, damaged *damagedJPEGs) ([]processed, []Rejected, error) {
	all := make([]processed, 0, len(files)+len(testFiles))
	for _, f := range files {
		all = append(all, processed{cand: f})
	}
	for _, f := range testFiles {
		all = append(all, processed{cand: f, test: true})
	}
	if cfg.stores() {
		if err := os.MkdirAll(filepath.Join(job.Out, "images"), 0o755); err != nil {
			return nil, nil, err
		}
	}
	// Not storing, a JPEG is decoded only for its near-duplicate fingerprint.
	fit := cfg.stores() || cfg.NearDuplicates
	store, release := newStoredFormat(cfg.Format, cfg.Quality, cfg.Compression)
	defer release()
	sourceRoot, testRoot := job.Path(cfg.Source), ""
	if cfg.TestSource != nil {
		testRoot = job.Path(*cfg.TestSource)
	}
	job.Progress.Start("images", int64(len(all)))
	reasons := make([]string, len(all))
	var written sync.Map
	var fallbacks, reused atomic.Int64
	var fallbackExample atomic.Pointer[string]
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dataWorkers())
	for i := range all {
		i := i
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			defer job.Progress.Add(1)
			root := sourceRoot
			if all[i].test {
				root = testRoot
			}
			abs := all[i].cand.path(root)
			if ok, err := prev.reuse(job, cfg, abs, &all[i], &written); err != nil {
				return fmt.Errorf("reusing the stored image of %s: %w", abs, err)
			} else if ok {
				reused.Add(1)
				return nil
			}
			l, err := loadImage(abs, job, cfg.MaxPixels, cfg.MinSide, cfg.ImageSize, cfg.Resize, cfg.Channels, fit, !cfg.stores())
			if err != nil {
				if r, ok := err.(errRejected); ok {
					reasons[i] = r.reason
					return nil
				}
				return fmt.Errorf("reading %s: %w", abs, err)
			}
			all[i].digest = l.Digest
			if cfg.NearDuplicates && l.Img != nil {
				fp := fingerprintOf(l.Img)
				all[i].print = &fp
			}
			if l.Fallback {
				all[i].fallback = true
				fallbacks.Add(1)
				eg := fmt.Sprintf("%q", cfg.shown(all[i]))
				if l.Libjpeg != "" {
					eg += "; libjpeg-turbo: " + l.Libjpeg
				}
				fallbackExample.CompareAndSwap(nil, &eg)
			} else {
				damaged.add(cfg.shown(all[i]), l.Digest, l.Libjpeg)
			}
			if !cfg.stores() {
				key := l.PixelsKey
				if key == "" {
					key = imagePixelsKey(l.Img, cfg.Channels)
				}
				if rgb, ok := l.Img.(*raster.RGB); ok {
					pixelBufs.put(rgb.Pix)
				}
				written.LoadOrStore(l.Digest, key)
				return nil
			}
			rel := storedRel(l.Digest, cfg.Format)
			all[i].stored = rel
			if _, dup := written.LoadOrStore(l.Digest, ""); dup {
				return nil
			}
			dst := filepath.Join(job.Out, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			data, err := store.appendEncoded(encodedBufs.get(0), l.Img)
			if rgb, ok := l.Img.(*raster.RGB); ok {
				pixelBufs.put(rgb.Pix) // fit's pixels, dead once encoded
			}
			if err != nil {
				return err
			}
			pixels, err := job.WriteFile(dst, data)
			encodedBufs.put(data)
			written.Store(l.Digest, pixels)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if n := reused.Load(); n > 0 {
		made := -n
		for i := range all {
			if reasons[i] == "" {
				made++
			}
		}
		if cfg.stores() {
			// counted in photos: identical photos share one stored image
			job.Logf("reused the previous split's stored images of %s (stored the same way), stored %d anew", plural(int(n), "photo", "photos"), made)
		} else {
			job.Logf("reused the previous split's check of %s (made the same way), read %d", plural(int(n), "photo", "photos"), made)
		}
	}
	if n := fallbacks.Load(); n > 0 {
		if n == 1 {
			job.Logf("warning: 1 JPEG was decoded by image/jpeg after libjpeg-turbo refused it (%s); its pixels can differ slightly from libjpeg's", *fallbackExample.Load())
		} else {
			job.Logf("warning: %d JPEGs were decoded by image/jpeg after libjpeg-turbo refused them (e.g. %s); their pixels can differ slightly from libjpeg's", n, *fallbackExample.Load())
		}
	}
	for i := range all {
		if v, ok := written.Load(all[i].digest); ok {
			all[i].pixels = v.(string)
		}
	}
	// The usable files, kept in place: a second slice would hold every record twice.
	ok := all[:0]
	var rejected []Rejected
	for i, p := range all {
		if reasons[i] != "" {
			rejected = append(rejected, Rejected{Path: cfg.shown(p), Class: p.cand.Class, Reason: reasons[i]})
			continue
		}
		ok = append(ok, p)
	}
	clear(all[len(ok):])
	return ok, rejected, nil
}

// splitRank orders sets for a group whose files were in several: test, then val, then train.
func splitRank(s string) int {
	switch s {
	case TestSet:
		return 0
	case ValSet:
		return 1
	}
	return 2
}

// previousSplit is this stage's previous output, read once: its report and manifests (nil
// where unreadable), or why its records cannot be trusted.
type previousSplit struct {
	dir       string
	workspace string // where its recorded test_source is relative to
	changed   string // the record deleted or changed in the store since it was written
	rep       *splitReport
	manifests map[string]*Manifest // by set
	placed    map[string]string    // source digest → set, of every file it and the splits before it placed (setsFile)
}

// setsFile holds, by source digest, the set of every file a split placed, those its
// manifests leave out as copies of an image they list included, and of every file the
// splits before it placed with the same settings that it no longer has (removed, or rejected
// now): a later split keeps each in its set, a copy once the listed file is gone, and a photo
// removed and put back, so that nothing held out comes back into training.
const setsFile = "sets.bin"

// setsHeader starts setsFile and names its format: a byte per record, the set's index in
// splitNames.
const setsHeader = "pipeline sets 1: set\n"

// splitNames are the sets in the order setsFile numbers them.
var splitNames = []string{TrainSet, ValSet, TestSet}

// placedFile is a record of setsFile: a source digest and its set's index in splitNames.
type placedFile struct {
	digest string
	set    byte
}

// writeSets writes setsFile from placed, the first record of each digest (those placed now
// come before those placed before).
func writeSets(job *pipeline.Job, placed []placedFile) error {
	slices.SortStableFunc(placed, func(a, b placedFile) int { return strings.Compare(a.digest, b.digest) })
	placed = slices.CompactFunc(placed, func(a, b placedFile) bool { return a.digest == b.digest })
	buf := append(make([]byte, 0, len(setsHeader)+len(placed)*33), setsHeader...)
	for _, p := range placed {
		var err error
		if buf, err = appendDigestRecord(buf, setsFile, p.digest, p.set); err != nil {
			return err
		}
	}
	_, err := job.WriteFile(filepath.Join(job.Out, setsFile), buf)
	return err
}

// entriesByPath sorts a manifest's entries by label, then source path, with the exact group
// of each beside them.
type entriesByPath struct {
	e      []Entry
	exacts []string
}

func (s entriesByPath) Len() int { return len(s.e) }
func (s entriesByPath) Less(i, j int) bool {
	if s.e[i].Label != s.e[j].Label {
		return s.e[i].Label < s.e[j].Label
	}
	return s.e[i].Source < s.e[j].Source
}
func (s entriesByPath) Swap(i, j int) {
	s.e[i], s.e[j] = s.e[j], s.e[i]
	s.exacts[i], s.exacts[j] = s.exacts[j], s.exacts[i]
}

// splitRecords are the files of a split's output whose sets a later split keeps only while
// they are as they were written (slash-separated).
var splitRecords = []string{"report/split.json", TrainSet + "/" + ManifestFile, ValSet + "/" + ManifestFile, TestSet + "/" + ManifestFile}

// recordsChanged names the first of the records (splitRecords) of dir, job's previous output,
// that is gone or changed since it was written (Job.PreviousChanged), "" when none is.
func recordsChanged(job *pipeline.Job, dir string) string {
	for _, rel := range splitRecords {
		if job.PreviousChanged(filepath.Join(dir, filepath.FromSlash(rel))) {
			return rel
		}
	}
	return ""
}

// readPreviousSplit reads the previous output dir ("" for none: nil), job's Previous.
func readPreviousSplit(job *pipeline.Job, dir string) *previousSplit {
	if dir == "" {
		return nil
	}
	p := &previousSplit{dir: dir, workspace: job.Workspace, manifests: map[string]*Manifest{}}
	if p.changed = recordsChanged(job, dir); p.changed != "" {
		return p
	}
	var rep splitReport
	if b, err := os.ReadFile(filepath.Join(dir, "report", "split.json")); err == nil && json.Unmarshal(b, &rep) == nil {
		p.rep = &rep
	}
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		if m, err := ReadManifest(filepath.Join(dir, s)); err == nil {
			p.manifests[s] = m
		}
	}
	// The sets of files the manifests leave out or no longer list, when setsFile is as it was
	// written (splits before version 26 wrote none); gone or changed, the manifests' sets are
	// kept all the same, and the log says what is forgotten.
	p.placed = map[string]string{}
	switch path := filepath.Join(dir, setsFile); {
	case intact(job, path):
		readDigestRecords(path, setsHeader, 1, func(d string, rec []byte) {
			if int(rec[0]) < len(splitNames) {
				p.placed[d] = splitNames[rec[0]]
			}
		})
	case job.PreviousChanged(path):
		job.Logf("warning: the previous split's %s is gone or changed since it was written: files it placed that are no longer listed (copies within a class, photos removed for a while) are placed afresh if they come back", setsFile)
	}
	return p
}

// sets returns the digest → split assignment of the previous split, or none, with the
// reason, when it was made with other settings or its records changed since. (Outputs from
// before the settings were recorded are reused.)
func (p *previousSplit) sets(now splitSettings) (map[string]string, string) {
	prev := map[string]string{}
	if p == nil {
		return prev, ""
	}
	if p.changed != "" {
		return prev, "its " + p.changed + " is gone or changed since it was written"
	}
	if p.rep == nil || p.rep.Settings == nil {
		return p.assignment(), ""
	}
	o := p.rep.Settings.inWorkspace(p.workspace)
	if o != now {
		var changes []string
		if o.Seed != now.Seed {
			changes = append(changes, fmt.Sprintf("seed %d → %d", o.Seed, now.Seed))
		}
		if o.Val != now.Val {
			changes = append(changes, fmt.Sprintf("val %g → %g", o.Val, now.Val))
		}
		if o.Test != now.Test {
			changes = append(changes, fmt.Sprintf("test %g → %g", o.Test, now.Test))
		}
		if o.TestSource != now.TestSource {
			changes = append(changes, fmt.Sprintf("test_source %q → %q", o.TestSource, now.TestSource))
		}
		return prev, strings.Join(changes, ", ")
	}
	return p.assignment(), ""
}

// sourceSets maps the files the split's manifests list, by Source, to their sets (none for a
// split not read).
func (p *previousSplit) sourceSets() map[string]string {
	out := map[string]string{}
	if p == nil {
		return out
	}
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		if m := p.manifests[s]; m != nil {
			for _, e := range m.Images {
				if e.Source != "" {
					out[e.Source] = s
				}
			}
		}
	}
	return out
}

// assignment maps the digest of every file the previous split placed to its set: those its
// manifests list, and those setsFile records (copies they leave out, files placed before).
func (p *previousSplit) assignment() map[string]string {
	prev := map[string]string{}
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		if m := p.manifests[s]; m != nil {
			for _, e := range m.Images {
				prev[e.Digest] = s
			}
		}
	}
	for d, s := range p.placed {
		if _, listed := prev[d]; !listed {
			prev[d] = s
		}
	}
	return prev
}

func writeSplitReport(job *pipeline.Job, classes []string, rep splitReport, rejected []Rejected) error {
	dir := filepath.Join(job.Out, "report")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if rejected == nil {
		rejected = []Rejected{}
	}
	if err := writeJSON(filepath.Join(dir, "split.json"), rep); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "rejected.json"), rejected); err != nil {
		return err
	}
	vals := map[string][]float64{}
	for _, c := range rep.Classes {
		vals[TrainSet] = append(vals[TrainSet], float64(c.Train))
		vals[ValSet] = append(vals[ValSet], float64(c.Val))
		vals[TestSet] = append(vals[TestSet], float64(c.Test))
	}
	if err := barChart(filepath.Join(dir, "class_distribution.png"), "Images per class and split", classes,
		[]series{{TrainSet, vals[TrainSet]}, {ValSet, vals[ValSet]}, {TestSet, vals[TestSet]}}, job.Logf); err != nil {
		return fmt.Errorf("plotting the class distribution: %w", err)
	}
	rejectedNote := "no files rejected"
	if len(rejected) > 0 {
		rejectedNote = rejectedCount(rejected) + " rejected (see report/rejected.json)"
	}
	job.Logf("%d train, %d val, %d test images in %s; %s",
		rep.Total.Train, rep.Total.Val, rep.Total.Test, plural(len(classes), "class", "classes"), rejectedNote)
	for _, w := range append(rep.noTestImages, rep.shortHeldOut) {
		if w != "" {
			job.Logf("warning: %s", w)
		}
	}
	logRejected(job, rejected, " (all in report/rejected.json)")
	logDamaged(job, rep.Damaged, "", " (all in report/split.json: damaged_jpegs)")
	if len(rep.Conflicts) > 0 {
		job.Logf("warning: %s of identical images %s different class labels, %s (every group: report/split.json, label_conflicts)", plural(len(rep.Conflicts), "group", "groups"), agree(len(rep.Conflicts), "carries", "carry"), rep.conflictExample)
	}
	if len(rep.Moved) > 0 {
		job.Logf("warning: %s changed set since the previous split, to share one with identical or near-identical images or to give a class an image in every set (report/split.json: moved_from_previous_split)", plural(len(rep.Moved), "image", "images"))
	}
	if len(rep.Near) > 0 {
		job.Logf("%s of near-identical images (one picture at different sizes or JPEG qualities) %s (report/split.json: near_duplicates)", plural(len(rep.Near), "group", "groups"), agree(len(rep.Near), "is kept in one set", "are kept in one set each"))
		largest := rep.Near[0]
		for _, g := range rep.Near {
			if len(g) > len(largest) {
				largest = g
			}
		}
		if len(largest) > maxNearGroup {
			job.Logf("warning: a group of %d near-identical images, from %s: near-duplicates join through one another, so pictures that merely look alike (frames of a video, plain product shots) can chain; check report/split.json, or set near_duplicates = false", len(largest), logName(largest[0]))
		}
	}
	if len(rep.NearConflicts) > 0 {
		job.Logf("warning: %s of near-identical images %s different class labels, %s (every group: report/split.json, near_duplicate_label_conflicts)", plural(len(rep.NearConflicts), "group", "groups"), agree(len(rep.NearConflicts), "carries", "carry"), rep.nearConflictExample)
	}
	if len(rep.Leaked) > 0 {
		eg := "e.g. "
		if len(rep.Leaked) == 1 {
			eg = ""
		}
		job.Logf("warning: removed %s identical or near-identical to test_source images, %s%q (report/split.json: removed_from_train_val)", plural(len(rep.Leaked), "training image", "training images"), eg, rep.Leaked[0])
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// logRejected warns about the rejected files and folders, naming the first few with their reasons;
// where says where the rest are listed ("" when nowhere: the log names them all).
func logRejected(job *pipeline.Job, rejected []Rejected, where string) {
	if len(rejected) == 0 {
		return
	}
	eg := "e.g. "
	if len(rejected) == 1 {
		eg = ""
	}
	why := ""
	if len(rejected) > 1 {
		why, _ = rejectedWhy(rejected, nil)
		why = " (" + why + ")"
	}
	job.Logf("warning: %s rejected%s, %s%q: %s%s", rejectedCount(rejected), why, eg, rejected[0].Path, rejected[0].Reason, where)
	for i, r := range rejected {
		if i == 5 && where != "" {
			job.Logf("  … and %d more", len(rejected)-5)
			break
		}
		job.Logf("  rejected %s: %s", logName(r.Path), r.Reason)
	}
}

// rejectedIn returns the rejected files and folders of class.
func rejectedIn(rejected []Rejected, class string) []Rejected {
	var in []Rejected
	for _, r := range rejected {
		if r.Class == class {
			in = append(in, r)
		}
	}
	return in
}

// sizePrefix is the format and size that begin a reason naming a size limit.
var sizePrefix = regexp.MustCompile(`^[a-z]+ of [0-9]+x[0-9]+ (is )?`)

// limitAdvice says what to change of each setting that rejected files (min_side, max_pixels).
func limitAdvice(settings []string) []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = map[string]string{"min_side": "lower min_side", "max_pixels": "raise max_pixels"}[s]
	}
	return out
}

// errTooFewClasses is the error of a split left with fewer than two classes (kept), saying
// why the others went: the classes dropped for too few images, and the files rejected, with
// the settings that rejected some, which the log names file by file.
func errTooFewClasses(job *pipeline.Job, cfg SplitConfig, kept, dropped []string, rejected []Rejected) error {
	msg := fmt.Sprintf("%s in %s; a classifier needs at least 2", plural(len(kept), "usable class", "usable classes"), cfg.Source)
	var why []string
	if len(dropped) > 0 {
		why = append(why, fmt.Sprintf("%s dropped for too few images (drop_small_classes)", plural(len(dropped), "class", "classes")))
	}
	advice := ""
	if len(rejected) > 0 {
		reasons, settings := rejectedWhy(rejected, nil)
		why = append(why, fmt.Sprintf("%s rejected: %s", rejectedCount(rejected), reasons))
		for _, a := range limitAdvice(settings) {
			advice += "; " + a
		}
		logRejected(job, rejected, "")
	}
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")" + advice
	}
	return errors.New(msg)
}

// rejectedWhy counts the rejected files and folders of class (of every class when class is nil) by
// reason, most first ("12 smaller than min_side 29, 1 truncated jpeg"), and names the settings
// that rejected any (min_side, max_pixels), for advice.
func rejectedWhy(rejected []Rejected, class *string) (string, []string) {
	count := map[string]int{}
	var settings []string
	for _, r := range rejected {
		if class != nil && r.Class != *class {
			continue
		}
		why := r.Reason
		for _, s := range []string{"min_side", "max_pixels"} {
			if strings.Contains(why, s) {
				// "png of 5x5 is smaller than min_side 29": the setting, not the size
				why = sizePrefix.ReplaceAllString(why, "")
				if !slices.Contains(settings, s) {
					settings = append(settings, s)
				}
			}
		}
		if i := strings.Index(why, " ("); i > 0 {
			why = why[:i]
		}
		count[why]++
	}
	whys := slices.Collect(maps.Keys(count))
	slices.SortFunc(whys, func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	parts := make([]string, len(whys))
	for i, w := range whys {
		parts[i] = fmt.Sprintf("%d %s", count[w], w)
	}
	return strings.Join(parts, ", "), settings
}
