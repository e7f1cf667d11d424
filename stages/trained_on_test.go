package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// TrainedOnFile holds the originals of the sets, each once, with those of the starting
// model; a file of another layout is refused, naming it.
func TestTrainedOnListsEachOriginalOnce(t *testing.T) {
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	set := func(names ...string) *dataset {
		m := &Manifest{Classes: []string{"a"}}
		for _, n := range names {
			m.Images = append(m.Images, Entry{Label: 0, Digest: digest(n)})
		}
		m.Images = append(m.Images, Entry{Label: 0, Digest: digest(names[0]), Copy: &Copy{Index: 1, Op: "flip"}})
		return &dataset{dir: "set", m: m}
	}
	job := &pipeline.Job{}
	start, model := t.TempDir(), t.TempDir()
	if err := writeTrainedOn(job, start, nil, set("x", "y")); err != nil {
		t.Fatal(err)
	}
	// A training from it keeps its list in its work folder when it starts.
	work := t.TempDir()
	if err := keepStartingList(work, start); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(start, TrainedOnFile)) // what start holds later does not matter
	before, known, err := startingList(work)
	if err != nil || !known || len(before) != 2 {
		t.Fatalf("the starting list kept: %v, %v, %d digests", err, known, len(before))
	}
	if err := writeTrainedOn(job, model, before, set("b", "y"), set("c")); err != nil {
		t.Fatal(err)
	}
	// A starting model without a list: the list of a model made from it is not known.
	work2 := t.TempDir()
	if err := keepStartingList(work2, start); err != nil {
		t.Fatal(err)
	}
	if s, known, err := startingList(work2); s != nil || known || err != nil {
		t.Fatalf("a starting model without a list: %v, %v, %v", s, known, err)
	}
	got, err := readTrainedOn(model)
	if err != nil || len(got) != 4 {
		t.Fatalf("%v: %d digests, want 4 (b, c, x, y)", err, len(got))
	}
	for _, n := range []string{"b", "c", "x", "y"} {
		if !got.has(digest(n)) {
			t.Errorf("%s is not listed", n)
		}
	}
	if got.has(digest("z")) || got.has("not hex") {
		t.Error("lists what it was not trained on")
	}
	if s, err := readTrainedOn(t.TempDir()); s != nil || err != nil {
		t.Fatalf("a model made before the file: %v, %v", s, err)
	}
	b, _ := os.ReadFile(filepath.Join(model, TrainedOnFile))
	for name, data := range map[string][]byte{"cut": b[:40], "unsorted": append(append([]byte{}, b[32:64]...), b[:32]...)} {
		os.WriteFile(filepath.Join(model, TrainedOnFile), data, 0o644)
		if _, err := readTrainedOn(model); err == nil || !strings.Contains(err.Error(), filepath.Join(model, TrainedOnFile)) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	bad := set("x")
	bad.m.Images[0].Digest = "xyz"
	if err := writeTrainedOn(job, t.TempDir(), nil, bad); err == nil {
		t.Error("a digest that is no SHA-256 was written")
	}
}

// A digest recorded in hex is decoded only when it is one: a damaged record with a longer
// value is not a digest, not a crash.
func TestDigestOfRefusesWhatIsNotADigest(t *testing.T) {
	good := strings.Repeat("ab", 32)
	if _, ok := digestOf(good); !ok {
		t.Fatalf("%s refused", good)
	}
	for _, bad := range []string{good + "ab", good[:62], good + "a", strings.Repeat("zz", 32), ""} {
		if d, ok := digestOf(bad); ok {
			t.Errorf("%q decoded to %x", bad, d)
		}
	}
}
