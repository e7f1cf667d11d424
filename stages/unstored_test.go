package stages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/image/bmp"

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
		if want := map[bool]string{true: "held", false: "raw"}[o.out == TestSet]; mU.SourceDir != want || mU.FittedWith == "" {
			t.Errorf("%s %s: source folder %q, want %s, fitted with %q", o.addr, o.out, mU.SourceDir, want, mU.FittedWith)
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
	if err == nil || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "has changed since the split read it") || !strings.Contains(err.Error(), "run the pipeline (pipeline run), whose split will read it again") {
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
	if log := runLog(t, second); !strings.Contains(log, "reused the previous split's check of 20 photos (made the same way), read 6") {
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

	if log := runLog(t, w.runForced("split.main")); !strings.Contains(log, "forced: reading every image again, reusing none of the previous split's checks") || strings.Contains(log, "reused the previous") {
		t.Errorf("forced split:\n%s", log)
	}

	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "image_size      = 32", "image_size      = 24", 1)))
	w.write("raw/a/13.png", encodePNG(blobPhoto(13, 120, 90)))
	if log := runLog(t, mustRun(t, w)); !strings.Contains(log, "reading every image again: the previous split read them another way (32 px → 24 px)") || strings.Contains(log, "reused the previous") {
		t.Errorf("after image_size changed:\n%s", log)
	}
}

// withComment is a JPEG with a comment segment after its start marker: the same pixels in
// other bytes, as a photo with its metadata edited.
func withComment(data []byte, text string) []byte {
	seg := append([]byte{0xff, 0xfe, 0, byte(2 + len(text))}, text...)
	return append(append(append([]byte{}, data[:2]...), seg...), data[2:]...)
}

// bogusHuffman is a complete JPEG whose first Huffman table counts more than 256 codes, which
// libjpeg-turbo and image/jpeg both refuse.
func bogusHuffman(data []byte) []byte {
	out := append([]byte{}, data...)
	i := bytes.Index(out, []byte{0xff, 0xc4})
	out[i+4+16] = 0xff // the count of 16-bit codes of the first table
	return out
}

// Without stored images, files that would store as one image are still one image: a PNG and
// a BMP of one picture (decoded, as every file but a JPEG is), and two JPEGs that differ in
// their metadata only (not decoded); so a source copy of a test_source image is left out of
// training, as when images are stored. A complete JPEG with a broken Huffman table is
// decoded, and rejected as when images are stored, not left for training to fail on.
func TestASplitThatStoresNoImagesFindsTheSameDuplicatesAndBadFiles(t *testing.T) {
	write := func(w *ws) {
		writePhotos(w)
		img, err := jpeg.Decode(bytes.NewReader(randomJPEG(5, 0, 20, 20))) // opaque
		if err != nil {
			t.Fatal(err)
		}
		var pngBuf, bmpBuf bytes.Buffer
		if err := png.Encode(&pngBuf, img); err != nil {
			t.Fatal(err)
		}
		if err := bmp.Encode(&bmpBuf, img); err != nil {
			t.Fatal(err)
		}
		w.write("held/small/pic.png", pngBuf.Bytes())
		w.write("raw/small/pic-copy.bmp", bmpBuf.Bytes())
		photo := randomJPEG(5, 1, 30, 30)
		w.write("held/big/photo.jpg", photo)
		w.write("raw/big/photo-edited.jpg", withComment(photo, "edited"))
		w.write("raw/big/broken.jpg", bogusHuffman(randomJPEG(5, 2, 30, 30)))
	}
	stored := newWS(t, unstoredHCL(""))
	unstored := newWS(t, unstoredHCL("store_images    = false\n  near_duplicates = false"))
	write(stored)
	write(unstored)
	recS, recU := mustRun(t, stored), mustRun(t, unstored)
	report := func(w *ws, rec *pipeline.RunRecord) (splitReport, []Rejected) {
		var rep splitReport
		var rej []Rejected
		readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
		readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rej)
		return rep, rej
	}
	repS, rejS := report(stored, recS)
	repU, rejU := report(unstored, recU)
	if want := []string{"raw/big/photo-edited.jpg", "raw/small/pic-copy.bmp"}; !reflect.DeepEqual(repS.Leaked, want) || !reflect.DeepEqual(repU.Leaked, want) {
		t.Errorf("left out of training: %q storing, %q not storing; want %q", repS.Leaked, repU.Leaked, want)
	}
	if !reflect.DeepEqual(repU.Duplicates, repS.Duplicates) || len(repU.Duplicates) != 2 {
		t.Errorf("duplicates: %q not storing, %q storing", repU.Duplicates, repS.Duplicates)
	}
	if !reflect.DeepEqual(rejU, rejS) || len(rejU) != 2 || rejU[0].Path != "raw/big/broken.jpg" {
		t.Errorf("rejected: %+v not storing, %+v storing", rejU, rejS)
	}
}

