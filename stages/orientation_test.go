package stages

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/webp"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"pipeline/graphs"
)

// withOrientation returns a JPEG with an Exif APP1 segment right after SOI whose first IFD
// holds a filler tag and then Orientation o, in the byte order of order ("II" or "MM").
func withOrientation(t *testing.T, data []byte, o int, order string) []byte {
	t.Helper()
	var bo binary.AppendByteOrder = binary.LittleEndian
	if order == "MM" {
		bo = binary.BigEndian
	}
	tiff := []byte(order)
	tiff = bo.AppendUint16(tiff, 42)
	tiff = bo.AppendUint32(tiff, 8)
	tiff = bo.AppendUint16(tiff, 2) // two entries
	// ImageWidth (LONG), which must be skipped.
	tiff = bo.AppendUint16(tiff, 0x0100)
	tiff = bo.AppendUint16(tiff, 4)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint32(tiff, 96)
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, uint16(o))
	tiff = bo.AppendUint16(tiff, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, data[:2]...)
	out = append(out, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(seg)))
	out = append(out, seg...)
	return append(out, data[2:]...)
}

// displayed is a 96×64 landscape picture of smooth gradients, different in every corner.
func displayed() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 96; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / 96), uint8(y * 255 / 64), uint8(255 - (2*x+y)*255/(2*96+64)), 255})
		}
	}
	return img
}

// asStored returns the pixels a camera stores for img when it tags them with orientation o.
func asStored(img *image.RGBA, o int) *image.RGBA {
	b := img.Bounds()
	w, h := orientedSize(o, b.Dx(), b.Dy()) // the stored size (the map is its own inverse on sizes)
	s := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			sx, sy := storedPoint(o, x, y, w, h)
			s.SetRGBA(sx, sy, img.RGBAAt(x, y))
		}
	}
	return s
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func meanAbsDiff(a, b []uint8) float64 {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		sum += max(d, -d)
	}
	return float64(sum) / float64(len(a))
}

func TestEXIFOrientationIsRead(t *testing.T) {
	data := smoothJPEG(t, 32, 16)
	if got := exifOrientation(data); got != 1 {
		t.Fatalf("a JPEG without Exif: orientation %d", got)
	}
	for _, order := range []string{"II", "MM"} {
		for o := 1; o <= 8; o++ {
			if got := exifOrientation(withOrientation(t, data, o, order)); got != o {
				t.Errorf("%s: orientation %d read as %d", order, o, got)
			}
		}
		for _, bad := range []int{0, 9, 300} {
			if got := exifOrientation(withOrientation(t, data, bad, order)); got != 1 {
				t.Errorf("%s: invalid orientation %d read as %d", order, bad, got)
			}
		}
	}
	// Cut short anywhere, or with bytes changed at random, a header is read without a panic
	// as either the tag or "as stored".
	tagged := withOrientation(t, data, 6, "MM")
	for n := range len(tagged) {
		if got := exifOrientation(tagged[:n]); got != 1 && got != 6 {
			t.Fatalf("cut at %d: orientation %d", n, got)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		m := append([]byte{}, tagged[:80]...)
		for range 1 + rng.IntN(4) {
			m[rng.IntN(len(m))] = byte(rng.IntN(256))
		}
		if got := exifOrientation(m); got < 1 || got > 8 {
			t.Fatalf("mutated header %x: orientation %d", m, got)
		}
	}
}

// A photo stored turned or mirrored, with the EXIF orientation that says so, is fitted as it
// is displayed: like the upright photo, by every policy, in both the libjpeg-turbo and the
// image/jpeg paths, and unlike the stored pixels taken as they are.
func TestPhotosAreFittedAsDisplayed(t *testing.T) {
	up := displayed()
	for _, policy := range ResizePolicies {
		want, err := prepareImage(encodeJPEG(t, up), "jpeg", 96, 64, 32, policy, 3)
		if err != nil {
			t.Fatal(err)
		}
		wantPx := pixelsOf(want, 3)
		for o := 2; o <= 8; o++ {
			stored := asStored(up, o)
			plain := encodeJPEG(t, stored)
			tagged := withOrientation(t, plain, o, "II")
			w, h := stored.Bounds().Dx(), stored.Bounds().Dy()
			ignored, err := prepareImage(plain, "jpeg", w, h, 32, policy, 3)
			if err != nil {
				t.Fatal(err)
			}
			if d := meanAbsDiff(pixelsOf(ignored, 3), wantPx); d < 20 {
				t.Fatalf("%s, orientation %d: the stored pixels already look upright (%.1f); the test shows nothing", policy, o, d)
			}
			for _, path := range []string{"libjpeg-turbo", "image/jpeg"} {
				cw, ch := w, h
				if path == "image/jpeg" {
					cw, ch = 10*w, 10*h // a crop libjpeg-turbo refuses: image/jpeg decodes
				}
				img, note, err := prepare(tagged, "jpeg", cw, ch, 32, policy, 3)
				if err != nil || note.fallback != (path == "image/jpeg") {
					t.Fatalf("%s, orientation %d, %s: fallback %v, %v", policy, o, path, note.fallback, err)
				}
				name := fmt.Sprintf("%s, orientation %d, %s", policy, o, path)
				if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
					t.Fatalf("%s: %v", name, b)
				}
				if d := meanAbsDiff(pixelsOf(img, 3), wantPx); d > 2 {
					t.Errorf("%s: differs from the upright photo by %.2f on average", name, d)
				}
			}
		}
	}
}

