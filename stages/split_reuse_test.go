package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"pipeline/pipeline"
)

// treeBytes maps every file below dir to its content.
func treeBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	dir, err := filepath.EvalSymlinks(dir) // a run folder's image folder is a link
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// growPhotos writes photos from to to (exclusive) into classes a (PNGs) and b (JPEGs) of w's
// raw folder.
func growPhotos(w *ws, from, to int) {
	for i := from; i < to; i++ {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), encodePNG(blobPhoto(uint64(i), 120, 90)))
		w.write(fmt.Sprintf("raw/b/%02d.jpg", i), smallerJPEG(blobPhoto(uint64(100+i), 150, 110), 0.9, 85))
	}
}

// storesAsAFreshSplit checks that the split of w's run second (after growPhotos(w, 0, 13) in
// steps) stored the same images and fingerprints, byte for byte, as a split of the same
// photos in a fresh workspace.
func storesAsAFreshSplit(t *testing.T, w *ws, second *pipeline.RunRecord) {
	t.Helper()
	fresh := newWS(t, fmt.Sprintf(nearHCL, true))
	growPhotos(fresh, 0, 13)
	rec, _ := fresh.run(false)
	for _, name := range []string{"images", fingerprintsFile} {
		got, want := treeBytes(t, w.output(second, "split.main", name)), treeBytes(t, fresh.output(rec, "split.main", name))
		if len(want) == 0 || !maps.Equal(got, want) {
			t.Errorf("%s: %d files after reuse, %d from scratch, or different bytes", name, len(got), len(want))
		}
	}
}

// augmentWorkspace is a workspace of a split and an augment of its train set with two
// operations, and add, which writes photos from to to (exclusive) of a class.
func augmentWorkspace(t *testing.T) (w *ws, add func(class string, from, to int)) {
	w = newWS(t, fmt.Sprintf(nearHCL, true)+`
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 3
  ops         = ["flip_rotate_crop", "color_jitter"]
}
`)
	add = func(class string, from, to int) {
		for i := from; i < to; i++ {
			w.write(fmt.Sprintf("raw/%s/%02d.png", class, i), encodePNG(blobPhoto(uint64(class[0])*100+uint64(i), 60, 45)))
		}
	}
	return w, add
}

func TestARerunReusesStoredImagesAndStoresWhatAFreshSplitStores(t *testing.T) {
	w := newWS(t, fmt.Sprintf(nearHCL, true))
	growPhotos(w, 0, 10)
	first, _ := w.run(false)
	growPhotos(w, 10, 13)
	second, _ := w.run(false)
	log, _ := os.ReadFile(filepath.Join(second.Dir(), "run.log"))
	if !strings.Contains(string(log), "reused the previous split's stored images of 20 photos (stored the same way), stored 6 anew") {
		t.Fatalf("run.log does not say that 20 images were reused:\n%s", log)
	}
	// A reused image is the previous output's file itself.
	m, err := ReadManifest(w.output(first, "split.main", TrainSet))
	if err != nil {
		t.Fatal(err)
	}
	e := m.Images[0]
	a, err1 := os.Stat(filepath.Join(w.output(first, "split.main", TrainSet), e.Path))
	b, err2 := os.Stat(filepath.Join(w.output(second, "split.main", TrainSet), e.Path))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("%s was not linked from the previous split (%v %v)", e.Path, err1, err2)
	}

	// A lower max_pixels rejects images a previous split stored: nothing is reused unchecked
	// (class b's 135x99 JPEGs go over 11,000 pixels, a's 120x90 PNGs do not).
	hcl, _ := os.ReadFile(filepath.Join(w.dir, "pipeline.hcl"))
	w.write("pipeline.hcl", []byte(strings.Replace(string(hcl), "near_duplicates = true", "near_duplicates = true\n  max_pixels      = 11000", 1)))
	if _, err := w.run(true); err == nil || !strings.Contains(err.Error(), `class "b" (0; 13 files rejected`) {
		t.Errorf("with max_pixels under class b's images: %v, want class b left without images", err)
	}
	w.write("pipeline.hcl", hcl)

	// A split of the grown folder from scratch stores the same images and fingerprints.
	storesAsAFreshSplit(t, w, second)
}

