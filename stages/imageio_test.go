package stages

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthonynsimon/bild/clone"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// fixedDigests knows one digest for one path and stat identity.
type fixedDigests struct {
	path, digest string
	fi           os.FileInfo
	asked        int
}

func (f *fixedDigests) KnownDigest(path string, fi os.FileInfo) (string, bool) {
	f.asked++
	if path != f.path || !os.SameFile(fi, f.fi) || fi.ModTime() != f.fi.ModTime() || fi.Size() != f.fi.Size() {
		return "", false
	}
	return f.digest, true
}

func TestLoadImageTakesADigestTheEngineKnows(t *testing.T) {
	data := encodePNG(blobPhoto(1, 40, 30))
	p := filepath.Join(t.TempDir(), "a.png")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	own := hex.EncodeToString(sum[:])
	l, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
	if err != nil || l.Digest != own {
		t.Fatalf("without known digests: %q %v, want %q", l.Digest, err, own)
	}
	fi, _ := os.Stat(p)
	known := &fixedDigests{path: p, digest: "feed", fi: fi}
	if l, err := loadImage(p, known, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false); err != nil || l.Digest != "feed" || known.asked != 1 {
		t.Fatalf("with the engine's digest: %q %v (asked %d), want it taken", l.Digest, err, known.asked)
	}
	// Rewritten since, at the same size: the stat loadImage passes is the file's new one, so
	// the engine's digest (for the old content) is not taken.
	changed := append([]byte(nil), data...)
	changed[len(changed)-20] ^= 0xff // inside the IEND chunk's neighbourhood: still the same size
	if err := os.WriteFile(p, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(changed)
	if l, _ := loadImage(p, known, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false); l.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("after a same-size rewrite: %q, want the file's own digest", l.Digest)
	}
}

// TestImageFormatsListsWhatCheckImageAccepts checks ImageFormats, which the upload page and
// the error messages show, against the decoders: a file of every format it names is
// accepted and recognised as that format.
func TestImageFormatsListsWhatCheckImageAccepts(t *testing.T) {
	pic := image.NewRGBA(image.Rect(0, 0, 5, 4))
	for i := range pic.Pix {
		pic.Pix[i] = byte(i * 7)
	}
	encoded := map[string][]byte{}
	for name, enc := range map[string]func(io.Writer, image.Image) error{
		"JPEG": func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) },
		"PNG":  png.Encode,
		"GIF":  func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) },
		"BMP":  bmp.Encode,
		"TIFF": func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
	} {
		var buf bytes.Buffer
		if err := enc(&buf, pic); err != nil {
			t.Fatal(err)
		}
		encoded[name] = buf.Bytes()
	}
	webp, err := os.ReadFile(filepath.Join("testdata", "photo-37x29.webp"))
	if err != nil {
		t.Fatal(err)
	}
	encoded["WebP"] = webp
	listed := strings.Split(strings.Replace(ImageFormats, " or ", ", ", 1), ", ")
	slices.Sort(listed)
	if got := slices.Sorted(maps.Keys(encoded)); !slices.Equal(got, listed) {
		t.Fatalf("ImageFormats lists %v; this test encodes %v", listed, got)
	}
	for name, data := range encoded {
		format, err := CheckImage(data, DefaultMaxPixels)
		if err != nil || !strings.EqualFold(format, name) {
			t.Errorf("%s: CheckImage says %q, %v", name, format, err)
		}
	}
}

// A large file that is not an image, or is an image over max_pixels, is rejected from its
// header: loadImage does not read the rest (a video in a class folder once cost its size in
// memory). A supported image is still read whole, TIFF included (its header points into the
// file).
func TestLoadImageRejectsFromTheHeaderWithoutReadingTheFile(t *testing.T) {
	dir := t.TempDir()
	sparse := func(name string, head []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, head, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 256<<20); err != nil { // sparse: nothing written
			t.Fatal(err)
		}
		return p
	}
	for name, c := range map[string]struct {
		head   []byte
		reason string
	}{
		"video.mp4": {[]byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"), "not an image"},
		"huge.png":  {hugePNG(100000, 100000), "exceeds max_pixels"},
		// An image followed by far more than an image of its size takes.
		"padded.png": {encodePNG(blobPhoto(1, 8, 6)), "png of 8x6 in a file of 268.4 MB: far more than such an image takes (at most 67.1 MB)"},
	} {
		p := sparse(name, c.head)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v, want %q", name, err, c.reason)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: rejecting it allocated %d bytes: the file was read", name, n)
		}
	}
	var tif bytes.Buffer
	if err := tiff.Encode(&tif, blobPhoto(2, 40, 30), nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "photo.tif")
	if err := os.WriteFile(p, tif.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tif.Bytes())
	if l, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false); err != nil || l.Format != "tiff" || l.Digest != hex.EncodeToString(sum[:]) || l.Img.Bounds().Dx() != 16 {
		t.Fatalf("a TIFF: %+v, %v", l, err)
	}
}