// withThumbnail returns data with an APP1 segment after SOI holding a complete small JPEG, as
// cameras embed a thumbnail: its end-of-image marker is not the file's.
func withThumbnail(t *testing.T, data []byte) []byte {
	t.Helper()
	thumb := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	seg := append([]byte("Exif\x00\x00"), thumb...)
	out := append([]byte{}, data[:2]...)
	out = append(out, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(seg)))
	out = append(out, seg...)
	return append(out, data[2:]...)
}

func TestJPEGCompleteFindsTheEndOfImage(t *testing.T) {
	baseline := withThumbnail(t, encodeJPEG(t, displayed()))
	// Progressive: many scans, each with its own tables and data.
	progressive := encodeProgressiveJPEG(t, displayed())
	// Restart markers and stuffed bytes in a scan's data, written out by hand.
	restarts := []byte{0xff, 0xd8,
		0xff, 0xda, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0, // scan header
		0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xff, 0xd1, 0x78, // data, restarts, fill
		0xff, 0xd9}
	for name, data := range map[string][]byte{"baseline with a thumbnail": baseline, "progressive": progressive, "restarts": restarts} {
		if !jpegComplete(data) {
			t.Errorf("%s: complete file taken as cut off", name)
		}
		if !jpegComplete(append(append([]byte{}, data...), "trailing bytes after the image"...)) {
			t.Errorf("%s: trailing bytes after the end taken as cut off", name)
		}
		for n := range len(data) - 1 {
			if jpegComplete(data[:n]) {
				t.Fatalf("%s: cut at %d of %d bytes taken as complete", name, n, len(data))
			}
		}
	}
	if jpegComplete([]byte("not a jpeg at all")) {
		t.Error("text taken as a complete JPEG")
	}
}

