package raster

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"testing"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/math/f64"
)

// The split stage's work on a 500×375 photo: the centre 375×375 square to 224×224, from what
// Go decoders give for PNG or WebP photos, with Resize against x/image/draw's
// ApproxBiLinear, the stages' previous resampler (JPEGs are resized in TensorFlow).
func BenchmarkResizePhoto(b *testing.B) {
	src := smooth(500, 375, 1)
	dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
	for b.Loop() {
		Resize(dst, dst.Rect, src, image.Rect(62, 0, 437, 375))
	}
}

func BenchmarkResizePhotoXDrawApproxBiLinear(b *testing.B) {
	src := smooth(500, 375, 1)
	dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
	for b.Loop() {
		xdraw.ApproxBiLinear.Scale(dst, dst.Rect, src, image.Rect(62, 0, 437, 375), xdraw.Src, nil)
	}
}

// flip_rotate_crop's warp of a 224×224 image.
func rotation() f64.Aff3 {
	c, s := math.Cos(0.3)/0.85, math.Sin(0.3)/0.85
	return f64.Aff3{-c, -s, 112 + 112*c + 112*s, -s, c, 112 + 112*s - 112*c}
}

func BenchmarkWarp224(b *testing.B) {
	src := smooth(224, 224, 2)
	dst := image.NewRGBA(src.Rect)
	m := rotation()
	for b.Loop() {
		Warp(dst, m, src)
	}
}

func BenchmarkWarp224XDrawApproxBiLinear(b *testing.B) {
	src := smooth(224, 224, 2)
	dst := image.NewRGBA(src.Rect)
	m := rotation()
	for b.Loop() {
		xdraw.ApproxBiLinear.Transform(dst, m, src, src.Rect, xdraw.Src, nil)
	}
}

func BenchmarkAppendPNG224(b *testing.B) {
	src := smooth(224, 224, 3)
	var buf []byte
	for b.Loop() {
		buf, _ = AppendPNG(buf[:0], src)
	}
}

func BenchmarkEncodePNG224NoCompression(b *testing.B) {
	src := smooth(224, 224, 3)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	for b.Loop() {
		buf.Reset()
		enc.Encode(&buf, src)
	}
}

// Reading a stored 224×224 image back (augment's originals, train's batches).
func BenchmarkReadStoredPNG224(b *testing.B) {
	data, _ := AppendPNG(nil, smooth(224, 224, 4))
	for b.Loop() {
		ReadStoredPNG(data)
	}
}

func BenchmarkReadStoredPNG224ImagePNG(b *testing.B) {
	data, _ := AppendPNG(nil, smooth(224, 224, 4))
	for b.Loop() {
		png.Decode(bytes.NewReader(data))
	}
}
