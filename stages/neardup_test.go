package stages

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/draw"

	"pipeline/stages/raster"
)

// blobPhoto is a photo-like picture for seed: a colour gradient with a few soft ellipses.
func blobPhoto(seed uint64, w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 77))
	type blob struct{ cx, cy, rx, ry, cr, cg, cb float64 }
	bs := make([]blob, 6)
	for i := range bs {
		bs[i] = blob{r.Float64() * float64(w), r.Float64() * float64(h), 0.1*float64(w) + r.Float64()*0.3*float64(w),
			0.1*float64(h) + r.Float64()*0.3*float64(h), r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	}
	g0, g1 := r.Float64()*255, r.Float64()*255
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := g0 + (g1-g0)*float64(x+y)/float64(w+h)
			c := [3]float64{v, 255 - v, v / 2}
			for _, b := range bs {
				dx, dy := (float64(x)-b.cx)/b.rx, (float64(y)-b.cy)/b.ry
				if a := 1 - (dx*dx + dy*dy); a > 0 {
					c[0], c[1], c[2] = c[0]*(1-a)+b.cr*a, c[1]*(1-a)+b.cg*a, c[2]*(1-a)+b.cb*a
				}
			}
			img.SetRGBA(x, y, color.RGBA{uint8(c[0]), uint8(c[1]), uint8(c[2]), 255})
		}
	}
	return img
}

func encodePNG(img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// smallerJPEG is img resized to frac of its size and saved at JPEG quality q: a copy of the
// same picture found elsewhere.
func smallerJPEG(img image.Image, frac float64, q int) []byte {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*frac), int(float64(b.Dy())*frac)))
	draw.BiLinear.Scale(dst, dst.Rect, img, b, draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: q}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// printOf stores data the way the split does (64 px, centre crop, RGB) and fingerprints it.
func printOf(t *testing.T, name string, data []byte) fingerprint {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := loadImage(p, nil, DefaultMaxPixels, 1, 64, ResizeCenterCrop, 3, true, false)
	if err != nil {
		t.Fatal(err)
	}
	return fingerprintOf(l.Img)
}

func TestFingerprintsJoinResizedCopiesAndNothingElse(t *testing.T) {
	var prints []fingerprint
	for i := range 12 {
		pic := blobPhoto(uint64(i), 240, 180)
		prints = append(prints, printOf(t, "a.png", encodePNG(pic)))
		if i < 4 {
			// Copies at 40–80 % and JPEG quality 50–90.
			for _, c := range []struct {
				frac float64
				q    int
			}{{0.6, 60}, {0.4, 50}, {0.8, 90}} {
				prints = append(prints, printOf(t, "b.jpg", smallerJPEG(pic, c.frac, c.q)))
			}
		}
	}
	// Every copy of a picture is near its original and the other copies.
	var all [][2]int
	for g := 0; g < 4; g++ {
		for a := 4 * g; a < 4*g+4; a++ {
			for b := a + 1; b < 4*g+4; b++ {
				all = append(all, [2]int{a, b})
			}
		}
	}
	if got := nearDuplicates(prints); !slices.Equal(got, all) {
		t.Fatalf("near-duplicate pairs %v, want %v", got, all)
	}
	worst, worstChroma, worstBlock := 0, 0, 0
	for _, p := range all {
		d, dc := 0, 0
		for c := range prints[p[0]].thumb {
			d += abs(int(prints[p[0]].thumb[c]) - int(prints[p[1]].thumb[c]))
		}
		for c := range prints[p[0]].chroma {
			v := abs(int(prints[p[0]].chroma[c]) - int(prints[p[1]].chroma[c]))
			dc, worstBlock = dc+v, max(worstBlock, v)
		}
		worst, worstChroma = max(worst, d), max(worstChroma, dc)
	}
	t.Logf("copies of one picture differ by at most %.2f grey levels on average (near-duplicates: at most %d), %.2f levels of colour (at most %d) and %d in a block of colour (at most %d)",
		float64(worst)/thumbCells, maxThumbDiff, float64(worstChroma)/chromaCells, maxChromaDiff, worstBlock, maxChromaBlockDiff)
	// A flat picture is never anyone's near-duplicate, not even another flat one.
	flat := image.NewUniform(color.RGBA{90, 90, 90, 255})
	f1 := printOf(t, "f.png", encodePNG(imageOf(flat, 100, 80)))
	if f1.ok {
		t.Fatal("a flat picture was comparable")
	}
	if got := nearDuplicates([]fingerprint{f1, f1}); len(got) != 0 {
		t.Fatalf("flat pictures paired: %v", got)
	}
}

