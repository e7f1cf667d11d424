package stages

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"testing"

	"pipeline/stages/raster"
)

func TestJPEGRatioKeepsTheShorterSideAtLeastTheTarget(t *testing.T) {
	cases := []struct {
		w, h, size int
		want       int64
	}{
		{4000, 3000, 224, 8}, // 500×375
		{1000, 800, 224, 2},  // 1/4 would leave 200
		{500, 375, 224, 1},
		{448, 448, 224, 2},
		{449, 449, 224, 2},
		{1793, 1800, 224, 8}, // ceil(1793/8) = 225
		{100, 100, 224, 1},   // smaller than the target: full size
	}
	for _, c := range cases {
		if got := jpegRatio(c.w, c.h, c.size); got != c.want {
			t.Errorf("jpegRatio(%d, %d, %d) = %d, want %d", c.w, c.h, c.size, got, c.want)
		}
	}
}

// smoothJPEG is a w×h JPEG of smooth gradients (what photos mostly are).
func smoothJPEG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) * 127 / (w + h)), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestJPEGFitAgreesWithImageJPEGAndScalesDown(t *testing.T) {
	data := smoothJPEG(t, 96, 64)
	ref, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	d, err := sharedJPEGDecoder()
	if err != nil {
		t.Fatal(err)
	}
	// compare fits the JPEG through TensorFlow and through image/jpeg + raster.Resize (the
	// path other formats take) and checks that they differ by rounding only.
	compare := func(size int, policy string) *raster.RGB {
		t.Helper()
		fast, _, err := d.fit(data, 96, 64, 1, size, policy)
		if err != nil {
			t.Fatal(err)
		}
		slow := fitImage(ref, size, policy, 3).(*image.RGBA)
		if fast.Bounds() != slow.Bounds() {
			t.Fatalf("%d %s: bounds %v, image/jpeg path %v", size, policy, fast.Bounds(), slow.Bounds())
		}
		sum, worst := 0, 0
		for i := range slow.Pix {
			if i%4 == 3 {
				continue
			}
			d := absDiff(fast.Pix[i/4*3+i%4], slow.Pix[i])
			sum += d
			worst = max(worst, d)
		}
		// IDCT, upsampling and resampling differ by rounding only (DCT scaling a little more).
		if mean := float64(sum) / float64(len(fast.Pix)); mean > 1.5 || worst > 16 {
			t.Fatalf("%d %s: libjpeg vs image/jpeg: mean |Δ| %.2f, max %d", size, policy, mean, worst)
		}
		return fast
	}
	// Full size, no resampling: squash to the image's own size is impossible for a 96×64
	// image, so pad to 96 puts it in the middle rows with black bars above and below.
	padded := compare(96, ResizePad)
	if c := padded.RGBAAt(48, 0); c != (color.RGBA{0, 0, 0, 255}) {
		t.Fatalf("pad: top bar %v, want opaque black", c)
	}
	compare(48, ResizeCenterCrop) // 64×64 crop, bilinear
	compare(40, ResizeSquash)     // 2.4× horizontally: antialiased
	compare(100, ResizeSquash)    // 64 → 100 vertically: enlarged
	// Fitting to 16 pixels decodes at 1/4 scale (64/4 = 16): a 24×16 image, centre 16×16.
	compare(16, ResizeCenterCrop)
	if r := jpegRatio(96, 64, 16); r != 4 {
		t.Fatalf("ratio %d, want 4", r)
	}
	// A cut-off JPEG is refused by both paths.
	if _, err := prepareImage(data[:len(data)/2], "jpeg", 96, 64, 16, ResizeCenterCrop, 3); err == nil {
		t.Fatal("a truncated JPEG decoded")
	}
}

func TestTruncatedJPEGIsRefusedWhateverTheCrop(t *testing.T) {
	// A tall photo cut off in its bottom rows, below what center_crop keeps: the file is still
	// incomplete, and every policy must say so.
	data := smoothJPEG(t, 120, 360)
	for _, keep := range []float64{0.7, 0.9, 0.97} {
		cut := data[:int(float64(len(data))*keep)]
		for _, policy := range ResizePolicies {
			if _, err := prepareImage(cut, "jpeg", 120, 360, 64, policy, 3); err == nil {
				t.Errorf("%s: a JPEG cut to %.0f %% of its bytes was accepted", policy, 100*keep)
			}
		}
	}
}

