package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
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
	// Rewritten since: the engine's digest is for other content.
	if err := os.WriteFile(p, append(data, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(append(data, 0))
	if l, err := loadImage(p, known, DefaultMaxPixels, 16, ResizeCenterCrop, 3); err != nil || l.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("after a rewrite: %q %v, want the file's own digest", l.Digest, err)
	}
}
