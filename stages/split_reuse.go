package stages

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// A split reruns whenever its source changes, which for a growing collection means every
// week's few new photos. Decoding and resizing is most of its work, and the previous output
// already holds every unchanged photo's stored image: when that output was stored the same way
// (storedWith), the split hard-links those images instead of making them again. The result is
// byte for byte what a split from scratch makes. A forced split (run --force) is one from
// scratch: it links none, for its user distrusts what is stored.

// fingerprintsFile holds the near-duplicate fingerprint of every stored image, by source
// digest, so that a later split can reuse stored images without decoding them again.
const fingerprintsFile = "fingerprints.bin"

// storedImagesVersion is the version of the code that makes a stored image from its source
// (Split.Version was 15 when it was split from it): bump it when a stored image changes for
// the same file and settings, and Split's version for any change of the split's output, such
// as a report's wording, which can then reuse the images stored before.
const storedImagesVersion = 16

// storedWith names everything a stored image depends on besides its source file's content:
// the settings, the limit that rejects it, and the code that decodes and encodes it. For a
// split that stores no images, it names what its check of a file and its near-duplicate
// thumbnail depend on, after notStored.
func storedWith(cfg SplitConfig) string {
	if !cfg.stores() {
		return fmt.Sprintf("%s; JPEG check %d; max %d pixels, min side %d; %s", notStored, jpegCheckVersion, cfg.MaxPixels, cfg.MinSide, fittedWith(cfg.ImageSize, cfg.Channels, cfg.Resize))
	}
	return fmt.Sprintf("split %d: %d px, %d channels, %s; %s, quality %d, compression %s; max %d pixels, min side %d; libtensorflow %s; %s",
		storedImagesVersion, cfg.ImageSize, cfg.Channels, cfg.Resize, cfg.Format, cfg.Quality, cfg.Compression, cfg.MaxPixels, cfg.MinSide,
		graphs.TensorFlowVersion(), buildOf(splitModules...))
}

// fittedWith names everything an original's pixels at size, in channels, fitted by resize
// depend on besides its content: the code that decodes and fits it. A manifest of a split
// that stores no images records it (Manifest.FittedWith).
func fittedWith(size, channels int, resize string) string {
	return fmt.Sprintf("split %d; %d px, %d channels, %s; libtensorflow %s; %s",
		storedImagesVersion, size, channels, resize, graphs.TensorFlowVersion(), buildOf(splitModules...))
}

// jpegCheckVersion is the version of the check that accepts a JPEG without decoding it
// (jpegPlausible) in a split that stores no images: bump it when the check accepts other
// files, so that a rerun checks every file again instead of taking the previous split's word.
// (2: arithmetic-conditioning segments.)
const jpegCheckVersion = 2

// notStored begins split.json's stored_with for a split that stores no images.
const notStored = "not stored (store_images = false)"

// buildOf names the Go toolchain and the versions of the given modules this binary was built
// with: they decode, encode and transform images.
func buildOf(modules ...string) string {
	s := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if slices.Contains(modules, d.Path) {
				s += ", " + d.Path + " " + d.Version
			}
		}
	}
	return s
}

// reusable are the stored images (or, storing none, the checks) of a previous split made
// the same way, by source digest.
type reusable struct {
	placed map[string]bool         // the files it placed (and checked), by source digest
	dir    string                  // its output folder, whose images/ holds its stored images; "" storing none
	format string                  // its stored images' format
	pixels map[string]string       // the pixels key of a file not stored (processed.pixels)
	prints map[string]*fingerprint // absent when the previous split kept none; shared by the files reusing them
}

// storedRel is where a split stores the image of the file of source digest d, in format,
// relative to its output folder.
func storedRel(d, format string) string {
	return filepath.ToSlash(filepath.Join("images", d[:2], d+extension(format)))
}

// previousStored returns the stored images of the previous split p (nil for none) when they
// were stored as stored says, in format, and its records are intact; nothing otherwise, and
// nothing for a forced split (run --force), which makes every image again.
func previousStored(job *pipeline.Job, p *previousSplit, stored, format string) reusable {
	r := reusable{placed: map[string]bool{}, prints: map[string]*fingerprint{}, format: format}
	unstored := strings.HasPrefix(stored, notStored)
	if job.Forced {
		if p != nil {
			if unstored {
				job.Logf("forced: reading every image again, reusing none of the previous split's checks")
			} else {
				job.Logf("forced: storing every image again, linking none from the previous split")
			}
		}
		return r
	}
	if p != nil && p.changed == "" && p.rep != nil && p.rep.Stored != stored && len(p.manifests) == 3 {
		switch was := strings.HasPrefix(p.rep.Stored, notStored); {
		case was && unstored:
			job.Logf("reading every image again: the previous split read them another way (%s)", storedChange(p.rep.Stored, stored))
		case !was && !unstored:
			job.Logf("storing every image again: the previous split stored them another way (%s)", storedChange(p.rep.Stored, stored))
		}
	}
	if p == nil || p.changed != "" || p.rep == nil || p.rep.Stored != stored || len(p.manifests) != 3 {
		return r
	}
	if !unstored {
		r.dir = p.dir
	}
	// The files its manifests list, and those it placed that they leave out (copies within a
	// class), whose images it stored all the same under their digests (sets.bin also holds
	// files placed before and gone then, which have none: linking finds that).
	for _, m := range p.manifests {
		for _, e := range m.Images {
			r.placed[e.Digest] = true
		}
	}
	for d := range p.placed {
		r.placed[d] = true
	}
	for _, d := range p.rep.Fallbacks {
		delete(r.placed, d) // decoded by image/jpeg: decode again
	}
	for _, d := range p.rep.Damaged {
		delete(r.placed, d.Digest) // decoded past damage: decode again, to list it again
	}
	if intact(job, filepath.Join(p.dir, fingerprintsFile)) {
		r.prints, _ = readFingerprints(filepath.Join(p.dir, fingerprintsFile))
	}
	if intact(job, filepath.Join(p.dir, pixelsFile)) {
		r.pixels, _ = readPixelKeys(filepath.Join(p.dir, pixelsFile))
	}
	return r
}

