package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
)

// augmentInput writes a training manifest into ws/in listing entries (stored images of 8×8
// pixels, one per distinct seed) in the given order, and returns its entries.
func augmentInput(t *testing.T, ws string, labels []int, seeds []uint64) []Entry {
	t.Helper()
	var entries []Entry
	for i, l := range labels {
		data := randomPNG(7, seeds[i], 8, 8)
		sum := sha256.Sum256(data)
		rel := fmt.Sprintf("images/%d/%d.png", l, i)
		if err := os.MkdirAll(filepath.Join(ws, "in", "images", fmt.Sprint(l)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, "in", filepath.FromSlash(rel)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, Entry{Path: rel, Label: l, Digest: hex.EncodeToString(sum[:])})
	}
	return entries
}

// runAugment runs an augment stage on ws/in into a new folder and returns it.
func runAugment(t *testing.T, ws string) string {
	t.Helper()
	v := pipelineValues(t, Augment{}, map[string]cty.Value{"input": cty.StringVal("in"),
		"max_augment": cty.NumberIntVal(3), "ops": cty.ListVal([]cty.Value{cty.StringVal(OpFlipRotateCrop), cty.StringVal(OpColorJitter)})})
	out := t.TempDir()
	job := &pipeline.Job{Workspace: ws, Out: out, Work: t.TempDir(), Values: v, Seed: 5, Log: io.Discard, Progress: nopProgress{}}
	if err := (Augment{}).Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	return out
}

// Augment reads its input a class at a time when the input lists its images so (as the
// split does), and the whole of it otherwise: both give the same output, byte for byte, and
// its record of the copies' inputs is what json.MarshalIndent makes of them, an image
// listed in two classes recorded once.
func TestAugmentOfAnInputListedOutOfClassOrderIsTheSame(t *testing.T) {
	labels := []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 1, 2}
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 3, 9} // the last two are images of other classes
	ws := t.TempDir()
	entries := augmentInput(t, ws, labels, seeds)
	m := &Manifest{Split: TrainSet, Classes: []string{"a", "b", "c"}, Size: 8, Channels: 3, Resize: "squash"}

	m.Images = slices.Clone(entries)
	slices.SortStableFunc(m.Images, func(a, b Entry) int { return a.Label - b.Label })
	if err := m.Write(filepath.Join(ws, "in")); err != nil {
		t.Fatal(err)
	}
	if _, _, grouped, err := countClasses(filepath.Join(ws, "in")); err != nil || !grouped {
		t.Fatalf("a manifest listed by class: grouped %v, %v", grouped, err)
	}
	byClass := runAugment(t, ws)

	m.Images = entries // class 1 listed again after class 2
	if err := m.Write(filepath.Join(ws, "in")); err != nil {
		t.Fatal(err)
	}
	if _, _, grouped, err := countClasses(filepath.Join(ws, "in")); err != nil || grouped {
		t.Fatalf("a manifest not listed by class: grouped %v, %v", grouped, err)
	}
	mixed := runAugment(t, ws)

	for _, f := range []string{"output/" + ManifestFile, "report/" + copiesFile, "report/augment.json"} {
		a, errA := os.ReadFile(filepath.Join(byClass, f))
		b, errB := os.ReadFile(filepath.Join(mixed, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs (%v, %v):\n%s\n---\n%s", f, errA, errB, a, b)
		}
	}
	out, err := ReadManifest(filepath.Join(mixed, "output"))
	if err != nil {
		t.Fatal(err)
	}
	// 8, 3 and 4 originals: each smaller class made up to 8 (3 × 3 and 3 × 4 would be more)
	if got := out.Counts(); !slices.Equal(got, []int{8, 8, 8}) {
		t.Errorf("counts after augmenting %v, want [8 8 8]", got)
	}
	for _, e := range out.Images {
		a, errA := os.ReadFile(filepath.Join(byClass, "output", filepath.FromSlash(e.Path)))
		b, errB := os.ReadFile(filepath.Join(mixed, "output", filepath.FromSlash(e.Path)))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs (%v, %v)", e.Path, errA, errB)
		}
	}

	raw, err := os.ReadFile(filepath.Join(mixed, "report", copiesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec copiesRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	// the classes with copies (b and c) have 3 and 4 originals, each with a copy or more, one
	// of them the same image in both: six stems with a copy's input
	if len(rec.Inputs) != 6 {
		t.Errorf("%d inputs recorded, want 6:\n%s", len(rec.Inputs), raw)
	}
	want, _ := json.MarshalIndent(rec, "", "  ")
	if !bytes.Equal(append(want, '\n'), raw) {
		t.Errorf("copies record not as json.MarshalIndent writes it:\n%s\nwant\n%s", raw, want)
	}
}

// An input whose image has a digest that is not a SHA-256 (a manifest written by hand) is
// refused with the manifest and the image named, before any copy is made.
func TestAugmentRefusesAnInputDigestThatIsNotASHA256(t *testing.T) {
	ws := t.TempDir()
	entries := augmentInput(t, ws, []int{0, 0, 1}, []uint64{1, 2, 3})
	entries[2].Digest = "abc"
	m := &Manifest{Split: TrainSet, Classes: []string{"a", "b"}, Size: 8, Channels: 3, Resize: "squash", Images: entries}
	if err := m.Write(filepath.Join(ws, "in")); err != nil {
		t.Fatal(err)
	}
	v := pipelineValues(t, Augment{}, map[string]cty.Value{"input": cty.StringVal("in"),
		"max_augment": cty.NumberIntVal(3), "ops": cty.ListVal([]cty.Value{cty.StringVal(OpColorJitter)})})
	job := &pipeline.Job{Workspace: ws, Out: t.TempDir(), Work: t.TempDir(), Values: v, Seed: 5, Log: io.Discard, Progress: nopProgress{}}
	err := (Augment{}).Run(context.Background(), job)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(ws, "in", ManifestFile)) || !strings.Contains(err.Error(), `images/1/2.png has the digest "abc", not a SHA-256`) {
		t.Fatalf("got %v", err)
	}
}
