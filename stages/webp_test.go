package stages

import (
	"image"
	"os"
	"testing"
)

func TestLossyWebPKeepsItsFullRange(t *testing.T) {
	// Studio-swing extremes and mid-grey, as libwebp converts them.
	for _, c := range []struct{ y, r uint8 }{{16, 0}, {235, 255}, {126, 128}} {
		if r, g, b := vp8ToRGB(c.y, 128, 128); r != c.r || g != c.r || b != c.r {
			t.Errorf("Y %d: (%d, %d, %d), want grey %d", c.y, r, g, b, c.r)
		}
	}
	// A lossy WebP made by libwebp (Pillow, quality 100): white left half, black right half.
	data, err := os.ReadFile("testdata/white-black-lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := prepareImage(data, "webp", 16, 16, 16, ResizeSquash, 3)
	if err != nil {
		t.Fatal(err)
	}
	rgba := img.(*image.RGBA)
	white, black := rgba.RGBAAt(2, 8), rgba.RGBAAt(13, 8)
	if white.R < 250 || white.G < 250 || white.B < 250 || black.R > 5 || black.G > 5 || black.B > 5 {
		t.Fatalf("white %v, black %v: the colours lost their range", white, black)
	}
}
