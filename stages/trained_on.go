package stages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"pipeline/pipeline"
)

// TrainedOnFile, in a trained model's SavedModel folder, lists the photos the model saw
// while it was made: the SHA-256 digests (32 bytes each, sorted, no two alike) of the
// originals of its training and validation sets, and of those its starting model (init_from)
// saw. A test set that shares photos with it scores the model too well: evaluate says so,
// and select compares a champion with a winner only on the test photos the champion never
// saw.
const TrainedOnFile = "trained_on.bin"

// digestSet is a sorted list of distinct SHA-256 digests.
type digestSet [][sha256.Size]byte

// has reports whether the set holds the digest given in hex.
func (s digestSet) has(hexDigest string) bool {
	var d [sha256.Size]byte
	if n, err := hex.Decode(d[:], []byte(hexDigest)); err != nil || n != len(d) {
		return false
	}
	_, ok := slices.BinarySearchFunc(s, d, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	return ok
}

// writeTrainedOn writes TrainedOnFile into the SavedModel folder dir: the originals of sets
// and those of the starting model's TrainedOnFile in from ("" for none).
func writeTrainedOn(job *pipeline.Job, dir, from string, sets ...*dataset) error {
	var all digestSet
	for _, ds := range sets {
		for _, e := range ds.m.Images {
			var d [sha256.Size]byte
			if n, err := hex.Decode(d[:], []byte(e.Digest)); err != nil || n != len(d) {
				return fmt.Errorf("%s: an image's digest %q is not a SHA-256", ds.dir, e.Digest)
			}
			all = append(all, d)
		}
	}
	if from != "" {
		before, err := readTrainedOn(from)
		if err != nil {
			return fmt.Errorf("the starting model: %w", err)
		}
		all = append(all, before...)
	}
	slices.SortFunc(all, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	all = slices.Compact(all)
	data := make([]byte, 0, len(all)*sha256.Size)
	for _, d := range all {
		data = append(data, d[:]...)
	}
	_, err := job.WriteFile(filepath.Join(dir, TrainedOnFile), data)
	return err
}

// readTrainedOn reads TrainedOnFile from the SavedModel folder dir: nil, and no error, for a
// model made before it was written.
func readTrainedOn(dir string) (digestSet, error) {
	path := filepath.Join(dir, TrainedOnFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b)%sha256.Size != 0 {
		return nil, fmt.Errorf("%s: %d bytes, not a list of %d-byte digests", path, len(b), sha256.Size)
	}
	s := make(digestSet, len(b)/sha256.Size)
	for i := range s {
		copy(s[i][:], b[i*sha256.Size:])
		if i > 0 && bytes.Compare(s[i-1][:], s[i][:]) >= 0 {
			return nil, fmt.Errorf("%s: the digests are not sorted", path)
		}
	}
	return s, nil
}