// The same layout with an object of another colour at the same brightness is another
// picture: red and green circles of equal luma on one background are not near-duplicates,
// though their grey thumbnails are the same.
func TestFingerprintsTellColoursOfEqualBrightnessApart(t *testing.T) {
	circle := func(c color.RGBA) []byte {
		img := image.NewRGBA(image.Rect(0, 0, 96, 96))
		for y := range 96 {
			for x := range 96 {
				px := color.RGBA{uint8(2 * x), uint8(2 * y), 90, 255}
				if dx, dy := x-40, y-50; dx*dx+dy*dy < 24*24 {
					px = c
				}
				img.SetRGBA(x, y, px)
			}
		}
		return encodePNG(img)
	}
	red, green := printOf(t, "r.png", circle(color.RGBA{220, 40, 40, 255})), printOf(t, "g.png", circle(color.RGBA{40, 128, 60, 255}))
	if !red.ok || !green.ok || !closeThumbs(&red.thumb, &green.thumb) {
		t.Fatal("the two circles' grey thumbnails differ: the test cannot tell")
	}
	if got := nearDuplicates([]fingerprint{red, green}); len(got) != 0 {
		t.Errorf("a red and a green circle are near-duplicates: %v", got)
	}
	again := printOf(t, "r.jpg", smallerJPEG(mustDecodePNG(t, circle(color.RGBA{220, 40, 40, 255})), 0.6, 60))
	if got := nearDuplicates([]fingerprint{red, again}); len(got) != 1 {
		t.Errorf("the red circle and its smaller JPEG are not near-duplicates")
	}
	// A small square (15 % of the side, 2 % of the picture), in the middle or a corner, on a
	// textured background: the mean colour hardly moves, one block a lot.
	for _, at := range [][2]int{{41, 41}, {4, 4}, {60, 20}} {
		square := func(c color.RGBA) []byte {
			img := blobPhoto(9, 96, 96)
			for y := at[1]; y < at[1]+14; y++ {
				for x := at[0]; x < at[0]+14; x++ {
					img.SetRGBA(x, y, c)
				}
			}
			return encodePNG(img)
		}
		r, g := printOf(t, "r.png", square(color.RGBA{200, 0, 0, 255})), printOf(t, "g.png", square(color.RGBA{0, 102, 0, 255}))
		if got := nearDuplicates([]fingerprint{r, g}); len(got) != 0 {
			t.Errorf("a red and a green square at %v are near-duplicates", at)
		}
		copyOf := printOf(t, "r.jpg", smallerJPEG(mustDecodePNG(t, square(color.RGBA{200, 0, 0, 255})), 0.6, 60))
		if got := nearDuplicates([]fingerprint{r, copyOf}); len(got) != 1 {
			t.Errorf("the red square at %v and its smaller JPEG are not near-duplicates", at)
		}
	}
}

func mustDecodePNG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageOf(u *image.Uniform, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Rect, u, image.Point{}, draw.Src)
	return img
}

// randomPrint is a comparable fingerprint with random cells, or base's cells moved by up to
// ±spread levels when base is given.
func randomPrint(r *rand.Rand, base *fingerprint, spread int) fingerprint {
	var f fingerprint
	for i := range f.thumb {
		v := r.IntN(256)
		if base != nil {
			v = min(255, max(0, int(base.thumb[i])+r.IntN(2*spread+1)-spread))
		}
		f.thumb[i] = uint8(v)
	}
	f.ok = true
	return f
}

func TestNearDuplicatesFindsEveryPairBruteForceDoes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var fs []fingerprint
	for range 30 {
		base := randomPrint(r, nil, 0)
		fs = append(fs, base)
		for range 1 + r.IntN(4) {
			fs = append(fs, randomPrint(r, &base, 1+r.IntN(6))) // some within the limit, some not
		}
	}
	fs[7].ok = false
	var want [][2]int
	for i := range fs {
		for j := i + 1; j < len(fs); j++ {
			d := 0
			for c := range fs[i].thumb {
				d += abs(int(fs[i].thumb[c]) - int(fs[j].thumb[c]))
			}
			if fs[i].ok && fs[j].ok && d <= maxThumbDiff*thumbCells {
				want = append(want, [2]int{i, j})
			}
		}
	}
	if len(want) < 20 || len(want) > len(fs) {
		t.Fatalf("the test data has %d near pairs among %d fingerprints", len(want), len(fs))
	}
	if got := nearDuplicates(fs); !slices.Equal(got, want) {
		t.Fatalf("%d pairs %v, brute force %d %v", len(got), got, len(want), want)
	}
}