// encodeProgressiveJPEG encodes img as a progressive JPEG with libjpeg-turbo.
func encodeProgressiveJPEG(t *testing.T, img *image.RGBA) []byte {
	t.Helper()
	b := img.Bounds()
	pix := make([]uint8, 0, 3*b.Dx()*b.Dy())
	for i := 0; i < len(img.Pix); i += 4 {
		pix = append(pix, img.Pix[i:i+3]...)
	}
	s := op.NewScope()
	in := op.Placeholder(s, tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, -1, 3)))
	out := op.EncodeJpeg(s, in, op.EncodeJpegProgressive(true), op.EncodeJpegQuality(90))
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ten, err := tf.NewTensor(pix)
	if err != nil {
		t.Fatal(err)
	}
	if err := ten.Reshape([]int64{int64(b.Dy()), int64(b.Dx()), 3}); err != nil {
		t.Fatal(err)
	}
	res, err := sess.Run(map[tf.Output]*tf.Tensor{in: ten}, []tf.Output{out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(graphs.TensorValue(res[0]).(string))
	if n := bytes.Count(data, []byte{0xff, 0xda}); n < 2 {
		t.Fatalf("the progressive encoding has %d scans", n)
	}
	return data
}

// exifTIFF returns the TIFF header withOrientation puts in a JPEG's Exif segment.
func exifTIFF(t *testing.T, o int, order string) []byte {
	seg := withOrientation(t, []byte{0xff, 0xd8}, o, order)[6:] // after SOI, the marker and its length
	return bytes.TrimPrefix(seg, []byte("Exif\x00\x00"))
}

// withPNGChunk returns a PNG with a chunk of type typ and body inserted after IHDR.
func withPNGChunk(data []byte, typ string, body []byte) []byte {
	const ihdrEnd = 8 + 12 + 13
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	chunk = append(chunk, typ...)
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, data[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, data[ihdrEnd:]...)
}

// withWebPEXIF returns a simple (VP8) WebP turned into the extended format with an EXIF chunk
// holding exif, as WebP writers store a photo's metadata.
func withWebPEXIF(t *testing.T, data, exif []byte) []byte {
	t.Helper()
	cfg, err := webp.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	vp8x := []byte("VP8X")
	vp8x = le.AppendUint32(vp8x, 10)
	vp8x = append(vp8x, 0x08, 0, 0, 0) // EXIF flag
	w, h := uint32(cfg.Width-1), uint32(cfg.Height-1)
	vp8x = append(vp8x, byte(w), byte(w>>8), byte(w>>16), byte(h), byte(h>>8), byte(h>>16))
	chunk := le.AppendUint32([]byte("EXIF"), uint32(len(exif)))
	chunk = append(chunk, exif...)
	if len(exif)%2 == 1 {
		chunk = append(chunk, 0)
	}
	body := append(append(append([]byte("WEBP"), vp8x...), data[12:]...), chunk...)
	return append(le.AppendUint32([]byte("RIFF"), uint32(len(body))), body...)
}

// PNGs (eXIf chunk) and WebPs (EXIF chunk, with or without the JPEG-style prefix) are turned
// as displayed, like JPEGs: the fitted image is the one fitted from the turned pixels.
func TestPNGAndWebPOrientationIsApplied(t *testing.T) {
	stored := asStored(displayed(), 6)
	png0, err := (storedFormat{format: FormatPNG, compression: CompressionFast}).encode(stored)
	if err != nil {
		t.Fatal(err)
	}
	webp0, err := os.ReadFile(filepath.Join("testdata", "photo-37x29.webp"))
	if err != nil {
		t.Fatal(err)
	}
	webpImg, err := webp.Decode(bytes.NewReader(webp0))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range []string{"II", "MM"} {
		for o := 1; o <= 8; o++ {
			tiff := exifTIFF(t, o, order)
			if got := imageOrientation(withPNGChunk(png0, "eXIf", tiff), "png"); got != o {
				t.Errorf("PNG eXIf %s %d read as %d", order, o, got)
			}
			for _, body := range [][]byte{tiff, append([]byte("Exif\x00\x00"), tiff...)} {
				if got := imageOrientation(withWebPEXIF(t, webp0, body), "webp"); got != o {
					t.Errorf("WebP EXIF %s %d (%d bytes) read as %d", order, o, len(body), got)
				}
			}
		}
	}
	if got := imageOrientation(png0, "png"); got != 1 {
		t.Errorf("a PNG without eXIf: %d", got)
	}
	if got := imageOrientation(withPNGChunk(png0, "tEXt", []byte("Comment\x00eXIf")), "png"); got != 1 {
		t.Errorf("a PNG with another chunk: %d", got)
	}

	upPNG, err := (storedFormat{format: FormatPNG, compression: CompressionFast}).encode(displayed())
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range ResizePolicies {
		want, err := prepareImage(upPNG, "png", 96, 64, 32, policy, 3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := prepareImage(withPNGChunk(png0, "eXIf", exifTIFF(t, 6, "MM")), "png", 64, 96, 32, policy, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pixelsOf(got, 3), pixelsOf(want, 3)) {
			t.Errorf("%s: a PNG stored turned with eXIf 6 is not fitted as the upright one", policy)
		}
		for o := 2; o <= 8; o++ {
			b := webpImg.Bounds()
			got, err := prepareImage(withWebPEXIF(t, webp0, exifTIFF(t, o, "II")), "webp", b.Dx(), b.Dy(), 16, policy, 3)
			if err != nil {
				t.Fatal(err)
			}
			want := fitImage(orientImage(webpToRGB(webpImg), o), 16, policy, 3)
			if !bytes.Equal(pixelsOf(got, 3), pixelsOf(want, 3)) {
				t.Errorf("%s: a WebP with EXIF %d is not fitted turned", policy, o)
			}
		}
	}
}

// rgbTIFF returns an uncompressed RGB TIFF of img, in byte order order ("II" or "MM"), whose
// first IFD holds Orientation o (not written when o is 0).
func rgbTIFF(img *image.RGBA, o int, order string) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if order == "MM" {
		bo = binary.BigEndian
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	type entry struct{ tag, typ, val uint32 }
	entries := []entry{{256, 4, uint32(w)}, {257, 4, uint32(h)}, {258, 3, 0}, {259, 3, 1}, {262, 3, 2},
		{273, 4, 0}, {274, 3, uint32(o)}, {277, 3, 3}, {278, 4, uint32(h)}, {279, 4, uint32(3 * w * h)}}
	if o == 0 {
		entries = append(entries[:6], entries[7:]...)
	}
	ifdEnd := 8 + 2 + 12*len(entries) + 4
	bits, pixels := ifdEnd, ifdEnd+6 // BitsPerSample's three values, then the strip
	out := bo.AppendUint32(bo.AppendUint16([]byte(order), 42), 8)
	out = bo.AppendUint16(out, uint16(len(entries)))
	for _, e := range entries {
		out = bo.AppendUint16(bo.AppendUint16(out, uint16(e.tag)), uint16(e.typ))
		switch {
		case e.tag == 258:
			out = bo.AppendUint32(bo.AppendUint32(out, 3), uint32(bits))
		case e.tag == 273:
			out = bo.AppendUint32(bo.AppendUint32(out, 1), uint32(pixels))
		case e.typ == 3:
			out = bo.AppendUint16(bo.AppendUint16(bo.AppendUint32(out, 1), uint16(e.val)), 0)
		default:
			out = bo.AppendUint32(bo.AppendUint32(out, 1), e.val)
		}
	}
	out = bo.AppendUint32(out, 0) // no next IFD
	out = bo.AppendUint16(bo.AppendUint16(bo.AppendUint16(out, 8), 8), 8)
	for i := 0; i < len(img.Pix); i += 4 {
		out = append(out, img.Pix[i:i+3]...)
	}
	return out
}

// A TIFF's Orientation tag (scanners and cameras write it in the file's own first IFD) turns
// it as displayed, like a JPEG's Exif.
func TestTIFFOrientationIsApplied(t *testing.T) {
	up := displayed()
	upPNG, err := (storedFormat{format: FormatPNG, compression: CompressionFast}).encode(up)
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range []string{"II", "MM"} {
		if got := imageOrientation(rgbTIFF(up, 0, order), "tiff"); got != 1 {
			t.Errorf("%s: a TIFF without the tag: %d", order, got)
		}
		for o := 1; o <= 8; o++ {
			data := rgbTIFF(asStored(up, o), o, order)
			if got := imageOrientation(data, "tiff"); got != o {
				t.Errorf("%s: Orientation %d read as %d", order, o, got)
			}
			w, h := orientedSize(o, 96, 64)
			for _, policy := range ResizePolicies {
				want, err := prepareImage(upPNG, "png", 96, 64, 32, policy, 3)
				if err != nil {
					t.Fatal(err)
				}
				got, err := prepareImage(data, "tiff", w, h, 32, policy, 3)
				if err != nil {
					t.Fatalf("%s %d %s: %v", order, o, policy, err)
				}
				if !bytes.Equal(pixelsOf(got, 3), pixelsOf(want, 3)) {
					t.Errorf("%s %s: a TIFF stored turned with Orientation %d is not fitted as the upright one", order, policy, o)
				}
			}
		}
	}
}

// A translucent PNG turned by its orientation is composited over black to the nearest level,
// as one that is not turned: 201 at alpha 77 is 60.7, so 61.
func TestTurnedTranslucentImageRoundsToTheNearestLevel(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 4, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []uint8{201, 201, 201, 77})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	for o := 1; o <= 8; o++ {
		data := buf.Bytes()
		if o > 1 {
			data = withPNGChunk(data, "eXIf", exifTIFF(t, o, "II"))
		}
		got, err := prepareImage(data, "png", 4, 2, 4, ResizeSquash, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range pixelsOf(got, 3) {
			if v != 61 {
				t.Fatalf("orientation %d: level %d at %d, want 61", o, v, i)
			}
		}
	}
}
