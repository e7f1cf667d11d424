package stages

import (
	"image"
	"image/draw"
	"math"
	"math/rand/v2"

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

// applyOp returns a transformed copy of img (same size) by operation op, never img itself:
// dst when it is not nil and the operation can write into it (dst must be an image of img's
// size at the origin; its pixels are overwritten), else a new image.
func applyOp(img image.Image, op string, p OpParams, r *rand.Rand, dst *image.RGBA) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := func() *image.RGBA {
		if dst != nil && dst.Rect == image.Rect(0, 0, w, h) {
			return dst
		}
		return image.NewRGBA(image.Rect(0, 0, w, h))
	}
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
		return warp(out(), img, mul(f64.Aff3{1, 0, cx, 0, 1, cy}, m))
	case OpColorJitter:
		order := r.Perm(3)
		var f [3]float64
		for _, k := range order {
			x := [3]float64{p.Brightness, p.Contrast, p.Saturation}[k]
			f[k] = 1 + uniform(r, -x, x)
		}
		return colorJitter(out(), img, f, order)
	case OpAffine:
		// Scale about the centre, then shift; uncovered pixels stay black.
		sc := uniform(r, p.ScaleMin, p.ScaleMax)
		dx := math.Round(uniform(r, -p.Translate, p.Translate) * float64(w))
		dy := math.Round(uniform(r, -p.Translate, p.Translate) * float64(h))
		cx, cy := float64(w)/2, float64(h)/2
		m := f64.Aff3{sc, 0, cx + dx - sc*(cx+float64(b.Min.X)), 0, sc, cy + dy - sc*(cy+float64(b.Min.Y))}
		return warp(out(), img, m)
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
// (ImageEnhance), the original system's augmentation: each blends the image with a degenerate
// one by its factor as PIL's Image.blend does (d + f·(v − d), truncated, clamped to 0–255),
// where d is black for brightness, the image's mean grey level (rounded) for contrast, and
// each pixel's grey (ITU-R 601 luma, as PIL's "L") for saturation. bild's Contrast pivots on
// mid-grey and its Saturation works in HSL, so they are not used.
// The result is written into out, an image of img's size at the origin.
func colorJitter(out *image.RGBA, img image.Image, f [3]float64, order []int) *image.RGBA {
	in := out.Pix // what the next operation reads; the first reads the source itself
	if src, ok := img.(*image.RGBA); ok && src.Stride == out.Stride && len(src.Pix) == len(out.Pix) {
		in = src.Pix
	} else {
		draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	}
	// Each operation is one pass from in to out; the one before a contrast also sums the
	// grey levels it writes, which gives contrast its mean without a pass of its own.
	var sum uint64
	for idx, k := range order {
		mean := idx+1 < len(order) && order[idx+1] == 1
		switch k {
		case 0, 1:
			d := 0.0
			if k == 1 {
				if idx == 0 {
					d = meanLuma(in)
				} else {
					d = roundedMean(sum, len(in)/4)
				}
			}
			var lut [256]uint8
			for v := range lut {
				lut[v] = blend8(d, uint8(v), f[k])
			}
			sum = lutPass(out.Pix, in, &lut, mean)
		case 2:
			// Per pixel, in 16.16 fixed point: g + f·(v − g) within 2⁻¹⁶·255 of the float
			// before truncation, so one level lower than blend8 in a few bytes in ten
			// thousand.
			sum = saturationPass(out.Pix, in, int32(math.Round(f[2]*(1<<16))), mean)
		}
		in = out.Pix
	}
	if len(order) == 0 && len(in) > 0 && &in[0] != &out.Pix[0] {
		copy(out.Pix, in)
	}
	return out
}

// lutPass maps the colour channels of the RGBA pixels in src through lut into dst (alpha
// copied) and, with mean, returns the sum of the written pixels' grey levels.
func lutPass(dst, src []uint8, lut *[256]uint8, mean bool) uint64 {
	var sum uint64
	for i := 0; i+3 < len(src) && i+3 < len(dst); i += 4 {
		s, d := src[i:i+4:i+4], dst[i:i+4:i+4]
		r, g, b := lut[s[0]], lut[s[1]], lut[s[2]]
		d[0], d[1], d[2], d[3] = r, g, b, s[3]
		if mean {
			sum += uint64(luma(r, g, b))
		}
	}
	return sum
}

// saturationPass blends each RGBA pixel of src with its grey level by the 16.16 factor s into
// dst (alpha copied) and, with mean, returns the sum of the written pixels' grey levels.
func saturationPass(dst, src []uint8, s int32, mean bool) uint64 {
	var sum uint64
	for i := 0; i+3 < len(src) && i+3 < len(dst); i += 4 {
		p, d := src[i:i+4:i+4], dst[i:i+4:i+4]
		g := int32(luma(p[0], p[1], p[2]))
		r, gg, b := fixBlend(g, p[0], s), fixBlend(g, p[1], s), fixBlend(g, p[2], s)
		d[0], d[1], d[2], d[3] = r, gg, b, p[3]
		if mean {
			sum += uint64(luma(r, gg, b))
		}
	}
	return sum
}

// roundedMean is sum/n rounded half up, as meanLuma rounds (0 for no pixels).
func roundedMean(sum uint64, n int) float64 {
	if n == 0 {
		return 0
	}
	return math.Floor(float64(sum)/float64(n) + 0.5)
}

// meanLuma is the mean grey level of RGBA pixels, rounded as PIL's ImageEnhance.Contrast does.
func meanLuma(pix []uint8) float64 {
	var sum uint64
	for i := 0; i+3 < len(pix); i += 4 {
		sum += uint64(luma(pix[i], pix[i+1], pix[i+2]))
	}
	return roundedMean(sum, len(pix)/4)
}

// luma is PIL's conversion to "L": (299 R + 587 G + 114 B) / 1000, in its fixed point.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// fixBlend is blend8 with the factor s in 16.16 fixed point.
func fixBlend(g int32, v uint8, s int32) uint8 {
	return clampByte((g<<16 + s*(int32(v)-g)) >> 16) // arithmetic shift: rounds down
}

// blend8 is PIL's Image.blend for one byte: d + f·(v − d), truncated and clamped to 0–255.
// (Factors are below 2, so the value fits an int32; truncation and flooring differ only below
// 0, which is clamped.)
func blend8(d float64, v uint8, f float64) uint8 {
	return clampByte(int32(d + f*(float64(v)-d)))
}

// clampByte limits x to 0–255.
func clampByte(x int32) uint8 {
	return uint8(min(max(x, 0), 255))
}