// setTIFFTag sets the first value of tag in the first directory of a little-endian TIFF (as
// tiff.Encode writes them) to v.
func setTIFFTag(t *testing.T, data []byte, tag, v uint16) {
	t.Helper()
	ifd := binary.LittleEndian.Uint32(data[4:8])
	n := binary.LittleEndian.Uint16(data[ifd : ifd+2])
	for i := uint32(0); i < uint32(n); i++ {
		e := data[ifd+2+12*i:]
		if binary.LittleEndian.Uint16(e[0:2]) == tag {
			binary.LittleEndian.PutUint16(e[8:10], v)
			return
		}
	}
	t.Fatalf("no tag %d", tag)
}

// riffChunk is a RIFF chunk: its id, length and data, padded to an even length.
func riffChunk(id string, data []byte) []byte {
	out := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	out = append(out, data...)
	if len(data)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

// Valid files with a feature Go's decoders lack are "unsupported", with what to do, not
// "corrupt"; a damaged file stays corrupt.
func TestUnsupportedImagesAreNotCalledCorrupt(t *testing.T) {
	pic := blobPhoto(3, 8, 6)
	encode := func(enc func(io.Writer, image.Image) error, m image.Image) []byte {
		var buf bytes.Buffer
		if err := enc(&buf, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tif := func(m image.Image) []byte {
		return encode(func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) }, m)
	}
	cmyk := tif(pic)
	setTIFFTag(t, cmyk, 262, 5) // PhotometricInterpretation: separated (CMYK)
	jpegTIFF := tif(pic)
	setTIFFTag(t, jpegTIFF, 259, 7) // Compression: JPEG
	gray := image.NewPaletted(image.Rect(0, 0, 8, 6), color.Palette{color.Black, color.White})
	rle := encode(bmp.Encode, gray)
	binary.LittleEndian.PutUint32(rle[30:34], 1) // BI_RLE8
	vp8x := make([]byte, 10)
	vp8x[0] = 0x02 // animation
	anim := append(riffChunk("VP8X", vp8x), riffChunk("ANIM", make([]byte, 6))...)
	webp := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(anim)))...)
	webp = append(append(webp, "WEBP"...), anim...)
	damaged := encodePNG(pic)
	damaged[len(damaged)-30] ^= 0xff // inside the image data: a checksum fails

	dir := t.TempDir()
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"cmyk.tif":      {cmyk, "unsupported tiff (colour model: CMYK, YCbCr or Lab): convert it to PNG or JPEG"},
		"jpeg.tif":      {jpegTIFF, "unsupported tiff (JPEG compression, value 7): convert it to PNG or JPEG"},
		"rle.bmp":       {rle, "unsupported bmp (RLE8 compression): convert it to PNG or JPEG"},
		"animated.webp": {webp, "unsupported webp (animated): convert it to PNG or JPEG"},
		"damaged.png":   {damaged, "corrupt png: "},
		"cut.png":       {encodePNG(pic)[:len(encodePNG(pic))/2], "truncated png"}, // without its IEND chunk
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
		if r, ok := err.(errRejected); !ok || !strings.HasPrefix(r.reason, c.want) || strings.Contains(r.reason, "png: png:") {
			t.Errorf("%s: %v, want %q (the format said once)", name, err, c.want)
		}
	}
}

// JPEGs image/jpeg cannot decode but libjpeg-turbo can (arithmetic coding; sampling factors
// image/jpeg lacks; made by libjpeg-turbo's cjpeg from one picture) are sized from their frame
// header and decoded by TensorFlow, not rejected as unsupported, by the split and by predict:
// the arithmetic-coded file fits to the pixels of the same picture Huffman-coded (the same
// coefficients), the others to that picture within a JPEG's error.
func TestJPEGsImageJPEGLacksAreDecodedByLibjpeg(t *testing.T) {
	fit := func(name string) []uint8 {
		t.Helper()
		l, err := loadImage(filepath.Join("testdata", name), nil, DefaultMaxPixels, 1, 24, ResizeCenterCrop, 3, true, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if l.Fallback {
			t.Errorf("%s: decoded by image/jpeg", name)
		}
		return pixelsOf(l.Img, 3)
	}
	base := fit("jpeg-huffman.jpg")
	for _, name := range []string{"jpeg-arithmetic.jpg", "jpeg-sampling-3x1.jpg", "jpeg-sampling-chroma-2x2.jpg"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
			t.Fatalf("%s: image/jpeg decodes it; the test needs a file it does not", name)
		}
		if _, err := ReadImage(filepath.Join("testdata", name), DefaultMaxPixels); err != nil {
			t.Errorf("%s: predict refuses it: %v", name, err)
		}
		px, diff := fit(name), 0
		for i := range px {
			diff += max(int(px[i]), int(base[i])) - min(int(px[i]), int(base[i]))
		}
		if mean := float64(diff) / float64(len(px)); name == "jpeg-arithmetic.jpg" && mean != 0 || mean > 12 {
			t.Errorf("%s: mean difference %.2f from the Huffman-coded picture", name, mean)
		}
	}
}

