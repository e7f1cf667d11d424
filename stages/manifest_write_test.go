package stages

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Manifests are written entry by entry exactly as MarshalIndent writes them whole.
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
		want, _ := json.MarshalIndent(m, "", " ")
		if want = append(want, '\n'); !bytes.Equal(got, want) {
			t.Errorf("%s: wrote\n%s\nwant\n%s", name, got, want)
		}
	}
}