// A class folder whose name begins "test:" is read from the source folder, with a test_source
// and without one.
func TestAClassNamedLikeTheTestPrefixIsReadFromTheSource(t *testing.T) {
	for _, hcl := range []string{unstoredHCL("store_images = false"), strings.Replace(unstoredHCL("store_images = false"), `test_source = "held"`, "", 1)} {
		w := newWS(t, hcl)
		writePhotos(w)
		for i := 0; i < 5; i++ {
			w.write(fmt.Sprintf("raw/test:cat/%02d.png", i), randomPNG(6, uint64(i), 20, 20))
			w.write(fmt.Sprintf("held/test:cat/%02d.png", i), randomPNG(7, uint64(i), 20, 20))
		}
		rec := mustRun(t, w)
		for _, s := range []string{TrainSet, ValSet, TestSet} {
			readSet(t, w.output(rec, "split.main", s), w.dir)
		}
	}
}

// A manifest naming originals fitted by another build is refused by its readers, saying what
// differs and what to do.
func TestAManifestOfOriginalsFittedByAnotherBuildIsRefused(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Split: TrainSet, Classes: []string{"a"}, Size: 4, Channels: 3, Resize: ResizeCenterCrop,
		SourceDir: "raw", FittedWith: strings.Replace(fittedWith(4, 3, ResizeCenterCrop), "libtensorflow ", "libtensorflow 1.0 was ", 1),
		Images: []Entry{{Label: 0, Digest: "00", Source: "a/x.jpg"}}}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	_, err := openDataset(context.Background(), dir, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "another build of pipeline") || !strings.Contains(err.Error(), "libtensorflow 1.0 was") || !strings.Contains(err.Error(), "pipeline run") {
		t.Errorf("openDataset: %v", err)
	}
}