func TestARerunReusesAugmentedCopiesAndMakesWhatAFreshRunMakes(t *testing.T) {
	w, add := augmentWorkspace(t)
	add("a", 0, 20) // 12 to train
	add("b", 0, 6)  // 4 to train, 2 copies each
	w.run(false)
	add("b", 6, 8) // one to train (5 of 8), b still smaller: its originals keep copies, the new one gets some
	rec, _ := w.run(false)
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if !strings.Contains(string(log), "augment.balanced: reused ") {
		t.Fatalf("augment reused no copies:\n%s", log)
	}
	incremental := rec.Result("augment.balanced").Output

	// The same augment without a previous output to reuse makes the same output.
	st, err := pipeline.OpenStore(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	state, _ := filepath.Glob(filepath.Join(st.Root, "state", "augment.balanced*.json"))
	for _, p := range append(state, filepath.Join(w.dir, pipeline.ObjectRel(incremental))) {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ = w.run(false)
	if r := rec.Result("augment.balanced"); r.Status != "ran" || r.Output != incremental {
		t.Fatalf("from scratch: %s, output %s; with reuse: %s", r.Status, r.Output, incremental)
	}
	log, _ = os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if strings.Contains(string(log), "augment.balanced: reused ") {
		t.Fatal("the run from scratch reused copies")
	}

	// Stored at another size, every original is another image: nothing is reused.
	hcl, _ := os.ReadFile(filepath.Join(w.dir, "pipeline.hcl"))
	w.write("pipeline.hcl", []byte(strings.Replace(string(hcl), "image_size      = 32", "image_size      = 24", 1)))
	rec, _ = w.run(false)
	log, _ = os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if rec.Result("augment.balanced").Status != "ran" || strings.Contains(string(log), "reused ") {
		t.Fatalf("after image_size changed: augment %s; run.log:\n%s", rec.Result("augment.balanced").Status, log)
	}
}

func TestARerunRemakesWhatWasDeletedOrChangedInThePreviousOutput(t *testing.T) {
	w := newWS(t, fmt.Sprintf(nearHCL, true)+`
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 3
}
`)
	for i := range 12 {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), encodePNG(blobPhoto(uint64(i), 60, 45)))
	}
	for i := range 6 {
		w.write(fmt.Sprintf("raw/b/%02d.png", i), encodePNG(blobPhoto(uint64(50+i), 60, 45)))
	}
	first, _ := w.run(false)
	want := treeBytes(t, w.output(first, "split.main", "images"))
	// Delete a stored image and a copy through the run folder's links into the store (after
	// noting what the images were).
	m, err := ReadManifest(w.output(first, "split.main", TrainSet))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ReadManifest(w.output(first, "augment.balanced", "output"))
	if err != nil {
		t.Fatal(err)
	}
	var copyPath string
	for _, e := range out.Images {
		if e.Copy != nil {
			copyPath = e.Path
			break
		}
	}
	for _, p := range []string{filepath.Join(w.output(first, "split.main", TrainSet), m.Images[0].Path), filepath.Join(w.output(first, "augment.balanced", "output"), copyPath)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	// And change another stored image in place, keeping its size.
	changed := filepath.Join(w.output(first, "split.main", TrainSet), m.Images[1].Path)
	b, err := os.ReadFile(changed)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	os.Chmod(changed, 0o644)
	if err := os.WriteFile(changed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Both stages rerun ("output damaged"), reuse what is intact and remake the rest: the
	// same images, and augment's very output (the split's report now counts the images
	// it kept from its previous split).
	rec, _ := w.run(false)
	if r := rec.Result("augment.balanced"); r.Status != "ran" || r.Output != first.Result("augment.balanced").Output {
		t.Errorf("augment: %s, output %s, want %s", r.Status, r.Output, first.Result("augment.balanced").Output)
	}
	if got := treeBytes(t, w.output(rec, "split.main", "images")); rec.Result("split.main").Status != "ran" || !maps.Equal(got, want) {
		t.Errorf("split: %s, %d stored images, want the %d it had", rec.Result("split.main").Status, len(got), len(want))
	}
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	for _, want := range []string{"stored 2 anew\n", "augment.balanced: reused "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("run.log lacks %q:\n%s", want, log)
		}
	}
}

func TestAPreviousSplitWhoseRecordsChangedIsNotTrusted(t *testing.T) {
	w := nearWS(t, true)
	first, _ := w.run(false)
	// The previous split's test manifest, deleted from the store: its images' history is
	// gone, and a split that went on with the rest would let them drift into training.
	obj := filepath.Join(w.dir, pipeline.ObjectRel(first.Result("split.main").Output))
	if err := os.Remove(filepath.Join(obj, TestSet, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	w.write("raw/a/new.png", encodePNG(blobPhoto(999, 120, 90)))
	rec, _ := w.run(false)
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if want := "not keeping the previous split's sets (its test/manifest.json is gone or changed since it was written)"; !strings.Contains(string(log), want) {
		t.Fatalf("run.log lacks %q:\n%s", want, log)
	}
}

// runForced runs the workspace's pipeline with addr forced (run --stage addr --force).
func (w *ws) runForced(addr string) *pipeline.RunRecord {
	w.t.Helper()
	rec, err := w.engine().Run(context.Background(), pipeline.RunOptions{RunsDir: filepath.Join(w.dir, "models"),
		Selection: pipeline.Selection{Targets: []string{addr}, Force: true}})
	if err != nil {
		if rec != nil {
			w.t.Logf("run.log:\n%s", runLog(w.t, rec))
		}
		w.t.Fatal(err)
	}
	if r := rec.Result(addr); r == nil || r.Status != pipeline.StatusRan {
		w.t.Fatalf("forced %s did not run: %+v", addr, r)
	}
	return rec
}

// A forced split is one from scratch: it stores every image again, linking none from its
// previous output, to the same bytes and keeping every image's set; the next plain rerun
// reuses again.
func TestAForcedSplitStoresEveryImageAgain(t *testing.T) {
	w := nearWS(t, true)
	first, _ := w.run(false)
	w.write("raw/a/new.png", encodePNG(blobPhoto(999, 120, 90)))
	forced := w.runForced("split.main")
	log := runLog(t, forced)
	if strings.Contains(log, "split.main: reused ") || !strings.Contains(log, "split.main: forced: storing every image again") {
		t.Fatalf("the forced split reused stored images, or did not say it made them again:\n%s", log)
	}
	for _, set := range []string{TrainSet, ValSet, TestSet} {
		before, err := ReadManifest(w.output(first, "split.main", set))
		if err != nil {
			t.Fatal(err)
		}
		after, err := ReadManifest(w.output(forced, "split.main", set))
		if err != nil {
			t.Fatal(err)
		}
		paths := map[string]string{}
		for _, e := range after.Images {
			paths[e.Digest] = e.Path
		}
		for _, e := range before.Images {
			p, ok := paths[e.Digest]
			if !ok {
				t.Errorf("%s left %s after the forced split", e.Source, set)
				continue
			}
			a := filepath.Join(w.output(first, "split.main", set), e.Path)
			b := filepath.Join(w.output(forced, "split.main", set), p)
			fa, err1 := os.Stat(a)
			fb, err2 := os.Stat(b)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if os.SameFile(fa, fb) {
				t.Errorf("%s: the forced split linked the previous split's stored image", e.Source)
			}
			if ba, bb := readBytes(t, a), readBytes(t, b); ba != bb {
				t.Errorf("%s: stored again differently", e.Source)
			}
		}
	}
	w.write("raw/b/new.png", encodePNG(blobPhoto(998, 120, 90)))
	rec, _ := w.run(false)
	if log := runLog(t, rec); !strings.Contains(log, "split.main: reused the previous split's stored images of 21 photos") {
		t.Errorf("the plain rerun after a forced one did not reuse its 21 images:\n%s", log)
	}
}

func readBytes(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A split whose images the previous one stored another way stores them all again, and its log
// says which setting changed.
func TestARerunSaysWhyNoStoredImageIsReused(t *testing.T) {
	w := newWS(t, fmt.Sprintf(nearHCL, true))
	for i := range 6 {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), encodePNG(blobPhoto(uint64(i), 120, 90)))
		w.write(fmt.Sprintf("raw/b/%02d.png", i), encodePNG(blobPhoto(uint64(100+i), 120, 90)))
	}
	w.run(false)
	w.write("pipeline.hcl", []byte(strings.Replace(fmt.Sprintf(nearHCL, true), "image_size      = 32", "image_size      = 32\n  min_side        = 3", 1)))
	rec, _ := w.run(false)
	log := runLog(t, rec)
	if !strings.Contains(log, "split.main: storing every image again: the previous split stored them another way (min side 2 → min side 3)\n") || strings.Contains(log, "reused ") {
		t.Fatalf("run.log:\n%s", log)
	}
}

// How the stored-with descriptions of two splits differ is said field by field, also when a
// field was added.
func TestStoredChange(t *testing.T) {
	for _, c := range []struct{ was, now, want string }{
		{"split 15: 32 px, 3 channels; max 9 pixels", "split 15: 32 px, 1 channels; max 9 pixels", "3 channels → 1 channels"},
		{"not stored; max 9 pixels; split 15", "not stored; JPEG check 2; max 9 pixels; split 15", "now JPEG check 2"},
		{"not stored; JPEG check 2; max 9 pixels", "not stored; max 9 pixels", "no longer JPEG check 2"},
		{"a; b", "a; b; b", `"a; b", now "a; b; b"`},
	} {
		if got := storedChange(c.was, c.now); got != c.want {
			t.Errorf("storedChange(%q, %q) = %q, want %q", c.was, c.now, got, c.want)
		}
	}
}

// When the previous split's fingerprints cannot be used (changed in the store, or of an
// older format), a rerun still links its stored PNGs, taking their fingerprints from them
// instead of fitting the files again, and writes what a fresh split writes.
func TestARerunWithoutFingerprintsTakesThemFromTheStoredImages(t *testing.T) {
	w := newWS(t, fmt.Sprintf(nearHCL, true))
	growPhotos(w, 0, 10)
	first, _ := w.run(false)
	prints := filepath.Join(w.dir, pipeline.ObjectRel(first.Result("split.main").Output), fingerprintsFile)
	if err := os.Chmod(prints, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prints, []byte("pipeline fingerprints 1: 16x16 grey\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	growPhotos(w, 10, 13)
	second, _ := w.run(false)
	if log := runLog(t, second); !strings.Contains(log, "reused the previous split's stored images of 20 photos (stored the same way), stored 6 anew") {
		t.Fatalf("run.log does not say that 20 images were reused:\n%s", log)
	}
	storesAsAFreshSplit(t, w, second) // the sets: kept from before, not drawn afresh
}

// A workspace moved or copied whole keeps reusing its stored images and copies: the engine
// knows the previous outputs' files by their old paths only, and reads them to check them.
func TestAMovedOrCopiedWorkspaceReusesItsImagesAndCopies(t *testing.T) {
	w, add := augmentWorkspace(t)
	add("a", 0, 20)
	add("b", 0, 6)
	w.run(false)
	for k, how := range []string{"moved", "copied"} {
		to := filepath.Join(t.TempDir(), how)
		if how == "moved" {
			if err := os.Rename(w.dir, to); err != nil {
				t.Fatal(err)
			}
		} else if out, err := exec.Command("cp", "-a", w.dir, to).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		w.dir = to
		add("a", 20+5*k, 25+5*k) // some to train: b's copies are linked, not made
		rec, _ := w.run(false)
		log := runLog(t, rec)
		if !strings.Contains(log, "split.main: reused ") || !strings.Contains(log, "augment.balanced: reused ") {
			t.Errorf("%s workspace: the split or augment reused nothing:\n%s", how, log)
		}
	}
}

// A picture saved twice in one class (as PNG and BMP: the same pixels) is listed once; when
// the listed file goes, the other keeps the set the picture had, with its stored image linked,
// not made again.
func TestACopyLeftOutOfTheManifestKeepsItsSetWhenTheListedFileGoes(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 20; i++ {
		w.write(fmt.Sprintf("raw/x/u%02d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/y/u%02d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	for k := 0; k < 12; k++ {
		pic := image.NewRGBA(image.Rect(0, 0, 6, 6))
		for i := range pic.Pix {
			pic.Pix[i] = uint8(i*37 + 11 + 13*k*k + k)
			if i%4 == 3 {
				pic.Pix[i] = 255
			}
		}
		var asBMP, asPNG bytes.Buffer
		if err := bmp.Encode(&asBMP, pic); err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(&asPNG, pic); err != nil {
			t.Fatal(err)
		}
		w.write(fmt.Sprintf("raw/x/a%02d.png", k), asPNG.Bytes())
		w.write(fmt.Sprintf("raw/x/z%02d.bmp", k), asBMP.Bytes())
	}
	rec, _ := w.run(false)
	before := splitOf(t, w, rec)
	sets := map[string]bool{}
	for k := 0; k < 12; k++ {
		if _, listed := before[fmt.Sprintf("x/z%02d.bmp", k)]; listed {
			t.Fatalf("x/z%02d.bmp, the same picture as x/a%02d.png, is listed", k, k)
		}
		sets[before[fmt.Sprintf("x/a%02d.png", k)]] = true
		os.Remove(filepath.Join(w.dir, fmt.Sprintf("raw/x/a%02d.png", k)))
	}
	if len(sets) < 2 {
		t.Fatalf("the twelve pictures are all in %v: the test cannot tell a move", sets)
	}
	rec, _ = w.run(false)
	after := splitOf(t, w, rec)
	for k := 0; k < 12; k++ {
		if was, now := before[fmt.Sprintf("x/a%02d.png", k)], after[fmt.Sprintf("x/z%02d.bmp", k)]; was != now {
			t.Errorf("picture %d was in %s, its other file is now in %s", k, was, now)
		}
	}
	if log := runLog(t, rec); !strings.Contains(log, "reused the previous split's stored images of 52 photos") {
		t.Errorf("the left-out files' stored images were not all linked:\n%s", log)
	}
}

// Photos removed for a while and put back return to the sets they had, held out ones to
// val and test, not into training: the split remembers every file it placed (sets.bin), not
// only those of the split just before.
func TestPhotosPutBackReturnToTheirSets(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 30; i++ {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	rec, _ := w.run(false)
	first := splitOf(t, w, rec)
	// Set aside every held-out photo of a, run, add new photos, run, put them back.
	aside := map[string][]byte{}
	for src, set := range first {
		if strings.HasPrefix(src, "a/") && set != TrainSet {
			p := filepath.Join(w.dir, "raw", src)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			aside[src] = b
			os.Remove(p)
		}
	}
	if len(aside) < 4 {
		t.Fatalf("only %d held-out photos in a", len(aside))
	}
	w.run(false)
	for i := 30; i < 35; i++ {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
	}
	w.run(false)
	for src, b := range aside {
		w.write("raw/"+src, b)
	}
	rec, _ = w.run(false)
	last := splitOf(t, w, rec)
	for src := range aside {
		if last[src] != first[src] {
			t.Errorf("%s was in %s, put back it is in %s", src, first[src], last[src])
		}
	}
}

// Photos written moments before a run (a workspace just copied, photos just added) are too
// fresh for the engine to vouch for their digests by stat alone; the split reads their bytes
// for their digests and still links the images it stored for them, instead of making them.
func TestFreshlyWrittenPhotosStillReuseStoredImages(t *testing.T) {
	w := newWS(t, fmt.Sprintf(nearHCL, true))
	w.fresh = true
	growPhotos(w, 0, 10)
	w.run(false)
	growPhotos(w, 10, 11)
	for _, unstored := range []bool{false, true} {
		if unstored {
			w.write("pipeline.hcl", []byte(strings.Replace(fmt.Sprintf(nearHCL, false), "near_duplicates = false", "near_duplicates = false\n  store_images = false", 1)))
			w.run(false)
			growPhotos(w, 11, 12)
		}
		rec, _ := w.run(false)
		want := "reused the previous split's stored images of 20 photos"
		if unstored {
			want = "reused the previous split's check"
		}
		if log := runLog(t, rec); !strings.Contains(log, want) {
			t.Errorf("unstored %v: the split reused nothing for photos written just before:\n%s", unstored, log)
		}
	}
}

// A previous split whose sets.bin is gone keeps its manifests' sets and stored images: only
// what sets.bin alone remembered is forgotten, and the log says so.
func TestLosingSetsBinKeepsTheManifestsSets(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 30; i++ {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	rec, _ := w.run(false)
	before := splitOf(t, w, rec)
	out := filepath.Join(w.dir, pipeline.ObjectRel(rec.Result("split.main").Output))
	os.Chmod(out, 0o755)
	if err := os.Remove(filepath.Join(out, setsFile)); err != nil {
		t.Fatal(err)
	}
	w.write("raw/a/new.png", randomPNG(2, 99, 6, 6))
	rec, _ = w.run(false)
	after := splitOf(t, w, rec)
	for src, set := range before {
		if after[src] != set {
			t.Errorf("%s moved from %s to %s", src, set, after[src])
		}
	}
	log := runLog(t, rec)
	if !strings.Contains(log, "warning: the previous split's sets.bin is gone or changed") || !strings.Contains(log, "reused the previous split's stored images of 60 photos") {
		t.Errorf("the log lacks the warning or the reuse:\n%s", log)
	}
}

// TestSettingsTriedForAWhileLeaveTheSetsAsTheyWere checks that a split whose fractions were
// changed and changed back keeps the sets it had before, also when photos are added as they
// change back (without a run between, the last output is the one of the settings tried) and
// gc has removed every run folder meanwhile: no photo moves, and the plan says so before the
// run.
func TestSettingsTriedForAWhileLeaveTheSetsAsTheyWere(t *testing.T) {
	w := newWS(t, splitHCL)
	add := func(from, to int) {
		for i := from; i < to; i++ {
			w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
			w.write(fmt.Sprintf("raw/b/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
		}
	}
	// Photos added in steps: their sets are the history's, not what one draw of them all
	// would give.
	for _, n := range []int{10, 14, 18, 22, 26, 30} {
		add(n-4, n)
		w.run(false)
	}
	rec, _ := w.run(false)
	first := splitOf(t, w, rec)
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "val        = 0.2", "val        = 0.4", 1)))
	rec, _ = w.run(false)
	tried := splitOf(t, w, rec)
	moved := 0
	for src, set := range first {
		if tried[src] != set {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no photo moved with other fractions: the test shows nothing")
	}
	// A nightly gc meanwhile, which removes every run folder: the earlier splits are kept
	// for the stage to go back to all the same.
	if _, err := w.engine().GC(filepath.Join(w.dir, "models"), false, 0, nil); err != nil {
		t.Fatal(err)
	}
	w.write("pipeline.hcl", []byte(splitHCL))
	w.write("raw/a/30.png", randomPNG(2, 30, 6, 6))
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("plan: %v, %v", ds, err)
	}
	if r := strings.Join(ds[0].Reasons, "; "); !strings.Contains(r, "the sets of the earlier split made with these settings are kept") {
		t.Errorf("plan: %s", r)
	}
	rec, _ = w.run(false)
	last := splitOf(t, w, rec)
	for src, set := range first {
		if last[src] != set {
			t.Errorf("%s was in %s with these settings, then in %s, and is now in %s", src, set, tried[src], last[src])
		}
	}
}

// TestPlanSaysTheSetsAreKeptOnlyWhenEverySettingIsBack checks that the plan says an earlier
// split's sets are kept only when all its settings (seed, val, test) are back, as the run
// decides, not when only the one changed last is.
func TestPlanSaysTheSetsAreKeptOnlyWhenEverySettingIsBack(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 10)
	file := func(seed int, val string) string {
		return fmt.Sprintf("pipeline {\n  seed = %d\n}\n", seed) + strings.Replace(splitHCL, "val        = 0.2", "val        = "+val, 1)
	}
	mustRunFile(t, w, file(1, "0.2"))
	mustRunFile(t, w, file(2, "0.3"))
	w.write("pipeline.hcl", []byte(file(2, "0.2")))
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("plan: %v, %v", ds, err)
	}
	if r := strings.Join(ds[0].Reasons, "; "); strings.Contains(r, "are kept") || !strings.Contains(r, "drawn afresh") {
		t.Errorf("val back, the seed not: %s", r)
	}
	w.write("pipeline.hcl", []byte(file(1, "0.2")))
	if ds, err = w.engine().Plan(pipeline.Selection{}); err != nil || ds[0].Action != pipeline.Cached {
		t.Errorf("both back: %v %v", ds, err)
	}
}

// TestPlanSaysTheSetsAreDrawnAfreshWhenTheEarlierSplitIsDamaged checks that the plan says an
// earlier split's sets are kept only when its records are intact, as the run decides: with
// its train manifest changed since it was written, the plan says the sets are drawn afresh,
// and why, and the run does not go back to it.
func TestPlanSaysTheSetsAreDrawnAfreshWhenTheEarlierSplitIsDamaged(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 10)
	w.write("pipeline.hcl", []byte(splitHCL))
	rec, _ := w.run(false)
	first := filepath.Join(w.dir, pipeline.ObjectRel(rec.Result("split.main").Output))
	mustRunFile(t, w, strings.Replace(splitHCL, "val        = 0.2", "val        = 0.3", 1))
	w.write("pipeline.hcl", []byte(splitHCL))
	w.write("raw/a/new.png", randomPNG(7, 99, 6, 6)) // not the first split's key again
	if r := w.planReasons(t); !strings.Contains(r, "the sets of the earlier split made with these settings are kept") {
		t.Fatalf("the earlier split intact: %s", r)
	}
	manifest := filepath.Join(first, TrainSet, ManifestFile)
	appendToStored(t, manifest, "\n")
	want := "the sets will be drawn afresh: images move between train, val and test (the earlier split made with these settings cannot be gone back to: its " + TrainSet + "/" + ManifestFile + " is gone or changed since it was written)"
	if r := w.planReasons(t); strings.Contains(r, "are kept") || !strings.Contains(r, want) {
		t.Errorf("the earlier split's manifest changed: %s; want %q", r, want)
	}
	rec, _ = w.run(false)
	if log := runLog(t, rec); strings.Contains(log, "keeping the sets of an earlier split") {
		t.Errorf("the run went back to the damaged split:\n%s", log)
	}
}

// TestARecordedAbsoluteTestSourceIsTheSameFolder checks that a split recorded with its
// test_source as an absolute path inside the workspace (as splits recorded it before such
// paths were made relative) keeps its sets for the relative path that names the same folder.
func TestARecordedAbsoluteTestSourceIsTheSameFolder(t *testing.T) {
	ws := t.TempDir()
	now := splitSettings{Seed: 1, Val: 0.1, TestSource: "rawtest"}
	for recorded, keeps := range map[string]bool{
		filepath.Join(ws, "rawtest"):                    true,
		"./rawtest/":                                    true,
		filepath.Join(ws, "other"):                      false,
		filepath.Join(filepath.Dir(ws), "x", "rawtest"): false,
	} {
		o := now
		o.TestSource = recorded
		p := &previousSplit{workspace: ws, rep: &splitReport{Settings: &o}}
		if _, why := p.sets(now); (why == "") != keeps {
			t.Errorf("recorded %q: keeps %v (%s), want %v", recorded, why == "", why, keeps)
		}
	}
}

// gc keeps, of a split's earlier outputs, the newest made with each other seed, val and test
// (which putting those settings back goes back to), not one that differs from a newer one in
// how its images are stored only.
func TestGCKeepsTheEarlierSplitsToGoBackTo(t *testing.T) {
	w := newWS(t, splitHCL)
	writeTwoClasses(w, "raw", 10)
	output := func(hcl string) string {
		w.write("pipeline.hcl", []byte(hcl))
		rec, _ := w.run(false)
		return filepath.Join(w.dir, pipeline.ObjectRel(rec.Result("split.main").Output))
	}
	size8 := output(splitHCL)
	size6 := output(strings.Replace(splitHCL, "image_size = 8", "image_size = 6", 1))
	val3 := output(strings.Replace(strings.Replace(splitHCL, "image_size = 8", "image_size = 6", 1), "val        = 0.2", "val        = 0.3", 1))
	if size8 == size6 || size6 == val3 {
		t.Fatal("the settings made no new output")
	}
	if _, err := w.engine().GC(filepath.Join(w.dir, "models"), false, 0, nil); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]bool{size8: false, size6: true, val3: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s kept: %v, want %v", dir, err == nil, want)
		}
	}
}

// TestGCKeepsTheEarlierSplitsASplitGoesBackTo gives a split earlier outputs whose test_source
// is recorded as splits recorded it before paths were cleaned and made relative to the
// workspace: gc keeps exactly those the split goes back to when the settings of one are put
// back (the newest whose settings previousSplit.sets takes as those, unless the current
// split's are), not one more for each way of writing a folder.
func TestGCKeepsTheEarlierSplitsASplitGoesBackTo(t *testing.T) {
	ws := t.TempDir()
	reports := map[string]*splitReport{}
	output := func(name string, s splitSettings) string {
		dir := filepath.Join(ws, pipeline.StoreDir, "objects", name)
		reports[dir] = &splitReport{Settings: &s}
		b, err := json.Marshal(reports[dir])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "report"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "report", "split.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	current := output("current", splitSettings{Seed: 1, Val: 0.2, TestSource: "holdout"})
	earlier := []string{ // newest first
		output("seed2", splitSettings{Seed: 2, Val: 0.2, TestSource: "./holdout/"}),
		output("as-current", splitSettings{Seed: 1, Val: 0.2, TestSource: filepath.Join(ws, "holdout")}),
		output("seed2-older", splitSettings{Seed: 2, Val: 0.2, TestSource: "holdout"}),
		output("val3", splitSettings{Seed: 1, Val: 0.3, TestSource: "holdout/"}),
		output("as-current-older", splitSettings{Seed: 1, Val: 0.2, TestSource: "holdout//"}),
		output("other", splitSettings{Seed: 1, Val: 0.2, TestSource: filepath.Join(ws, "other")}),
		output("outside", splitSettings{Seed: 1, Val: 0.2, TestSource: filepath.Join(filepath.Dir(ws), "holdout")}),
		output("none", splitSettings{Seed: 1, Val: 0.2, Test: 0.1}),
	}
	// The settings a split may be run with again, as it records them now.
	var goneBackTo []string
	for _, now := range []splitSettings{
		{Seed: 1, Val: 0.2, TestSource: "holdout"},
		{Seed: 2, Val: 0.2, TestSource: "holdout"},
		{Seed: 1, Val: 0.3, TestSource: "holdout"},
		{Seed: 1, Val: 0.2, TestSource: "other"},
		{Seed: 1, Val: 0.2, TestSource: filepath.Join(filepath.Dir(ws), "holdout")},
		{Seed: 1, Val: 0.2, Test: 0.1},
	} {
		if _, why := (&previousSplit{dir: current, workspace: ws, rep: reports[current]}).sets(now); why == "" {
			continue // the current split's sets are kept
		}
		for _, dir := range earlier {
			if _, why := (&previousSplit{dir: dir, workspace: ws, rep: reports[dir]}).sets(now); why == "" {
				goneBackTo = append(goneBackTo, dir)
				break
			}
		}
	}
	names := func(dirs []string) []string {
		var out []string
		for _, d := range dirs {
			out = append(out, filepath.Base(d))
		}
		return out
	}
	want := []string{"seed2", "val3", "other", "outside", "none"}
	if !slices.Equal(names(goneBackTo), want) {
		t.Fatalf("the split goes back to %q, want %q", names(goneBackTo), want)
	}
	var jobs []*pipeline.Job
	for _, dir := range earlier {
		jobs = append(jobs, &pipeline.Job{Workspace: ws, Previous: dir})
	}
	if got := (Split{}).EarlierToKeep(&pipeline.Job{Workspace: ws, Previous: current}, jobs); !slices.Equal(got, goneBackTo) {
		t.Errorf("gc keeps %q, want those the split goes back to: %q", names(got), want)
	}
}

// TestGCKeepsAnIntactEarlierSplitWhenTheNewestIsDamaged checks that gc keeps, for each
// settings, the newest split made with them whose records are intact: the one the split goes
// back to when the newest, earlier or current, has a record changed since it was written.
// Keeping only the newest, damaged, left the split nothing to go back to, and it drew the sets
// afresh: photos moved between train, val and test.
func TestGCKeepsAnIntactEarlierSplitWhenTheNewestIsDamaged(t *testing.T) {
	for _, current := range []bool{false, true} {
		w := newWS(t, splitHCL)
		var outputs []*pipeline.RunRecord
		for _, n := range []int{10, 14, 18, 22, 26} {
			for i := n - 4; i < n; i++ {
				w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
				w.write(fmt.Sprintf("raw/b/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
			}
			rec, _ := w.run(false)
			outputs = append(outputs, rec)
		}
		intact, damaged := outputs[len(outputs)-2], outputs[len(outputs)-1]
		had := splitOf(t, w, intact)
		// The newest split with these settings gets a manifest changed in the store.
		manifest := filepath.Join(w.output(damaged, "split.main", TrainSet), ManifestFile)
		appendToStored(t, manifest, "\n")
		if !current {
			// Other fractions for a while, a gc meanwhile, and the fractions back.
			w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "val        = 0.2", "val        = 0.4", 1)))
			w.run(false)
		}
		if _, err := w.engine().GC(filepath.Join(w.dir, "models"), false, 0, nil); err != nil {
			t.Fatal(err)
		}
		w.write("pipeline.hcl", []byte(splitHCL))
		rec, _ := w.run(false)
		if log := runLog(t, rec); !strings.Contains(log, "keeping the sets of an earlier split made with these settings") {
			t.Errorf("the damaged split current %v: the split did not go back to the intact earlier one:\n%s", current, log)
		}
		now := splitOf(t, w, rec)
		for src, set := range had {
			if now[src] != set {
				t.Errorf("the damaged split current %v: %s was in %s with these settings, and is now in %s", current, src, set, now[src])
			}
		}
	}
}
