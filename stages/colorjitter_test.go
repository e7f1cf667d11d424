package stages

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"
	"testing"
)

func TestColorJitterFollowsTorchvisionFormulas(t *testing.T) {
	src := randomRGBA(16, 16, 7)
	all := []int{0, 1, 2}
	if got := colorJitter(image.NewRGBA(src.Rect), src, [3]float64{1, 1, 1}, all); string(got.Pix) != string(src.Pix) {
		t.Error("factors of 1 changed the image")
	}
	// Saturation 0: every pixel becomes its grey (PIL's L).
	grey := colorJitter(image.NewRGBA(src.Rect), src, [3]float64{1, 1, 0}, []int{2})
	for i := 0; i < len(src.Pix); i += 4 {
		g := luma(src.Pix[i], src.Pix[i+1], src.Pix[i+2])
		if p := grey.Pix[i : i+4]; p[0] != g || p[1] != g || p[2] != g || p[3] != 255 {
			t.Fatalf("pixel %d: %v, want grey %d", i/4, p, g)
		}
	}
	// Contrast 0: every channel becomes the image's mean grey level.
	var sum int
	for i := 0; i < len(src.Pix); i += 4 {
		sum += int(luma(src.Pix[i], src.Pix[i+1], src.Pix[i+2]))
	}
	mean := uint8((sum + 128) / 256)
	flat := colorJitter(image.NewRGBA(src.Rect), src, [3]float64{1, 0, 1}, []int{1})
	for i := 0; i < len(flat.Pix); i += 4 {
		if p := flat.Pix[i : i+3]; p[0] != mean || p[1] != mean || p[2] != mean {
			t.Fatalf("pixel %d: %v, want the mean grey %d", i/4, p, mean)
		}
	}
	// Brightness 0.5 halves every channel (rounded down, as PIL), alpha untouched.
	half := colorJitter(image.NewRGBA(src.Rect), src, [3]float64{0.5, 1, 1}, []int{0})
	for i, v := range src.Pix {
		want := v / 2
		if i%4 == 3 {
			want = 255
		}
		if half.Pix[i] != want {
			t.Fatalf("byte %d: %d, want %d", i, half.Pix[i], want)
		}
	}
	// Saturation above 1 pushes channels away from grey, clamped to 0–255.
	vivid := colorJitter(image.NewRGBA(image.Rect(0, 0, 1, 1)), &image.RGBA{Pix: []uint8{200, 100, 50, 255}, Stride: 4, Rect: image.Rect(0, 0, 1, 1)}, [3]float64{1, 1, 2}, []int{2})
	// Grey (299·200 + 587·100 + 114·50)/1000 = 124.4 → 124; 2·c − 124 = 276, 76, −24.
	if got, want := vivid.RGBAAt(0, 0), (color.RGBA{255, 76, 0, 255}); got != want {
		t.Errorf("saturation 2: %v, want %v", got, want)
	}
	// Contrast 0.5 halves each channel's distance to the mean grey, rounded down as PIL's
	// blend truncates: (mean + v) / 2 in integers.
	soft := colorJitter(image.NewRGBA(src.Rect), src, [3]float64{1, 0.5, 1}, []int{1})
	for i, v := range src.Pix {
		want := (int(mean) + int(v)) / 2
		if i%4 == 3 {
			want = 255
		}
		if int(soft.Pix[i]) != want {
			t.Fatalf("contrast 0.5: byte %d = %d, want %d", i, soft.Pix[i], want)
		}
	}
}

// colorJitterRef is colorJitter as separate passes over a copy: contrast computes its mean
// grey level in a pass of its own.
func colorJitterRef(img *image.RGBA, f [3]float64, order []int) []uint8 {
	pix := bytes.Clone(img.Pix)
	for _, k := range order {
		switch k {
		case 0, 1:
			d := 0.0
			if k == 1 {
				d = meanLuma(pix)
			}
			for i := 0; i+3 < len(pix); i += 4 {
				for c := 0; c < 3; c++ {
					pix[i+c] = blend8(d, pix[i+c], f[k])
				}
			}
		case 2:
			s := int32(math.Round(f[2] * (1 << 16)))
			for i := 0; i+3 < len(pix); i += 4 {
				g := int32(luma(pix[i], pix[i+1], pix[i+2]))
				for c := 0; c < 3; c++ {
					pix[i+c] = fixBlend(g, pix[i+c], s)
				}
			}
		}
	}
	return pix
}

// The fused passes give the bytes of one pass per operation, for every order, into a reused
// image, from RGBA and from other image types; the source is left alone.
func TestColorJitterPassesAreFusedExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}, {1}, {0, 1}, {1, 1}, {}}
	out := image.NewRGBA(image.Rect(0, 0, 23, 17))
	for trial := 0; trial < 40; trial++ {
		src := image.NewRGBA(out.Rect)
		for i := range src.Pix {
			src.Pix[i] = uint8(r.IntN(256))
		}
		orig := bytes.Clone(src.Pix)
		f := [3]float64{0.8 + 0.4*r.Float64(), 0.8 + 0.4*r.Float64(), 0.8 + 0.4*r.Float64()}
		for _, order := range orders {
			want := colorJitterRef(src, f, order)
			if got := colorJitter(out, src, f, order); !bytes.Equal(got.Pix, want) {
				t.Fatalf("order %v, factors %v: fused passes differ", order, f)
			}
			if !bytes.Equal(src.Pix, orig) {
				t.Fatal("the source changed")
			}
			// Another image type goes through draw first.
			nrgba := image.NewNRGBA(src.Rect)
			for i := range nrgba.Pix {
				nrgba.Pix[i] = src.Pix[i] | 3 // any values
			}
			nrgba.Pix[3] = 255
			conv := image.NewRGBA(src.Rect)
			draw.Draw(conv, conv.Rect, nrgba, image.Point{}, draw.Src)
			if got := colorJitter(out, nrgba, f, order); !bytes.Equal(got.Pix, colorJitterRef(conv, f, order)) {
				t.Fatalf("order %v from NRGBA: differs", order)
			}
		}
	}
}