// A JPEG image/jpeg refuses is sized from its frame header only when libjpeg-turbo decodes
// what that header says (8-bit, a process it has, sides up to 65,500), and only when the walk
// to it meets no marker without a length, after which a walk by lengths would find another
// frame header than the decoders do (a small one hidden in metadata, say, letting a huge image
// past max_pixels); otherwise the file stays unsupported. The unstored split's check decodes
// all of these to decide, and fractional sampling factors too.
func TestJPEGFrameHeadersLibjpegCannotDecodeStayUnsupported(t *testing.T) {
	data, err := os.ReadFile("testdata/jpeg-arithmetic.jpg")
	if err != nil {
		t.Fatal(err)
	}
	sof := bytes.Index(data, []byte{0xff, 0xc9})
	if _, ok := jpegFrameConfig(bytes.NewReader(data)); !ok || !jpegPlausible(data) {
		t.Fatal("the arithmetic-coded test JPEG is refused")
	}
	mutate := func(at int, b ...byte) []byte {
		out := append([]byte{}, data...)
		copy(out[at:], b)
		return out
	}
	// Fractional sampling: the header gives the true size, and decoding decides.
	fractional := mutate(sof+11, 0x31, 0, 2, 0x21) // 3×1 luma, 2×1 Cb
	if jpegPlausible(fractional) {
		t.Error("fractional sampling: plausible")
	}
	p := filepath.Join(t.TempDir(), "fractional.jpg")
	if err := os.WriteFile(p, fractional, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false); err == nil || !strings.Contains(err.Error(), "unsupported jpeg") {
		t.Errorf("fractional sampling: %v", err)
	}
	for name, bad := range map[string][]byte{
		"12-bit":       mutate(sof+4, 12),
		"lossless":     mutate(sof+1, 0xcb),
		"differential": mutate(sof+1, 0xcd),
		"65,535 wide":  mutate(sof+7, 0xff, 0xff),
	} {
		if _, ok := jpegFrameConfig(bytes.NewReader(bad)); ok {
			t.Errorf("%s: sized from its frame header", name)
		}
		if jpegPlausible(bad) {
			t.Errorf("%s: plausible", name)
		}
		if _, _, err := checkHeader(bytes.NewReader(bad), func() []byte { return bad[:min(len(bad), headLen)] }, DefaultMaxPixels, "max_pixels"); err == nil || !strings.Contains(err.Error(), "unsupported jpeg") {
			t.Errorf("%s: header check says %v", name, err)
		}
	}
	// A restart marker before the frame header: a walk by lengths would read the next two
	// bytes, an APP1 segment's marker to the decoders, as its length (0xFFE1), and land in the
	// middle of that segment, on a frame header hidden there.
	hidden := append([]byte{0xff, 0xd8, 0xff, 0xd0, 0xff, 0xe1, 0xff, 0xff}, make([]byte, 65533)...)
	copy(hidden[2+2+0xffe1:], data[sof:sof+19])
	hidden = append(hidden, data[2:]...)
	if _, ok := jpegFrameConfig(bytes.NewReader(hidden)); ok {
		t.Error("a frame header after a restart marker was read")
	}
}

// The unstored split's check refuses an arithmetic-conditioning (DAC) segment exactly when
// libjpeg-turbo does: an odd size, a slot over 31, a DC slot whose lower bound is above its
// upper one; a well-formed one (here for a table the scans do not use) decodes as before.
func TestJPEGCheckFollowsArithmeticConditioning(t *testing.T) {
	data, err := os.ReadFile("testdata/jpeg-arithmetic.jpg")
	if err != nil {
		t.Fatal(err)
	}
	withDAC := func(seg ...byte) []byte {
		out := append([]byte{0xff, 0xd8, 0xff, 0xcc, 0, byte(2 + len(seg))}, seg...)
		return append(out, data[2:]...)
	}
	decode := func(data []byte) error {
		p := filepath.Join(t.TempDir(), "dac.jpg")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
		return err
	}
	want, err := loadImage(filepath.Join("testdata", "jpeg-arithmetic.jpg"), nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
	if err != nil {
		t.Fatal(err)
	}
	good := withDAC(0x13, 5, 0x03, 0x21) // AC slot 3: K = 5; DC slot 3: L = 1, U = 2
	if !jpegPlausible(good) {
		t.Error("a well-formed DAC segment: flagged")
	}
	p := filepath.Join(t.TempDir(), "good.jpg")
	if err := os.WriteFile(p, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := loadImage(p, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false); err != nil || got.Fallback ||
		!bytes.Equal(clone.AsRGBA(got.Img).Pix, clone.AsRGBA(want.Img).Pix) {
		t.Errorf("a well-formed DAC segment: decoded differently (%v)", err)
	}
	for name, bad := range map[string][]byte{
		"odd size":                   withDAC(0x13, 5, 0x03),
		"slot 32":                    withDAC(0x20, 5),
		"DC lower bound above upper": withDAC(0x00, 0x12),
	} {
		if jpegPlausible(bad) {
			t.Errorf("%s: plausible", name)
		}
		if err := decode(bad); err == nil {
			t.Errorf("%s: libjpeg-turbo decodes it (the check would refuse a usable file)", name)
		}
	}
}
