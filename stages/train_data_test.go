package stages

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"
)

// pixelsOf's fast path for RGBA images (stored PNGs decode to them) gives what converting
// through toChannels gives, for grey and colour, opaque or not, and for a sub-image.
func TestPixelsOfRGBAMatchesTheGenericConversion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, 37, 23))
	for i := 0; i < len(img.Pix); i += 4 {
		a := uint8(r.IntN(256))
		if i%3 == 0 {
			a = 255
		}
		// premultiplied: no channel above alpha
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(r.IntN(int(a)+1)), uint8(r.IntN(int(a)+1)), uint8(r.IntN(int(a)+1)), a
	}
	sub := img.SubImage(image.Rect(5, 3, 30, 20))
	for _, m := range []image.Image{img, sub} {
		for _, ch := range []int{1, 3} {
			got := pixelsOf(m, ch)
			want := genericPixels(toChannels(m, ch), ch)
			if !bytes.Equal(got, want) {
				t.Errorf("%v, %d channels: pixels differ from the generic conversion", m.Bounds(), ch)
			}
		}
	}
}

// genericPixels reads an opaque grey or RGBA image (toChannels' result) pixel by pixel.
func genericPixels(img image.Image, channels int) []uint8 {
	b := img.Bounds()
	var out []uint8
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if channels == 1 {
				out = append(out, uint8(r>>8))
			} else {
				out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
			}
		}
	}
	return out
}

// BenchmarkStoredImagePixels224 reads a stored 224×224 colour image as the training input
// does: decode, then pixelsOf.
func BenchmarkStoredImagePixels224(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	img := image.NewRGBA(image.Rect(0, 0, 224, 224))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	data, err := (storedFormat{format: FormatPNG, compression: CompressionNone}).encode(img)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := decodeImage(data, true)
		if err != nil {
			b.Fatal(err)
		}
		pixelsOf(m, 3)
	}
}
