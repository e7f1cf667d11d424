package stages

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"iter"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anthonynsimon/bild/clone"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages/raster"
)

// Augment is the augment stage kind: it balances the classes of a training set by adding
// transformed copies, per class up to min(max_augment × n, largest n), with n counted on the
// training set itself.
type Augment struct{}

// AugmentConfig is an augment stage's attributes.
type AugmentConfig struct {
	Input       string   `cty:"input"`
	MaxAugment  int      `cty:"max_augment"`
	Ops         []string `cty:"ops"`
	Compression string   `cty:"compression"`
	// params are the operations' parameters, attributes beside the others; Decode fills a
	// struct's own tagged fields only, so they are decoded into params separately.
	params OpParams
}

// Name implements pipeline.Kind.
func (Augment) Name() string { return "augment" }

// Version implements pipeline.Kind. (11: the class-distribution plot's counts no longer
// overlap; 12: long class names are shortened on the plot instead of blanking it.)
func (Augment) Version() int { return 12 }

// Environment implements pipeline.Environmental: the copies are made by Go and its image
// modules, and the report plots class names (augmentEnvironment).
func (Augment) Environment(*pipeline.Values) ([]string, error) { return augmentEnvironment(), nil }

// Outputs implements pipeline.Kind.
func (Augment) Outputs() []string { return []string{"output", "report"} }

// OutputTypes implements pipeline.OutputTyper.
func (Augment) OutputTypes() map[string]string {
	return map[string]string{"output": typeImages, "report": typeReport}
}

// BulkDirs implements pipeline.Bulky: run folders link the training images' folder (originals
// and copies) as a whole.
func (Augment) BulkDirs(*pipeline.Values) []string { return []string{"output/images"} }

// Attributes implements pipeline.Kind.
func (Augment) Attributes() []pipeline.Attribute {
	n := cty.NumberFloatVal
	return []pipeline.Attribute{
		{Name: "input", Type: cty.String, Required: true, Doc: "a training set (stage.split.NAME.train)", Accepts: []string{typeImages}, NonEmpty: true},
		{Name: "max_augment", Type: cty.Number, Default: cty.NumberIntVal(5), Doc: "a class grows at most to max_augment × its size"},
		{Name: "ops", Type: cty.List(cty.String), Default: cty.ListVal([]cty.Value{cty.StringVal(OpFlipRotateCrop), cty.StringVal(OpColorJitter)}), Doc: "operations, one chosen per copy"},
		{Name: "flip", Type: cty.Number, Default: n(0.5), Doc: "flip_rotate_crop: probability of a horizontal flip"},
		{Name: "rotation", Type: cty.Number, Default: n(30), Doc: "flip_rotate_crop: maximum rotation in degrees"},
		{Name: "crop", Type: cty.Number, Default: n(0.85), Doc: "flip_rotate_crop: centre crop fraction"},
		{Name: "brightness", Type: cty.Number, Default: n(0.2), Doc: "color_jitter: ± brightness change"},
		{Name: "contrast", Type: cty.Number, Default: n(0.2), Doc: "color_jitter: ± contrast change"},
		{Name: "saturation", Type: cty.Number, Default: n(0.2), Doc: "color_jitter: ± saturation change"},
		{Name: "translate", Type: cty.Number, Default: n(0.1), Doc: "affine: ± shift as a fraction of the size"},
		{Name: "scale_min", Type: cty.Number, Default: n(0.9), Doc: "affine: smallest scale"},
		{Name: "scale_max", Type: cty.Number, Default: n(1.1), Doc: "affine: largest scale"},
		{Name: "blur", Type: cty.Number, Default: n(1.0), Doc: "blur: largest Gaussian radius in pixels"},
		{Name: "noise", Type: cty.Number, Default: n(0.05), Doc: "noise: standard deviation as a fraction of 255"},
		{Name: "compression", Type: cty.String, Default: cty.StringVal(CompressionNone), Doc: "PNG compression of the copies: none (fastest) or fast (about half the size)"},
	}
}

// CheckPath implements pipeline.PathChecker: an input written as a path that is no image set
// (a folder of photos, without a manifest) fails the stage.
func (Augment) CheckPath(v *pipeline.Values, attr, abs string) string {
	if attr != "input" {
		return ""
	}
	return imageSetProblem(abs)
}

