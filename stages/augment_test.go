package stages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pipeline/pipeline"
)

func TestCopyPlanMatchesTheFormulaExactly(t *testing.T) {
	cases := []struct{ n, largest, maxAug int }{
		{10, 100, 5},  // 5×10 = 50 < 100: target 50
		{30, 100, 5},  // 150 > 100: target 100
		{60, 100, 5},  // more than half the largest: still grows to 100 (the original added none)
		{100, 100, 5}, // the largest: no copies
		{7, 100, 5},
		{1, 100, 5},
		{33, 100, 3},
		{10, 10, 1},
	}
	for _, c := range cases {
		plan := copyPlan(c.n, c.largest, c.maxAug)
		total, lo, hi := 0, 1<<30, 0
		for _, k := range plan {
			total += k
			lo, hi = min(lo, k), max(hi, k)
		}
		target := min(c.maxAug*c.n, c.largest)
		if c.n+total != target {
			t.Errorf("n=%d largest=%d max=%d: %d images after, want %d", c.n, c.largest, c.maxAug, c.n+total, target)
		}
		if hi-lo > 1 {
			t.Errorf("n=%d: copies per original range %d..%d, want an even spread", c.n, lo, hi)
		}
		if hi > c.maxAug-1 {
			t.Errorf("n=%d: an original got %d copies, more than max_augment-1 = %d", c.n, hi, c.maxAug-1)
		}
	}
}

// augmentHCL is augmentHCLTemplate with max_augment 3 and every operation.
var augmentHCL = fmt.Sprintf(augmentHCLTemplate, 3, `["flip_rotate_crop", "color_jitter", "affine", "blur", "noise", "flip"]`)

func TestAugmentBalancesDeterministicallyAndTrainOnly(t *testing.T) {
	sizes := map[string]int{"big": 40, "half": 25, "small": 5}
	var outputs []string
	for k := 0; k < 2; k++ {
		w := newWS(t, augmentHCL)
		for c, n := range sizes {
			for i := 0; i < n; i++ {
				w.write(fmt.Sprintf("raw/%s/%02d.png", c, i), randomPNG(uint64(len(c)), uint64(i), 10, 10))
			}
		}
		rec, _ := w.run(false)
		outputs = append(outputs, rec.Result("augment.balanced").Output)
		train, _ := ReadManifest(w.output(rec, "split.main", TrainSet))
		test, _ := ReadManifest(w.output(rec, "split.main", TestSet))
		out, err := ReadManifest(w.output(rec, "augment.balanced", "output"))
		if err != nil {
			t.Fatal(err)
		}
		before, after := train.Counts(), out.Counts()
		largest := 0
		for _, n := range before {
			largest = max(largest, n)
		}
		for i, c := range out.Classes {
			if want := min(3*before[i], largest); after[i] != want {
				t.Errorf("%s: %d → %d images, want %d", c, before[i], after[i], want)
			}
		}
		// Every copy is a changed image (the operations' parameters reach them).
		outDir := w.output(rec, "augment.balanced", "output")
		origPath := map[string]string{}
		for _, e := range out.Images {
			if e.Copy == nil {
				origPath[e.Digest] = e.Path
			}
		}
		copies := 0
		for _, e := range out.Images {
			if e.Copy == nil {
				continue
			}
			copies++
			a, err1 := decodeFile(filepath.Join(outDir, origPath[e.Digest]), true)
			b, err2 := decodeFile(filepath.Join(outDir, e.Path), true)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if bytes.Equal(pixelsOf(a, 3), pixelsOf(b, 3)) {
				t.Fatalf("copy %s (%s) has exactly its original's pixels", e.Path, e.Copy.Op)
			}
		}
		if copies == 0 {
			t.Fatal("no copies made")
		}
		testDigests := map[string]bool{}
		for _, e := range test.Images {
			testDigests[e.Digest] = true
		}
		for _, e := range out.Images {
			if testDigests[e.Digest] {
				t.Fatalf("test image %s appears in the augmented training set", e.Digest)
			}
			if _, err := os.Stat(filepath.Join(w.output(rec, "augment.balanced", "output"), e.Path)); err != nil {
				t.Fatalf("manifest entry %s: %v", e.Path, err)
			}
		}
		// The run folder reaches the images through one link into the store (Bulky).
		for _, dir := range []string{w.output(rec, "augment.balanced", "output/images"), w.output(rec, "split.main", "images")} {
			if fi, err := os.Lstat(dir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("%s: want a symbolic link, got %v %v", dir, fi, err)
			}
		}
	}
	if outputs[0] != outputs[1] {
		t.Fatal("two runs produced different augmented sets")
	}
}

