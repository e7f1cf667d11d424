package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/image/bmp"

	"pipeline/pipeline"
)

// ws is a temporary workspace for running data stages through the engine.
type ws struct {
	t   *testing.T
	dir string
	reg *pipeline.Registry
	// fresh keeps the engine's clock as it is, so that files just written are too fresh for
	// their digests to be trusted by stat alone (racyMargin), as in a real run right after
	// they were written; by default the clock runs a minute ahead.
	fresh bool
}

func newWS(t *testing.T, hcl string) *ws {
	t.Helper()
	reg, err := pipeline.NewRegistry(Split{}, Augment{})
	if err != nil {
		t.Fatal(err)
	}
	w := &ws{t: t, dir: t.TempDir(), reg: reg}
	w.write("pipeline.hcl", []byte(hcl))
	return w
}

func (w *ws) write(rel string, data []byte) {
	w.t.Helper()
	p := filepath.Join(w.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// run runs the pipeline and returns the run record (failing the test on error unless
// wantErr).
func (w *ws) run(wantErr bool) (*pipeline.RunRecord, error) {
	w.t.Helper()
	rec, err := w.engine().Run(context.Background(), pipeline.RunOptions{RunsDir: filepath.Join(w.dir, "models")})
	if err != nil && !wantErr {
		if rec != nil {
			log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
			w.t.Logf("run.log:\n%s", log)
		}
		w.t.Fatal(err)
	}
	return rec, err
}

// engine loads the workspace's pipeline file and opens its store (failing the test on an
// error). The files a test has just written count as settled, so that the engine vouches for
// their digests (Job.KnownDigest) as it does for files older than a few seconds.
func (w *ws) engine() *pipeline.Engine {
	w.t.Helper()
	cfg, diags := pipeline.LoadFile(filepath.Join(w.dir, "pipeline.hcl"), w.reg)
	if diags.HasErrors() {
		w.t.Fatal(diags.Error())
	}
	wf, diags := pipeline.Build(cfg, w.reg, nil)
	if diags.HasErrors() {
		w.t.Fatal(diags.Error())
	}
	st, err := pipeline.OpenStore(w.dir)
	if err != nil {
		w.t.Fatal(err)
	}
	if !w.fresh {
		st.Stats.Clock = func() time.Time { return time.Now().Add(time.Minute) }
	}
	return &pipeline.Engine{Workflow: wf, Store: st}
}

// output returns the path of an instance's output in the run folder.
func (w *ws) output(rec *pipeline.RunRecord, addr, name string) string {
	res := rec.Result(addr)
	if res == nil || res.Artifacts == "" {
		w.t.Fatalf("%s has no artifacts in the run", addr)
	}
	return filepath.Join(rec.Dir(), res.Artifacts, name)
}

// randomPNG returns a distinct small noisy PNG for (seed, i).
func randomPNG(seed, i uint64, w, h int) []byte {
	r := rand.New(rand.NewPCG(seed, i))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for j := range img.Pix {
		img.Pix[j] = uint8(r.IntN(256))
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

func encodeWith(enc func(*bytes.Buffer, image.Image) error, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := enc(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// hugePNG is a valid PNG header claiming width×height pixels (no image data).
func hugePNG(width, height uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

const splitHCL = `
stage "split" "main" {
  source     = "raw"
  image_size = 8
  val        = 0.2
  test       = 0.2
}
`

func TestDiscoveryRejectsEveryKindOfBadFileWithAReason(t *testing.T) {
	w := newWS(t, splitHCL)
	good := func(i uint64) []byte { return randomPNG(1, i, 10, 7) }
	for i := uint64(0); i < 4; i++ {
		w.write(fmt.Sprintf("raw/Fly agaric/%d.png", i), good(i))
		w.write(fmt.Sprintf("raw/Ceps é/%d.PNG", i), good(100+i))
	}
	jpg := encodeWith(func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }, 9, 9)
	w.write("raw/Ceps é/upper.JPG", jpg)
	w.write("raw/Ceps é/disguised.png", encodeWith(func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }, 9, 9))
	w.write("raw/Ceps é/nested/deeper.bmp", encodeWith(func(b *bytes.Buffer, m image.Image) error { return bmp.Encode(b, m) }, 9, 9))
	w.write("raw/Fly agaric/empty.jpg", nil)
	noisy, _ := png.Decode(bytes.NewReader(randomPNG(7, 7, 64, 64)))
	var big bytes.Buffer
	jpeg.Encode(&big, noisy, nil)
	w.write("raw/Fly agaric/truncated.jpg", big.Bytes()[:big.Len()*3/4])
	w.write("raw/Fly agaric/notes.txt", []byte("not an image"))
	w.write("raw/Fly agaric/huge.png", hugePNG(100000, 100000))
	w.write("raw/Fly agaric/pixel.gif", encodeWith(func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }, 1, 1))
	w.write("raw/Fly agaric/.hidden.png", good(50))
	w.write("raw/stray.png", good(51))
	os.Symlink(filepath.Join(w.dir, "raw/Fly agaric"), filepath.Join(w.dir, "raw/Fly agaric/loop"))
	os.Symlink("..", filepath.Join(w.dir, "raw/Ceps é/up"))                 // the source folder
	os.Symlink("../..", filepath.Join(w.dir, "raw/Ceps é/ws"))              // the workspace, store included
	os.Symlink("self.jpg", filepath.Join(w.dir, "raw/Fly agaric/self.jpg")) // a link to itself
	os.Symlink(".", filepath.Join(w.dir, "raw/rootloop"))                   // the source folder as a class

	rec, _ := w.run(false)
	var rejected []Rejected
	readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rejected)
	reasons := map[string]string{}
	for _, r := range rejected {
		reasons[r.Path] = r.Reason
	}
	want := map[string]string{
		"raw/Fly agaric/empty.jpg":     "empty file",
		"raw/Fly agaric/truncated.jpg": "truncated jpeg",
		"raw/Fly agaric/notes.txt":     "not an image",
		"raw/Fly agaric/huge.png":      "exceeds max_pixels",
		"raw/Fly agaric/pixel.gif":     "gif of 1x1 is smaller than min_side 2",
		"raw/Fly agaric/loop":          "symbolic link loop",
		"raw/Ceps é/up":                "symbolic link loop",
		"raw/Ceps é/ws":                "symbolic link loop",
		"raw/Fly agaric/self.jpg":      "symbolic link loop",
		"raw/rootloop":                 "symbolic link loop",
		"raw/stray.png":                "not inside a class folder",
	}
	for p, reason := range want {
		if !strings.Contains(reasons[p], reason) {
			t.Errorf("%s: rejected for %q, want %q", p, reasons[p], reason)
		}
	}
	if len(rejected) != len(want) {
		t.Errorf("rejected %v, want exactly %d files", reasons, len(want))
	}
	// Everything else was used: upper-case extension, content-detected GIF, nested BMP.
	total := 0
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		m, err := ReadManifest(w.output(rec, "split.main", s))
		if err != nil {
			t.Fatal(err)
		}
		total += len(m.Images)
		if strings.Join(m.Classes, "|") != "Ceps é|Fly agaric" {
			t.Fatalf("classes %q", m.Classes)
		}
	}
	if total != 11 {
		t.Fatalf("%d images used, want 11", total)
	}
	// The run's report lists what the split found, each rejected file with its reason, and
	// names the trigger of a scheduled run.
	rec.Trigger = `schedule "nightly" due 2026-12-07T03:00:00Z`
	path, err := Summarize(rec).WriteHTML()
	if err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(path)
	// The plots open full size.
	if m := regexp.MustCompile(`<a href="(split\.main[^"]*/report/class_distribution\.png)"><img alt="split.main class distribution" src="data:image/png;base64,[^"]+"></a>`).FindSubmatch(html); m == nil {
		t.Error("report.html does not link the class distribution plot to its file")
	} else if _, err := os.Stat(filepath.Join(rec.Dir(), string(m[1]))); err != nil {
		t.Errorf("report.html links the class distribution plot to %s: %v", m[1], err)
	}
	for _, want := range []string{"11 images in 2 classes", "rejected files: 11 (report/rejected.json)",
		"<td>raw/Fly agaric/notes.txt</td><td>Fly agaric</td>", "truncated jpeg", "schedule &#34;nightly&#34; due 2026-12-07T03:00:00Z · "} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// splitOf maps each original (source path) to its split.
func splitOf(t *testing.T, w *ws, rec *pipeline.RunRecord) map[string]string {
	out := map[string]string{}
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		m, err := ReadManifest(w.output(rec, "split.main", s))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Images {
			out[e.Source] = s
		}
	}
	return out
}

func TestSplitIsExactAndStableWhenImagesAreAdded(t *testing.T) {
	w := newWS(t, splitHCL)
	sizes := map[string]int{"a": 3, "b": 10, "c": 25, "d": 41, "e": 62}
	for c, n := range sizes {
		for i := 0; i < n; i++ {
			w.write(fmt.Sprintf("raw/%s/%03d.png", c, i), randomPNG(uint64(len(c)+int(c[0])), uint64(i), 6, 6))
		}
	}
	rec, _ := w.run(false)
	first := splitOf(t, w, rec)
	checkProportions(t, first, sizes)

	// 20 % more images per class.
	for c, n := range sizes {
		extra := (n + 4) / 5
		for i := n; i < n+extra; i++ {
			w.write(fmt.Sprintf("raw/%s/%03d.png", c, i), randomPNG(uint64(len(c)+int(c[0])), uint64(i), 6, 6))
		}
		sizes[c] = n + extra
	}
	rec, _ = w.run(false)
	second := splitOf(t, w, rec)
	for src, s := range first {
		if second[src] != s {
			t.Errorf("%s moved from %s to %s after images were added", src, s, second[src])
		}
	}
	checkProportions(t, second, sizes)
}

func TestNewSeedOrFractionsSplitAfresh(t *testing.T) {
	const withSeed = `
pipeline {
  seed = %d
}

stage "split" "main" {
  source     = "raw"
  image_size = 8
  val        = %g
  test       = 0.2
}
`
	images := func(w *ws) {
		for c, n := range map[string]int{"a": 12, "b": 30} {
			for i := 0; i < n; i++ {
				w.write(fmt.Sprintf("raw/%s/%03d.png", c, i), randomPNG(uint64(c[0]), uint64(i), 6, 6))
			}
		}
	}
	fresh := func(seed int, val float64) map[string]string {
		w := newWS(t, fmt.Sprintf(withSeed, seed, val))
		images(w)
		rec, _ := w.run(false)
		return splitOf(t, w, rec)
	}
	w := newWS(t, fmt.Sprintf(withSeed, 1, 0.2))
	images(w)
	rec, _ := w.run(false)
	if got, want := splitOf(t, w, rec), fresh(1, 0.2); !maps.Equal(got, want) {
		t.Fatal("the same settings split differently in two stores")
	}
	// Another seed, then other fractions: each rerun splits as an empty store would, not as
	// the previous run did.
	for _, c := range []struct {
		seed int
		val  float64
	}{{2, 0.2}, {2, 0.3}} {
		w.write("pipeline.hcl", []byte(fmt.Sprintf(withSeed, c.seed, c.val)))
		rec, _ = w.run(false)
		if got, want := splitOf(t, w, rec), fresh(c.seed, c.val); !maps.Equal(got, want) {
			t.Fatalf("seed %d val %g: the rerun kept earlier sets instead of splitting afresh", c.seed, c.val)
		}
		var rep splitReport
		readJSONFile(t, filepath.Join(w.output(rec, "split.main", "report"), "split.json"), &rep)
		if rep.Kept != 0 {
			t.Fatalf("seed %d val %g: %d images kept from the previous split", c.seed, c.val, rep.Kept)
		}
	}
	if a, b := fresh(1, 0.2), fresh(2, 0.2); maps.Equal(a, b) {
		t.Fatal("seeds 1 and 2 split identically: the test cannot tell")
	}

	// The split's own seed draws the sets as the pipeline's would (seed 2 and val 0.2 ran
	// above, with the pipeline's seed: the same split, reused), and a new pipeline seed then
	// leaves them as they are.
	own := strings.Replace(withSeed, "  test       = 0.2\n", "  test       = 0.2\n  seed       = 2\n", 1)
	w.write("pipeline.hcl", []byte(fmt.Sprintf(own, 1, 0.2)))
	plan, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(plan) != 1 || !slices.Equal(plan[0].Reasons, []string{"reusing an earlier output for this configuration"}) {
		t.Fatalf("plan with the split's own seed: %v %+v", err, plan[0])
	}
	rec, _ = w.run(false)
	if got, want := splitOf(t, w, rec), fresh(2, 0.2); !maps.Equal(got, want) {
		t.Fatal("the split's seed 2 drew other sets than the pipeline's seed 2")
	}
	w.write("pipeline.hcl", []byte(fmt.Sprintf(own, 3, 0.2)))
	if plan, err = w.engine().Plan(pipeline.Selection{}); err != nil || plan[0].Action != pipeline.Cached {
		t.Fatalf("a new pipeline seed, the split having its own: %v %+v", err, plan)
	}
	rec, _ = w.run(false)
	if got, want := splitOf(t, w, rec), fresh(2, 0.2); !maps.Equal(got, want) || rec.Result("split.main").Status != pipeline.StatusCached {
		t.Fatal("a new pipeline seed moved images, or ran the split again, though the split has a seed of its own")
	}
	// Its seed left out again: the pipeline's, 3, draws the sets afresh, said once.
	w.write("pipeline.hcl", []byte(fmt.Sprintf(withSeed, 3, 0.2)))
	if plan, err = w.engine().Plan(pipeline.Selection{}); err != nil || plan[0].Action != pipeline.Run ||
		strings.Join(plan[0].Reasons, "; ") != "attribute seed 2 → 3; the sets will be drawn afresh: images move between train, val and test" {
		t.Fatalf("the split's seed left out: %v %q", err, plan[0].Reasons)
	}
}

func checkProportions(t *testing.T, assigned map[string]string, sizes map[string]int) {
	t.Helper()
	got := map[string]map[string]int{}
	for src, s := range assigned {
		c := strings.SplitN(src, "/", 2)[0]
		if got[c] == nil {
			got[c] = map[string]int{}
		}
		got[c][s]++
	}
	for c, n := range sizes {
		for s, frac := range map[string]float64{TrainSet: 0.6, ValSet: 0.2, TestSet: 0.2} {
			exact := frac * float64(n)
			if d := float64(got[c][s]) - exact; d > 1 || d < -1 {
				t.Errorf("class %s (%d images): %d in %s, exact %.1f", c, n, got[c][s], s, exact)
			}
		}
		if n >= 3 && (got[c][ValSet] < 1 || got[c][TestSet] < 1) {
			t.Errorf("class %s (%d images) lacks a val or test image: %v", c, n, got[c])
		}
	}
}

func TestDuplicatesShareASplitAndConflictsAreReported(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 12; i++ {
		w.write(fmt.Sprintf("raw/a/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	dup := randomPNG(9, 9, 6, 6)
	w.write("raw/a/dup1.png", dup)
	w.write("raw/a/dup2.png", dup)
	w.write("raw/b/dup3.png", dup)
	rec, _ := w.run(false)
	s := splitOf(t, w, rec)
	if s["a/dup1.png"] == "" || s["a/dup1.png"] != s["b/dup3.png"] {
		t.Fatalf("identical files in different splits: %q %q", s["a/dup1.png"], s["b/dup3.png"])
	}
	// a's two copies are one image of a, listed by the first path
	if set, ok := s["a/dup2.png"]; ok {
		t.Fatalf("a/dup2.png, a copy of a/dup1.png in the same class, is listed in %s", set)
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if len(rep.Duplicates) != 1 || len(rep.Duplicates[0]) != 3 || len(rep.Conflicts) != 1 {
		t.Fatalf("duplicates %v, conflicts %v", rep.Duplicates, rep.Conflicts)
	}
	// The log names the group, its set and what the split did: every file keeps its own
	// label, so the manifest of that set holds the picture once per label.
	log, _ := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	set := s["a/dup1.png"]
	want := fmt.Sprintf(`warning: 1 group of identical images carries different class labels, e.g. "raw/a/dup1.png" (a), "raw/a/dup2.png" (a) and "raw/b/dup3.png" (b), all in %s: a group shares one set and each file keeps its class folder's label, so the model is `, set)
	if !strings.Contains(string(log), want) || !strings.Contains(string(log), "on this picture as a and as b; keep each picture in one class folder") {
		t.Errorf("run.log lacks %q:\n%s", want, log)
	}
	m, err := ReadManifest(w.output(rec, "split.main", set))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[int]int{}
	for _, e := range m.Images {
		if strings.Contains(e.Source, "dup") {
			labels[e.Label]++
		}
	}
	if len(labels) != 2 || labels[0] != 1 || labels[1] != 1 {
		t.Errorf("the copies in %s carry the labels %v, want a (0) and b (1) once each", set, labels)
	}

	// The same picture saved as PNG and as BMP (different bytes, the same pixels) is one
	// image too: with a test_source holding the BMP, the PNG never reaches training.
	w = newWS(t, fmt.Sprintf(testSourceHCL, 6))
	for _, c := range []string{"x", "y"} {
		for i := 0; i < 6; i++ {
			w.write(fmt.Sprintf("raw/train/%s/%d.png", c, i), randomPNG(uint64(c[0]), uint64(i), 6, 6))
			w.write(fmt.Sprintf("raw/test/%s/t%d.png", c, i), randomPNG(uint64(c[0]), uint64(50+i), 6, 6))
		}
	}
	pic := image.NewRGBA(image.Rect(0, 0, 6, 6))
	for i := range pic.Pix {
		pic.Pix[i] = uint8(i*37 + 11)
		if i%4 == 3 {
			pic.Pix[i] = 255 // opaque: both formats hold the same colours
		}
	}
	var asBMP, asPNG bytes.Buffer
	bmp.Encode(&asBMP, pic)
	png.Encode(&asPNG, pic)
	w.write("raw/test/x/same.bmp", asBMP.Bytes())
	w.write("raw/train/x/same.png", asPNG.Bytes())
	rec, _ = w.run(false)
	s = splitOf(t, w, rec)
	if _, ok := s["x/same.png"]; ok {
		t.Fatalf("the PNG of a test image (there as BMP) is in %s", s["x/same.png"])
	}
	if s["test:x/same.bmp"] != TestSet {
		t.Fatalf("the BMP is in %q", s["test:x/same.bmp"])
	}
}

func TestTooSmallClassFailsOrIsDropped(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/big/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/other/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	w.write("raw/tiny/0.png", randomPNG(6, 0, 6, 6))
	w.write("raw/tiny/1.png", randomPNG(6, 1, 6, 6))
	w.write("raw/wee/0.png", randomPNG(7, 0, 6, 6))
	w.write("raw/wee/empty.jpg", nil)
	w.write("raw/wee/text.png", []byte("not a picture"))
	w.write("raw/wee/pixel.png", randomPNG(7, 9, 1, 1))
	w.write("raw/wee/pixel2.png", randomPNG(7, 10, 1, 1))
	rec, err := w.run(true)
	// Every small class is named at once, with its count and how many of its files were
	// rejected, and why (the log names them, though the stage wrote no report); a setting
	// that rejected some is named in the advice.
	if err == nil || !strings.Contains(err.Error(), `class "tiny" (2), class "wee" (1; 4 files rejected: 2 smaller than min_side 2, 1 empty file, 1 not an image)`) ||
		!strings.Contains(err.Error(), "at least 3 per class") || !strings.Contains(err.Error(), "Add images, lower min_side, or set drop_small_classes") {
		t.Fatalf("error %v", err)
	}
	log, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"rejected raw/wee/empty.jpg: empty file", "rejected raw/wee/text.png: not an image"} {
		if !strings.Contains(string(log), line) {
			t.Fatalf("run.log lacks %q:\n%s", line, log)
		}
	}
	w.write("pipeline.hcl", []byte(strings.Replace(splitHCL, "test       = 0.2", "test       = 0.2\n  drop_small_classes = true", 1)))
	rec, _ = w.run(false)
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	if strings.Join(rep.Dropped, ",") != "tiny,wee" || len(rep.Classes) != 2 {
		t.Fatalf("dropped %v, classes %v", rep.Dropped, rep.Classes)
	}
	// The counts agree with their nouns: one image, two images, two files.
	log, err = os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`dropping class "tiny": 2 usable images, 3 needed`, `dropping class "wee": 1 usable image, 3 needed`,
		"in 2 classes; 4 files rejected", "warning: 4 files rejected (2 smaller than min_side 2, 1 empty file, 1 not an image), e.g. "} {
		if !strings.Contains(string(log), line) {
			t.Errorf("run.log lacks %q:\n%s", line, log)
		}
	}
}

// testSourceHCL is a split of raw/train with raw/test as its test set, at an image size.
const testSourceHCL = `
stage "split" "main" {
  source      = "raw/train"
  test_source = "raw/test"
  image_size  = %d
  val         = 0.25
}
`

func TestTestSourceIsTheWholeTestSetAndNeverLeaksIntoTraining(t *testing.T) {
	w := newWS(t, fmt.Sprintf(testSourceHCL, 8))
	w.writeClasses("raw/train", 8, "x", "y")
	for _, c := range []string{"x", "y"} {
		for i := 0; i < 3; i++ {
			w.write(fmt.Sprintf("raw/test/%s/t%d.png", c, i), randomPNG(uint64(c[0]), uint64(100+i), 6, 6))
		}
	}
	// A training-folder copy of a test image must not reach train or val.
	w.write("raw/train/x/copy.png", randomPNG(uint64('x'), 100, 6, 6))
	rec, _ := w.run(false)
	s := splitOf(t, w, rec)
	n := map[string]int{}
	for src, sp := range s {
		n[sp]++
		if strings.HasPrefix(src, "test:") != (sp == TestSet) {
			t.Errorf("%s in %s", src, sp)
		}
	}
	if n[TestSet] != 6 || n[TrainSet]+n[ValSet] != 16 {
		t.Fatalf("counts %v", n)
	}
	if _, ok := s["x/copy.png"]; ok {
		t.Fatal("the training copy of a test image was kept")
	}

	// A test image moved into the training folder leaves the test set on the next run.
	if err := os.Rename(filepath.Join(w.dir, "raw/test/y/t0.png"), filepath.Join(w.dir, "raw/train/y/was-test.png")); err != nil {
		t.Fatal(err)
	}
	rec, _ = w.run(false)
	s = splitOf(t, w, rec)
	if sp := s["y/was-test.png"]; sp == TestSet || sp == "" {
		t.Fatalf("the image moved out of test_source is in %q", sp)
	}
	for src, sp := range s {
		if strings.HasPrefix(src, "test:") != (sp == TestSet) {
			t.Errorf("after the move: %s in %s", src, sp)
		}
	}

	// Images in test_source do not make a class big enough to train on.
	for i := 0; i < 3; i++ {
		w.write(fmt.Sprintf("raw/test/z/t%d.png", i), randomPNG('z', uint64(i), 6, 6))
	}
	w.write("raw/train/z/only.png", randomPNG('z', 9, 6, 6))
	if _, err := w.run(true); err == nil || !strings.Contains(err.Error(), `class "z" (1)`) {
		t.Fatalf("a class with one training-folder image: %v", err)
	}
	// Nor do training-folder copies of them: they leave training before the count.
	w.write("raw/train/z/copy0.png", randomPNG('z', 0, 6, 6))
	w.write("raw/train/z/copy1.png", randomPNG('z', 1, 6, 6))
	if _, err := w.run(true); err == nil || !strings.Contains(err.Error(), `class "z" (1; 2 left out as copies of test_source images)`) {
		t.Fatalf("a class of one image and two copies of test images: %v", err)
	}
}

// A test_source inside source (or the other way round) would make the test folder a class,
// or test images training images: refused when the file is loaded.
func TestTestSourceMustNotOverlapSource(t *testing.T) {
	for _, c := range [][2]string{{"raw", "raw/test"}, {"raw/train", "raw"}, {"raw", "raw/"}, {"raw/train", "raw/train2"}} {
		cfg := fmt.Sprintf("stage \"split\" \"main\" {\n  source = %q\n  test_source = %q\n  image_size = 8\n}\n", c[0], c[1])
		reg, _ := pipeline.NewRegistry(Split{})
		file := filepath.Join(t.TempDir(), "pipeline.hcl")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		loaded, diags := pipeline.LoadFile(file, reg)
		if !diags.HasErrors() {
			_, diags = pipeline.Build(loaded, reg, nil)
		}
		if overlap := c[1] != "raw/train2"; diags.HasErrors() != overlap || overlap && !strings.Contains(diags.Error(), "test_source overlaps source") {
			t.Errorf("source %q, test_source %q: %v", c[0], c[1], diags)
		}
	}
}

func TestResizePoliciesAndChannels(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := 0; y < 20; y++ {
		for x := 0; x < 40; x++ {
			src.Set(x, y, color.RGBA{200, 100, 50, 255})
		}
	}
	for _, policy := range ResizePolicies {
		for _, ch := range []int{1, 3} {
			img := fitImage(src, 16, policy, ch)
			if img.Bounds().Dx() != 16 || img.Bounds().Dy() != 16 {
				t.Fatalf("%s: %v", policy, img.Bounds())
			}
			_, grey := img.(*image.Gray)
			if grey != (ch == 1) {
				t.Fatalf("%s channels %d: got %T", policy, ch, img)
			}
			// Pad leaves black bars above and below a wide image; the others fill the square.
			r, _, _, _ := img.At(8, 0).RGBA()
			if (policy == ResizePad) != (r == 0) {
				t.Errorf("%s channels %d: top pixel %d", policy, ch, r>>8)
			}
		}
	}
}

func TestSplitIsDeterministic(t *testing.T) {
	digests := []string{}
	for k := 0; k < 2; k++ {
		w := newWS(t, splitHCL)
		for i := 0; i < 20; i++ {
			w.write(fmt.Sprintf("raw/a/%d.jpg", i), encodeWith(func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }, 30+i, 20))
			w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(8, uint64(i), 12, 9))
		}
		rec, _ := w.run(false)
		digests = append(digests, rec.Result("split.main").Output)
	}
	if digests[0] != digests[1] {
		t.Fatal("two runs on the same data produced different outputs")
	}
}

func TestTestSourceKeepsTheValFraction(t *testing.T) {
	groups := []*group{}
	fixed := map[string]string{}
	for i := 0; i < 100; i++ {
		d := fmt.Sprintf("train%03d", i)
		groups = append(groups, &group{Digest: d, Members: []member{{Class: "a", Rel: d}}})
	}
	for i := 0; i < 40; i++ {
		d := fmt.Sprintf("test%03d", i)
		groups = append(groups, &group{Digest: d, Members: []member{{Class: "a", Rel: d}}})
		fixed[d] = TestSet
	}
	got := map[string]int{}
	assigned, _ := assignSplits(groups, nil, fixed, 0.1, 0, 1)
	for _, s := range assigned {
		got[s]++
	}
	if got[ValSet] != 10 || got[TrainSet] != 90 || got[TestSet] != 40 {
		t.Fatalf("counts %v, want val 10 (10%% of the 100 training-folder images), train 90, test 40", got)
	}
}

func TestClassFolderNamesMustBeUTF8(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("raw/caf\xe9/%d.png", i), randomPNG(8, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/caf\xe8/%d.png", i), randomPNG(9, uint64(i), 6, 6))
	}
	_, err := w.run(true)
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || !strings.Contains(err.Error(), `"caf\xe8"`) {
		t.Fatalf("error %v", err)
	}
}

// A file name that is not valid UTF-8 cannot be written in a manifest: such files are
// rejected, named in rejected.json with the bytes escaped (a folder so named as a folder,
// counted apart from the files), and no manifest holds a mangled name.
func TestFileNamesMustBeUTF8(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 4; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(8, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(9, uint64(i), 6, 6))
	}
	w.write("raw/a/img_\xff0.png", randomPNG(8, 10, 6, 6))
	w.write("raw/a/img_\xfe0.png", randomPNG(8, 11, 6, 6))
	w.write("raw/b/caf\xe9/1.png", randomPNG(9, 10, 6, 6))
	rec, _ := w.run(false)
	var rejected []Rejected
	readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rejected)
	got := map[string]string{}
	for _, r := range rejected {
		got[r.Path] = r.Reason
	}
	want := map[string]string{
		`raw/a/img_\xff0.png`: "file name is not valid UTF-8: rename it",
		`raw/a/img_\xfe0.png`: "file name is not valid UTF-8: rename it",
		`raw/b/caf\xe9`:       "folder name is not valid UTF-8: rename it",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("rejected %q, want %q", got, want)
	}
	if log := runLog(t, rec); !strings.Contains(log, "; 2 files and 1 folder rejected (see report/rejected.json)") {
		t.Errorf("the folder is not counted apart:\n%s", log)
	}
	for src := range splitOf(t, w, rec) {
		if strings.ContainsRune(src, utf8.RuneError) {
			t.Errorf("a manifest lists %q", src)
		}
	}
}

