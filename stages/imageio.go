package stages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // registered decoders: formats are recognised by content
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strings"

	_ "golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/math/f64"
	_ "golang.org/x/image/webp"
)

// DefaultMaxPixels bounds the size of an image discovery accepts (checked from the header,
// before decoding): larger files are usually corrupt headers or decompression bombs.
const DefaultMaxPixels = 50_000_000

// Resize policies for stored images.
const (
	ResizeSquash     = "squash"      // stretch to the target size (the original's behaviour)
	ResizeCenterCrop = "center_crop" // keep aspect ratio, cut the longer side's edges
	ResizePad        = "pad"         // keep aspect ratio, pad the shorter side with black
)

// ResizePolicies lists the valid resize values.
var ResizePolicies = []string{ResizeCenterCrop, ResizePad, ResizeSquash}

// loaded is a decoded image file with its identity.
type loaded struct {
	Digest string
	Size   int64
	Format string
	Img    image.Image
}

// errRejected marks problems that reject one file without failing the stage.
type errRejected struct{ reason string }

func (e errRejected) Error() string { return e.reason }

func reject(format string, args ...any) error { return errRejected{fmt.Sprintf(format, args...)} }

// loadImage reads, hashes and decodes path, for fitting to size×size (0: full size; JPEGs
// may be decoded at a reduced scale that keeps the shorter side ≥ size). Problems with the
// file itself (empty, not an image, truncated, too large) are errRejected; I/O failures are
// plain errors.
func loadImage(path string, maxPixels int64, size int) (loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return loaded{}, err
	}
	sum := sha256.Sum256(data)
	l := loaded{Digest: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	if len(data) == 0 {
		return l, reject("empty file")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	switch {
	case errors.Is(err, image.ErrFormat):
		return l, reject("not an image (content is not JPEG, PNG, GIF, BMP or WebP)")
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return l, reject("truncated %s (header incomplete)", format)
	case err != nil:
		return l, reject("corrupt %s header: %v", format, err)
	}
	l.Format = format
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return l, reject("%s with zero size %dx%d", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return l, reject("%s of %dx%d exceeds max_pixels %d", format, cfg.Width, cfg.Height, maxPixels)
	}
	img, err := decodeImage(data, format, cfg.Width, cfg.Height, size)
	if err != nil {
		// image/jpeg reports a cut-off scan as "short Huffman data" rather than an EOF.
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "short") {
			return l, reject("truncated %s", format)
		}
		return l, reject("corrupt %s: %v", format, err)
	}
	l.Img = img
	return l, nil
}

// fitImage resizes img to size×size by policy and converts it to channels (1: grey, 3: RGB),
// alpha composited over black.
func fitImage(img image.Image, size int, policy string, channels int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	switch policy {
	case ResizeSquash:
		scale(out, out.Bounds(), img, b)
	case ResizePad:
		tw, th := size, size
		if w >= h {
			th = max(1, (h*size+w/2)/w)
		} else {
			tw = max(1, (w*size+h/2)/h)
		}
		off := image.Pt((size-tw)/2, (size-th)/2)
		scale(out, image.Rect(0, 0, tw, th).Add(off), img, b)
	default: // center_crop
		side := min(w, h)
		x0, y0 := b.Min.X+(w-side)/2, b.Min.Y+(h-side)/2
		scale(out, out.Bounds(), img, image.Rect(x0, y0, x0+side, y0+side))
	}
	return opaque(out, channels)
}

// scale resamples the part sr of src into the part dr of dst with bilinear interpolation:
// a plain copy when the sizes agree, x/image/draw's two-tap ApproxBiLinear when shrinking by
// less than 2× or growing, and its BiLinear kernel, widened to the reduction so that no
// source pixel is skipped, when shrinking by 2× or more (large photos).
func scale(dst *image.RGBA, dr image.Rectangle, src image.Image, sr image.Rectangle) {
	switch {
	case dr.Dx() == sr.Dx() && dr.Dy() == sr.Dy():
		draw.Draw(dst, dr, src, sr.Min, draw.Src)
	case sr.Dx() >= 2*dr.Dx() || sr.Dy() >= 2*dr.Dy():
		xdraw.BiLinear.Scale(dst, dr, src, sr, xdraw.Src, nil)
	default:
		xdraw.ApproxBiLinear.Scale(dst, dr, src, sr, xdraw.Src, nil)
	}
}

// warp returns a w×h image whose pixel p shows src at m⁻¹(p), where m maps source
// coordinates to destination coordinates (pixel centres at +0.5); uncovered pixels are
// transparent black. One bilinear resampling, whatever m combines.
func warp(src image.Image, m f64.Aff3, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.ApproxBiLinear.Transform(out, m, src, src.Bounds(), xdraw.Src, nil)
	return out
}

// mul returns the affine map a∘b (b applied first).
func mul(a, b f64.Aff3) f64.Aff3 {
	return f64.Aff3{
		a[0]*b[0] + a[1]*b[3], a[0]*b[1] + a[1]*b[4], a[0]*b[2] + a[1]*b[5] + a[2],
		a[3]*b[0] + a[4]*b[3], a[3]*b[1] + a[4]*b[4], a[3]*b[2] + a[4]*b[5] + a[5],
	}
}

// opaque finishes an image this package allocated: with channels 3 it sets every alpha to
// opaque in place (premultiplied colour is the colour composited over black); with 1 it
// returns the grey image, the way color.GrayModel converts.
func opaque(img *image.RGBA, channels int) image.Image {
	if channels == 1 {
		b := img.Bounds()
		g := image.NewGray(b)
		for y := 0; y < b.Dy(); y++ {
			row := img.Pix[y*img.Stride : y*img.Stride+4*b.Dx()]
			out := g.Pix[y*g.Stride : y*g.Stride+b.Dx()]
			for x := range out {
				r, gg, bb := uint32(row[4*x])*0x101, uint32(row[4*x+1])*0x101, uint32(row[4*x+2])*0x101
				out[x] = uint8((19595*r + 38470*gg + 7471*bb + 1<<15) >> 24)
			}
		}
		return g
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	return img
}

// toChannels converts to an opaque grey or RGB image (alpha composited over black).
func toChannels(img image.Image, channels int) image.Image {
	b := img.Bounds()
	if channels == 1 {
		g := image.NewGray(b)
		draw.Draw(g, b, img, b.Min, draw.Src)
		return g
	}
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, image.NewUniform(color.Black), image.Point{}, draw.Src)
	draw.Draw(rgba, b, img, b.Min, draw.Over)
	return rgba
}

// Stored image formats.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
)

// PNG compression of stored images.
const (
	CompressionNone = "none" // stored deflate blocks, no filtering: fastest to write and to read
	CompressionFast = "fast" // filtered and deflated at zlib's fastest level: about half the size
)

// encodeImage writes img as png (lossless, deterministic; compression none or fast) or jpeg
// at quality.
func encodeImage(w io.Writer, img image.Image, format string, quality int, compression string) error {
	if format == FormatJPEG {
		return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
	}
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if compression == CompressionFast {
		enc.CompressionLevel = png.BestSpeed
	}
	return enc.Encode(w, img)
}

// writeImage encodes img into path.
func writeImage(path string, img image.Image, format string, quality int, compression string) error {
	var buf bytes.Buffer
	if err := encodeImage(&buf, img, format, quality, compression); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// extension returns the file extension of a stored format.
func extension(format string) string {
	if format == FormatJPEG {
		return ".jpg"
	}
	return ".png"
}
