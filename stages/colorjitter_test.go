package stages

import (
	"image"
	"image/color"
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