// jpegPlausible takes the JPEGs libjpeg-turbo decodes (Go's standard library's test photos:
// baseline, progressive, restart intervals, every chroma subsampling, CMYK and RGB; and
// Go's encoder, colour and grey) and flags what it refuses: a damaged byte in coded data
// making a reserved marker, a second start of image, a scan naming a table or component not
// defined or a component twice, a restart interval segment of another size, a second frame
// header, no scan at all, a scan's spectral selection its process does not allow, too many
// blocks in an MCU.
func TestJPEGPlausibleFlagsWhatLibjpegRefuses(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "image", "testdata", "*.jpeg"))
	var good [][]byte
	for _, f := range files {
		if strings.Contains(f, "truncated") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, b)
	}
	if len(good) < 10 {
		t.Fatalf("found %d test JPEGs in GOROOT", len(good))
	}
	photo := randomJPEG(8, 0, 40, 30)
	var grey bytes.Buffer
	if err := jpeg.Encode(&grey, image.NewGray(image.Rect(0, 0, 17, 9)), nil); err != nil {
		t.Fatal(err)
	}
	good = append(good, photo, grey.Bytes())
	for i, g := range good {
		if !jpegPlausible(g) {
			t.Errorf("good JPEG %d flagged", i)
		}
	}
	sos := bytes.Index(photo, []byte{0xff, 0xda})
	scanHeader := sos + 4 // the SOS payload: components, then (id, tables) each
	reserved := append([]byte{}, photo...)
	stuffed := sos + bytes.Index(photo[sos+2:], []byte{0xff, 0x00}) + 2
	reserved[stuffed+1] = 0x50
	undefinedTable := append([]byte{}, photo...)
	undefinedTable[scanHeader+2] = 0x22 // DC and AC table 2
	unknownComponent := append([]byte{}, photo...)
	unknownComponent[scanHeader+1] = 9
	dri := append(append(append([]byte{}, photo[:2]...), 0xff, 0xdd, 0, 3, 0), photo[2:]...)
	sof := bytes.Index(photo, []byte{0xff, 0xc0})
	n := int(photo[sof+2])<<8 | int(photo[sof+3])
	twoFrames := append(append(append([]byte{}, photo[:sof+2+n]...), photo[sof:sof+2+n]...), photo[sof+2+n:]...)
	joined := append(append([]byte{}, photo[:len(photo)/2]...), photo...)
	repeated := append([]byte{}, photo...)
	repeated[scanHeader+3] = repeated[scanHeader+1] // the second component is the first again
	noScan := append(append([]byte{}, photo[:sos]...), 0xff, 0xd9)
	badSe := append([]byte{}, photo...)
	badSe[scanHeader+2*int(photo[scanHeader])+2] = 5 // a sequential scan must end at 63
	bigMCU := append([]byte{}, photo...)
	for k := 0; k < 3; k++ {
		bigMCU[sof+4+7+3*k] = 0x22 // 2×2 blocks for each of three components: 12 in an MCU
	}
	for name, bad := range map[string][]byte{
		"a component twice in a scan": repeated, "no scan": noScan, "a sequential scan ending at 5 (libjpeg-turbo warns)": badSe,
		"12 blocks in an MCU":           bigMCU,
		"reserved marker in coded data": reserved, "undefined Huffman table": undefinedTable,
		"component not in the frame": unknownComponent, "restart interval of 3 bytes": dri,
		"two frame headers": twoFrames, "a cut-off photo before a whole one": joined,
	} {
		if jpegPlausible(bad) {
			t.Errorf("%s: not flagged", name)
		}
	}
}

// jpegPixelsKey leaves out what does not change the pixels (Exif and comments before the first
// scan, a JFIF segment's density, what follows the end of image), and keeps what does (whether
// there is a JFIF segment, which makes 3 components YCbCr; a segment after a scan's header,
// which may cut its coded data short).
func TestJPEGPixelsKeyLeavesOutOnlyMetadata(t *testing.T) {
	photo := randomJPEG(8, 1, 24, 24)
	key := jpegPixelsKey(photo, 1)
	exif := append(append(append([]byte{}, photo[:2]...), 0xff, 0xe1, 0, 8, 'E', 'x', 'i', 'f', 0, 0), photo[2:]...)
	if jpegPixelsKey(withComment(photo, "hi"), 1) != key || jpegPixelsKey(exif, 1) != key {
		t.Error("a comment or an Exif segment changed the key")
	}
	if jpegPixelsKey(photo, 6) == key {
		t.Error("the orientation does not change the key")
	}
	jfif := append(append(append([]byte{}, photo[:2]...), 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0), photo[2:]...)
	if jpegPixelsKey(jfif, 1) == key {
		t.Error("a JFIF segment does not change the key")
	}
	dpi := append([]byte{}, jfif...)
	dpi[2+4+9] = 3 // density 3×1
	if jpegPixelsKey(dpi, 1) != jpegPixelsKey(jfif, 1) {
		t.Error("a JFIF segment's density changed the key")
	}
	sos := bytes.Index(photo, []byte{0xff, 0xda})
	beforeScan := append(append(append([]byte{}, photo[:sos]...), 0xff, 0xfe, 0, 4, 'h', 'i'), photo[sos:]...)
	if jpegPixelsKey(beforeScan, 1) != key || jpegPixelsKey(append(append([]byte{}, photo...), "trailer"...), 1) != key {
		t.Error("a comment before the scan or bytes after the end changed the key")
	}
	inScan := sos + 2 + int(photo[sos+2])<<8 + int(photo[sos+3]) + 10
	cut := append(append(append([]byte{}, photo[:inScan]...), 0xff, 0xfe, 0, 4, 'h', 'i'), photo[inScan:]...)
	if jpegPixelsKey(cut, 1) == key {
		t.Error("a comment in the coded data does not change the key")
	}
}

