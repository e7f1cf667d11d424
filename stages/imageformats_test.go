package stages

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Photos in formats the decoders do not read (HEIC, AVIF, SVG, ICO) are rejected as
// unsupported, with what to do, by the split and by predict and serve (ErrUnsupportedFormat:
// not an image to them, a server's 415, but with that reason), not as "not an image"; an MP4
// video, a web page drawing with SVG or plain text are still not images.
func TestPhotoFormatsTheDecodersLackAreUnsupported(t *testing.T) {
	ftyp := func(major string, compatible ...string) []byte {
		box := []byte(major + "\x00\x00\x00\x00" + strings.Join(compatible, ""))
		n := 8 + len(box)
		return append([]byte{0, 0, 0, byte(n), 'f', 't', 'y', 'p'}, box...)
	}
	const unsupported = ": convert it to PNG or JPEG"
	dir := t.TempDir()
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"iphone.heic":  {ftyp("heic", "mif1", "heic"), "unsupported heic (HEIF image)" + unsupported},
		"burst.heic":   {ftyp("hevc", "mif1", "hevc"), "unsupported heic (HEIF image)" + unsupported},
		"samsung.heif": {ftyp("mif1", "mif1", "heic", "miaf"), "unsupported heic (HEIF image)" + unsupported},
		"plain.heif":   {ftyp("msf1", "msf1", "iso8"), "unsupported heif (HEIF image)" + unsupported},
		"photo.avif":   {ftyp("avif", "avif", "mif1", "miaf", "MA1B"), "unsupported avif (AV1 image)" + unsupported},
		"anim.avif":    {ftyp("avis", "avis", "msf1", "iso8", "mif1"), "unsupported avif (AV1 image)" + unsupported},
		"logo.svg":     {[]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6"/>`), "unsupported svg (vector image)" + unsupported},
		"bom.svg":      {[]byte("\xef\xbb\xbf\n  <svg xmlns=\"http://www.w3.org/2000/svg\"/>"), "unsupported svg (vector image)" + unsupported},
		"inkscape.svg": {[]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- Created with Inkscape -->\n<svg width=\"8\"/>"), "unsupported svg (vector image)" + unsupported},
		"favicon.ico":  {[]byte("\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00\x68\x04\x00\x00\x16\x00\x00\x00"), "unsupported ico (Windows icon)" + unsupported},
		"arrow.cur":    {[]byte("\x00\x00\x02\x00\x01\x00\x20\x20\x00\x00\x01\x00\x01\x00\x30\x01\x00\x00\x16\x00\x00\x00"), "unsupported cur (Windows cursor)" + unsupported},
		"video.mp4":    {ftyp("isom", "isom", "iso2", "avc1", "mp41"), "not an image (content is not "},
		"page.html":    {[]byte("<!DOCTYPE html><html><body><svg width=\"8\"/></body></html>"), "not an image (content is not "},
		"data.xml":     {[]byte("<?xml version=\"1.0\"?><catalog/>"), "not an image (content is not "},
		"notes.txt":    {[]byte("an SVG file starts <svg"), "not an image (content is not "},
		"no-icons.bin": {[]byte("\x00\x00\x01\x00\x00\x00"), "not an image (content is not "},
	} {
		kind := ErrUnsupportedFormat
		if strings.HasPrefix(c.want, "not an image") {
			kind = ErrNotImage
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
		if r, ok := err.(errRejected); !ok || !strings.HasPrefix(r.reason, c.want) || !errors.Is(err, kind) {
			t.Errorf("%s: the split says %v, want %q", name, err, c.want)
		}
		if _, err := CheckImage(c.data, DefaultMaxPixels); err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, kind) || !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: predict says %v, want %q, not an image to a server", name, err, c.want)
		}
	}
}

// A GIF's first frame smaller than its canvas is fitted where the file places it on the
// canvas, the rest transparent (black), not stretched over the whole picture.
func TestGIFFrameKeepsItsPlaceOnTheCanvas(t *testing.T) {
	frame := image.NewPaletted(image.Rect(30, 20, 40, 30), color.Palette{color.RGBA{255, 0, 0, 255}})
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: frame.Palette, Width: 40, Height: 30}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := gif.DecodeConfig(bytes.NewReader(buf.Bytes()))
	if err != nil || cfg.Width != 40 || cfg.Height != 30 {
		t.Fatalf("canvas %dx%d, %v", cfg.Width, cfg.Height, err)
	}
	img, err := prepareImage(buf.Bytes(), "gif", 40, 30, 40, ResizePad, 3) // 40×30 in the middle rows
	if err != nil {
		t.Fatal(err)
	}
	at := func(x, y int) color.RGBA { return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) }
	// pad puts the 40×30 canvas at rows 5–34: the frame covers x 30–39, rows 25–34.
	if c := at(35, 30); c != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("inside the frame: %v, want red", c)
	}
	for _, p := range []image.Point{{5, 10}, {35, 10}, {5, 30}, {25, 24}} {
		if c := at(p.X, p.Y); c != (color.RGBA{0, 0, 0, 255}) {
			t.Errorf("outside the frame at %v: %v, want black", p, c)
		}
	}
}

// A JPEG whose coding image/jpeg and libjpeg-turbo (8-bit) lack is rejected naming it in a
// user's words, not image/jpeg's ("unknown marker", "precision").
func TestUnsupportedJPEGCodingIsNamed(t *testing.T) {
	frame := func(marker, precision byte) []byte {
		// SOI, then a one-component 8×8 frame header.
		return []byte{0xff, 0xd8, 0xff, marker, 0, 11, precision, 0, 8, 0, 8, 1, 1, 0x11, 0}
	}
	for _, c := range []struct {
		marker, precision byte
		want              string
	}{
		{0xc3, 8, "unsupported jpeg (lossless coding)"},
		{0xc1, 12, "unsupported jpeg (12-bit samples)"},
		{0xc5, 8, "unsupported jpeg (hierarchical coding)"},
	} {
		data := append(frame(c.marker, c.precision), 0xff, 0xd9)
		_, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err == nil {
			t.Fatalf("SOF %#x accepted", c.marker)
		}
		if got := decodeReason("jpeg", " header", err, data); !strings.HasPrefix(got, c.want) {
			t.Errorf("SOF %#x, %d bits: %q, want %q…", c.marker, c.precision, got, c.want)
		}
	}
}