// Validate implements pipeline.Validator.
func (Augment) Validate(v *pipeline.Values) hcl.Diagnostics {
	var d diagList
	d.intRange(v, "max_augment", 1, 1000)
	d.oneOf(v, "compression", CompressionNone, CompressionFast)
	if ops := v.Get("ops"); ops.IsWhollyKnown() && !ops.IsNull() {
		if ops.LengthInt() == 0 {
			d.add(v, "ops", "No augmentation operations", "List at least one of "+pipeline.QuotedList(AugmentOps, "and")+", or set max_augment = 1 to add no copies.")
		}
		onlyFlip := ops.LengthInt() > 0
		for it := ops.ElementIterator(); it.Next(); {
			_, op := it.Element()
			if !contains(AugmentOps, op.AsString()) {
				detail := fmt.Sprintf("%q is not an operation; use %s.", op.AsString(), pipeline.QuotedList(AugmentOps, "or"))
				if sug := closest(op.AsString(), AugmentOps); sug != "" {
					detail += fmt.Sprintf(" Did you mean %q?", sug)
				}
				d.add(v, "ops", "Unknown augmentation operation", detail)
			}
			onlyFlip = onlyFlip && op.AsString() == OpFlip
		}
		if onlyFlip && usable(v, "max_augment") && num(v, "max_augment") > 2 {
			d.add(v, "ops", "flip alone cannot make the copies",
				fmt.Sprintf("flip makes one distinct copy of an image (its mirror), so with ops = [\"flip\"] no class can grow beyond 2× its size, and max_augment = %s would ask for more; add another operation (e.g. \"color_jitter\" or \"flip_rotate_crop\"), or set max_augment = 2.", hclValue(v.Get("max_augment"))))
		}
	}
	for _, f := range []string{"flip", "noise"} {
		if usable(v, f) && (num(v, f) < 0 || num(v, f) > 1) {
			d.add(v, f, "Invalid "+f, f+" must be between 0 and 1.")
		}
	}
	if usable(v, "crop") && (num(v, "crop") <= 0 || num(v, "crop") > 1) {
		d.add(v, "crop", "Invalid crop", "crop is the fraction of the image kept: above 0, at most 1 (no crop).")
	}
	if usable(v, "rotation") && (num(v, "rotation") < 0 || num(v, "rotation") > 180) {
		d.add(v, "rotation", "Invalid rotation", "rotation is the largest angle either way, in degrees: 0 to 180.")
	}
	if usable(v, "blur") && (num(v, "blur") < 0 || num(v, "blur") > 100) {
		d.add(v, "blur", "Invalid blur", "blur is the largest Gaussian radius in pixels: 0 to 100.")
	}
	for _, f := range []string{"brightness", "contrast", "saturation", "translate"} {
		if usable(v, f) && (num(v, f) < 0 || num(v, f) >= 1) {
			d.add(v, f, "Invalid "+f, f+" must be in [0, 1).")
		}
	}
	if known(v, "scale_min", "scale_max") && (num(v, "scale_min") <= 0 || num(v, "scale_min") > num(v, "scale_max")) {
		d.add(v, "scale_min", "Invalid scale range", "Need 0 < scale_min ≤ scale_max.")
	}
	d.augmentNoEffect(v)
	for _, set := range fromOutputs(v, "input", "split", ValSet, TestSet) {
		d.warn(v, "input", "Augmenting a held-out set",
			fmt.Sprintf("input takes a split's %s set: augment is for a training set, so that the images a model is chosen and scored on stay the photos as taken; give stage.<split>.train, unless copies of the %s images are what you want.", set, set))
	}
	return d.diags
}

// augmentNoEffect warns of the parameters of operations that ops does not list, set in the
// stage block: they change nothing (and are left out of the key). A value the stage takes
// from the pipeline block is not warned of: other stages may use it.
func (d *diagList) augmentNoEffect(v *pipeline.Values) {
	ops := v.Get("ops")
	if !ops.IsWhollyKnown() || ops.IsNull() {
		return
	}
	var listed []string
	for it := ops.ElementIterator(); it.Next(); {
		_, op := it.Element()
		listed = append(listed, op.AsString())
	}
	defaults, unused := attributeDefaults(Augment{}.Attributes()), unusedParams(listed)
	for _, op := range slices.Sorted(maps.Keys(opParams)) {
		for _, name := range opParams[op] {
			val := v.Get(name)
			if slices.Contains(unused, name) && val.IsWhollyKnown() && !val.IsNull() && !val.RawEquals(defaults[name]) && !v.Inherited(name) {
				d.warn(v, name, "Setting without effect",
					fmt.Sprintf("%s is a parameter of %s, which ops does not list: it changes nothing; add %q to ops to use it, or remove the setting.", name, op, op))
			}
		}
	}
}

