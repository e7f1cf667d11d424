package stages

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"pipeline/pipeline"
)

// A training's result depends on what its sets hold, not on the names of their files: the
// split's and augment's manifests name each image's original, so renaming or moving photos
// within their class folders rewrites them, but the images, their classes and the copies made
// of them stay what they were. Their content digests (pipeline.ContentDigester) leave the
// names out, train's sets are keyed by them (pipeline.Attribute.ByContent), and training
// reads a set in contentOrder, so that such a rename finds the trained model in the cache.

// setContents returns the content digest of each of sets (folders of the published output at
// dir holding a manifest) whose files files gives the digests of (see setContent).
func setContents(dir string, files pipeline.FileDigests, sets ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, set := range sets {
		d, ok, err := setContent(dir, set, files)
		if err != nil {
			return nil, err
		}
		if ok {
			out[set] = d
		}
	}
	return out, nil
}

// setContent is the digest of what the image set in folder set of the output at dir holds,
// as a training reads it: the manifest's classes in label order, image size, channels, fit
// and set name, and for each image its label, the digest of its original, which copy of it
// it is and the digest of the image stored for it (none when the original is read instead,
// fitted as FittedWith says), as a set (in no order the names give); and the other files of
// the set's folder by name (augment's copies and originals, named by digest and copy).
// Not the names of the originals or of the split's stored images, nor the folder the
// originals not stored are read from. ok is false when a stored image lies outside the output
// (files does not have it): the set is then keyed by its files.
func setContent(dir, set string, files pipeline.FileDigests) (string, bool, error) {
	var sh setHasher
	outside := false
	// The stored images are looked up a batch at a time in the order of their paths (an
	// image's line does not depend on the order): a published output's file list reads back
	// a chunk of its paths at a time, and a manifest lists the split's stored images in no
	// order of theirs.
	type stored struct {
		e   Entry
		rel string
	}
	var batch []stored
	flush := func() {
		slices.SortFunc(batch, func(a, b stored) int { return strings.Compare(a.rel, b.rel) })
		for _, s := range batch {
			d, ok := files.Digest(s.rel)
			if !ok {
				outside = true
				continue
			}
			sh.add(s.e, d)
		}
		batch = batch[:0]
	}
	m, err := EachManifestEntry(filepath.Join(dir, set), func(e Entry) error {
		if e.Path == "" {
			sh.add(e, "-")
			return nil
		}
		batch = append(batch, stored{e, path.Clean(path.Join(set, filepath.ToSlash(e.Path)))})
		if len(batch) == setLookupBatch {
			flush()
		}
		return nil
	})
	flush()
	if err != nil || outside {
		return "", false, err
	}
	h := sh.sum(m)
	for rel, d := range files.All() { // in path order
		if strings.HasPrefix(rel, set+"/") && rel != set+"/"+ManifestFile {
			fmt.Fprintf(h, "file %q %s\n", rel, d)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), true, nil
}

// setLookupBatch is how many stored images setContent looks up at a time (a variable for
// tests).
var setLookupBatch = 16384

// setHasher hashes an image set as a set: its manifest's header, and each image's line, in
// no order that names could give.
type setHasher struct {
	images [][sha256.Size]byte // each image's line, hashed: 32 bytes an image held, not its entry
	line   []byte
}

// add adds the image of entry e, whose stored image has the digest stored ("-" for none).
func (sh *setHasher) add(e Entry, stored string) {
	idx, op := 0, ""
	if e.Copy != nil {
		idx, op = e.Copy.Index, e.Copy.Op
	}
	sh.line = fmt.Appendf(sh.line[:0], "image %d %s %d %q %s\n", e.Label, e.Digest, idx, op, stored)
	sh.images = append(sh.images, sha256.Sum256(sh.line))
}

// sum returns a hash holding the header of m (its classes in label order, image size,
// channels, fit and set name) and the images added, sorted by their lines' hashes; more may
// be written to it.
func (sh *setHasher) sum(m *Manifest) hash.Hash {
	h := sha256.New()
	classes, _ := json.Marshal(m.Classes)
	fmt.Fprintf(h, "set %s %d\nclasses %s\nsize %d channels %d resize %q fitted %q\n", m.Split, m.Format, classes, m.Size, m.Channels, m.Resize, m.FittedWith)
	if m.ReadWith != "" { // only then: the sets of PNGs keep the digests they had
		fmt.Fprintf(h, "read with %q\n", m.ReadWith)
	}
	slices.SortFunc(sh.images, compareDigests) // not sorted(): an image twice counts twice
	for _, im := range sh.images {
		h.Write(im[:])
	}
	return h
}

// contentOrder orders a set's images by what they are, not by the names of their files: by
// label, the digest of the original, then originals before their copies, by copy. (Two
// entries equal in all of these are the same image; the names only keep the order stable.)
func contentOrder(a, b Entry) int {
	ai, bi, ao, bo := 0, 0, "", ""
	if a.Copy != nil {
		ai, ao = a.Copy.Index, a.Copy.Op
	}
	if b.Copy != nil {
		bi, bo = b.Copy.Index, b.Copy.Op
	}
	return cmp.Or(cmp.Compare(a.Label, b.Label), strings.Compare(a.Digest, b.Digest), cmp.Compare(ai, bi),
		strings.Compare(ao, bo), strings.Compare(a.Path, b.Path), strings.Compare(a.Source, b.Source))
}

// OutputContents implements pipeline.ContentDigester: the content digests of the three sets.
func (Split) OutputContents(dir string, files pipeline.FileDigests) (map[string]string, error) {
	return setContents(dir, files, TrainSet, ValSet, TestSet)
}

// OutputContents implements pipeline.ContentDigester: the content digest of the augmented set.
func (Augment) OutputContents(dir string, files pipeline.FileDigests) (map[string]string, error) {
	return setContents(dir, files, "output")
}
