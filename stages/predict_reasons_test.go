package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"pipeline/graphs"
)

// badImages are files the split rejects and predict refuses, by name, with what is wrong
// with them and the input error predict's is one of.
func badImages(t *testing.T) map[string]struct {
	data []byte
	kind error
} {
	t.Helper()
	var j bytes.Buffer
	if err := jpeg.Encode(&j, blobPhoto(7, 120, 90), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	full := j.Bytes()
	var b bytes.Buffer
	gray := image.NewPaletted(image.Rect(0, 0, 8, 6), color.Palette{color.Black, color.White})
	if err := bmp.Encode(&b, gray); err != nil {
		t.Fatal(err)
	}
	rle := b.Bytes()
	binary.LittleEndian.PutUint32(rle[30:34], 1) // BI_RLE8
	damaged := encodePNG(blobPhoto(3, 8, 6))
	damaged[len(damaged)-30] ^= 0xff
	return map[string]struct {
		data []byte
		kind error
	}{
		"truncated.jpg":  {full[:len(full)*6/10], ErrBadImage}, // cut in the scan
		"header-cut.jpg": {full[:40], ErrBadImage},
		"empty.jpg":      {nil, ErrEmptyFile},
		"notes.txt":      {[]byte("taken in May"), ErrNotImage},
		"rle.bmp":        {rle, ErrUnsupportedFeature},
		"damaged.png":    {damaged, ErrBadImage},
		"huge.png":       {hugePNG(100000, 100000), ErrTooLarge},
		"cut-short.png":  {encodePNG(blobPhoto(4, 60, 40))[:200], ErrBadImage},
	}
}

// Predict says what is wrong with a bad file as the split's rejected.json does (the same
// code decides): a truncated JPEG is "truncated jpeg" to both, not image/jpeg's "short
// Huffman data"; only the limit on pixels is named as each names it.
func TestPredictGivesTheSplitsReasonForABadFile(t *testing.T) {
	p := &Predictor{Model: &graphs.Model{Info: graphs.ModelInfo{Input: graphs.Input{Height: 16, Width: 16, Channels: 3}, Classes: []string{"a", "b"}}}}
	dir := t.TempDir()
	for name, c := range badImages(t) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, split := loadImage(path, nil, DefaultMaxPixels, 1, 16, ResizeCenterCrop, 3, true, false)
		var r errRejected
		if !errors.As(split, &r) {
			t.Fatalf("%s: the split does not reject it: %v", name, split)
		}
		_, _, errs := p.PredictBytes([][]byte{c.data}, 5, DefaultMaxPixels)
		got := errs[0]
		if got == nil || !errors.Is(got, c.kind) {
			t.Errorf("%s: predict says %v, want one of %q", name, got, c.kind)
			continue
		}
		want := r.reason
		if c.kind == ErrTooLarge {
			want = strings.Replace(want, "max_pixels", "--max-pixels", 1)
		}
		if got.Error() != want {
			t.Errorf("%s: predict says %q, the split %q", name, got, r.reason)
		}
		if _, err := ReadImage(path, DefaultMaxPixels); err != nil && err.Error() != got.Error() {
			t.Errorf("%s: ReadImage says %q, PredictBytes %q", name, err, got)
		}
		if _, err := CheckImage(c.data, DefaultMaxPixels); err != nil && err.Error() != got.Error() {
			t.Errorf("%s: CheckImage says %q, PredictBytes %q", name, err, got)
		}
	}
	_, _, errs := p.PredictBytes([][]byte{badImages(t)["truncated.jpg"].data}, 5, DefaultMaxPixels)
	if fmt.Sprint(errs[0]) != "truncated jpeg" {
		t.Errorf("a JPEG cut in its scan: predict says %q, want \"truncated jpeg\"", errs[0])
	}
}

// The reason predict gives for a truncated JPEG is the one in the split's rejected.json.
func TestATruncatedJPEGIsTheSameToPredictAsInRejectedJSON(t *testing.T) {
	w := nearWS(t, false)
	cut := badImages(t)["truncated.jpg"].data
	w.write("raw/a/cut.jpg", cut)
	rec, _ := w.run(false)
	var rejected []Rejected
	readJSONFile(t, w.output(rec, "split.main", "report/rejected.json"), &rejected)
	if len(rejected) != 1 || rejected[0].Path != "raw/a/cut.jpg" {
		t.Fatalf("rejected.json: %+v, want raw/a/cut.jpg", rejected)
	}
	p := &Predictor{Model: &graphs.Model{Info: graphs.ModelInfo{Input: graphs.Input{Height: 32, Width: 32, Channels: 3}, Classes: []string{"a", "b"}}}}
	if _, _, errs := p.PredictBytes([][]byte{cut}, 5, DefaultMaxPixels); errs[0] == nil || errs[0].Error() != rejected[0].Reason {
		t.Errorf("predict says %v, rejected.json %q", errs[0], rejected[0].Reason)
	}
}
