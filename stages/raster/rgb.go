package raster

import (
	"encoding/binary"
	"image"
	"image/color"
)

// RGB is an opaque in-memory image of 8-bit red, green and blue samples, 3 bytes per pixel:
// the layout of TensorFlow's decoded images and of RGB PNG rows, so pixels pass between them
// without conversion.
type RGB struct {
	// Pix holds the samples in R, G, B order; pixel (x, y) starts at
	// Pix[(y-Rect.Min.Y)*Stride + (x-Rect.Min.X)*3].
	Pix []uint8
	// Stride is the distance in bytes between vertically adjacent pixels.
	Stride int
	// Rect is the image's bounds.
	Rect image.Rectangle
}

// NewRGB returns a black RGB image with bounds r.
func NewRGB(r image.Rectangle) *RGB {
	return &RGB{Pix: make([]uint8, 3*r.Dx()*r.Dy()), Stride: 3 * r.Dx(), Rect: r}
}

// ColorModel returns color.RGBAModel.
func (p *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds returns the image's bounds.
func (p *RGB) Bounds() image.Rectangle { return p.Rect }

// At returns the colour of pixel (x, y), transparent black outside the bounds.
func (p *RGB) At(x, y int) color.Color { return p.RGBAAt(x, y) }

// RGBAAt returns the colour of pixel (x, y), transparent black outside the bounds.
func (p *RGB) RGBAAt(x, y int) color.RGBA {
	if !(image.Point{x, y}.In(p.Rect)) {
		return color.RGBA{}
	}
	i := p.PixOffset(x, y)
	s := p.Pix[i : i+3 : i+3]
	return color.RGBA{s[0], s[1], s[2], 0xff}
}

// PixOffset returns the index of the first sample of pixel (x, y) in Pix.
func (p *RGB) PixOffset(x, y int) int {
	return (y-p.Rect.Min.Y)*p.Stride + (x-p.Rect.Min.X)*3
}

// Opaque reports true: an RGB image has no alpha.
func (p *RGB) Opaque() bool { return true }

// PackRGB writes the red, green and blue samples of the RGBA pixels in src (4 bytes each) to
// dst (3 bytes each), dropping alpha, for min(len(src)/4, len(dst)/3) pixels.
func PackRGB(dst, src []uint8) {
	n := min(len(src)/4, len(dst)/3)
	src, dst = src[:4*n], dst[:3*n]
	le := binary.LittleEndian
	i, j := 0, 0
	// Four pixels from two 8-byte loads into one 8-byte and one 4-byte store.
	for ; i+16 <= len(src) && j+12 <= len(dst); i, j = i+16, j+12 {
		s, d := src[i:i+16:i+16], dst[j:j+12:j+12]
		v, w := le.Uint64(s), le.Uint64(s[8:])
		le.PutUint64(d, v&0xffffff|v>>8&0xffffff000000|w<<48)
		le.PutUint32(d[8:], uint32(w>>16&0xff|w>>24&0xffffff00))
	}
	for ; i < len(src); i, j = i+4, j+3 {
		dst[j], dst[j+1], dst[j+2] = src[i], src[i+1], src[i+2]
	}
}