// randomRGBA is an opaque w×h image of random pixels.
func randomRGBA(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 0xff
		}
	}
	return img
}

func TestGeometricOpsMapPixelsWhereTheyBelong(t *testing.T) {
	src := randomRGBA(24, 16, 7)
	rng := rand.New(rand.NewPCG(1, 2))

	// flip_rotate_crop with certain flip, no rotation, no crop: an exact mirror.
	mirror := applyOp(src, OpFlipRotateCrop, OpParams{Flip: 1, Rotation: 0, Crop: 1}, rng, nil)
	for y := 0; y < 16; y++ {
		for x := 0; x < 24; x++ {
			if got, want := mirror.RGBAAt(x, y), src.RGBAAt(23-x, y); got != want {
				t.Fatalf("flip: pixel (%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	// affine with scale 1 and no shift: the image itself.
	same := applyOp(src, OpAffine, OpParams{ScaleMin: 1, ScaleMax: 1}, rng, nil)
	if !bytes.Equal(same.Pix, src.Pix) {
		t.Fatal("affine with scale 1 and translate 0 changed the image")
	}
	// affine at half size: the centre stays, the border becomes (transparent) black, and
	// after finishing it is opaque black.
	half := opaque(applyOp(src, OpAffine, OpParams{ScaleMin: 0.5, ScaleMax: 0.5}, rng, nil), 3).(*image.RGBA)
	if c := half.RGBAAt(0, 0); c != (color.RGBA{0, 0, 0, 255}) {
		t.Fatalf("affine 0.5: corner %v, want opaque black", c)
	}
	if c, s := half.RGBAAt(12, 8), src.RGBAAt(12, 8); absDiff(c.R, s.R) > 64 && absDiff(c.G, s.G) > 64 {
		t.Fatalf("affine 0.5: centre %v far from the source centre %v", c, s)
	}
	// A rotation keeps the size and leaves some corner uncovered (|angle| ≥ 10° here).
	rot := opaque(applyOp(src, OpFlipRotateCrop, OpParams{Rotation: 30, Crop: 1}, rand.New(rand.NewPCG(3, 4)), nil), 3).(*image.RGBA)
	if rot.Bounds() != src.Bounds() {
		t.Fatalf("rotation changed the size to %v", rot.Bounds())
	}
	black := 0
	for _, p := range []image.Point{{0, 0}, {23, 0}, {0, 15}, {23, 15}} {
		if rot.RGBAAt(p.X, p.Y) == (color.RGBA{0, 0, 0, 255}) {
			black++
		}
	}
	if black == 0 {
		t.Fatal("rotation left every corner covered")
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestFitImageCopiesScalesAndCompositesOverBlack(t *testing.T) {
	// Same size: an exact copy.
	src := randomRGBA(16, 16, 9)
	if got := fitImage(src, 16, ResizeCenterCrop, 3).(*image.RGBA); !bytes.Equal(got.Pix, src.Pix) {
		t.Fatal("fitting a 16×16 image to 16 changed it")
	}
	// A uniform colour stays that colour whatever the reduction (2-tap and wide kernels).
	for _, side := range []int{20, 40, 400} {
		u := image.NewNRGBA(image.Rect(0, 0, side, side*3/4))
		for i := 0; i < len(u.Pix); i += 4 {
			copy(u.Pix[i:], []uint8{200, 100, 50, 128})
		}
		for _, policy := range []string{ResizeCenterCrop, ResizeSquash} {
			got := fitImage(u, 16, policy, 3).(*image.RGBA)
			// 50 % alpha over black: half the colour, opaque.
			for _, p := range []image.Point{{0, 0}, {8, 8}, {15, 15}} {
				c := got.RGBAAt(p.X, p.Y)
				if absDiff(c.R, 100) > 1 || absDiff(c.G, 50) > 1 || absDiff(c.B, 25) > 1 || c.A != 255 {
					t.Fatalf("%d px %s: pixel %v = %v, want about {100 50 25 255}", side, policy, p, c)
				}
			}
		}
	}
	// Grey output equals color.GrayModel's conversion of the RGB result.
	rgb := fitImage(src, 8, ResizeSquash, 3).(*image.RGBA)
	grey := fitImage(src, 8, ResizeSquash, 1).(*image.Gray)
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			if want := color.GrayModel.Convert(rgb.At(x, y)).(color.Gray); grey.GrayAt(x, y) != want {
				t.Fatalf("grey (%d,%d) = %v, want %v", x, y, grey.GrayAt(x, y), want)
			}
		}
	}
}

func TestPNGCompressionChoicesRoundTrip(t *testing.T) {
	src := randomRGBA(32, 32, 11)
	sizes := map[string]int{}
	for _, c := range []string{CompressionNone, CompressionFast} {
		data, err := storedFormat{format: FormatPNG, compression: c}.encode(src)
		if err != nil {
			t.Fatal(err)
		}
		sizes[c] = len(data)
		back, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				r1, g1, b1, _ := back.At(x, y).RGBA()
				r0, g0, b0, _ := src.At(x, y).RGBA()
				if r1 != r0 || g1 != g0 || b1 != b0 {
					t.Fatalf("%s: pixel (%d,%d) changed", c, x, y)
				}
			}
		}
	}
	// Uncompressed: the raw RGB rows (3·32·32 plus a filter byte per row) and PNG framing.
	if raw := 32 * (1 + 3*32); sizes[CompressionNone] < raw {
		t.Fatalf("compression none wrote %d bytes, less than the %d raw bytes", sizes[CompressionNone], raw)
	}
}

func TestJPEGStorageIsDeterministicAndAugments(t *testing.T) {
	const hcl = `
stage "split" "main" {
  source     = "raw"
  image_size = 16
  format     = "jpeg"
  quality    = 90
  val        = 0.2
  test       = 0.2
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 3
}
`
	var outputs []string
	for k := 0; k < 2; k++ {
		w := newWS(t, hcl)
		for i := 0; i < 20; i++ {
			w.write(fmt.Sprintf("raw/big/%02d.jpg", i), encodeWith(func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }, 30+i, 24))
		}
		for i := 0; i < 6; i++ {
			w.write(fmt.Sprintf("raw/small/%02d.png", i), randomPNG(3, uint64(i), 20, 20))
		}
		rec, _ := w.run(false)
		outputs = append(outputs, rec.Result("split.main").Output+" "+rec.Result("augment.balanced").Output)
		out, err := ReadManifest(w.output(rec, "augment.balanced", "output"))
		if err != nil {
			t.Fatal(err)
		}
		dir := w.output(rec, "augment.balanced", "output")
		copies := 0
		for _, e := range out.Images {
			data, err := os.ReadFile(filepath.Join(dir, e.Path))
			if err != nil {
				t.Fatal(err)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
			if err != nil || cfg.Width != 16 || cfg.Height != 16 {
				t.Fatalf("%s: %v %dx%d", e.Path, err, cfg.Width, cfg.Height)
			}
			// Originals are the split's JPEGs; copies are lossless PNGs made from them.
			if want := map[bool]string{true: "png", false: "jpeg"}[e.Copy != nil]; format != want {
				t.Fatalf("%s is %s, want %s", e.Path, format, want)
			}
			if e.Copy != nil {
				copies++
			}
		}
		if copies == 0 {
			t.Fatal("no copies of the small class")
		}
	}
	if outputs[0] != outputs[1] {
		t.Fatalf("two runs stored different bytes: %v", outputs)
	}
}

func TestAugmentRejectsOutOfRangeParameters(t *testing.T) {
	for attr, want := range map[string]string{
		"crop = 0":        "Invalid crop",
		"crop = 1.5":      "Invalid crop",
		"rotation = -5":   "Invalid rotation",
		"rotation = 720":  "Invalid rotation",
		"blur = -1":       "Invalid blur",
		"noise = 2":       "Invalid noise",
		"flip = 1.1":      "Invalid flip",
		"brightness = -1": "Invalid brightness",
	} {
		w := newWS(t, strings.Replace(augmentHCL, "max_augment = 3", "max_augment = 3\n  "+attr, 1))
		diags := w.diagnostics()
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: diagnostics %v, want %q", attr, diags, want)
		}
	}
	// The limits themselves are valid.
	w := newWS(t, strings.Replace(augmentHCL, "max_augment = 3", "max_augment = 3\n  crop = 1\n  rotation = 180\n  blur = 0\n  noise = 1", 1))
	diags := w.diagnostics()
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
}

// twoOpsWorkspace is augmentHCL with two operations, over a class of 10 photos and one of 4.
func twoOpsWorkspace(t *testing.T) (string, *ws) {
	t.Helper()
	hcl := strings.Replace(augmentHCL, `ops         = ["flip_rotate_crop", "color_jitter", "affine", "blur", "noise", "flip"]`, `ops         = ["flip_rotate_crop", "color_jitter"]`, 1)
	w := newWS(t, hcl)
	for i := 0; i < 10; i++ {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(1, uint64(i), 12, 12))
	}
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("raw/small/%d.png", i), randomPNG(2, uint64(i), 12, 12))
	}
	return hcl, w
}

