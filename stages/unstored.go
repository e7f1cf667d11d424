package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"path/filepath"
)

// A split with store_images = false writes manifests only: each entry names its original in
// the source folder (Manifest.Original) and the size, fit and channels it trains at, and the
// stages that read it (augment, train, evaluate) fit the original as they read it, to the
// pixels the split would have stored (lossless PNG: the same pixels). That keeps no second
// copy of a photo collection on disk, and spends a decode per read instead: once per training
// while the set fits train's in-memory cache, once per epoch beyond.

// unstoredMaxPixels is the pixel limit an original is read back with: the split accepted it
// under its own max_pixels, and the digest check below makes sure it is that file.
const unstoredMaxPixels = 1 << 40

// readEntry returns entry e of manifest m, whose folder is dir, as pixels of m's size: its
// stored image decoded, or, for an image the split did not store, its original read from the
// source folder in workspace, checked against the digest the split recorded, and fitted as
// the split would have stored it. The error names the file.
func readEntry(m *Manifest, dir, workspace string, e Entry) (image.Image, error) {
	if e.Path != "" {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		img, err := decodeFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return img, nil
	}
	p := m.Original(e, workspace)
	im, err := readImageFile(p, unstoredMaxPixels, "max_pixels")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the split's manifest lists it, but it is gone; put it back or run the split again", p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if sum := sha256.Sum256(im.data); hex.EncodeToString(sum[:]) != e.Digest {
		return nil, fmt.Errorf("%s has changed since the split read it (the split stores no images: its manifest names the originals, with their SHA-256); run the split again", p)
	}
	img, err := prepareImage(im.data, im.format, im.cfg.Width, im.cfg.Height, m.Size, m.Resize, m.Channels)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, decodeError(im.format, err, im.data))
	}
	return img, nil
}
