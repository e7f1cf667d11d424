package databench

// Profiling harness for the data stages. BenchmarkSplitAugment runs the split and augment
// stage kinds through the engine on the benchmark photos (a fresh store every iteration), so
// `-cpuprofile` shows where their time goes; the Benchmark* below it time the building
// blocks those stages use on one photo, with alternatives the stages could use instead.
// Everything skips unless DATABENCH_PHOTOS names the photo folder (tools/bench/data/run.sh
// makes it):
//
//	DATABENCH_PHOTOS=$PWD/tools/bench/data/work/photos go test ./tools/bench/data \
//	    -run '^$' -bench SplitAugment -benchtime 1x -cpuprofile /tmp/cpu.out
//	go tool pprof -top -cum /tmp/cpu.out
//
// DATABENCH_FORMAT (png or jpeg) picks the split stage's stored format.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/anthonynsimon/bild/adjust"
	"github.com/anthonynsimon/bild/clone"
	"github.com/anthonynsimon/bild/transform"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/math/f64"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

func photos(b *testing.B) string {
	dir := os.Getenv("DATABENCH_PHOTOS")
	if dir == "" {
		b.Skip("DATABENCH_PHOTOS not set (tools/bench/data/run.sh generates the photos)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		b.Fatal(err)
	}
	return abs
}

const hclTemplate = `
pipeline {
  seed = 42
}

stage "split" "main" {
  source     = %q
  image_size = 224
  channels   = 3
  val        = 0.1
  test       = 0.1
  format     = %q
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 5
  ops         = ["flip_rotate_crop", "color_jitter"]
}
`

// BenchmarkSplitAugment: split + augment through the engine, fresh store per iteration.
func BenchmarkSplitAugment(b *testing.B) {
	src := photos(b)
	format := os.Getenv("DATABENCH_FORMAT")
	if format == "" {
		format = "png"
	}
	reg, err := pipeline.NewRegistry(stages.Split{}, stages.Augment{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		// Relative: the planner joins source to the workspace even when it is absolute.
		rel, err := filepath.Rel(dir, src)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(fmt.Sprintf(hclTemplate, rel, format)), 0o644); err != nil {
			b.Fatal(err)
		}
		cfg, diags := pipeline.LoadFile(filepath.Join(dir, "pipeline.hcl"), reg)
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		wf, diags := pipeline.Build(cfg, reg, nil)
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		st, err := pipeline.OpenStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rec, err := (&pipeline.Engine{Workflow: wf, Store: st}).Run(context.Background(), pipeline.RunOptions{RunsDir: filepath.Join(dir, "models")})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, s := range rec.Stages {
			b.ReportMetric(s.Duration, s.Addr+"_s")
		}
		b.StartTimer()
	}
}

// onePhoto returns the bytes of the first photo of the first class.
func onePhoto(b *testing.B) []byte {
	src := photos(b)
	m, _ := filepath.Glob(filepath.Join(src, "*", "*.jpg"))
	if len(m) == 0 {
		b.Fatal("no photos in", src)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func decodeJPEG(b *testing.B, data []byte) image.Image {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// centerSquare is the split stage's center_crop before resizing.
func centerSquare(img image.Image) image.Rectangle {
	r := img.Bounds()
	side := min(r.Dx(), r.Dy())
	x0, y0 := r.Min.X+(r.Dx()-side)/2, r.Min.Y+(r.Dy()-side)/2
	return image.Rect(x0, y0, x0+side, y0+side)
}

func BenchmarkSHA256Photo(b *testing.B) {
	data := onePhoto(b)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		sha256.Sum256(data)
	}
}

func BenchmarkDecodeJPEGPhoto(b *testing.B) {
	data := onePhoto(b)
	for i := 0; i < b.N; i++ {
		decodeJPEG(b, data)
	}
}

// The floor of the split stage's per-photo work: libjpeg-turbo (through TensorFlow, as the
// split stage calls it) decoding the whole photo, no crop or resize; at 1/2 DCT scale it
// shows how much of that is entropy decoding, which no scale or crop avoids.
func BenchmarkDecodeJPEGLibjpegTurboPhoto(b *testing.B) { benchDecodeTF(b, 1) }

func BenchmarkDecodeJPEGLibjpegTurboHalfPhoto(b *testing.B) { benchDecodeTF(b, 2) }

func benchDecodeTF(b *testing.B, ratio int64) {
	data := onePhoto(b)
	s := op.NewScope()
	in := op.Placeholder(s, tf.String)
	out := op.DecodeJpeg(s, in, op.DecodeJpegChannels(3), op.DecodeJpegRatio(ratio))
	g, err := s.Finalize()
	if err != nil {
		b.Fatal(err)
	}
	sess, err := tf.NewSession(g, graphs.CallerThreadOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	t, err := tf.NewTensor(string(data))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := sess.Run(map[tf.Output]*tf.Tensor{in: t}, []tf.Output{out}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// The split stage's resize: bild transform.Crop + transform.Resize (Linear) to 224.
func BenchmarkFitBild(b *testing.B) {
	img := decodeJPEG(b, onePhoto(b))
	for i := 0; i < b.N; i++ {
		transform.Resize(transform.Crop(img, centerSquare(img)), 224, 224, transform.Linear)
	}
}

// An alternative: x/image/draw's BiLinear scaler straight from the YCbCr source rectangle.
func BenchmarkFitXDrawBiLinear(b *testing.B) {
	img := decodeJPEG(b, onePhoto(b))
	for i := 0; i < b.N; i++ {
		dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
		xdraw.BiLinear.Scale(dst, dst.Bounds(), img, centerSquare(img), xdraw.Src, nil)
	}
}

// ApproxBiLinear: no antialiasing (fine for a ≤2× reduction), much cheaper.
func BenchmarkFitXDrawApproxBiLinear(b *testing.B) {
	img := decodeJPEG(b, onePhoto(b))
	for i := 0; i < b.N; i++ {
		dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
		xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, centerSquare(img), xdraw.Src, nil)
	}
}

func small(b *testing.B) *image.RGBA {
	img := decodeJPEG(b, onePhoto(b))
	return transform.Resize(transform.Crop(img, centerSquare(img)), 224, 224, transform.Linear)
}

// benchEncodePNG encodes the 224×224 photo at a PNG compression level and reports its size.
func benchEncodePNG(b *testing.B, level png.CompressionLevel) {
	img := small(b)
	enc := png.Encoder{CompressionLevel: level}
	var buf bytes.Buffer
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := enc.Encode(&buf, img); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/1e3, "KB")
}

func BenchmarkEncodePNGBestSpeed224(b *testing.B) {
	benchEncodePNG(b, png.BestSpeed)
}

func BenchmarkEncodeJPEG95_224(b *testing.B) {
	img := small(b)
	var buf bytes.Buffer
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/1e3, "KB")
}

func BenchmarkDecodePNG224(b *testing.B) {
	img := small(b)
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := png.Decode(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

// The augment stage's flip_rotate_crop on a 224×224 image (bild: clone, FlipH, Rotate,
// Crop, Resize).
func BenchmarkFlipRotateCropBild224(b *testing.B) {
	img := small(b)
	for i := 0; i < b.N; i++ {
		out := clone.AsRGBA(img)
		out = transform.FlipH(out)
		out = transform.Rotate(out, 17, nil)
		out = transform.Resize(transform.Crop(out, image.Rect(17, 17, 207, 207)), 224, 224, transform.Linear)
	}
}

// The augment stage's color_jitter on a 224×224 image (bild adjust).
func BenchmarkColorJitterBild224(b *testing.B) {
	img := small(b)
	for i := 0; i < b.N; i++ {
		out := clone.AsRGBA(img)
		out = adjust.Brightness(out, 0.1)
		out = adjust.Contrast(out, -0.1)
		out = adjust.Saturation(out, 0.15)
	}
}

// The stages' toChannels(img, 3): a new RGBA, filled black, the image drawn over it.
func BenchmarkToChannels224(b *testing.B) {
	img := small(b)
	for i := 0; i < b.N; i++ {
		r := image.NewRGBA(img.Bounds())
		draw.Draw(r, r.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
		draw.Draw(r, r.Bounds(), img, image.Point{}, draw.Over)
	}
}

func BenchmarkEncodePNGNoCompression224(b *testing.B) {
	benchEncodePNG(b, png.NoCompression)
}

func BenchmarkDecodePNGNoCompression224(b *testing.B) {
	img := small(b)
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := png.Decode(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

// flipRotateCropMatrix maps destination pixels of a w×h image to the source: flip, rotation by
// deg about the centre, and a centre crop of fraction crop scaled back to w×h, as one affine map.
func flipRotateCropMatrix(w, h int, flip bool, deg, crop float64) f64.Aff3 {
	cx, cy := float64(w)/2, float64(h)/2
	th := deg * math.Pi / 180
	cos, sin := math.Cos(th), math.Sin(th)
	fx := 1.0
	if flip {
		fx = -1
	}
	// src = C + R·F·S·(dst − C), with S = crop (dst pixels cover crop·w source pixels).
	a, bb := cos*fx*crop, -sin*crop
	c, d := sin*fx*crop, cos*crop
	return f64.Aff3{a, bb, cx - a*cx - bb*cy, c, d, cy - c*cx - d*cy}
}

func BenchmarkFlipRotateCropXDrawApprox224(b *testing.B) {
	img := small(b)
	m := flipRotateCropMatrix(224, 224, true, 17, 0.85)
	for i := 0; i < b.N; i++ {
		dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
		xdraw.ApproxBiLinear.Transform(dst, m, img, img.Bounds(), xdraw.Src, nil)
	}
}

func BenchmarkFlipRotateCropXDrawBiLinear224(b *testing.B) {
	img := small(b)
	m := flipRotateCropMatrix(224, 224, true, 17, 0.85)
	for i := 0; i < b.N; i++ {
		dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
		xdraw.BiLinear.Transform(dst, m, img, img.Bounds(), xdraw.Src, nil)
	}
}

func BenchmarkRotateBild224(b *testing.B) {
	img := small(b)
	for i := 0; i < b.N; i++ {
		transform.Rotate(img, 17, nil)
	}
}
