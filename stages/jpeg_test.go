package stages

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
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
func smoothJPEG(t *testing.T, w, h int) []byte {
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

func TestJPEGDecoderAgreesWithImageJPEGAndScalesDown(t *testing.T) {
	data := smoothJPEG(t, 96, 64)
	fast, err := decodeImage(data, "jpeg", 96, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fast.(*image.RGBA); !ok {
		t.Fatalf("libjpeg path not taken: got %T", fast)
	}
	ref, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if fast.Bounds() != ref.Bounds() {
		t.Fatalf("bounds %v, image/jpeg %v", fast.Bounds(), ref.Bounds())
	}
	sum, worst := 0, 0
	for y := 0; y < 64; y++ {
		for x := 0; x < 96; x++ {
			a, b := fast.(*image.RGBA).RGBAAt(x, y), color.RGBAModel.Convert(ref.At(x, y)).(color.RGBA)
			for _, d := range []int{absDiff(a.R, b.R), absDiff(a.G, b.G), absDiff(a.B, b.B)} {
				sum += d
				worst = max(worst, d)
			}
		}
	}
	// IDCT and upsampling differ by rounding only.
	if mean := float64(sum) / (96 * 64 * 3); mean > 1.5 || worst > 12 {
		t.Fatalf("libjpeg vs image/jpeg: mean |Δ| %.2f, max %d", mean, worst)
	}
	// Fitting to 16 pixels allows 1/4 scale (64/4 = 16): a 24×16 decode.
	small, err := decodeImage(data, "jpeg", 96, 64, 16)
	if err != nil {
		t.Fatal(err)
	}
	if small.Bounds().Dx() != 24 || small.Bounds().Dy() != 16 {
		t.Fatalf("scaled decode is %v, want 24×16", small.Bounds())
	}
	// A cut-off JPEG is refused by both paths.
	if _, err := decodeImage(data[:len(data)/2], "jpeg", 96, 64, 0); err == nil {
		t.Fatal("a truncated JPEG decoded")
	}
}
