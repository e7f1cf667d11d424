package stages

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"testing"
)

func TestLossyWebPDecodesAsLibwebpDoes(t *testing.T) {
	// Studio-swing extremes and mid-grey, as libwebp converts them.
	for _, c := range []struct{ y, r uint8 }{{16, 0}, {235, 255}, {126, 128}} {
		if r, g, b := vp8ToRGB(c.y, 128, 128); r != c.r || g != c.r || b != c.r {
			t.Errorf("Y %d: (%d, %d, %d), want grey %d", c.y, r, g, b, c.r)
		}
	}
	// Photo-like lossy WebPs (odd and even sizes, with and without alpha) against libwebp's
	// own decode of them (made with Pillow, libwebp inside): the same pixels.
	for _, name := range []string{"photo-37x29", "photo-40x30-alpha", "white-black-lossy"} {
		data, err := os.ReadFile("testdata/" + name + ".webp")
		if err != nil {
			t.Fatal(err)
		}
		img, format, err := image.Decode(bytes.NewReader(data))
		if err != nil || format != "webp" {
			t.Fatalf("%s: %v %s", name, err, format)
		}
		got := webpToRGB(img)
		if got == img {
			t.Fatalf("%s: %T left unconverted", name, img)
		}
		var want image.Image
		if name == "white-black-lossy" {
			w := image.NewRGBA(image.Rect(0, 0, 16, 16))
			for i := 0; i < len(w.Pix); i += 4 {
				v := uint8(255)
				if (i/4)%16 >= 8 {
					v = 0
				}
				w.Pix[i], w.Pix[i+1], w.Pix[i+2], w.Pix[i+3] = v, v, v, 255
			}
			want = w
		} else {
			f, err := os.Open("testdata/" + name + "-libwebp.png")
			if err != nil {
				t.Fatal(err)
			}
			want, err = png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		worst := 0
		b := want.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				p := color.NRGBAModel.Convert(got.At(x, y)).(color.NRGBA)
				q := color.NRGBAModel.Convert(want.At(x, y)).(color.NRGBA)
				for _, d := range []int{absDiff(p.R, q.R), absDiff(p.G, q.G), absDiff(p.B, q.B), absDiff(p.A, q.A)} {
					worst = max(worst, d)
				}
			}
		}
		// White and black are not exact in a lossy file; libwebp's own decodes are.
		if limit := map[bool]int{true: 3, false: 0}[name == "white-black-lossy"]; worst > limit {
			t.Errorf("%s: %d levels from libwebp's pixels", name, worst)
		}
	}
	// Through the split's path: full range in, full range out.
	data, _ := os.ReadFile("testdata/white-black-lossy.webp")
	img, err := prepareImage(data, "webp", 16, 16, 16, ResizeSquash, 3)
	if err != nil {
		t.Fatal(err)
	}
	if white, black := img.(*image.RGBA).RGBAAt(2, 8), img.(*image.RGBA).RGBAAt(13, 8); white.R < 250 || black.R > 5 {
		t.Fatalf("white %v, black %v: the colours lost their range", white, black)
	}
}
