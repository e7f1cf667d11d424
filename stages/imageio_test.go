package stages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
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
	l, err := loadImage(p, nil, DefaultMaxPixels, 16, ResizeCenterCrop, 3)
	if err != nil || l.Digest != own {
		t.Fatalf("without known digests: %q %v, want %q", l.Digest, err, own)
	}
	fi, _ := os.Stat(p)
	known := &fixedDigests{path: p, digest: "feed", fi: fi}
	if l, err := loadImage(p, known, DefaultMaxPixels, 16, ResizeCenterCrop, 3); err != nil || l.Digest != "feed" || known.asked != 1 {
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
	if l, _ := loadImage(p, known, DefaultMaxPixels, 16, ResizeCenterCrop, 3); l.Digest != hex.EncodeToString(sum[:]) {
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
	} {
		p := sparse(name, c.head)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := loadImage(p, nil, DefaultMaxPixels, 16, ResizeCenterCrop, 3)
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
	if l, err := loadImage(p, nil, DefaultMaxPixels, 16, ResizeCenterCrop, 3); err != nil || l.Format != "tiff" || l.Digest != hex.EncodeToString(sum[:]) || l.Img.Bounds().Dx() != 16 {
		t.Fatalf("a TIFF: %+v, %v", l, err)
	}
}