// copyPlan returns how many augmented copies each original gets: the class target is
// min(maxAugment × n, largest), reached exactly by giving every original ⌊extra/n⌋ copies and
// the first extra mod n originals (in the given order) one more.
func copyPlan(n, largest, maxAugment int) []int {
	target := min(maxAugment*n, largest)
	extra := max(0, target-n)
	out := make([]int, n)
	for i := range out {
		out[i] = extra / n
		if i < extra%n {
			out[i]++
		}
	}
	return out
}

// augmentReport is report/augment.json.
type augmentReport struct {
	Classes []augmentCounts `json:"classes"`
}

type augmentCounts struct {
	Name   string `json:"name"`
	Before int    `json:"before"`
	Target int    `json:"target"`
	After  int    `json:"after"`
}

// Run implements pipeline.Kind. It reads its input twice, entry by entry: once to count each
// class, then a class at a time to plan, make and list that class's copies, so that what it
// holds is one class's entries (two while a class's last copies are made), not the set's.
func (Augment) Run(ctx context.Context, job *pipeline.Job) error {
	var cfg AugmentConfig
	if err := job.Values.Decode(&cfg); err != nil {
		return err
	}
	if err := job.Values.Decode(&cfg.params); err != nil {
		return err
	}
	inDir := job.Path(cfg.Input)
	in, counts, grouped, err := countClasses(inDir)
	if err == nil {
		err = checkFitted(in)
	}
	if err != nil {
		return fmt.Errorf("input %s: %w", cfg.Input, err)
	}
	outDir := filepath.Join(job.Out, "output")
	if err := os.MkdirAll(filepath.Join(outDir, "images"), 0o755); err != nil {
		return err
	}
	largest := 0
	for _, n := range counts {
		largest = max(largest, n)
	}
	rep := augmentReport{}
	listed, copies := 0, 0 // the output's entries, and the copies among them
	for label, n := range counts {
		target := min(cfg.MaxAugment*n, largest)
		extra := max(0, target-n)
		rep.Classes = append(rep.Classes, augmentCounts{Name: in.Classes[label], Before: n, Target: target, After: n + extra})
		listed += n + extra
		copies += extra
	}

	out := &Manifest{Split: TrainSet, Classes: in.Classes, Size: in.Size, Channels: in.Channels, Resize: in.Resize,
		SourceDir: in.SourceDir, SourcePrefix: in.SourcePrefix, FittedWith: in.FittedWith, ReadWith: in.ReadWith}
	made := madeWith(job.Seed, cfg, in)
	prev := readPreviousCopies(job, job.Previous, made, in.Classes)
	record, err := createCopiesRecord(job, made)
	if err != nil {
		return err
	}
	defer record.abandon()
	var reused atomic.Int64
	var damaged damagedJPEGs // originals libjpeg-turbo decoded past damage in (not storing)
	store := storedFormat{format: FormatPNG, compression: cfg.Compression}
	// Progress counts the copies, made or reused: what takes the time (an original is only
	// linked), and what the stage is for.
	if copies > 0 {
		job.Progress.Start("copies", int64(copies))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dataWorkers())
	// run makes what task t of a class lists: its original (linked when stored) and its copies,
	// made from the original decoded once, or linked from the previous output when made there
	// the same way from the same image.
	run := func(t *augmentTask) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		// An original the split did not store stays where it is: the output's manifest names
		// it as the input's does, and its copies are made from it fitted.
		unstored := t.entry.Path == ""
		var src string
		var data []byte
		if !unstored {
			src = filepath.Join(inDir, filepath.FromSlash(t.entry.Path))
			if err := job.LinkFile(src, filepath.Join(outDir, filepath.FromSlash(t.origPath()))); err != nil {
				return fmt.Errorf("copying %s: %w", src, err)
			}
		}
		if len(t.ops) == 0 {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(outDir, "images", fmt.Sprint(t.entry.Label)), 0o755); err != nil {
			return err
		}
		if unstored {
			t.input = t.entry.Digest // made names the fit, and reading checks the file
		} else {
			var err error
			if data, err = os.ReadFile(src); err != nil {
				return fmt.Errorf("input image %s: %w", src, err)
			}
			sum := sha256.Sum256(data)
			t.input = hex.EncodeToString(sum[:])
		}
		var img image.Image
		var scratch *image.RGBA
		defer func() {
			if scratch != nil {
				pixelBufs.put(scratch.Pix)
			}
		}()
		flipped := false
		for k := 1; k <= len(t.ops); k++ {
			r := copyRand(job.Seed, t.entry.Digest, t.occ, k)
			op := chooseOp(cfg.Ops, r, &flipped) // t.ops[k-1], and r drawn on as when planned
			rel := t.copyPath(k)
			if ok, err := prev.linkCopy(job, t, in.Classes[t.entry.Label], k, filepath.Join(outDir, filepath.FromSlash(rel))); err != nil {
				return err
			} else if ok {
				reused.Add(1)
				job.Progress.Add(1)
				continue
			}
			if img == nil {
				var err error
				if unstored {
					if img, err = readEntry(in, inDir, job.Workspace, t.entry, &damaged); err != nil {
						return err
					}
				} else if img, err = decodeImage(data, in.ReadWith != ""); err != nil {
					return fmt.Errorf("input image %s: %w", src, err)
				}
				switch im := img.(type) {
				case *image.RGBA:
				case *raster.RGB:
					img = im.ToRGBA()
					pixelBufs.put(im.Pix)
				default:
					img = clone.AsRGBA(img) // once (a stored JPEG decodes to YCbCr), not per copy
				}
				b := img.Bounds()
				scratch = &image.RGBA{Pix: pixelBufs.get(4 * b.Dx() * b.Dy()), Stride: 4 * b.Dx(), Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
			}
			aug := opaque(applyOp(img, op, cfg.params, r, scratch), in.Channels)
			data, err := store.appendEncoded(encodedBufs.get(0), aug)
			if err != nil {
				return err
			}
			_, err = job.WriteFile(filepath.Join(outDir, filepath.FromSlash(rel)), data)
			encodedBufs.put(data)
			if err != nil {
				return err
			}
			job.Progress.Add(1)
		}
		return nil
	}
	// The output lists its images by label, then path: a class's entries are listed as soon
	// as its tasks are given to the workers (what they make is planned), and the class's
	// input digests recorded once the workers are done with it, while they go on to the next.
	var pending *augmentClass
	finish := func(c *augmentClass) {
		if c != nil {
			c.done.Wait()
			record.add(c.tasks)
		}
	}
	var stopped error
	images := func(yield func(Entry) bool) {
		stopped = eachClass(inDir, grouped, counts, func(label int, entries []Entry) error {
			if err := gctx.Err(); err != nil {
				return err
			}
			c := planClass(job.Seed, label, entries, largest, cfg)
			for i := range c.tasks {
				t := &c.tasks[i]
				c.done.Add(1)
				g.Go(func() error {
					defer c.done.Done()
					return run(t)
				})
			}
			for e := range c.entries() {
				if !yield(e) {
					return errStopped
				}
			}
			finish(pending)
			pending = c
			return nil
		})
		finish(pending)
	}
	err = out.WriteEntries(outDir, listed, images)
	if werr := g.Wait(); werr != nil {
		return werr
	}
	if stopped != nil && !errors.Is(stopped, errStopped) {
		return stopped // what ended the reading, not the count of entries it left unwritten
	}
	if err != nil {
		return err
	}
	if n := reused.Load(); n > 0 {
		job.Logf("reused %s of the previous output (made the same way from the same images)", plural(int(n), "copy", "copies"))
	}
	logDamaged(job, damaged.sorted(), " among the originals copied", "")
	if err := record.close(); err != nil {
		return err
	}
	return writeAugmentReport(job, in.Classes, rep)
}

