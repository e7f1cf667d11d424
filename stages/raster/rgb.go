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

// ToRGBA returns an opaque RGBA copy of p at the origin.
func (p *RGB) ToRGBA() *image.RGBA {
	w, h := p.Rect.Dx(), p.Rect.Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		UnpackRGB(out.Pix[y*out.Stride:(y+1)*out.Stride], p.Pix[y*p.Stride:y*p.Stride+3*w])
	}
	return out
}

// UnpackRGB writes the RGB pixels in src (3 bytes each) to dst as opaque RGBA pixels (4 bytes
// each), for min(len(src)/3, len(dst)/4) pixels: the inverse of PackRGB.
func UnpackRGB(dst, src []uint8) {
	n := min(len(src)/3, len(dst)/4)
	src, dst = src[:3*n], dst[:4*n]
	le := binary.LittleEndian
	i, j := 0, 0
	// Four pixels from 12 bytes: one 8-byte and one 4-byte load, two 8-byte stores.
	for ; i+12 <= len(src) && j+16 <= len(dst); i, j = i+12, j+16 {
		s, d := src[i:i+12:i+12], dst[j:j+16:j+16]
		v, u := le.Uint64(s), uint64(le.Uint32(s[8:]))
		le.PutUint64(d, v&0xffffff|0xff000000|(v>>24&0xffffff)<<32|0xff<<56)
		le.PutUint64(d[8:], v>>48&0xffff|(u&0xff)<<16|0xff000000|(u>>8&0xffffff)<<32|0xff<<56)
	}
	for ; i < len(src); i, j = i+3, j+4 {
		dst[j], dst[j+1], dst[j+2], dst[j+3] = src[i], src[i+1], src[i+2], 0xff
	}
}

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
