package stages

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Manifests are written entry by entry exactly as MarshalIndent writes them whole (no images
// as an empty list).
func TestManifestWriteIsMarshalIndent(t *testing.T) {
	full := &Manifest{Split: TrainSet, Classes: []string{"a <&>", "Rød"}, Size: 32, Channels: 3, Resize: ResizeCenterCrop,
		Images: []Entry{
			{Path: "../images/ab/ab.png", Label: 0, Digest: "ab", Source: "a <&>/x.jpg"},
			{Path: "images/1/x_aug1.png", Label: 1, Digest: "cd", Copy: &Copy{Index: 1, Op: "flip"}},
		}}
	for name, m := range map[string]*Manifest{
		"full":  full,
		"one":   {Split: ValSet, Classes: []string{"a"}, Images: []Entry{{Path: "p", Digest: "d"}}},
		"empty": {Split: TestSet, Classes: []string{"a"}, Images: []Entry{}},
		"nil":   {Split: TestSet},
	} {
		dir := t.TempDir()
		if err := m.Write(dir); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		whole := *m
		if whole.Images == nil {
			whole.Images = []Entry{}
		}
		want, _ := json.MarshalIndent(&whole, "", " ")
		if want = append(want, '\n'); !bytes.Equal(got, want) {
			t.Errorf("%s: wrote\n%s\nwant\n%s", name, got, want)
		}
	}
}

// An empty set's manifest lists its images as [], which tools iterating over it expect, not
// null.
func TestAnEmptyManifestListsNoImagesAsAnEmptyList(t *testing.T) {
	dir := t.TempDir()
	if err := (&Manifest{Split: TestSet, Classes: []string{"a", "b"}}).Write(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if list, ok := m["images"].([]any); !ok || len(list) != 0 {
		t.Errorf("images %#v, want []:\n%s", m["images"], b)
	}
}
