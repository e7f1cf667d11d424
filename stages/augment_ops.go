package stages

import (
	"image"
	"image/color"
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
	OpColorJitter    = "color_jitter"     // brightness, contrast, saturation ×(1±x), random order (colorJitter)
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
		order := r.Perm(3)
		var f [3]float64
		for _, k := range order {
			x := [3]float64{p.Brightness, p.Contrast, p.Saturation}[k]
			f[k] = 1 + uniform(r, -x, x)
		}
		return colorJitter(img, f, order)
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

// colorJitter adjusts brightness, contrast and saturation by factors f (1: unchanged), in
// order (indexes into f), with the formulas torchvision's ColorJitter applies to PIL images
// (ImageEnhance), the original system's augmentation: brightness blends with black, contrast
// with the image's mean grey level, saturation with each pixel's grey (ITU-R 601 luma, as
// PIL's "L"). bild's own Contrast pivots on mid-grey and its Saturation works in HSL, so only
// its per-pixel machinery is used for those two; HSL also cost 3 ms per 224×224 image.
func colorJitter(img image.Image, f [3]float64, order []int) *image.RGBA {
	out := clone.AsRGBA(img)
	for _, k := range order {
		switch k {
		case 0:
			out = adjust.Brightness(out, f[0]-1) // v·f, clamped: the same as PIL's
		case 1:
			var sum uint64
			for i := 0; i+3 < len(out.Pix); i += 4 {
				sum += uint64(luma(out.Pix[i], out.Pix[i+1], out.Pix[i+2]))
			}
			mean := 0.0
			if n := len(out.Pix) / 4; n > 0 {
				mean = math.Floor(float64(sum)/float64(n) + 0.5)
			}
			var lut [256]uint8
			for v := range lut {
				lut[v] = clamp8(mean + f[1]*(float64(v)-mean))
			}
			out = adjust.Apply(out, func(c color.RGBA) color.RGBA {
				return color.RGBA{lut[c.R], lut[c.G], lut[c.B], c.A}
			})
		case 2:
			s := f[2]
			out = adjust.Apply(out, func(c color.RGBA) color.RGBA {
				g := float64(luma(c.R, c.G, c.B))
				return color.RGBA{clamp8(g + s*(float64(c.R)-g)), clamp8(g + s*(float64(c.G)-g)), clamp8(g + s*(float64(c.B)-g)), c.A}
			})
		}
	}
	return out
}

// luma is PIL's conversion to "L": (299 R + 587 G + 114 B) / 1000, in its fixed point.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// clamp8 rounds v to the nearest integer in [0, 255].
func clamp8(v float64) uint8 {
	return uint8(math.Max(0, math.Min(255, math.Round(v))))
}
