package stages

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"

	"github.com/anthonynsimon/bild/adjust"
	"github.com/anthonynsimon/bild/blur"
	"github.com/anthonynsimon/bild/clone"
	"github.com/anthonynsimon/bild/transform"
)

// Augmentation operations. Each copy applies one operation, chosen at random from the
// configured list; every random choice comes from the copy's own generator.
const (
	OpFlipRotateCrop = "flip_rotate_crop" // flip (p) + rotation ±rotation° + centre crop + resize
	OpColorJitter    = "color_jitter"     // brightness, contrast, saturation ×(1±x), random order
	OpAffine         = "affine"           // translate ±translate·size, scale in [scale_min, scale_max]
	OpFlip           = "flip"             // horizontal flip
	OpBlur           = "blur"             // Gaussian blur, radius up to blur
	OpNoise          = "noise"            // additive Gaussian noise, σ = noise·255
)

// AugmentOps lists the valid operation names.
var AugmentOps = []string{OpAffine, OpBlur, OpColorJitter, OpFlip, OpFlipRotateCrop, OpNoise}

// OpParams are the operations' parameters (HCL attributes of the augment stage).
type OpParams struct {
	Flip       float64 `cty:"flip"`
	Rotation   float64 `cty:"rotation"`
	Crop       float64 `cty:"crop"`
	Brightness float64 `cty:"brightness"`
	Contrast   float64 `cty:"contrast"`
	Saturation float64 `cty:"saturation"`
	Translate  float64 `cty:"translate"`
	ScaleMin   float64 `cty:"scale_min"`
	ScaleMax   float64 `cty:"scale_max"`
	Blur       float64 `cty:"blur"`
	Noise      float64 `cty:"noise"`
}

// uniform draws from [lo, hi).
func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

// applyOp returns a transformed copy of img (same size) by operation op.
func applyOp(img image.Image, op string, p OpParams, r *rand.Rand) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch op {
	case OpFlipRotateCrop:
		out := clone.AsRGBA(img)
		if r.Float64() < p.Flip {
			out = transform.FlipH(out)
		}
		if p.Rotation > 0 {
			out = transform.Rotate(out, uniform(r, -p.Rotation, p.Rotation), nil)
		}
		if p.Crop > 0 && p.Crop < 1 {
			cw, ch := max(1, int(math.Round(float64(w)*p.Crop))), max(1, int(math.Round(float64(h)*p.Crop)))
			x0, y0 := (w-cw)/2, (h-ch)/2
			out = transform.Resize(transform.Crop(out, image.Rect(x0, y0, x0+cw, y0+ch)), w, h, transform.Linear)
		}
		return out
	case OpColorJitter:
		out := clone.AsRGBA(img)
		for _, k := range r.Perm(3) {
			switch k {
			case 0:
				out = adjust.Brightness(out, uniform(r, -p.Brightness, p.Brightness))
			case 1:
				out = adjust.Contrast(out, uniform(r, -p.Contrast, p.Contrast))
			case 2:
				out = adjust.Saturation(out, uniform(r, -p.Saturation, p.Saturation))
			}
		}
		return out
	case OpAffine:
		s := uniform(r, p.ScaleMin, p.ScaleMax)
		sw, sh := max(1, int(math.Round(float64(w)*s))), max(1, int(math.Round(float64(h)*s)))
		scaled := transform.Resize(img, sw, sh, transform.Linear)
		// Re-centre the scaled image on the original canvas, then shift it.
		dx := int(math.Round(uniform(r, -p.Translate, p.Translate)*float64(w))) + (w-sw)/2
		dy := int(math.Round(uniform(r, -p.Translate, p.Translate)*float64(h))) + (h-sh)/2
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(out, out.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
		draw.Draw(out, scaled.Bounds().Add(image.Pt(dx, dy)), scaled, image.Point{}, draw.Src)
		return out
	case OpFlip:
		return transform.FlipH(img)
	case OpBlur:
		return blur.Gaussian(img, uniform(r, 0.1, math.Max(0.1, p.Blur)))
	case OpNoise:
		out := clone.AsRGBA(img)
		sigma := p.Noise * 255
		for i := range out.Pix {
			if i%4 == 3 {
				continue
			}
			v := float64(out.Pix[i]) + r.NormFloat64()*sigma
			out.Pix[i] = uint8(math.Max(0, math.Min(255, math.Round(v))))
		}
		return out
	}
	return img
}
