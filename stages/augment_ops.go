package stages

import (
	"image"
	"math"
	"math/rand/v2"

	"github.com/anthonynsimon/bild/adjust"
	"github.com/anthonynsimon/bild/blur"
	"github.com/anthonynsimon/bild/clone"
	"github.com/anthonynsimon/bild/transform"
	"golang.org/x/image/math/f64"
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

// applyOp returns a transformed copy of img (same size) by operation op, always a new image.
func applyOp(img image.Image, op string, p OpParams, r *rand.Rand) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch op {
	case OpFlipRotateCrop:
		// Flip, rotate about the centre, crop the centre and scale it back to w×h, as one
		// map from source to destination coordinates, resampled once.
		cx, cy := float64(w)/2, float64(h)/2
		m := f64.Aff3{1, 0, -cx - float64(b.Min.X), 0, 1, -cy - float64(b.Min.Y)}
		if r.Float64() < p.Flip {
			m = mul(f64.Aff3{-1, 0, 0, 0, 1, 0}, m)
		}
		if p.Rotation > 0 {
			th := uniform(r, -p.Rotation, p.Rotation) * math.Pi / 180
			c, s := math.Cos(th), math.Sin(th)
			m = mul(f64.Aff3{c, -s, 0, s, c, 0}, m)
		}
		if p.Crop > 0 && p.Crop < 1 {
			m = mul(f64.Aff3{1 / p.Crop, 0, 0, 0, 1 / p.Crop, 0}, m)
		}
		return warp(img, mul(f64.Aff3{1, 0, cx, 0, 1, cy}, m), w, h)
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
		// Scale about the centre, then shift; uncovered pixels stay black.
		sc := uniform(r, p.ScaleMin, p.ScaleMax)
		dx := math.Round(uniform(r, -p.Translate, p.Translate) * float64(w))
		dy := math.Round(uniform(r, -p.Translate, p.Translate) * float64(h))
		cx, cy := float64(w)/2, float64(h)/2
		m := f64.Aff3{sc, 0, cx + dx - sc*(cx+float64(b.Min.X)), 0, sc, cy + dy - sc*(cy+float64(b.Min.Y))}
		return warp(img, m, w, h)
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
	return clone.AsRGBA(img)
}
