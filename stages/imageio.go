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

	"github.com/anthonynsimon/bild/transform"
	_ "golang.org/x/image/bmp"
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

// loadImage reads, hashes and decodes path. Problems with the file itself (empty, not an
// image, truncated, too large) are errRejected; I/O failures are plain errors.
func loadImage(path string, maxPixels int64) (loaded, error) {
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
	img, _, err := image.Decode(bytes.NewReader(data))
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

// fitImage resizes img to size×size by policy and converts it to channels (1: grey, 3: RGB).
func fitImage(img image.Image, size int, policy string, channels int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	var out *image.RGBA
	switch policy {
	case ResizeSquash:
		out = transform.Resize(img, size, size, transform.Linear)
	case ResizePad:
		tw, th := size, size
		if w >= h {
			th = max(1, (h*size+w/2)/w)
		} else {
			tw = max(1, (w*size+h/2)/h)
		}
		r := transform.Resize(img, tw, th, transform.Linear)
		out = image.NewRGBA(image.Rect(0, 0, size, size))
		draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{0, 0, 0, 255}), image.Point{}, draw.Src)
		off := image.Pt((size-tw)/2, (size-th)/2)
		draw.Draw(out, r.Bounds().Add(off), r, image.Point{}, draw.Over)
	default: // center_crop
		side := min(w, h)
		x0, y0 := b.Min.X+(w-side)/2, b.Min.Y+(h-side)/2
		cropped := transform.Crop(img, image.Rect(x0, y0, x0+side, y0+side))
		out = transform.Resize(cropped, size, size, transform.Linear)
	}
	return toChannels(out, channels)
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

// encodeImage writes img as png (lossless, deterministic) or jpeg at quality.
func encodeImage(w io.Writer, img image.Image, format string, quality int) error {
	if format == FormatJPEG {
		return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(w, img)
}

// writeImage encodes img into path.
func writeImage(path string, img image.Image, format string, quality int) error {
	var buf bytes.Buffer
	if err := encodeImage(&buf, img, format, quality); err != nil {
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
