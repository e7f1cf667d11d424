package raster

import (
	"image"
	"image/draw"
	"math"
)

// precision is the number of fractional bits of the resampling weights: 22 leaves room for
// 255 × a sum of weights of 1.0 (plus rounding) in an int32, as in Pillow's resampler.
const precision = 22

// kernel holds, for each output position along one axis, the first source index and the
// fixed-point weights of the source pixels it averages.
type kernel struct {
	start []int   // first source index, relative to the source range's start
	count []int   // number of weights used
	taps  int     // weights stored per output position
	w     []int32 // len(start) × taps weights, each row summing to about 1<<precision
}

// newKernel is the triangle (bilinear) filter mapping n source pixels onto m output pixels,
// one source pixel wide (two-tap interpolation with pixel centres at +0.5, as
// tf.image.resize's bilinear), or with wide set and when shrinking, widened to the reduction
// so that every source pixel contributes (antialiasing, as Pillow's BILINEAR resize and
// tf.image.resize with antialias).
func newKernel(n, m int, wide bool) kernel {
	scale := float64(n) / float64(m)
	fscale := 1.0
	if wide {
		fscale = math.Max(scale, 1)
	}
	support := fscale // the triangle's half-width is 1 source pixel, scaled
	taps := int(math.Ceil(support))*2 + 1
	k := kernel{start: make([]int, m), count: make([]int, m), taps: taps, w: make([]int32, m*taps)}
	ws := make([]float64, taps)
	for i := 0; i < m; i++ {
		center := (float64(i) + 0.5) * scale
		lo := max(0, int(center-support+0.5))
		hi := min(n, int(center+support+0.5))
		var sum float64
		cnt := 0
		for x := lo; x < hi && cnt < taps; x++ {
			v := 1 - math.Abs((float64(x)-center+0.5)/fscale)
			if v < 0 {
				v = 0
			}
			ws[cnt] = v
			sum += v
			cnt++
		}
		// Drop zero weights at either end: the identity keeps one tap per pixel.
		first := 0
		for first < cnt-1 && ws[first] == 0 {
			first++
		}
		for cnt > first+1 && ws[cnt-1] == 0 {
			cnt--
		}
		k.start[i] = lo + first
		k.count[i] = cnt - first
		row := k.w[i*taps : (i+1)*taps]
		for j := first; j < cnt; j++ {
			row[j-first] = int32(ws[j]/sum*(1<<precision) + 0.5)
		}
	}
	return k
}

// clip8 converts a fixed-point sum (with the rounding half already added) to a byte. The
// weights are non-negative, so the sum is too; their rounding can push it past 255 when a
// reduction spreads an output over millions of source pixels, hence the clamp.
func clip8(v int32) uint8 { return uint8(min(v>>precision, 255)) }

// premultiplied returns the part r of src premultiplied by its alpha, rounded to the nearest
// level (draw.Draw rounds down: a colour of 201 at alpha 77 would be 60, not 61), so that a
// translucent PNG or WebP is composited over black as exactly as 8 bits allow.
func premultiplied(src *image.NRGBA, r image.Rectangle) *image.RGBA {
	c := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		in := src.Pix[src.PixOffset(r.Min.X, r.Min.Y+y):][:4*r.Dx()]
		out := c.Pix[y*c.Stride:][:4*r.Dx()]
		for i := 0; i < len(in); i += 4 {
			a := uint32(in[i+3])
			out[i] = uint8((uint32(in[i])*a + 127) / 255)
			out[i+1] = uint8((uint32(in[i+1])*a + 127) / 255)
			out[i+2] = uint8((uint32(in[i+2])*a + 127) / 255)
			out[i+3] = uint8(a)
		}
	}
	return c
}

