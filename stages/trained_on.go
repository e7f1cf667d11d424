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
	"pipeline/pipeline/regular"
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

// digestOf decodes a SHA-256 digest given in hex; ok is false for anything else.
func digestOf(hexDigest string) (d [sha256.Size]byte, ok bool) {
	if len(hexDigest) != hex.EncodedLen(len(d)) {
		return d, false // hex.Decode would write past d
	}
	n, err := hex.Decode(d[:], []byte(hexDigest))
	return d, err == nil && n == len(d)
}

func compareDigests(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) }

// sorted returns digests as a digestSet: sorted, each once (in place).
func sorted(digests [][sha256.Size]byte) digestSet {
	slices.SortFunc(digests, compareDigests)
	return slices.Compact(digests)
}

// has reports whether the set holds the digest given in hex.
func (s digestSet) has(hexDigest string) bool {
	d, ok := digestOf(hexDigest)
	if !ok {
		return false
	}
	_, ok = slices.BinarySearchFunc(s, d, compareDigests)
	return ok
}

// writeTrainedOn writes TrainedOnFile into the SavedModel folder dir: the originals of sets
// and start, those the starting model saw (nil for none).
func writeTrainedOn(job *pipeline.Job, dir string, start digestSet, sets ...*dataset) error {
	all := slices.Clone(start)
	for _, ds := range sets {
		for _, e := range ds.m.Images {
			d, ok := digestOf(e.Digest)
			if !ok {
				return fmt.Errorf("%s: an image's digest %q is not a SHA-256", ds.dir, e.Digest)
			}
			all = append(all, d)
		}
	}
	all = sorted(all)
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
	return readDigests(filepath.Join(dir, TrainedOnFile))
}

// readDigests reads a file of sorted SHA-256 digests (TrainedOnFile's layout): nil, and no
// error, when there is none. A named pipe or a device there is not read (a
// *regular.Error): a starting model's folder (init_from) is anyone's.
func readDigests(path string) (digestSet, error) {
	b, err := regular.Read(path)
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

// A training from a starting model (init_from) keeps what that model saw in its work folder
// when it starts, so that its own list is made from the model it started from, whatever the
// path names by the time it ends (a champion promoted since, say).
const (
	startList   = "start.trained_on.bin" // the starting model's TrainedOnFile
	startNoList = "start.no_list"        // the starting model had none (made by an earlier version)
)

// keepStartingList copies the TrainedOnFile of the starting model in modelDir into the work
// folder work (or notes that it has none). A damaged one is an error, before any training.
func keepStartingList(work, modelDir string) error {
	s, err := readTrainedOn(modelDir)
	if err != nil {
		return err
	}
	if s == nil {
		return os.WriteFile(filepath.Join(work, startNoList), nil, 0o644)
	}
	data, err := regular.Read(filepath.Join(modelDir, TrainedOnFile))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, startList), data, 0o644)
}

// startingList returns what keepStartingList kept in work: the starting model's list, and
// whether it is known (false when the starting model had none, or when the work folder holds
// neither file, a training started before lists were kept).
func startingList(work string) (digestSet, bool, error) {
	if _, err := os.Stat(filepath.Join(work, startNoList)); err == nil {
		return nil, false, nil
	}
	s, err := readDigests(filepath.Join(work, startList))
	return s, s != nil, err
}