func TestJPEGEncoderRoundTripsAndIsDeterministic(t *testing.T) {
	enc, err := newJPEGEncoder(95)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.close()
	ref, err := jpeg.Decode(bytes.NewReader(smoothJPEG(t, 64, 64)))
	if err != nil {
		t.Fatal(err)
	}
	rgb := fitImage(ref, 64, ResizeSquash, 3).(*image.RGBA)
	grey := fitImage(ref, 64, ResizeSquash, 1).(*image.Gray)
	packed := raster.NewRGB(rgb.Rect) // what the split's JPEG path hands over
	for y := 0; y < 64; y++ {
		raster.PackRGB(packed.Pix[y*packed.Stride:], rgb.Pix[y*rgb.Stride:(y+1)*rgb.Stride])
	}
	for name, img := range map[string]image.Image{"rgb": rgb, "grey": grey, "packed": packed} {
		fast := storedFormat{format: FormatJPEG, quality: 95, jpeg: enc}
		a, err := fast.encode(img)
		if err != nil {
			t.Fatal(err)
		}
		if name == "packed" {
			// Every stored format writes the same file for the same pixels in either layout.
			for _, f := range []storedFormat{fast, {format: FormatJPEG, quality: 95}, {format: FormatPNG, compression: CompressionFast}, {format: FormatPNG}} {
				got, err1 := f.encode(packed)
				want, err2 := f.encode(rgb)
				if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
					t.Fatalf("%+v: raster.RGB and image.RGBA of the same pixels encode differently (%v, %v)", f, err1, err2)
				}
			}
			continue
		}
		b, _ := fast.encode(img)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two encodes differ", name)
		}
		back, err := jpeg.Decode(bytes.NewReader(a))
		if err != nil {
			t.Fatalf("%s: image/jpeg cannot read libjpeg's file: %v", name, err)
		}
		if _, isGrey := back.(*image.Gray); isGrey != (name == "grey") {
			t.Fatalf("%s: decoded as %T", name, back)
		}
		sum := 0
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				p := color.RGBAModel.Convert(back.At(x, y)).(color.RGBA)
				q := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
				sum += absDiff(p.R, q.R) + absDiff(p.G, q.G) + absDiff(p.B, q.B)
			}
		}
		if mean := float64(sum) / (64 * 64 * 3); mean > 2 {
			t.Fatalf("%s: quality 95 round trip is off by %.2f on average", name, mean)
		}
		// image/jpeg's encoder (the fallback without TensorFlow) writes a file of the same image.
		slow, err := storedFormat{format: FormatJPEG, quality: 95}.encode(img)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(slow, a) {
			t.Fatalf("%s: the fallback encoder wrote libjpeg's bytes", name)
		}
		if _, err := jpeg.Decode(bytes.NewReader(slow)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrepareReportsTheImageJPEGFallback(t *testing.T) {
	data := smoothJPEG(t, 96, 64)
	if _, note, err := prepare(data, "jpeg", 96, 64, 32, ResizeCenterCrop, 3); err != nil || note != (decodeNote{}) {
		t.Fatalf("a good JPEG: %+v, %v", note, err)
	}
	// Told the wrong size, libjpeg-turbo is asked for a crop outside the image and refuses;
	// image/jpeg then decodes the file, and prepare says so.
	img, note, err := prepare(data, "jpeg", 960, 640, 32, ResizeCenterCrop, 3)
	if err != nil || !note.fallback || img.Bounds().Dx() != 32 {
		t.Fatalf("a refused crop: %+v, %v, %v", note, err, img)
	}
	if _, note, _ := prepare(randomPNG(1, 1, 8, 8), "png", 8, 8, 8, ResizeSquash, 3); note != (decodeNote{}) {
		t.Fatalf("a PNG: %+v", note)
	}
}

// The JPEG path's pixel buffers are recycled: a fit must overwrite every byte of a reused
// buffer (pad's bars black), whatever the buffer held before.
func TestJPEGFitsDoNotShowRecycledPixels(t *testing.T) {
	data := smoothJPEG(t, 96, 64)
	want := map[string][]uint8{}
	for round := 0; round < 3; round++ {
		for _, policy := range []string{ResizeCenterCrop, ResizePad, ResizeSquash} {
			for _, ch := range []int{3, 1} {
				img, err := prepareImage(data, "jpeg", 96, 64, 32, policy, ch)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%s/%d", policy, ch)
				px := pixelsOf(img, ch)
				if round == 0 {
					want[name] = px
					if r, _, _, _ := img.At(16, 0).RGBA(); (policy == ResizePad) != (r == 0) {
						t.Fatalf("%s: top pixel %d", name, r>>8)
					}
				} else if !bytes.Equal(px, want[name]) {
					t.Fatalf("%s, round %d: pixels differ from the first fit", name, round)
				}
				if rgb, ok := img.(*raster.RGB); ok {
					for i := range rgb.Pix {
						rgb.Pix[i] = 0x77 // what the next fit must not show
					}
					pixelBufs.put(rgb.Pix)
				}
			}
		}
	}
}

// blockyImage is a w×h picture of 4×4 blocks of random colours: sharp colour edges, where
// the chroma upsampling of a 4:2:0 JPEG matters most.
func blockyImage(seed uint64, w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for by := 0; by < h; by += 4 {
		for bx := 0; bx < w; bx += 4 {
			c := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			for y := by; y < min(by+4, h); y++ {
				for x := bx; x < min(bx+4, w); x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	return img
}

// A crop is decoded with context around it: its edge columns and rows are the whole
// picture's pixels, not those of a picture that ends at the crop (libjpeg-turbo upsamples the
// colour of a 4:2:0 JPEG from neighbouring samples, and treats a decoded area's edges as the
// picture's).
func TestJPEGCropIsTheWholePicturesPixels(t *testing.T) {
	d, err := sharedJPEGDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for i, sz := range [][2]int{{47, 33}, {33, 47}, {61, 40}, {100, 37}, {70, 70}, {39, 90}} {
		w, h := sz[0], sz[1]
		data := encodeJPEG(t, blockyImage(uint64(i), w, h)) // image/jpeg writes 4:2:0
		whole, err := d.decode(data)
		if err != nil {
			t.Fatal(err)
		}
		side := min(w, h)
		// Fitting to the shorter side decodes at full scale and resizes nothing: the fit is
		// the centre square of the whole decode.
		fit, _, err := d.fit(data, w, h, 1, side, ResizeCenterCrop)
		if err != nil {
			t.Fatal(err)
		}
		x0, y0 := (w-side)/2, (h-side)/2
		all := pixelsOf(whole, 3)
		var want []uint8
		for y := y0; y < y0+side; y++ {
			want = append(want, all[3*(y*w+x0):3*(y*w+x0+side)]...)
		}
		if got := pixelsOf(fit, 3); !bytes.Equal(got, want) {
			worst := 0
			for k := range got {
				worst = max(worst, absDiff(got[k], want[k]))
			}
			t.Errorf("%dx%d: the centre crop differs from the whole decode's centre by up to %d levels", w, h, worst)
		}
	}
}

// The JPEGs a split stores are read back (augment's originals, training and evaluation
// batches) with the pixels predict and serve get from the same file.
func TestStoredJPEGsAreReadAsPredictReadsThem(t *testing.T) {
	enc, err := newJPEGEncoder(90)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.close()
	rgb := blockyImage(3, 32, 32)
	grey := image.NewGray(rgb.Rect)
	for i := range grey.Pix {
		grey.Pix[i] = rgb.Pix[4*i+1]
	}
	for channels, img := range map[int]image.Image{3: rgb, 1: grey} {
		data, err := (storedFormat{format: FormatJPEG, quality: 90, jpeg: enc}).encode(img)
		if err != nil {
			t.Fatal(err)
		}
		read, err := decodeImage(data, true)
		if err != nil {
			t.Fatal(err)
		}
		served, err := prepareImage(data, "jpeg", 32, 32, 32, ResizeCenterCrop, channels)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pixelsOf(read, channels), pixelsOf(served, channels)) {
			t.Errorf("%d channels: a stored JPEG is read back with other pixels than predict fits from it", channels)
		}
		goRead, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if channels == 3 && bytes.Equal(pixelsOf(goRead, 3), pixelsOf(read, 3)) {
			t.Error("image/jpeg's pixels: the test image does not tell the decoders apart")
		}
	}
}