const nearHCL = `
stage "split" "main" {
  source          = "raw"
  image_size      = 32
  val             = 0.2
  test            = 0.2
  near_duplicates = %v
}
`

// nearWS is a workspace splitting nearHCL's source, which holds ten distinct pictures in each
// of classes a and b.
func nearWS(t *testing.T, near bool) *ws {
	t.Helper()
	w := newWS(t, fmt.Sprintf(nearHCL, near))
	for i := range 10 {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), encodePNG(blobPhoto(uint64(i), 120, 90)))
		w.write(fmt.Sprintf("raw/b/%02d.png", i), encodePNG(blobPhoto(uint64(100+i), 120, 90)))
	}
	return w
}

func TestNearDuplicatesShareASetAndAreReported(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			w := nearWS(t, on)
			// Picture a/03 again at 60 % in JPEG, twice in a and once, mislabelled, in b.
			pic := blobPhoto(3, 120, 90)
			w.write("raw/a/copy1.jpg", smallerJPEG(pic, 0.6, 60))
			w.write("raw/a/copy2.jpg", smallerJPEG(pic, 0.7, 80))
			w.write("raw/b/copy3.jpg", smallerJPEG(pic, 0.8, 90))
			rec, _ := w.run(false)
			s := splitOf(t, w, rec)
			var rep splitReport
			readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
			group := []string{"a/03.png", "a/copy1.jpg", "a/copy2.jpg", "b/copy3.jpg"}
			if !on {
				if len(rep.Near) != 0 {
					t.Fatalf("near_duplicates = false, yet reported %v", rep.Near)
				}
				return
			}
			for _, p := range group[1:] {
				if s[p] != s[group[0]] {
					t.Errorf("%s is in %s, its original in %s", p, s[p], s[group[0]])
				}
			}
			if want := inFolder("raw", group); len(rep.Near) != 1 || !slices.Equal(rep.Near[0], want) {
				t.Errorf("near_duplicates %v, want [%v]", rep.Near, want)
			}
			if len(rep.NearConflicts) != 1 {
				t.Errorf("near_duplicate_label_conflicts %v, want the group (b/copy3 is labelled b)", rep.NearConflicts)
			}
			if len(rep.Duplicates) != 0 {
				t.Errorf("duplicates %v: no two files are identical", rep.Duplicates)
			}
		})
	}
}

// testSourceWS is a workspace splitting raw/train, with raw/test as its test set: eight
// distinct pictures in each of classes x and y in the one, three in the other.
func testSourceWS(t *testing.T) *ws {
	t.Helper()
	w := newWS(t, `
stage "split" "main" {
  source      = "raw/train"
  test_source = "raw/test"
  image_size  = 32
  val         = 0.25
}
`)
	for _, c := range []string{"x", "y"} {
		for i := range 8 {
			w.write(fmt.Sprintf("raw/train/%s/%d.png", c, i), encodePNG(blobPhoto(uint64(c[0])*100+uint64(i), 120, 90)))
		}
		for i := range 3 {
			w.write(fmt.Sprintf("raw/test/%s/t%d.png", c, i), encodePNG(blobPhoto(uint64(c[0])*100+50+uint64(i), 120, 90)))
		}
	}
	return w
}