// errStopped ends a reading of a manifest whose entries are no longer wanted.
var errStopped = errors.New("stopped")

// countClasses reads the manifest in dir entry by entry and returns its header, the number
// of images of each class, and whether the entries come a class at a time in label order (as
// the split lists them).
func countClasses(dir string) (*Manifest, []int, bool, error) {
	var counts []int
	grouped, last := true, 0
	m, err := EachManifestEntry(dir, func(e Entry) error {
		if _, ok := digestOf(e.Digest); !ok {
			// an original's digest names its copies (and says which get the remainder)
			return fmt.Errorf("%s: image %s has the digest %q, not a SHA-256 in hex", filepath.Join(dir, ManifestFile), cmp.Or(e.Path, e.Source), e.Digest)
		}
		if e.Label >= len(counts) {
			counts = append(counts, make([]int, e.Label+1-len(counts))...)
		}
		counts[e.Label]++
		grouped = grouped && e.Label >= last
		last = e.Label
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	if len(counts) < len(m.Classes) {
		counts = append(counts, make([]int, len(m.Classes)-len(counts))...)
	}
	return m, counts, grouped, nil
}

// eachClass calls f with the entries of each class of the manifest in dir that has any, in
// label order, in the order the manifest lists them: read entry by entry when grouped (the
// manifest lists a class at a time, in label order), whole and sorted by label otherwise.
// counts are countClasses' counts of the same manifest.
func eachClass(dir string, grouped bool, counts []int, f func(label int, entries []Entry) error) error {
	var class []Entry
	flush := func() error {
		if len(class) == 0 {
			return nil
		}
		l := class[0].Label
		if len(class) != counts[l] {
			return fmt.Errorf("%s: changed while read (class %d had %d images, then %d)", filepath.Join(dir, ManifestFile), l, counts[l], len(class))
		}
		err := f(l, class)
		class = nil // the workers may still hold the last class's entries
		return err
	}
	add := func(e Entry) error {
		if len(class) > 0 && class[0].Label != e.Label {
			if err := flush(); err != nil {
				return err
			}
		}
		class = append(class, e)
		return nil
	}
	if !grouped {
		m, err := ReadManifest(dir)
		if err != nil {
			return err
		}
		slices.SortStableFunc(m.Images, func(a, b Entry) int { return a.Label - b.Label })
		for _, e := range m.Images {
			if err := add(e); err != nil {
				return err
			}
		}
		return flush()
	}
	if _, err := EachManifestEntry(dir, add); err != nil {
		return err
	}
	return flush()
}

// augmentTask is what one original of a class lists in the output: itself and its copies.
type augmentTask struct {
	entry Entry    // the original's input entry
	occ   int      // occurrence of its digest in the class (duplicates get distinct copies)
	stem  string   // names the original and its copies: images/<label>/<stem>.<ext>, <stem>_aug<k>.png
	ops   []string // each copy's operation
	input string   // SHA-256 of the input image its copies are made from, once made
}

// origPath is the output's path of t's original as stored, "" when not stored.
func (t *augmentTask) origPath() string {
	if t.entry.Path == "" {
		return ""
	}
	return fmt.Sprintf("images/%d/%s%s", t.entry.Label, t.stem, path.Ext(t.entry.Path))
}

// copyPath is the output's path of t's copy k.
func (t *augmentTask) copyPath(k int) string {
	return fmt.Sprintf("images/%d/%s_aug%d.png", t.entry.Label, t.stem, k)
}

// augmentClass is one class's tasks, and the workers still making them.
type augmentClass struct {
	tasks []augmentTask
	done  sync.WaitGroup
}

// planClass plans the copies of a class of the input with the given entries: which originals
// get the remainder of its target is fixed by the seed and content, not file order, and
// each copy's operation by the seed, the original's content and the copy's index.
func planClass(seed int64, label int, entries []Entry, largest int, cfg AugmentConfig) *augmentClass {
	keys := make([]string, len(entries))
	idx := make([]int, len(entries))
	for i, e := range entries {
		keys[i], idx[i] = order(seed, e.Digest), i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	plan := copyPlan(len(entries), largest, cfg.MaxAugment)
	c := &augmentClass{tasks: make([]augmentTask, len(entries))}
	seen := map[string]int{}
	for i, j := range idx {
		e := entries[j]
		t := augmentTask{entry: e, occ: seen[e.Digest]}
		seen[e.Digest]++
		t.stem = fmt.Sprintf("%s_%d", e.Digest[:16], t.occ)
		flipped := false
		for k := 1; k <= plan[i]; k++ {
			t.ops = append(t.ops, chooseOp(cfg.Ops, copyRand(seed, e.Digest, t.occ, k), &flipped))
		}
		c.tasks[i] = t
	}
	return c
}

// entries yields the output's entries of the class, by path: each original and its copies,
// as the input's entry with its output path. An original not stored sorts where its stored
// image would: the output lists images in one order whether the split stored them or not,
// and training, which shuffles that order, learns the same.
func (c *augmentClass) entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		type listed struct {
			key string
			t   *augmentTask
			k   int // 0 for the original
		}
		var list []listed
		for i := range c.tasks {
			t := &c.tasks[i]
			key := t.origPath()
			if key == "" {
				key = fmt.Sprintf("images/%d/%s.", t.entry.Label, t.stem)
			}
			list = append(list, listed{key, t, 0})
			for k := 1; k <= len(t.ops); k++ {
				list = append(list, listed{t.copyPath(k), t, k})
			}
		}
		slices.SortStableFunc(list, func(a, b listed) int { return strings.Compare(a.key, b.key) })
		for _, l := range list {
			e := l.t.entry
			if l.k == 0 {
				if e.Path != "" {
					e.Path = l.key
				}
			} else {
				e.Path, e.Copy = l.key, &Copy{Index: l.k, Op: l.t.ops[l.k-1]}
			}
			if !yield(e) {
				return
			}
		}
	}
}

// copyRand is the generator of copy k of an original: it depends only on the seed, the
// image's content and the copy's index, so reruns write identical bytes.
func copyRand(seed int64, digest string, occ, k int) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d/%d", digest, occ, k)
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// chooseOp draws a copy's operation from ops with r. flip has no randomness, so a second flip
// of an original would be a byte-identical copy: once flipped is set (by the first flip), a
// draw of flip is drawn again among the other operations. (With flip alone, validation keeps
// max_augment at 2, one copy per original.)
func chooseOp(ops []string, r *rand.Rand, flipped *bool) string {
	op := ops[r.IntN(len(ops))]
	if op != OpFlip {
		return op
	}
	if !*flipped {
		*flipped = true
		return op
	}
	others := slices.DeleteFunc(slices.Clone(ops), func(o string) bool { return o == OpFlip })
	if len(others) == 0 {
		return op
	}
	return others[r.IntN(len(others))]
}

// decodeFile decodes a stored image file (decodeImage).
func decodeFile(path string, libjpeg bool) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeImage(data, libjpeg)
}

