package stages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// randomJPEG returns a distinct JPEG photo-like image (smooth gradients and noise) for
// (seed, i).
func randomJPEG(seed, i uint64, w, h int) []byte {
	r := rand.New(rand.NewPCG(seed, i))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	a, b, c := r.IntN(256), r.IntN(256), r.IntN(256)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := img.PixOffset(x, y)
			img.Pix[o] = uint8(a + x*3 + r.IntN(20))
			img.Pix[o+1] = uint8(b + y*2 + r.IntN(20))
			img.Pix[o+2] = uint8(c + (x + y) + r.IntN(20))
			img.Pix[o+3] = 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// unstoredHCL is a split (storing its images or not) and an augment of its training set.
func unstoredHCL(store string) string {
	return fmt.Sprintf(`
pipeline {
  seed = 7
}
stage "split" "main" {
  source      = "raw"
  test_source = "held"
  image_size  = 16
  val         = 0.2
  %s
}
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 3
}
`, store)
}

// writePhotos writes the same photos into w: JPEGs (decoded by libjpeg-turbo) and PNGs of
// other sizes in two imbalanced classes, a held-out test folder, and a truncated JPEG.
func writePhotos(w *ws) {
	for i := 0; i < 12; i++ {
		w.write(fmt.Sprintf("raw/big/%02d.jpg", i), randomJPEG(1, uint64(i), 40+i, 30))
	}
	for i := 0; i < 5; i++ {
		w.write(fmt.Sprintf("raw/small/%02d.png", i), randomPNG(2, uint64(i), 20, 24+i))
	}
	w.write("raw/small/05.jpg", randomJPEG(3, 0, 30, 50))
	cut := randomJPEG(3, 1, 30, 40)
	w.write("raw/small/cut.jpg", cut[:len(cut)/2])
	w.write("held/big/a.jpg", randomJPEG(4, 0, 33, 33))
	w.write("held/small/b.png", randomPNG(4, 1, 17, 19))
}

// readSet opens the data folder dir of workspace w and returns its manifest and every
// image's pixels.
func readSet(t *testing.T, dir, workspace string) (*Manifest, [][]uint8) {
	t.Helper()
	ds, err := openDataset(context.Background(), dir, workspace)
	if err != nil {
		t.Fatal(err)
	}
	px := make([][]uint8, ds.len())
	for i := range px {
		if px[i], err = ds.decode(i); err != nil {
			t.Fatal(err)
		}
	}
	return ds.m, px
}

// A split with store_images = false stores no image: its manifests name the originals, and
// every set, and augment's output made from it, reads as the same pixels, labels and order
// as when the split stores its images, the copies byte for byte; a truncated JPEG is still
// rejected from its missing end marker.
func TestASplitThatStoresNoImagesReadsAsOneThatDoes(t *testing.T) {
	stored := newWS(t, unstoredHCL(""))
	unstored := newWS(t, unstoredHCL("store_images    = false\n  near_duplicates = false"))
	writePhotos(stored)
	writePhotos(unstored)
	recS, recU := mustRun(t, stored), mustRun(t, unstored)

	splitDir := filepath.Dir(unstored.output(recU, "split.main", "train"))
	if _, err := os.Stat(filepath.Join(splitDir, "images")); !os.IsNotExist(err) {
		t.Errorf("the split stored images with store_images = false (%v)", err)
	}
	var rejected []Rejected
	readJSONFile(t, filepath.Join(splitDir, "report", "rejected.json"), &rejected)
	if len(rejected) != 1 || rejected[0].Path != "raw/small/cut.jpg" {
		t.Errorf("rejected %+v, want raw/small/cut.jpg alone", rejected)
	}
	for _, o := range []struct{ addr, out string }{
		{"split.main", TrainSet}, {"split.main", ValSet}, {"split.main", TestSet}, {"augment.balanced", "output"},
	} {
		mS, pxS := readSet(t, stored.output(recS, o.addr, o.out), stored.dir)
		mU, pxU := readSet(t, unstored.output(recU, o.addr, o.out), unstored.dir)
		if mU.SourceDir != "raw" || mU.TestSourceDir != "held" {
			t.Errorf("%s %s: source folders %q and %q, want raw and held", o.addr, o.out, mU.SourceDir, mU.TestSourceDir)
		}
		if len(mS.Images) != len(mU.Images) || len(mS.Images) == 0 {
			t.Fatalf("%s %s: %d images stored, %d not stored", o.addr, o.out, len(mS.Images), len(mU.Images))
		}
		originals := 0
		for i, eU := range mU.Images {
			eS := mS.Images[i]
			if eU.Digest != eS.Digest || eU.Label != eS.Label || eU.Source != eS.Source || !reflect.DeepEqual(eU.Copy, eS.Copy) {
				t.Fatalf("%s %s: image %d is %+v not stored, %+v stored", o.addr, o.out, i, eU, eS)
			}
			if eU.Copy == nil {
				originals++
				if eU.Path != "" {
					t.Errorf("%s %s: original %s has a stored image %q", o.addr, o.out, eU.Source, eU.Path)
				}
			} else if got, want := readBytes(t, filepath.Join(unstored.output(recU, o.addr, o.out), eU.Path)), readBytes(t, filepath.Join(stored.output(recS, o.addr, o.out), eS.Path)); got != want {
				t.Errorf("%s: copy %s differs from the one made from stored images", o.addr, eU.Path)
			}
			if !bytes.Equal(pxU[i], pxS[i]) {
				t.Errorf("%s %s: %s reads as other pixels than its stored image", o.addr, o.out, eU.Source)
			}
		}
		if originals == 0 {
			t.Errorf("%s %s: no originals", o.addr, o.out)
		}
	}
}

// Reading a set whose split stored no images checks each original against the digest the
// split recorded: a photo changed or removed since is an error naming it and saying what to
// do, never other pixels.
func TestAnOriginalChangedOrGoneSinceTheSplitIsAnError(t *testing.T) {
	w := newWS(t, unstoredHCL("store_images = false"))
	writePhotos(w)
	rec := mustRun(t, w)
	train := w.output(rec, "split.main", TrainSet)
	m, err := ReadManifest(train)
	if err != nil {
		t.Fatal(err)
	}
	victim := m.Original(m.Images[0], w.dir)
	if err := os.WriteFile(victim, randomJPEG(9, 9, 40, 30), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = openDataset(context.Background(), train, w.dir)
	if err == nil || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "has changed since the split read it") || !strings.Contains(err.Error(), "run the split again") {
		t.Errorf("reading after %s changed: %v", victim, err)
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	_, err = openDataset(context.Background(), train, w.dir)
	if err == nil || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("reading after %s was removed: %v", victim, err)
	}
	// The next run splits again from what is there, and reads.
	rec = mustRun(t, w)
	if st := rec.Result("split.main"); st.Status != pipeline.StatusRan {
		t.Errorf("split after a photo was removed: %s", st.Status)
	}
	readSet(t, w.output(rec, "augment.balanced", "output"), w.dir)
}

// A manifest entry with neither a stored image nor a source folder to read it from is refused
// when the manifest is read.
func TestAManifestEntryWithoutImageOrSourceIsRefused(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Split: TrainSet, Classes: []string{"a"}, Size: 4, Channels: 3, Resize: ResizeCenterCrop,
		Images: []Entry{{Label: 0, Digest: "00", Source: "a/x.jpg"}}}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "neither a stored image nor a source folder") {
		t.Errorf("ReadManifest: %v", err)
	}
}

