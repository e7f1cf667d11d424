package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// ReadManifest, which reads entry by entry (EachManifestEntry), gives back what Write wrote,
// every field of the header and of each entry, and refuses what it always refused.
func TestManifestReadsBackWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	want := &Manifest{Split: "train", Classes: []string{"a b", "ü"}, Size: 28, Channels: 1, Resize: "pad",
		SourceDir: "data/raw", SourcePrefix: "test:", FittedWith: "fit 1",
		Images: []Entry{
			{Path: "../images/ab/ab.png", Label: 0, Digest: "ab", Source: "test:a b/x.png"},
			{Label: 1, Digest: "cd", Source: "test:ü/y.jpg"},
			{Path: "images/1/cd_0.png", Label: 1, Digest: "cd", Source: "test:ü/y.jpg", Copy: &Copy{Index: 2, Op: "color_jitter"}},
		}}
	if err := want.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, wrote %+v", got, want)
	}
	var seen []string
	head, err := EachManifestEntry(dir, func(e Entry) error { seen = append(seen, e.Digest); return nil })
	if err != nil || head.Images != nil || head.SourceDir != "data/raw" || strings.Join(seen, ",") != "ab,cd,cd" {
		t.Fatalf("EachManifestEntry: %v, %+v, %v", err, head, seen)
	}

	for name, c := range map[string]struct{ text, err string }{
		"label out of range": {`{"format": 1, "classes": ["a", "b"], "images": [{"path": "x.png", "label": 2, "digest": "d"}]}`,
			"image 0 (x.png) has label 2 of 2 classes"},
		"entries before the header": {`{"images": [{"path": "x.png", "label": 1, "digest": "d"}], "format": 1, "classes": ["a"]}`,
			"image 0 (x.png) has label 1 of 1 classes"},
		"no image to read": {`{"format": 1, "classes": ["a"], "images": [{"label": 0, "digest": "d", "source": "a/x.png"}]}`,
			"has neither a stored image nor a source folder"},
		"another format":  {`{"format": 2, "classes": ["a"], "images": []}`, "manifest format 2, this build reads 1"},
		"cut short":       {`{"format": 1, "classes": ["a"], "images": [{"path": "x.png", "lab`, "unexpected EOF"},
		"more at the end": {`{"format": 1, "classes": ["a"], "images": []} {}`, "more after the manifest's end"},
		"not an object":   {`[1]`, "not a JSON object"},
	} {
		d := filepath.Join(t.TempDir(), "set")
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, ManifestFile), []byte(c.text), 0o644)
		_, err := ReadManifest(d)
		if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), filepath.Join(d, ManifestFile)) {
			t.Errorf("%s: %v, want an error naming the file and saying %q", name, err, c.err)
		}
	}
	d := filepath.Join(t.TempDir(), "set")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, ManifestFile), []byte(`{"images": [{"path": "x.png", "label": 0, "digest": "d"}], "format": 1, "classes": ["a"], "extra": {"x": [1]}}`), 0o644)
	if m, err := ReadManifest(d); err != nil || len(m.Images) != 1 || m.Classes[0] != "a" {
		t.Fatalf("entries before the header: %+v, %v", m, err)
	}
}

// BenchmarkReadManifest reads a manifest of 20,000 stored images and copies.
func BenchmarkReadManifest(b *testing.B) {
	dir := b.TempDir()
	m := &Manifest{Split: "train", Classes: []string{"a", "b"}, Size: 224, Channels: 3, Resize: "center_crop"}
	for i := range 20000 {
		d := fmt.Sprintf("%064x", i)
		e := Entry{Path: "images/" + d[:2] + "/" + d + ".png", Label: i % 2, Digest: d, Source: fmt.Sprintf("class/photo-%05d.jpg", i)}
		if i%3 == 0 {
			e.Copy = &Copy{Index: 1, Op: "flip_rotate_crop"}
		}
		m.Images = append(m.Images, e)
	}
	if err := m.Write(dir); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := ReadManifest(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// A path given where an image set is expected that is none (a folder of photos, a split's
// output folder rather than one of its sets, a file) is warned of by validate, at its
// attribute, for augment, train and evaluate alike; and an augment run on it fails saying so,
// not with the error of opening a manifest.
func TestAPathThatIsNoImageSetIsSaidSo(t *testing.T) {
	const hcl = `
stage "augment" "photos" {
  input = "raw/a"
}

stage "augment" "file" {
  input = "raw/a/0.png"
}

stage "train" "t" {
  architecture = "cnn"
  train        = "raw"
  val          = "set"
}

stage "evaluate" "e" {
  model = "model"
  data  = "raw/a"
}
`
	w := newWS(t, hcl)
	w.reg, _ = pipeline.NewRegistry(Augment{}, Train{}, Evaluate{})
	w.write("raw/a/0.png", randomPNG(1, 0, 6, 6))
	(&Manifest{Split: "val", Classes: []string{"a"}, Size: 6, Channels: 3, Images: []Entry{}}).Write(filepath.Join(w.dir, "set"))
	var got []string
	for _, d := range w.engine().Workflow.CheckSources(w.dir) {
		if d.Summary == "Unusable path" {
			got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Detail))
		}
	}
	const advice = "give a split's train, val or test folder, or an augment's output folder: the stage will fail when it runs unless that changes first."
	want := []string{
		`3: input "raw/a": it holds no image set (no manifest.json): ` + advice,
		`7: input "raw/a/0.png": it is a file, not an image set: ` + advice,
		`12: train "raw": it holds no image set (no manifest.json): ` + advice,
		`18: data "raw/a": it holds no image set (no manifest.json): ` + advice,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate's warnings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	w = newWS(t, "stage \"augment\" \"a\" {\n  input = \"raw/a\"\n}\n")
	w.write("raw/a/0.png", randomPNG(1, 0, 6, 6))
	rec, _ := w.run(true)
	res := rec.Result("augment.a")
	if res == nil || res.Status != "failed" || !strings.HasSuffix(res.Error, "raw/a: it holds no image set (no manifest.json): give a split's train, val or test folder, or an augment's output folder") {
		t.Errorf("augment on a folder of photos: %+v, want it failed saying the folder is no image set", res)
	}
}