// storedChange says how two storedWith descriptions differ: the fields that differ, each as
// "was → now"; when a field was added or dropped, those in one and not the other ("now X",
// "no longer Y").
func storedChange(was, now string) string {
	fields := func(s string) []string {
		f := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' })
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	a, b := fields(was), fields(now)
	var diff []string
	if len(a) != len(b) {
		// a field added or gone: name those that are in one and not the other
		for _, y := range b {
			if !slices.Contains(a, y) {
				diff = append(diff, "now "+y)
			}
		}
		for _, x := range a {
			if !slices.Contains(b, x) {
				diff = append(diff, "no longer "+x)
			}
		}
		if len(diff) == 0 {
			return fmt.Sprintf("%q, now %q", was, now)
		}
		return strings.Join(diff, "; ")
	}
	for i := range a {
		if a[i] != b[i] {
			diff = append(diff, a[i]+" → "+b[i])
		}
	}
	return strings.Join(diff, "; ")
}

// intact reports whether the file at path, in the previous output, is as the engine
// published it.
func intact(job *pipeline.Job, path string) bool {
	_, ok := previousDigest(job, path)
	return ok
}

// previousDigest returns the digest the engine recorded for the file at path of the previous
// output if the file is still as published (pipeline.Job.PreviousDigest).
func previousDigest(job *pipeline.Job, path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", false
	}
	return job.PreviousDigest(path, fi)
}

// reuse stores the image of the file at abs by linking the previous split's when the previous
// split stored the file's digest (the engine's, or read from the file when the engine cannot
// vouch for it yet); it reports whether it did. p gets
// its digest, stored path and fingerprint; written, the pixels digest of a stored image it
// links, by source digest (as storeImages keeps it). Storing no images, it takes a file the
// previous split (storing none, made the same way) listed as checked, with its thumbnail,
// without reading it.
func (r reusable) reuse(job *pipeline.Job, cfg SplitConfig, abs string, p *processed, written *sync.Map) (bool, error) {
	if len(r.placed) == 0 {
		return false, nil
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return false, nil // loadImage says what is wrong with it
	}
	d, ok := job.KnownDigest(abs, fi)
	if !ok {
		// Not vouched for by the engine (written in the last moments before the plan hashed
		// it, as a copied workspace's files are): its digest from its bytes, streamed, which
		// costs a read, not a decode; not for what no image within max_pixels can be.
		if !fi.Mode().IsRegular() || fi.Size() > maxBytesPerPixel*cfg.MaxPixels+metadataAllowance {
			return false, nil // loadImage says what is wrong with it
		}
		if d, err = pipeline.HashFile(abs); err != nil {
			return false, nil
		}
	}
	if !r.placed[d] {
		return false, nil
	}
	fp, hasPrint := r.prints[d]
	if cfg.NearDuplicates && !hasPrint && (r.dir == "" || cfg.Format != FormatPNG) {
		return false, nil
	}
	if cfg.NearDuplicates {
		if !hasPrint {
			fp = &fingerprint{} // filled below: the previous split kept none
		}
		p.print = fp
	}
	if r.dir == "" {
		key, ok := r.pixels[d]
		if cfg.stores() || !ok {
			return false, nil
		}
		p.digest = d
		written.LoadOrStore(d, key)
		return true, nil
	}
	prev := filepath.Join(r.dir, filepath.FromSlash(storedRel(d, r.format)))
	pixels, ok := previousDigest(job, prev) // not if deleted or changed since
	if !ok {
		return false, nil
	}
	if cfg.NearDuplicates && !hasPrint {
		// The previous split's fingerprints are gone or of another format: a stored PNG holds
		// the fitted pixels exactly, so its fingerprint is the one fitting the file gives.
		img, err := decodeFile(prev, true) // stored as this split stores, read_with and all
		if err != nil {
			return false, nil
		}
		*fp = fingerprintOf(img)
	}
	p.digest = d
	p.stored = storedRel(d, cfg.Format)
	if _, dup := written.LoadOrStore(d, ""); dup {
		return true, nil
	}
	if err := linkStored(job, prev, filepath.Join(job.Out, filepath.FromSlash(p.stored))); err != nil {
		return false, err
	}
	written.Store(d, pixels)
	return true, nil
}

