package stages

import (
	"image"
)

// Lossy WebP (VP8) stores limited-range ("studio swing", 16–235) BT.601 YCbCr with chroma at
// half resolution, but golang.org/x/image/webp returns it as an image.YCbCr, whose colour
// model is JPEG's full-range one (golang/go#40173): whites come out at 235 and blacks at 16,
// and chroma is taken from the nearest sample. webpToRGB converts such images the way libwebp
// does (src/dsp/yuv.h and its "fancy" chroma upsampler, src/dsp/upsampling.c), so a WebP
// photo gets the pixels libwebp, browsers and Pillow show. Lossless WebP decodes to NRGBA
// and is right as it is.

// webpToRGB returns the colours of a lossy WebP decoded by x/image/webp (an *image.YCbCr, or
// an *image.NYCbCrA with alpha, 4:2:0 at the origin, as that package returns them): an
// *image.RGBA or *image.NRGBA. Other images are returned as they are.
func webpToRGB(img image.Image) image.Image {
	var m *image.YCbCr
	var alpha []uint8
	var astride int
	switch t := img.(type) {
	case *image.YCbCr:
		m = t
	case *image.NYCbCrA:
		m, alpha, astride = &t.YCbCr, t.A, t.AStride
	default:
		return img
	}
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 || m.Rect.Min != (image.Point{}) || m.Rect.Empty() {
		return img
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	var pix []uint8
	var stride int
	var out image.Image
	if alpha != nil {
		n := image.NewNRGBA(m.Rect)
		pix, stride, out = n.Pix, n.Stride, n
	} else {
		r := image.NewRGBA(m.Rect)
		pix, stride, out = r.Pix, r.Stride, r
	}
	set := func(x, y int, yy, u, v int) {
		i := y*stride + 4*x
		pix[i], pix[i+1], pix[i+2] = vp8ToRGB(uint8(yy), uint8(u), uint8(v))
		pix[i+3] = 0xff
		if alpha != nil {
			pix[i+3] = alpha[y*astride+x]
		}
	}
	lumaRow := func(y int) []uint8 { return m.Y[y*m.YStride : y*m.YStride+w] }
	chroma := func(cy int) ([]uint8, []uint8) {
		return m.Cb[cy*m.CStride : cy*m.CStride+(w+1)/2], m.Cr[cy*m.CStride : cy*m.CStride+(w+1)/2]
	}
	// Row 0 from chroma row 0 alone; then rows 2k+1 and 2k+2 from chroma rows k and k+1; an
	// even height's last row from the last chroma row alone (libwebp's EmitFancyRGB).
	u0, v0 := chroma(0)
	fancyPair(lumaRow(0), nil, u0, v0, u0, v0, func(x, yy, u, v int) { set(x, 0, yy, u, v) }, nil)
	y := 0
	for ; y+2 < h; y += 2 {
		tu, tv := chroma(y / 2)
		cu, cv := chroma(y/2 + 1)
		top, bot := y+1, y+2
		fancyPair(lumaRow(top), lumaRow(bot), tu, tv, cu, cv,
			func(x, yy, u, v int) { set(x, top, yy, u, v) }, func(x, yy, u, v int) { set(x, bot, yy, u, v) })
	}
	if h%2 == 0 {
		cu, cv := chroma(h/2 - 1)
		fancyPair(lumaRow(h-1), nil, cu, cv, cu, cv, func(x, yy, u, v int) { set(x, h-1, yy, u, v) }, nil)
	}
	return out
}

// fancyPair is libwebp's UpsampleRgbLinePair: it emits the pixels of luma row topY (and of
// botY below it, when not nil), whose chroma lies between chroma rows (tu, tv) above and
// (cu, cv) below, each chroma value interpolated 9:3:3:1 from the four nearest samples.
func fancyPair(topY, botY, tu, tv, cu, cv []uint8, top, bot func(x, y, u, v int)) {
	n := len(topY)
	last := (n - 1) >> 1
	tlU, tlV, lU, lV := int(tu[0]), int(tv[0]), int(cu[0]), int(cv[0])
	top(0, int(topY[0]), (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2)
	if botY != nil {
		bot(0, int(botY[0]), (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2)
	}
	for x := 1; x <= last; x++ {
		tU, tV, U, V := int(tu[x]), int(tv[x]), int(cu[x]), int(cv[x])
		avgU, avgV := tlU+tU+lU+U+8, tlV+tV+lV+V+8
		d12U, d12V := (avgU+2*(tU+lU))>>3, (avgV+2*(tV+lV))>>3
		d03U, d03V := (avgU+2*(tlU+U))>>3, (avgV+2*(tlV+V))>>3
		top(2*x-1, int(topY[2*x-1]), (d12U+tlU)>>1, (d12V+tlV)>>1)
		top(2*x, int(topY[2*x]), (d03U+tU)>>1, (d03V+tV)>>1)
		if botY != nil {
			bot(2*x-1, int(botY[2*x-1]), (d03U+lU)>>1, (d03V+lV)>>1)
			bot(2*x, int(botY[2*x]), (d12U+U)>>1, (d12V+V)>>1)
		}
		tlU, tlV, lU, lV = tU, tV, U, V
	}
	if n%2 == 0 {
		top(n-1, int(topY[n-1]), (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2)
		if botY != nil {
			bot(n-1, int(botY[n-1]), (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2)
		}
	}
}

// vp8ToRGB is libwebp's VP8YuvToRgb: BT.601, limited range, 14-bit fixed point.
func vp8ToRGB(y, u, v uint8) (r, g, b uint8) {
	mul := func(x uint8, c int) int { return int(x) * c >> 8 }
	clip := func(x int) uint8 {
		switch {
		case x < 0:
			return 0
		case x >= 256<<6:
			return 255
		}
		return uint8(x >> 6)
	}
	return clip(mul(y, 19077) + mul(v, 26149) - 14234),
		clip(mul(y, 19077) - mul(u, 6419) - mul(v, 13320) + 8708),
		clip(mul(y, 19077) + mul(u, 33050) - 17685)
}