func TestNearDuplicatesOfTestSourceImagesLeaveTraining(t *testing.T) {
	w := testSourceWS(t)
	w.write("raw/train/x/smaller.jpg", smallerJPEG(blobPhoto(uint64('x')*100+51, 120, 90), 0.6, 70))
	// A copy of a test image under the same name in the training folder: the report tells
	// the two files apart by their folders.
	w.write("raw/train/y/t2.png", encodePNG(blobPhoto(uint64('y')*100+52, 120, 90)))
	// And one in another class folder: the log says the training copy is left out, and the
	// test set's label.
	w.write("raw/train/x/conflict.png", encodePNG(blobPhoto(uint64('y')*100+50, 120, 90)))
	rec, _ := w.run(false)
	s := splitOf(t, w, rec)
	if set, ok := s["x/smaller.jpg"]; ok {
		t.Fatalf("a smaller copy of test image x/t1.png is in %s", set)
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if !slices.Equal(rep.Leaked, []string{"raw/train/x/conflict.png", "raw/train/x/smaller.jpg", "raw/train/y/t2.png"}) {
		t.Fatalf("removed_from_train_val %v", rep.Leaked)
	}
	if len(rep.Duplicates) != 2 || !slices.Equal(rep.Duplicates[0], []string{"raw/test/y/t0.png", "raw/train/x/conflict.png"}) ||
		!slices.Equal(rep.Duplicates[1], []string{"raw/test/y/t2.png", "raw/train/y/t2.png"}) {
		t.Fatalf("duplicates %v", rep.Duplicates)
	}
	want := `warning: 1 group of identical images carries different class labels, e.g. "raw/test/y/t0.png" (y) and "raw/train/x/conflict.png" (x): the copies in the training folder are left out of training (removed_from_train_val) and the test set has this picture as y; keep each picture in one class folder`
	removed := `warning: removed 3 training images identical or near-identical to test_source images, e.g. "raw/train/x/conflict.png" (report/split.json: removed_from_train_val)`
	if log := runLog(t, rec); !strings.Contains(log, want) || !strings.Contains(log, removed) {
		t.Errorf("run.log lacks %q or %q:\n%s", want, removed, log)
	}
}

// inFolder returns the paths rels in folder, as the split's reports name files.
func inFolder(folder string, rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = folder + "/" + r
	}
	return out
}

func BenchmarkFingerprint(b *testing.B) {
	pic := blobPhoto(1, 224, 224)
	rgb := &raster.RGB{Pix: make([]uint8, 224*224*3), Stride: 224 * 3, Rect: pic.Rect}
	for i := range 224 * 224 {
		copy(rgb.Pix[3*i:3*i+3], pic.Pix[4*i:4*i+3])
	}
	for b.Loop() {
		fingerprintOf(rgb)
	}
}

// BenchmarkNearDuplicates50k compares 50,000 fingerprints whose sums crowd together (random
// cells: the sums' spread is a sixth of natural photos').
func BenchmarkNearDuplicates50k(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	fs := make([]fingerprint, 50000)
	for i := range fs {
		fs[i] = randomPrint(r, nil, 0)
	}
	for b.Loop() {
		nearDuplicates(fs)
	}
}

func TestTurningNearDuplicatesOnMovesCopiesAndSaysSo(t *testing.T) {
	w := nearWS(t, false)
	pic := blobPhoto(3, 120, 90)
	copies := []string{"a/copy1.jpg", "a/copy2.jpg", "a/copy3.jpg", "a/copy4.jpg"}
	for i, c := range copies {
		w.write("raw/"+c, smallerJPEG(pic, 0.5+0.1*float64(i), 60+10*i))
	}
	rec, _ := w.run(false)
	before := splitOf(t, w, rec)
	group := append([]string{"a/03.png"}, copies...)
	sets := map[string]bool{}
	for _, p := range group {
		sets[before[p]] = true
	}
	if len(sets) < 2 {
		t.Fatalf("test data: with near_duplicates off the pictures already share a set (%v)", sets)
	}
	heldOut := TrainSet
	for _, p := range group {
		if splitRank(before[p]) < splitRank(heldOut) {
			heldOut = before[p]
		}
	}

	w.write("pipeline.hcl", []byte(fmt.Sprintf(nearHCL, true)))
	rec, _ = w.run(false)
	after := splitOf(t, w, rec)
	var want []movedImage
	for _, p := range group {
		if after[p] != heldOut {
			t.Errorf("%s is in %s, want the group's held-out set %s", p, after[p], heldOut)
		}
		if before[p] != heldOut {
			want = append(want, movedImage{Path: "raw/" + p, From: before[p], To: heldOut})
		}
	}
	for p, s := range after {
		if !slices.Contains(group, p) && before[p] != s {
			t.Errorf("%s moved from %s to %s, outside the group", p, before[p], s)
		}
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if !slices.Equal(rep.Moved, want) {
		t.Errorf("moved_from_previous_split %v, want %v", rep.Moved, want)
	}
}

// wrapped hides an image's type, to take the generic path.
type wrapped struct{ image.Image }

func TestFingerprintIsTheSameForEveryPixelLayout(t *testing.T) {
	pic := blobPhoto(4, 70, 50).SubImage(image.Rect(3, 2, 67, 46)).(*image.RGBA) // not at the origin
	b := pic.Bounds()
	rgb := &raster.RGB{Pix: make([]uint8, 3*b.Dx()*b.Dy()), Stride: 3 * b.Dx(), Rect: b}
	nrgba := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := pic.RGBAAt(x, y)
			copy(rgb.Pix[rgb.PixOffset(x, y):], []uint8{c.R, c.G, c.B})
			nrgba.SetNRGBA(x, y, color.NRGBA{c.R, c.G, c.B, 255})
		}
	}
	want := fingerprintOf(pic)
	if !want.ok {
		t.Fatal("test picture not comparable")
	}
	for name, img := range map[string]image.Image{"raster.RGB": rgb, "NRGBA": nrgba, "generic": wrapped{pic}} {
		if got := fingerprintOf(img); got != want {
			t.Errorf("%s: a different fingerprint than image.RGBA's", name)
		}
	}
}

