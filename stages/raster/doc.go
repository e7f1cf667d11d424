// Package raster holds the 8-bit pixel kernels the data stages spend their time in: resizing
// with a bilinear filter that is widened (antialiased) for large reductions, bilinear affine
// warps, and writing uncompressed PNG files.
//
// The kernels work in fixed point on the bytes of *image.RGBA and *image.Gray images, without
// the per-pixel colour-model conversions of image/draw and golang.org/x/image/draw. They do
// not decode or colour-manage images, and they treat colour as premultiplied: an
// *image.RGBA's colour channels are used as they are, which for an opaque image is its colour
// and for a translucent one its colour over black.
package raster
