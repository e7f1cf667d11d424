package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeline/pipeline"
)

const renameHCL = `
pipeline {
  seed       = 3
  image_size = 16
}

stage "split" "main" {
  source = "raw"
  val    = 0.2
  test   = 0.2
  %s
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 2
}

stage "train" "model" {
  architecture = "cnn"
  train        = stage.augment.balanced.output
  val          = stage.split.main.val
  epochs       = 2
  batch_size   = 16
  options      = { channels = [4], pool = 2, dense = 8 }
}

stage "train" "direct" {
  architecture = "cnn"
  train        = stage.split.main.train
  val          = stage.split.main.val
  epochs       = 1
  batch_size   = 16
  options      = { channels = [4], pool = 2, dense = 8 }
}
`

// Renaming every photo (the same bytes in the same class folders, named so that they sort in
// another order), and for a split that stores no images the source folder too, reruns the
// split and augment, whose manifests name the photos, but not the trainings, which are keyed
// by what their sets hold; and a training forced on the renamed photos makes the same model.
func TestRenamedPhotosKeepTheTrainedModels(t *testing.T) {
	for _, stored := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			extra := ""
			if !stored {
				extra = "store_images = false"
			}
			w := newWS(t, fmt.Sprintf(renameHCL, extra))
			w.reg, _ = pipeline.NewRegistry(Split{}, Augment{}, Train{})
			writeSynthetic(t, w, 90, []string{"circle", "square", "stripes"})
			rec, _ := w.run(false)
			trains := []string{"train.model", "train.direct"}
			models := map[string]string{}
			for _, addr := range trains {
				if r := rec.Result(addr); r.Status != pipeline.StatusRan || r.Output == "" {
					t.Fatalf("%s: %+v", addr, r)
				}
				models[addr] = rec.Result(addr).Output
			}

			source := "raw"
			if !stored {
				source = "photos"
				if err := os.Rename(filepath.Join(w.dir, "raw"), filepath.Join(w.dir, source)); err != nil {
					t.Fatal(err)
				}
				hcl, _ := os.ReadFile(filepath.Join(w.dir, "pipeline.hcl"))
				w.write("pipeline.hcl", []byte(strings.Replace(string(hcl), `source = "raw"`, `source = "photos"`, 1)))
			}
			classes, _ := os.ReadDir(filepath.Join(w.dir, source))
			for _, c := range classes {
				dir := filepath.Join(w.dir, source, c.Name())
				files, _ := os.ReadDir(dir)
				for i, f := range files {
					// the last file first: "000.png" becomes "z-090-000.png", sorting after "z-001-…"
					to := fmt.Sprintf("z-%03d-%s", len(files)-i, f.Name())
					if err := os.Rename(filepath.Join(dir, f.Name()), filepath.Join(dir, to)); err != nil {
						t.Fatal(err)
					}
				}
			}
			rec, _ = w.run(false)
			for addr, want := range map[string]string{"split.main": pipeline.StatusRan, "augment.balanced": pipeline.StatusRan,
				"train.model": pipeline.StatusCached, "train.direct": pipeline.StatusCached} {
				if got := rec.Result(addr).Status; got != want {
					t.Errorf("after the renames, %s %s, want %s", addr, got, want)
				}
			}
			m, err := ReadManifest(w.output(rec, "split.main", TrainSet))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Images) == 0 || !strings.Contains(m.Images[0].Source, "/z-") {
				t.Fatalf("the split's manifest does not name the renamed photos: %+v", m.Images[:1])
			}

			rec, err = w.engine().Run(t.Context(), pipeline.RunOptions{RunsDir: filepath.Join(w.dir, "models"),
				Selection: pipeline.Selection{Targets: trains, Force: true}})
			if err != nil {
				t.Fatal(err)
			}
			for _, addr := range trains {
				if r := rec.Result(addr); r.Status != pipeline.StatusRan || r.Output != models[addr] {
					t.Errorf("%s forced after the renames: %s, output %s, want %s", addr, r.Status, r.Output, models[addr])
				}
			}
		})
	}
}

// A set's content digest does not depend on how many stored images are looked up at a time
// (in the order of their paths), and a stored image the output does not hold leaves the set
// keyed by its files, whichever batch it falls in.
func TestSetContentLooksUpStoredImagesInBatches(t *testing.T) {
	dir := t.TempDir()
	files := pipeline.ManifestFiles{}
	m := &Manifest{Split: TrainSet, Classes: []string{"a", "b"}, Size: 8, Channels: 3, Resize: "squash"}
	for i := range 7 {
		d := fmt.Sprintf("%064x", 7-i) // listed in the reverse order of their stored paths
		rel := fmt.Sprintf("images/%s/%s.png", d[62:], d)
		files[rel] = fmt.Sprintf("%064x", 100+i)
		m.Images = append(m.Images, Entry{Path: "../" + rel, Label: i % 2, Digest: d})
	}
	m.Images = append(m.Images, Entry{Label: 1, Digest: fmt.Sprintf("%064x", 99), Source: "b/x.jpg"}) // not stored
	m.SourceDir, m.SourcePrefix = "raw", ""
	if err := m.Write(filepath.Join(dir, TrainSet)); err != nil {
		t.Fatal(err)
	}
	defer func(n int) { setLookupBatch = n }(setLookupBatch)
	var want string
	for _, batch := range []int{16384, 3, 1} {
		setLookupBatch = batch
		got, ok, err := setContent(dir, TrainSet, files)
		if err != nil || !ok {
			t.Fatalf("batch %d: %v %v", batch, ok, err)
		}
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("batch %d: %s, want %s", batch, got, want)
		}
	}
	delete(files, fmt.Sprintf("images/%02x/%064x.png", 4, 4))
	for _, batch := range []int{16384, 3, 1} {
		setLookupBatch = batch
		if _, ok, err := setContent(dir, TrainSet, files); err != nil || ok {
			t.Errorf("batch %d: a stored image not in the output: ok %v, %v", batch, ok, err)
		}
	}
}