// A rerun of a split that stores no images takes the files the previous one checked (and
// their near-duplicate thumbnails) without reading them again, and writes what a split from
// scratch writes; one made another way reads every file again, saying why.
func TestARerunOfASplitThatStoresNoImagesReusesItsChecks(t *testing.T) {
	hcl := strings.Replace(fmt.Sprintf(nearHCL, true), "near_duplicates = true", "near_duplicates = true\n  store_images    = false", 1)
	grow := func(w *ws, from, to int) {
		for i := from; i < to; i++ {
			w.write(fmt.Sprintf("raw/a/%02d.png", i), encodePNG(blobPhoto(uint64(i), 120, 90)))
			w.write(fmt.Sprintf("raw/b/%02d.jpg", i), smallerJPEG(blobPhoto(uint64(100+i), 150, 110), 0.9, 85))
		}
	}
	w := newWS(t, hcl)
	grow(w, 0, 10)
	mustRun(t, w)
	grow(w, 10, 13)
	second := mustRun(t, w)
	if log := runLog(t, second); !strings.Contains(log, "reused the previous split's check of 20 images (made the same way), read 6") {
		t.Fatalf("run.log does not say that 20 images were reused:\n%s", log)
	}
	fresh := newWS(t, hcl)
	grow(fresh, 0, 13)
	rec := mustRun(t, fresh)
	got, want := treeBytes(t, w.output(second, "split.main", fingerprintsFile)), treeBytes(t, fresh.output(rec, "split.main", fingerprintsFile))
	if len(want) == 0 || !maps.Equal(got, want) {
		t.Errorf("fingerprints: %d files after reuse, %d from scratch, or different bytes", len(got), len(want))
	}
	// The sets can differ (the rerun keeps the first split's); the images listed may not.
	entries := func(w *ws, rec *pipeline.RunRecord) map[string]Entry {
		out := map[string]Entry{}
		for _, s := range []string{TrainSet, ValSet, TestSet} {
			m, err := ReadManifest(w.output(rec, "split.main", s))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.Images {
				out[e.Source] = e
			}
		}
		return out
	}
	if got, want := entries(w, second), entries(fresh, rec); len(want) != 26 || !maps.Equal(got, want) {
		t.Errorf("after reuse the sets list %v, from scratch %v", got, want)
	}

	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "image_size      = 32", "image_size      = 24", 1)))
	w.write("raw/a/13.png", encodePNG(blobPhoto(13, 120, 90)))
	if log := runLog(t, mustRun(t, w)); !strings.Contains(log, "reading every image again: the previous split read them another way (32 px → 24 px)") || strings.Contains(log, "reused the previous") {
		t.Errorf("after image_size changed:\n%s", log)
	}
}