// linkStored hard-links the stored image src to dst, copying where that fails
// (Job.LinkFile: publishing then knows the link's digest without reading it).
func linkStored(job *pipeline.Job, src, dst string) error {
	return job.LinkFile(src, dst)
}

// fingerprintsHeader starts fingerprintsFile and names its format.
var fingerprintsHeader = fmt.Sprintf("pipeline fingerprints 3: %dx%d grey, %dx%d colour\n", thumbSide, thumbSide, chromaSide, chromaSide)

// fingerprint records: 32 bytes of source digest, 1 byte comparable or not, the thumbnail,
// the colour grid.
const fingerprintRecord = sha256.Size + 1 + thumbCells + chromaCells

// writeFingerprints writes the fingerprints of procs, one per source digest, sorted.
func writeFingerprints(job *pipeline.Job, procs []processed) error {
	recs := map[string][]byte{}
	for _, p := range procs {
		fp := p.print
		if fp == nil {
			fp = &fingerprint{} // not comparable
		}
		ok := byte(0)
		if fp.ok {
			ok = 1
		}
		recs[p.digest] = append(append([]byte{ok}, fp.thumb[:]...), fp.chroma[:]...)
	}
	return writeDigestRecords(job, fingerprintsFile, fingerprintsHeader, recs)
}

// readFingerprints reads a file written by writeFingerprints.
func readFingerprints(path string) (map[string]*fingerprint, error) {
	out := map[string]*fingerprint{}
	err := readDigestRecords(path, fingerprintsHeader, fingerprintRecord-sha256.Size, func(d string, rec []byte) {
		fp := &fingerprint{}
		copy(fp.thumb[:], rec[1:])
		copy(fp.chroma[:], rec[1+thumbCells:])
		fp.finish()
		fp.ok = rec[0] == 1
		out[d] = fp
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pixelsFile holds, in a split that stores no images, the pixels key of every usable file
// (processed.pixels) by source digest, which a later split reuses with the file's check.
const pixelsFile = "pixels.bin"

// pixelsHeader starts pixelsFile and names its format.
const pixelsHeader = "pipeline pixels keys 2: SHA-256\n"

// writePixelKeys writes the pixels keys of procs, one per source digest, sorted.
func writePixelKeys(job *pipeline.Job, procs []processed) error {
	recs := map[string][]byte{}
	for _, p := range procs {
		k, err := hex.DecodeString(p.pixels)
		if err != nil || len(k) != sha256.Size {
			return fmt.Errorf("pixels keys: %q is not a SHA-256", p.pixels)
		}
		recs[p.digest] = k
	}
	return writeDigestRecords(job, pixelsFile, pixelsHeader, recs)
}

// readPixelKeys reads a file written by writePixelKeys.
func readPixelKeys(path string) (map[string]string, error) {
	out := map[string]string{}
	err := readDigestRecords(path, pixelsHeader, sha256.Size, func(d string, rec []byte) {
		out[d] = hex.EncodeToString(rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeDigestRecords writes the file name into the job's output: header, then for each
// source digest of recs in order its 32 bytes and its record (all records of one size).
func writeDigestRecords(job *pipeline.Job, name, header string, recs map[string][]byte) error {
	digests := make([]string, 0, len(recs))
	size := 0
	for d, r := range recs {
		digests = append(digests, d)
		size = len(r)
	}
	sort.Strings(digests)
	buf := append(make([]byte, 0, len(header)+len(digests)*(sha256.Size+size)), header...)
	for _, d := range digests {
		var err error
		if buf, err = appendDigestRecord(buf, name, d, recs[d]...); err != nil {
			return err
		}
	}
	_, err := job.WriteFile(filepath.Join(job.Out, name), buf)
	return err
}

// appendDigestRecord appends to buf a record of the file name: digest d (hex) as 32 bytes,
// then rec.
func appendDigestRecord(buf []byte, name, d string, rec ...byte) ([]byte, error) {
	raw, err := hex.DecodeString(d)
	if err != nil || len(raw) != sha256.Size {
		return buf, fmt.Errorf("%s: %q is not a SHA-256", name, d)
	}
	return append(append(buf, raw...), rec...), nil
}

// readDigestRecords reads a file written by writeDigestRecords with header and records of
// size bytes, passing each digest (hex) and record to fn.
func readDigestRecords(path, header string, size int, fn func(digest string, rec []byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if h, err := br.ReadString('\n'); err != nil || h != header {
		return fmt.Errorf("%s: not a file of this version (%q)", path, strings.TrimSpace(header))
	}
	rec := make([]byte, sha256.Size+size)
	for {
		if _, err := io.ReadFull(br, rec); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		fn(hex.EncodeToString(rec[:sha256.Size]), rec[sha256.Size:])
	}
}