// A setting of an operation not in ops keeps augment cached (its key leaves it out); one
// that ops reads reruns it.
func TestUnusedOperationSettingKeepsAugmentCached(t *testing.T) {
	hcl, w := twoOpsWorkspace(t)
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "max_augment = 3", "max_augment = 3\n  blur = 2", 1)))
	if st := mustRun(t, w).Result("augment.balanced"); st.Status != pipeline.StatusCached {
		t.Fatalf("augment after a setting of blur, not in ops, changed: %s", st.Status)
	}
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "max_augment = 3", "max_augment = 3\n  rotation = 10", 1)))
	if st := mustRun(t, w).Result("augment.balanced"); st.Status != pipeline.StatusRan {
		t.Fatalf("augment after a setting of flip_rotate_crop changed: %s", st.Status)
	}
}

func mustRun(t *testing.T, w *ws) *pipeline.RunRecord {
	t.Helper()
	rec, _ := w.run(false)
	return rec
}

// progressRecorder records the progress phases of the stages of a run: label, total and the
// units added, by stage.
type progressRecorder struct {
	mu     sync.Mutex
	phases map[string][]*recordedPhase
}

type recordedPhase struct {
	label       string
	total, done int64
}

func (r *progressRecorder) Planned([]string)               {}
func (r *progressRecorder) Finished(*pipeline.StageResult) {}
func (r *progressRecorder) Log(string, string)             {}
func (r *progressRecorder) Started(addr string, _ []string) pipeline.Progress {
	return &recordedProgress{r: r, addr: addr}
}