// Pixel keys do not depend on near_duplicates: a rerun after it is turned off still finds a
// JPEG of the test set copied with other metadata into the source, as a split from scratch
// does.
func TestPixelKeysDoNotDependOnNearDuplicates(t *testing.T) {
	hcl := unstoredHCL("store_images    = false\n  near_duplicates = true")
	w := newWS(t, hcl)
	writePhotos(w)
	photo := randomJPEG(5, 1, 30, 30)
	w.write("held/big/photo.jpg", photo)
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(hcl, "near_duplicates = true", "near_duplicates = false", 1)))
	w.write("raw/big/photo-edited.jpg", withComment(photo, "edited"))
	rec := mustRun(t, w)
	if log := runLog(t, rec); !strings.Contains(log, "reused the previous split's check of") {
		t.Fatalf("the rerun reused no checks:\n%s", log)
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if !reflect.DeepEqual(rep.Leaked, []string{"raw/big/photo-edited.jpg"}) {
		t.Errorf("left out of training after near_duplicates was turned off: %q", rep.Leaked)
	}
}

// Without stored images, format, quality and compression do nothing: validate warns of them
// where they are set, and changing them reruns nothing.
func TestStoringSettingsWithoutStoredImagesAreWarnedOfAndNotKeyed(t *testing.T) {
	file := strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  store_images = false\n  near_duplicates = false", 1)
	w := newWS(t, file)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(file, "store_images = false", "store_images = false\n  format = \"jpeg\"\n  quality = 80", 1)))
	var warned []string
	for _, d := range w.diagnostics() {
		if d.Severity == hcl.DiagWarning && d.Summary == "Setting without effect" {
			warned = append(warned, strings.Fields(d.Detail)[0])
		}
	}
	if strings.Join(warned, " ") != "format quality" {
		t.Errorf("warned of %v, want format and quality", warned)
	}
	if st := mustRun(t, w).Result("split.main"); st.Status != pipeline.StatusCached {
		t.Errorf("the split after format and quality changed without stored images: %s, want cached", st.Status)
	}
}

// A compression set in the pipeline block, which augment's copies use, is not warned of as
// doing nothing when the split stores no images.
func TestACompressionForAugmentIsNotWarnedOf(t *testing.T) {
	w := newWS(t, "pipeline {\n  compression = \"fast\"\n}\n"+strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  store_images = false", 1))
	diags := w.diagnostics()
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	for _, d := range diags {
		if d.Summary == "Setting without effect" {
			t.Errorf("warned: %s", d.Detail)
		}
	}
}

// Turning store_images off, plan names that change and says that format, quality and
// compression no longer count, not that each became null; a test fraction written as its
// default is shown as the number set. Turning it on again, they count again.
func TestPlanSaysWhatNoLongerCounts(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.1\n  store_images = false", 1)))
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ds[0].Reasons, "; ")
	for _, want := range []string{"attribute store_images (unset) → false", "compression, format and quality no longer count with these settings", "attribute test 0.2 → 0.1"} {
		if !strings.Contains(got, want) {
			t.Errorf("plan says %q, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "null") {
		t.Errorf("plan says %q", got)
	}

	// Back on: they count again, at their defaults, not each set from "(default)".
	mustRun(t, w)
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.1", 1)))
	if ds, err = w.engine().Plan(pipeline.Selection{}); err != nil {
		t.Fatal(err)
	}
	got = strings.Join(ds[0].Reasons, "; ")
	if want := "attribute store_images false → (unset); compression, format and quality count again with these settings, at their defaults"; !strings.HasPrefix(got, want) {
		t.Errorf("store_images back on: plan says %q, want %q", got, want)
	}
}
