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
// stages that read it (augment, train, evaluate, select) fit the original as they read it,
// to the pixels the split would have stored (lossless PNG: the same pixels). That keeps no
// second copy of a photo collection on disk, and spends a decode per read instead: once per
// training while the set fits train's in-memory cache, once per epoch beyond.

// unstoredMaxPixels is the pixel limit an original is read back with: the split accepted it
// under its own max_pixels, and the digest check below makes sure it is that file.
const unstoredMaxPixels = 1 << 40

// jpegPixelsKey is the pixels key (processed.pixels) of a JPEG in a split that stores no
// images, whether or not it decodes it (for near_duplicates): the SHA-256 of the file to its
// end-of-image marker (not what a camera appends after it) less the metadata segments before
// its first scan (APP1–APP13, APP15 and comments: Exif, XMP, ICC profiles; and APP0 but for
// whether it is a JFIF marker, and APP14, which decide the colour space), with its
// orientation o. Two files of one key decode to one image; the same picture coded another
// way is one only to near_duplicates. (A segment after a scan is kept: it may sit in the
// middle of coded data, which it then cuts short.)
func jpegPixelsKey(data []byte, o int) string {
	h := sha256.New()
	fmt.Fprintf(h, "jpeg less metadata, orientation %d\n", o)
	last, end, scanned := 0, len(data), false
	jpegWalk(data, func(m byte, at int, p []byte) bool {
		switch {
		case m == 0xd9:
			end = at + 2
		case m == 0xda:
			scanned = true
		case scanned || !(m >= 0xe0 && m <= 0xef && m != 0xee || m == 0xfe):
		default: // metadata before the first scan
			h.Write(data[last:at])
			last = at + 4 + len(p)
			if m == 0xe0 && len(p) >= 14 && string(p[:5]) == "JFIF\x00" {
				h.Write(jfifSegment) // that there is one: the rest (density) changes no pixel
			} else if m == 0xe0 && len(p) >= 5 && string(p[:5]) == "JFIF\x00" {
				h.Write(data[at:last]) // a short one: libjpeg-turbo ignores it, image/jpeg does not
			}
		}
		return true
	})
	h.Write(data[last:end])
	return hex.EncodeToString(h.Sum(nil))
}

// jfifSegment is a JFIF APP0 segment (version 1.1, aspect 1:1, no thumbnail): jpegPixelsKey
// hashes it for any JFIF segment, bytes that in a JPEG are read as one wherever they are.
var jfifSegment = []byte{0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}

// imagePixelsKey is the pixels key of an image a split that stores no images decoded and
// fitted (img, in channels): the SHA-256 of its size and pixels.
func imagePixelsKey(img image.Image, channels int) string {
	h := sha256.New()
	b := img.Bounds()
	fmt.Fprintf(h, "fitted %dx%dx%d\n", b.Dx(), b.Dy(), channels)
	h.Write(pixelsOf(img, channels))
	return hex.EncodeToString(h.Sum(nil))
}

// checkFitted returns an error when manifest m names originals fitted by other code than
// this build's (a manifest written by another version of pipeline, which a run of this one
// replaces: the split's key has the code too).
func checkFitted(m *Manifest) error {
	if m.FittedWith == "" {
		return nil
	}
	if now := fittedWith(m.Size, m.Channels, m.Resize); m.FittedWith != now {
		return fmt.Errorf("its images are originals to fit as another build of pipeline fitted them (%s); run the pipeline (pipeline run), whose split lists them again for this build", storedChange(m.FittedWith, now))
	}
	return nil
}

// readEntry returns entry e of manifest m, whose folder is dir, as pixels of m's size: its
// stored image decoded, or, for an image the split did not store, its original read from the
// source folder in workspace, checked against the digest the split recorded, and fitted as
// the split would have stored it (recorded in damaged, when not nil, if libjpeg-turbo decoded
// past damage in it). The error names the file.
func readEntry(m *Manifest, dir, workspace string, e Entry, damaged *damagedJPEGs) (image.Image, error) {
	if e.Path != "" {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		img, err := decodeFile(p, m.ReadWith != "")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return img, nil
	}
	p := m.Original(e, workspace)
	im, err := readImageFile(p, unstoredMaxPixels, "max_pixels")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the split's manifest lists it, but it is gone; put it back, or run the pipeline (pipeline run), whose split will leave it out", p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, WithoutPath(err))
	}
	if sum := sha256.Sum256(im.data); hex.EncodeToString(sum[:]) != e.Digest {
		return nil, fmt.Errorf("%s has changed since the split read it (the split stores no images: its manifest names the originals, with their SHA-256); run the pipeline (pipeline run), whose split will read it again", p)
	}
	img, note, err := prepare(im.data, im.format, im.cfg.Width, im.cfg.Height, m.Size, m.Resize, m.Channels)
	if err == nil && !note.fallback && damaged != nil {
		damaged.add(m.shownOriginal(e), e.Digest, note.libjpeg)
	}
	if err != nil {
		err = fmt.Errorf("%s: %v", p, decodeError(im.format, err, im.data))
		if im.format == "jpeg" {
			err = fmt.Errorf("%w; the split, storing no images, checked this JPEG from its markers without decoding it: remove or replace the file, or set near_duplicates = true or store_images = true on the split, which then decodes every photo and rejects such files", err)
		}
		return nil, err
	}
	return img, nil
}