func TestALargeNearDuplicateGroupIsWarnedAbout(t *testing.T) {
	w := nearWS(t, true)
	pic := blobPhoto(3, 120, 90)
	for i := range maxNearGroup { // with a/03.png, one more than maxNearGroup
		w.write(fmt.Sprintf("raw/a/copy%02d.jpg", i), smallerJPEG(pic, 0.5+0.02*float64(i), 70+i))
	}
	rec, _ := w.run(false)
	log, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("warning: a group of %d near-identical images, from raw/a/03.png", maxNearGroup+1); !strings.Contains(string(log), want) {
		t.Fatalf("run.log lacks %q:\n%s", want, log)
	}
}

// TestTheDefaultDatasetHasNoNearDuplicates fingerprints data/raw as pipeline.hcl stores it
// (28 px, grey) and logs how close its two closest garments come, the figure docs/stages.md
// quotes: different garments of one cut must stay apart.
func TestTheDefaultDatasetHasNoNearDuplicates(t *testing.T) {
	paths, _ := filepath.Glob("../data/raw/*/*/*.png")
	if len(paths) < 2000 {
		t.Fatalf("found %d images of the default dataset", len(paths))
	}
	prints := make([]fingerprint, len(paths))
	for i, p := range paths {
		l, err := loadImage(p, nil, DefaultMaxPixels, 1, 28, ResizeCenterCrop, 1, true, false)
		if err != nil {
			t.Fatal(err)
		}
		prints[i] = fingerprintOf(l.Img)
	}
	if pairs := nearDuplicates(prints); len(pairs) != 0 {
		t.Fatalf("%d near-duplicate pairs, e.g. %s and %s", len(pairs), paths[pairs[0][0]], paths[pairs[0][1]])
	}
	best, bi, bj := 1<<30, 0, 0
	for i := range prints {
		for j := i + 1; j < len(prints); j++ {
			if !prints[i].ok || !prints[j].ok {
				continue
			}
			d := 0
			for c := range prints[i].thumb {
				d += abs(int(prints[i].thumb[c]) - int(prints[j].thumb[c]))
			}
			if d < best {
				best, bi, bj = d, i, j
			}
		}
	}
	t.Logf("%d images; the closest two differ by %.2f grey levels on average (%s, %s); near-duplicates by at most %d",
		len(paths), float64(best)/thumbCells, paths[bi], paths[bj], maxThumbDiff)
}

// Identical training copies of a picture in two class folders, near-identical to a test_source
// image: the log says that both are left out and the test set's label, not that the model is
// tested on the picture under both.
func TestIdenticalCopiesOfATestImageInTwoClassesAreLeftOut(t *testing.T) {
	w := testSourceWS(t)
	pic := blobPhoto(7777, 120, 90)
	w.write("raw/train/x/dup.png", encodePNG(pic))
	w.write("raw/train/y/dup.png", encodePNG(pic))
	w.write("raw/test/x/dup.jpg", smallerJPEG(pic, 0.7, 85))
	rec, _ := w.run(false)
	log := runLog(t, rec)
	want := `warning: 1 group of identical images carries different class labels, e.g. "raw/train/x/dup.png" (x) and "raw/train/y/dup.png" (y): the copies in the training folder are left out of training (removed_from_train_val) and the test set has this picture as x`
	if !strings.Contains(log, want) || strings.Contains(log, "tested on this picture as x and as y") {
		t.Errorf("run.log lacks %q:\n%s", want, log)
	}
}