func TestDiscoveryRejectsLinksAboveTheRealSourceFolder(t *testing.T) {
	// The source is reached through a link (ws/data/train → datasets/set/train); a link in a
	// class folder to the real parent (datasets/set) must not pull the test images in.
	base := t.TempDir()
	for _, p := range []string{"datasets/set/train/cat/1.png", "datasets/set/test/dog/2.png"} {
		os.MkdirAll(filepath.Dir(filepath.Join(base, p)), 0o755)
		os.WriteFile(filepath.Join(base, p), randomPNG(1, 1, 6, 6), 0o644)
	}
	os.MkdirAll(filepath.Join(base, "ws", "data"), 0o755)
	os.Symlink(filepath.Join(base, "datasets", "set", "train"), filepath.Join(base, "ws", "data", "train"))
	os.Symlink("../..", filepath.Join(base, "datasets", "set", "train", "cat", "up"))
	files, classes, rejected, err := discover(filepath.Join(base, "ws", "data", "train"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Rel != "cat/1.png" || len(classes) != 1 {
		t.Fatalf("files %v, classes %v", files, classes)
	}
	if len(rejected) != 1 || rejected[0].Path != "cat/up" || rejected[0].Reason != "symbolic link loop" {
		t.Fatalf("rejected %v", rejected)
	}
}

// A class folder named with a decomposed accent (as macOS writes names) is the class with the
// composed one; two folders that differ only so are refused, both named.
func TestClassNamesAreInComposedForm(t *testing.T) {
	const composed, decomposed = "Sac \u00e0 main", "Sac a\u0300 main"
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/%s/%d.png", decomposed, i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/other/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	rec, _ := w.run(false)
	var m Manifest
	readJSONFile(t, w.output(rec, "split.main", "train/manifest.json"), &m)
	if strings.Join(m.Classes, ",") != composed+",other" {
		t.Fatalf("classes %q, want %q first", m.Classes, composed)
	}
	w.write(fmt.Sprintf("raw/%s/0.png", composed), randomPNG(6, 0, 6, 6))
	if _, err := w.run(true); err == nil || !strings.Contains(err.Error(), `"Sac a\u0300 main" and "Sac \u00e0 main"`) {
		t.Fatalf("two forms of one name: %v", err)
	}
}

// A photo that cannot be read for lack of permission is rejected with that reason, not a
// failure of the whole split.
func TestUnreadablePhotoIsRejected(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(4, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/b/%d.png", i), randomPNG(5, uint64(i), 6, 6))
	}
	locked := filepath.Join(w.dir, "raw/a/0.png")
	openSource = func(name string) (*os.File, error) {
		if name == locked {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openSource = os.Open }()
	rec, _ := w.run(false)
	var rejected []Rejected
	readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rejected)
	if len(rejected) != 1 || rejected[0].Path != "raw/a/0.png" || rejected[0].Reason != "unreadable: permission denied" {
		t.Fatalf("rejected %+v", rejected)
	}
}

// A change to the test set alone (a test photo removed) leaves the training set's and the
// validation set's digests as they were: augmentation (and training) stay cached.
func TestTestSetChangeLeavesTrainingCached(t *testing.T) {
	w := newWS(t, fmt.Sprintf(testSourceHCL, 8)+`
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 2
}
`)
	w.writeClasses("raw/train", 8, "x", "y")
	for _, c := range []string{"x", "y"} {
		for i := 0; i < 3; i++ {
			w.write(fmt.Sprintf("raw/test/%s/t%d.png", c, i), randomPNG(uint64(c[0]), uint64(100+i), 6, 6))
		}
	}
	rec, _ := w.run(false)
	st, err := pipeline.OpenStore(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(rec *pipeline.RunRecord) *pipeline.Entry {
		e, ok := st.Lookup(rec.Result("split.main").Key)
		if !ok {
			t.Fatal("no entry for the split")
		}
		return e
	}
	before := entry(rec)
	if err := os.Remove(filepath.Join(w.dir, "raw/test/y/t1.png")); err != nil {
		t.Fatal(err)
	}
	rec, _ = w.run(false)
	after := entry(rec)
	if rec.Result("split.main").Status != pipeline.StatusRan || after.Outputs[TestSet] == before.Outputs[TestSet] {
		t.Fatalf("the split did not change its test set: %s", rec.Result("split.main").Status)
	}
	for _, set := range []string{TrainSet, ValSet} {
		if after.Outputs[set] != before.Outputs[set] {
			t.Errorf("the %s set's digest changed with the test set", set)
		}
	}
	if s := rec.Result("augment.balanced"); s.Status != pipeline.StatusCached {
		t.Errorf("augment after a test photo was removed: %s %v", s.Status, s.Reasons)
	}
}

// Copies of one photo within a class are one image of it: counted once in the quotas, listed
// once, and counted once by augment, while split.json still lists them as duplicates.
func TestCopiesWithinAClassAreOneImage(t *testing.T) {
	w := newWS(t, splitHCL+`
stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 2
  ops         = ["color_jitter"]
}
`)
	for i := 0; i < 20; i++ {
		w.write(fmt.Sprintf("raw/big/%02d.png", i), randomPNG(2, uint64(i), 6, 6))
	}
	for i := 0; i < 6; i++ {
		w.write(fmt.Sprintf("raw/small/%02d.png", i), randomPNG(3, uint64(i), 6, 6))
	}
	small0 := randomPNG(3, 0, 6, 6)
	for i := 1; i <= 4; i++ {
		w.write(fmt.Sprintf("raw/small/copy%d.png", i), small0)
	}
	rec, err := w.run(false)
	if err != nil {
		t.Fatal(err)
	}
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	want := targets(6, 0.2, 0.2)
	for _, c := range rep.Classes {
		if c.Name == "small" && (c.Total != 6 || c.Train != want[TrainSet] || c.Val != want[ValSet] || c.Test != want[TestSet]) {
			t.Errorf("small: %+v, want the 6 distinct images divided as %v", c, want)
		}
	}
	if len(rep.Duplicates) != 1 || len(rep.Duplicates[0]) != 5 {
		t.Errorf("duplicates %v, want the 5 copies of small/00.png", rep.Duplicates)
	}
	s := splitOf(t, w, rec)
	for i := 1; i <= 4; i++ {
		if set, ok := s[fmt.Sprintf("small/copy%d.png", i)]; ok {
			t.Errorf("small/copy%d.png is listed in %s beside small/00.png", i, set)
		}
	}
	var aug augmentReport
	readJSONFile(t, w.output(rec, "augment.balanced", "report/augment.json"), &aug)
	for _, c := range aug.Classes {
		if c.Name == "small" && c.Before != want[TrainSet] {
			t.Errorf("augment counted %d small training images, want %d", c.Before, want[TrainSet])
		}
	}
}

// A plan names an attribute left unset as its default, not as null: the split's test as the
// fraction it stands for, as the split's log names it.
func TestPlanNamesAnUnsetAttributeAsItsDefault(t *testing.T) {
	hcl := `
stage "split" "main" {
  source     = "raw"
  image_size = 8
  test       = 0.3
}
`
	w := newWS(t, hcl)
	for c, n := range map[string]int{"a": 12, "b": 12} {
		for i := 0; i < n; i++ {
			w.write(fmt.Sprintf("raw/%s/%03d.png", c, i), randomPNG(uint64(c[0]), uint64(i), 6, 6))
			w.write(fmt.Sprintf("held/%s/%03d.png", c, i), randomPNG(uint64(c[0])+2, uint64(i), 6, 6))
		}
	}
	w.run(false)
	unset := strings.Replace(hcl, "  test       = 0.3\n", "", 1)
	held := strings.Replace(hcl, "test       = 0.3", `test_source = "held"`, 1)
	for _, c := range []struct{ ran, now, want string }{
		{hcl, unset, "attribute test 0.3 → (default 0.1)"},
		{unset, strings.Replace(hcl, "0.3", "0.25", 1), "attribute test (default 0.1) → 0.25"},
		{unset, strings.Replace(hcl, "0.3", "0", 1), "attribute test (default 0.1) → 0"},
		// with test_source, that folder is the test set: no fraction to name
		{held, strings.Replace(hcl, "0.3", "0.25", 1), "attribute test (default) → 0.25"},
	} {
		w.write("pipeline.hcl", []byte(c.ran))
		w.run(false)
		w.write("pipeline.hcl", []byte(c.now))
		plan, err := w.engine().Plan(pipeline.Selection{})
		if err != nil || len(plan) != 1 || !slices.Contains(plan[0].Reasons, c.want) {
			t.Errorf("%v: %+v, want the reason %q", err, plan[0].Reasons, c.want)
		}
	}
}

// writeClasses writes n small random photos (0.png, 1.png, …) of each class into dir/<class>,
// the same for the same class and index in every test.
func (w *ws) writeClasses(dir string, n int, classes ...string) {
	for _, c := range classes {
		for i := 0; i < n; i++ {
			w.write(fmt.Sprintf("%s/%s/%d.png", dir, c, i), randomPNG(uint64(c[0]), uint64(i), 6, 6))
		}
	}
}

// planReasons plans w's pipeline, which must have one stage, and returns the reasons the plan
// gives for it, joined by "; ".
func (w *ws) planReasons(t *testing.T) string {
	t.Helper()
	ds, err := w.engine().Plan(pipeline.Selection{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("plan: %v, %v", ds, err)
	}
	return strings.Join(ds[0].Reasons, "; ")
}

// appendToStored appends text to path, a file of a published (read-only) output: damage that
// the store's records tell.
func appendToStored(t *testing.T, path, text string) {
	t.Helper()
	os.Chmod(filepath.Dir(path), 0o755)
	os.Chmod(path, 0o644)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// smallSplitHCL is the start of the tests' pipelines that train: seed 7, 16×16 images, and a
// split of raw with 20 % each for val and test; their other stages follow it.
const smallSplitHCL = `
pipeline {
  seed       = 7
  image_size = 16
}

stage "split" "main" {
  source = "raw"
  val    = 0.2
  test   = 0.2
}
`
