package stages

import (
	"image"
	"image/color"
)

// Lossy WebP (VP8) stores limited-range ("studio swing", 16–235) BT.601 YCbCr, but
// golang.org/x/image/webp returns it as an image.YCbCr, whose colour model is JPEG's
// full-range one (golang/go#40173): whites come out at 235 and blacks at 16. webpToRGB
// converts such images with libwebp's own arithmetic (src/dsp/yuv.h), so a WebP photo gets
// the pixels libwebp, browsers and Pillow show. Lossless WebP decodes to NRGBA and is right.

// webpToRGB returns the colours of a lossy WebP decoded by x/image/webp (an *image.YCbCr, or
// an *image.NYCbCrA with alpha): an *image.RGBA or *image.NRGBA. Other images are returned as
// they are.
func webpToRGB(img image.Image) image.Image {
	switch m := img.(type) {
	case *image.YCbCr:
		b := m.Rect
		out := image.NewRGBA(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := out.Pix[out.PixOffset(b.Min.X, y):]
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl := vp8ToRGB(m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)])
				i := 4 * (x - b.Min.X)
				row[i], row[i+1], row[i+2], row[i+3] = r, g, bl, 0xff
			}
		}
		return out
	case *image.NYCbCrA:
		b := m.Rect
		out := image.NewNRGBA(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl := vp8ToRGB(m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)])
				out.SetNRGBA(x, y, color.NRGBA{r, g, bl, m.A[m.AOffset(x, y)]})
			}
		}
		return out
	}
	return img
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
