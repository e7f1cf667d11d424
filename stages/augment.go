package stages

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"image"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
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
	return d.diags
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

// Run implements pipeline.Kind.
func (Augment) Run(ctx context.Context, job *pipeline.Job) error {
	var cfg AugmentConfig
	if err := job.Values.Decode(&cfg); err != nil {
		return err
	}
	if err := job.Values.Decode(&cfg.params); err != nil {
		return err
	}
	inDir := job.Path(cfg.Input)
	in, err := ReadManifest(inDir)
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
	byLabel := make([][]int32, len(in.Classes))
	for i, e := range in.Images {
		byLabel[e.Label] = append(byLabel[e.Label], int32(i))
	}
	largest := 0
	for _, idx := range byLabel {
		largest = max(largest, len(idx))
	}

	// One task per original: decode once, write the original and all its copies. Tasks are
	// in label order, a label's contiguous (labelStart).
	type task struct {
		img    int32 // the original's index in in.Images
		copies int32
		occ    int32 // occurrence of this digest in the class (duplicates get distinct copies)
	}
	var tasks []task
	labelStart := make([]int, len(byLabel)+1)
	rep := augmentReport{}
	for label, idx := range byLabel {
		labelStart[label] = len(tasks)
		// Which originals get the remainder is fixed by the seed and content, not file order.
		sort.SliceStable(idx, func(a, b int) bool {
			return order(job.Seed, in.Images[idx[a]].Digest) < order(job.Seed, in.Images[idx[b]].Digest)
		})
		plan := copyPlan(len(idx), largest, cfg.MaxAugment)
		seen := map[string]int32{}
		total := 0
		for i, j := range idx {
			d := in.Images[j].Digest
			tasks = append(tasks, task{img: j, copies: int32(plan[i]), occ: seen[d]})
			seen[d]++
			total += plan[i]
		}
		rep.Classes = append(rep.Classes, augmentCounts{Name: in.Classes[label], Before: len(idx),
			Target: min(cfg.MaxAugment*len(idx), largest), After: len(idx) + total})
		byLabel[label] = nil
	}
	labelStart[len(byLabel)] = len(tasks)

	out := &Manifest{Split: TrainSet, Classes: in.Classes, Size: in.Size, Channels: in.Channels, Resize: in.Resize,
		SourceDir: in.SourceDir, SourcePrefix: in.SourcePrefix, FittedWith: in.FittedWith, ReadWith: in.ReadWith}
	made := madeWith(job.Seed, cfg, in)
	prev := readPreviousCopies(job, job.Previous, made)
	var inputs inputDigests
	var reused atomic.Int64
	var damaged damagedJPEGs // originals libjpeg-turbo decoded past damage in (not storing)
	// The operation of each copy a task made or reused, by task: all the output's manifest
	// needs to list them, written once every task is done (a few bytes a copy, not an entry).
	copyOps := make([][]string, len(tasks))
	// stem names a task's original and copies in the output (images/<label>/<stem>.<ext>,
	// <stem>_aug<k>.png).
	stemOf := func(t task) string { return fmt.Sprintf("%s_%d", in.Images[t.img].Digest[:16], t.occ) }
	// origPath is the output's path of a task's original as stored, "" when not stored.
	origPath := func(t task) string {
		e := in.Images[t.img]
		if e.Path == "" {
			return ""
		}
		return fmt.Sprintf("images/%d/%s%s", e.Label, stemOf(t), path.Ext(e.Path))
	}
	copyPath := func(t task, k int) string {
		return fmt.Sprintf("images/%d/%s_aug%d.png", in.Images[t.img].Label, stemOf(t), k)
	}
	store := storedFormat{format: FormatPNG, compression: cfg.Compression}
	// Progress counts the copies, made or reused: what takes the time (an original is only
	// linked), and what the stage is for.
	copies := 0
	for _, t := range tasks {
		copies += int(t.copies)
	}
	if copies > 0 {
		job.Progress.Start("copies", int64(copies))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dataWorkers())
	for ti := range tasks {
		ti := ti
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			t := tasks[ti]
			entry := in.Images[t.img]
			stem := stemOf(t)
			// An original the split did not store stays where it is: the output's manifest
			// names it as the input's does, and its copies are made from it fitted.
			unstored := entry.Path == ""
			var src string
			var data []byte
			if !unstored {
				src = filepath.Join(inDir, filepath.FromSlash(entry.Path))
				if err := job.LinkFile(src, filepath.Join(outDir, filepath.FromSlash(origPath(t)))); err != nil {
					return fmt.Errorf("copying %s: %w", src, err)
				}
			}
			if t.copies == 0 {
				return nil
			}
			if err := os.MkdirAll(filepath.Join(outDir, "images", fmt.Sprint(entry.Label)), 0o755); err != nil {
				return err
			}
			ops := make([]string, 0, t.copies)
			var input string
			if unstored {
				// the original's digest: made names the fit, and reading checks the file
				input = inputs.addDigest(stem, entry.Digest)
			} else {
				var err error
				if data, err = os.ReadFile(src); err != nil {
					return fmt.Errorf("input image %s: %w", src, err)
				}
				input = inputs.add(stem, data)
			}
			var img image.Image
			var scratch *image.RGBA
			defer func() {
				if scratch != nil {
					pixelBufs.put(scratch.Pix)
				}
			}()
			flipped := false
			defer func() { copyOps[ti] = ops }()
			for k := 1; k <= int(t.copies); k++ {
				r := copyRand(job.Seed, entry.Digest, int(t.occ), k)
				op := chooseOp(cfg.Ops, r, &flipped)
				rel := copyPath(t, k)
				if ok, err := prev.linkCopy(job, stem, input, k, filepath.Join(outDir, filepath.FromSlash(rel))); err != nil {
					return err
				} else if ok {
					reused.Add(1)
					ops = append(ops, op)
					job.Progress.Add(1)
					continue
				}
				if img == nil {
					var err error // this task's: the function's err is shared by every task
					if unstored {
						if img, err = readEntry(in, inDir, job.Workspace, entry, &damaged); err != nil {
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
				ops = append(ops, op)
				job.Progress.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The output lists its images by label, then path, made a label at a time from the
	// tasks: an original and its copies (by copyOps), each as the input's entry with its
	// output path. An original not stored sorts where its stored image would: the output
	// lists images in one order whether the split stored them or not, and training, which
	// shuffles that order, learns the same.
	images := func(yield func(Entry) bool) {
		type listed struct {
			key  string
			task int
			k    int // 0 for the original
		}
		var list []listed
		for label := range len(in.Classes) {
			list = list[:0]
			for ti := labelStart[label]; ti < labelStart[label+1]; ti++ {
				key := origPath(tasks[ti])
				if key == "" {
					key = fmt.Sprintf("images/%d/%s.", label, stemOf(tasks[ti]))
				}
				list = append(list, listed{key, ti, 0})
				for k := 1; k <= len(copyOps[ti]); k++ {
					list = append(list, listed{copyPath(tasks[ti], k), ti, k})
				}
			}
			slices.SortStableFunc(list, func(a, b listed) int { return strings.Compare(a.key, b.key) })
			for _, l := range list {
				e := in.Images[tasks[l.task].img]
				if l.k == 0 {
					if e.Path != "" {
						e.Path = l.key
					}
				} else {
					e.Path, e.Copy = l.key, &Copy{Index: l.k, Op: copyOps[l.task][l.k-1]}
				}
				if !yield(e) {
					return
				}
			}
		}
	}
	if err := out.WriteEntries(outDir, len(tasks)+copies, images); err != nil {
		return err
	}
	if n := reused.Load(); n > 0 {
		job.Logf("reused %s of the previous output (made the same way from the same images)", plural(int(n), "copy", "copies"))
	}
	logDamaged(job, damaged.sorted(), " among the originals copied", "")
	if err := inputs.write(job, made); err != nil {
		return err
	}
	return writeAugmentReport(job, in.Classes, rep)
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