// storedJPEGReader names the decoder of the JPEGs a split stores (Manifest.ReadWith), with
// the libtensorflow it comes with: augment's copies of them depend on it.
func storedJPEGReader() string {
	return "libjpeg-turbo (DecodeJpeg of libtensorflow " + graphs.TensorFlowVersion() + ", integer-accurate IDCT)"
}

// decodeImage decodes a stored image: the uncompressed PNGs the stages write with
// raster.ReadStoredPNG; JPEGs, with libjpeg set (the manifest names storedJPEGReader), with
// libjpeg-turbo only (jpegDecoder.decode, as predict and serve decode them: other pixels
// would be cached as if they were its); anything else (the JPEGs of manifests written before
// read_with) with Go's decoders.
func decodeImage(data []byte, libjpeg bool) (image.Image, error) {
	if img, ok := raster.ReadStoredPNG(data); ok {
		return img, nil
	}
	if libjpeg && len(data) > 2 && data[0] == 0xff && data[1] == 0xd8 {
		d, err := sharedJPEGDecoder()
		if err != nil {
			return nil, fmt.Errorf("libjpeg-turbo, which reads the stored JPEGs, is unusable: %w", err)
		}
		return d.decode(data)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	return img, err
}

func writeAugmentReport(job *pipeline.Job, classes []string, rep augmentReport) error {
	dir := filepath.Join(job.Out, "report")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "augment.json"), rep); err != nil {
		return err
	}
	var before, after []float64
	added, grown := 0, 0
	for _, c := range rep.Classes {
		before = append(before, float64(c.Before))
		after = append(after, float64(c.After))
		added += c.After - c.Before
		if c.After > c.Before {
			grown++
		}
	}
	if err := barChart(filepath.Join(dir, "class_distribution.png"), "Training images per class, before and after augmentation", classes,
		[]series{{"before", before}, {"after", after}}, job.Logf); err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	// The numbers report.html gives: the copies, and how many of the classes got some.
	job.Logf("added %s to %d of %s", plural(added, "copy", "copies"), grown, plural(len(rep.Classes), "class", "classes"))
	return nil
}