// Resize resamples the part sr of src to the size of dr and writes it into the part dr of
// dst, with a triangle filter along each axis in turn: two-tap bilinear interpolation, or,
// when sr is 2× or more larger than dr along either axis (Antialias), the triangle widened to
// the reduction on each shrinking axis. Colour is taken as premultiplied, and the written
// pixels are opaque: a translucent source comes out composited over black. *image.RGBA
// sources are read directly, other images converted first. dr and sr are first clipped to
// their images' bounds; pixels of dst outside dr are left alone.
func Resize(dst *image.RGBA, dr image.Rectangle, src image.Image, sr image.Rectangle) {
	dr = dr.Intersect(dst.Rect)
	sr = sr.Intersect(src.Bounds())
	if dr.Empty() || sr.Empty() {
		return
	}
	var pix []uint8
	var stride int
	if s, ok := src.(*image.RGBA); ok {
		pix, stride = s.Pix[s.PixOffset(sr.Min.X, sr.Min.Y):], s.Stride
	} else if s, ok := src.(*image.NRGBA); ok {
		c := premultiplied(s, sr)
		pix, stride = c.Pix, c.Stride
	} else {
		c := image.NewRGBA(image.Rect(0, 0, sr.Dx(), sr.Dy()))
		draw.Draw(c, c.Rect, src, sr.Min, draw.Src)
		pix, stride = c.Pix, c.Stride
	}
	sw, sh, dw, dh := sr.Dx(), sr.Dy(), dr.Dx(), dr.Dy()
	wide := Antialias(sw, sh, dw, dh)
	kx, ky := newKernel(sw, dw, wide), newKernel(sh, dh, wide)

	// Horizontal pass over the source rows the vertical pass reads, into rows of dw RGB
	// pixels; then the vertical pass from those rows into dst.
	y0, y1 := ky.start[0], 0
	for j := range ky.start {
		y0, y1 = min(y0, ky.start[j]), max(y1, ky.start[j]+ky.count[j])
	}
	rowLen := dw * 3
	mid := make([]uint8, (y1-y0)*rowLen)
	for y := y0; y < y1; y++ {
		horizontal(mid[(y-y0)*rowLen:(y-y0+1)*rowLen], pix[y*stride:], kx)
	}
	acc := make([]int32, rowLen)
	for j := 0; j < dh; j++ {
		for i := range acc {
			acc[i] = 1 << (precision - 1)
		}
		ws := ky.w[j*ky.taps:]
		for t := 0; t < ky.count[j]; t++ {
			w := ws[t]
			row := mid[(ky.start[j]+t-y0)*rowLen:]
			row = row[:len(acc)]
			for i, v := range row {
				acc[i] += w * int32(v)
			}
		}
		d := dst.Pix[dst.PixOffset(dr.Min.X, dr.Min.Y+j):]
		d = d[:4*dw]
		for x := 0; x < dw; x++ {
			d[4*x] = clip8(acc[3*x])
			d[4*x+1] = clip8(acc[3*x+1])
			d[4*x+2] = clip8(acc[3*x+2])
			d[4*x+3] = 0xff
		}
	}
}

// horizontal resamples one row of RGBA pixels into RGB ones (alpha is not kept).
func horizontal(out, in []uint8, k kernel) {
	for i := range k.start {
		ws := k.w[i*k.taps : i*k.taps+k.count[i]]
		p := in[4*k.start[i]:]
		p = p[:4*len(ws)]
		r, g, b := int32(1<<(precision-1)), int32(1<<(precision-1)), int32(1<<(precision-1))
		for t, w := range ws {
			r += w * int32(p[4*t])
			g += w * int32(p[4*t+1])
			b += w * int32(p[4*t+2])
		}
		out[3*i], out[3*i+1], out[3*i+2] = clip8(r), clip8(g), clip8(b)
	}
}

// Antialias reports whether Resize filters a sw×sh area resampled to dw×dh with the widened
// triangle (a reduction of 2× or more along either axis) rather than two taps.
func Antialias(sw, sh, dw, dh int) bool { return sw >= 2*dw || sh >= 2*dh }