type recordedProgress struct {
	r    *progressRecorder
	addr string
}

func (p *recordedProgress) Start(label string, total int64) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	p.r.phases[p.addr] = append(p.r.phases[p.addr], &recordedPhase{label: label, total: total})
}

func (p *recordedProgress) Add(n int64) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	ph := p.r.phases[p.addr]
	ph[len(ph)-1].done += n
}

func (p *recordedProgress) Status(string) {}

// Augment's progress counts the copies it makes, as its label says: one phase of as many
// units as copies, all done.
func TestAugmentProgressCountsCopies(t *testing.T) {
	w := newWS(t, augmentHCL)
	for c, n := range map[string]int{"big": 12, "small": 5} {
		for i := range n {
			w.write(fmt.Sprintf("raw/%s/%02d.png", c, i), randomPNG(uint64(len(c)), uint64(i), 10, 10))
		}
	}
	rec := &progressRecorder{phases: map[string][]*recordedPhase{}}
	run, err := w.engine().Run(context.Background(), pipeline.RunOptions{RunsDir: filepath.Join(w.dir, "models"), Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ReadManifest(w.output(run, "augment.balanced", "output"))
	if err != nil {
		t.Fatal(err)
	}
	copies := int64(0)
	for _, e := range out.Images {
		if e.Copy != nil {
			copies++
		}
	}
	ph := rec.phases["augment.balanced"]
	if copies == 0 || len(ph) != 1 || ph[0].label != "copies" || ph[0].total != copies || ph[0].done != copies {
		t.Fatalf("%d copies; progress %+v", copies, ph)
	}
}

// The run log says how many classes got copies, as report.html does, and a stage's lines
// carry its address alone, not the kind again.
func TestAugmentAndSplitLogLinesSayTheReportsNumbers(t *testing.T) {
	_, w := twoOpsWorkspace(t)
	rec := mustRun(t, w)
	log, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	var r augmentReport
	readJSONFile(t, w.output(rec, "augment.balanced", "report/augment.json"), &r)
	added := 0
	for _, c := range r.Classes {
		added += c.After - c.Before
	}
	want := fmt.Sprintf("augment.balanced: added %d copies to 1 of 2 classes\n", added)
	if added < 2 || !strings.Contains(string(log), want) {
		t.Errorf("run.log lacks %q:\n%s", want, log)
	}
	// A split that rejected nothing says so, pointing at no file.
	if !strings.Contains(string(log), "classes; no files rejected\n") || strings.Contains(string(log), "0 files rejected") {
		t.Errorf("run.log does not say the split rejected no files:\n%s", log)
	}
	for _, repeated := range []string{"split.main: split: ", "augment.balanced: augment: "} {
		if strings.Contains(string(log), repeated) {
			t.Errorf("run.log repeats the prefix %q:\n%s", repeated, log)
		}
	}
}
