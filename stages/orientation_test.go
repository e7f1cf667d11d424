package stages

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"pipeline/graphs"
)

// withOrientation returns a JPEG with an Exif APP1 segment right after SOI whose first IFD
// holds a filler tag and then Orientation o, in the byte order of order ("II" or "MM").
func withOrientation(t *testing.T, data []byte, o int, order string) []byte {
	t.Helper()
	var bo binary.AppendByteOrder = binary.LittleEndian
	if order == "MM" {
		bo = binary.BigEndian
	}
	tiff := []byte(order)
	tiff = bo.AppendUint16(tiff, 42)
	tiff = bo.AppendUint32(tiff, 8)
	tiff = bo.AppendUint16(tiff, 2) // two entries
	// ImageWidth (LONG), which must be skipped.
	tiff = bo.AppendUint16(tiff, 0x0100)
	tiff = bo.AppendUint16(tiff, 4)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint32(tiff, 96)
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, uint16(o))
	tiff = bo.AppendUint16(tiff, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, data[:2]...)
	out = append(out, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(seg)))
	out = append(out, seg...)
	return append(out, data[2:]...)
}

// displayed is a 96×64 landscape picture of smooth gradients, different in every corner.
func displayed() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 96; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / 96), uint8(y * 255 / 64), uint8(255 - (2*x+y)*255/(2*96+64)), 255})
		}
	}
	return img
}

// asStored returns the pixels a camera stores for img when it tags them with orientation o.
func asStored(img *image.RGBA, o int) *image.RGBA {
	b := img.Bounds()
	w, h := orientedSize(o, b.Dx(), b.Dy()) // the stored size (the map is its own inverse on sizes)
	s := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			sx, sy := storedPoint(o, x, y, w, h)
			s.SetRGBA(sx, sy, img.RGBAAt(x, y))
		}
	}
	return s
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func meanAbsDiff(a, b []uint8) float64 {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		sum += max(d, -d)
	}
	return float64(sum) / float64(len(a))
}

func TestEXIFOrientationIsRead(t *testing.T) {
	data := smoothJPEG(t, 32, 16)
	if got := exifOrientation(data); got != 1 {
		t.Fatalf("a JPEG without Exif: orientation %d", got)
	}
	for _, order := range []string{"II", "MM"} {
		for o := 1; o <= 8; o++ {
			if got := exifOrientation(withOrientation(t, data, o, order)); got != o {
				t.Errorf("%s: orientation %d read as %d", order, o, got)
			}
		}
		for _, bad := range []int{0, 9, 300} {
			if got := exifOrientation(withOrientation(t, data, bad, order)); got != 1 {
				t.Errorf("%s: invalid orientation %d read as %d", order, bad, got)
			}
		}
	}
	// Cut short anywhere, or with bytes changed at random, a header is read without a panic
	// as either the tag or "as stored".
	tagged := withOrientation(t, data, 6, "MM")
	for n := range len(tagged) {
		if got := exifOrientation(tagged[:n]); got != 1 && got != 6 {
			t.Fatalf("cut at %d: orientation %d", n, got)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		m := append([]byte{}, tagged[:80]...)
		for range 1 + rng.IntN(4) {
			m[rng.IntN(len(m))] = byte(rng.IntN(256))
		}
		if got := exifOrientation(m); got < 1 || got > 8 {
			t.Fatalf("mutated header %x: orientation %d", m, got)
		}
	}
}

// A photo stored turned or mirrored, with the EXIF orientation that says so, is fitted as it
// is displayed: like the upright photo, by every policy, in both the libjpeg-turbo and the
// image/jpeg paths, and unlike the stored pixels taken as they are.
func TestPhotosAreFittedAsDisplayed(t *testing.T) {
	up := displayed()
	for _, policy := range ResizePolicies {
		want, err := prepareImage(encodeJPEG(t, up), "jpeg", 96, 64, 32, policy, 3)
		if err != nil {
			t.Fatal(err)
		}
		wantPx := pixelsOf(want, 3)
		for o := 2; o <= 8; o++ {
			stored := asStored(up, o)
			plain := encodeJPEG(t, stored)
			tagged := withOrientation(t, plain, o, "II")
			w, h := stored.Bounds().Dx(), stored.Bounds().Dy()
			ignored, err := prepareImage(plain, "jpeg", w, h, 32, policy, 3)
			if err != nil {
				t.Fatal(err)
			}
			if d := meanAbsDiff(pixelsOf(ignored, 3), wantPx); d < 20 {
				t.Fatalf("%s, orientation %d: the stored pixels already look upright (%.1f); the test shows nothing", policy, o, d)
			}
			for _, path := range []string{"libjpeg-turbo", "image/jpeg"} {
				cw, ch := w, h
				if path == "image/jpeg" {
					cw, ch = 10*w, 10*h // a crop libjpeg-turbo refuses: image/jpeg decodes
				}
				img, fallback, err := prepare(tagged, "jpeg", cw, ch, 32, policy, 3)
				if err != nil || fallback != (path == "image/jpeg") {
					t.Fatalf("%s, orientation %d, %s: fallback %v, %v", policy, o, path, fallback, err)
				}
				name := fmt.Sprintf("%s, orientation %d, %s", policy, o, path)
				if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
					t.Fatalf("%s: %v", name, b)
				}
				if d := meanAbsDiff(pixelsOf(img, 3), wantPx); d > 2 {
					t.Errorf("%s: differs from the upright photo by %.2f on average", name, d)
				}
			}
		}
	}
}

// withThumbnail returns data with an APP1 segment after SOI holding a complete small JPEG, as
// cameras embed a thumbnail: its end-of-image marker is not the file's.
func withThumbnail(t *testing.T, data []byte) []byte {
	t.Helper()
	thumb := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	seg := append([]byte("Exif\x00\x00"), thumb...)
	out := append([]byte{}, data[:2]...)
	out = append(out, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(seg)))
	out = append(out, seg...)
	return append(out, data[2:]...)
}

func TestJPEGCompleteFindsTheEndOfImage(t *testing.T) {
	baseline := withThumbnail(t, encodeJPEG(t, displayed()))
	// Progressive: many scans, each with its own tables and data.
	progressive := encodeProgressiveJPEG(t, displayed())
	// Restart markers and stuffed bytes in a scan's data, written out by hand.
	restarts := []byte{0xff, 0xd8,
		0xff, 0xda, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0, // scan header
		0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xff, 0xd1, 0x78, // data, restarts, fill
		0xff, 0xd9}
	for name, data := range map[string][]byte{"baseline with a thumbnail": baseline, "progressive": progressive, "restarts": restarts} {
		if !jpegComplete(data) {
			t.Errorf("%s: complete file taken as cut off", name)
		}
		if !jpegComplete(append(append([]byte{}, data...), "trailing bytes after the image"...)) {
			t.Errorf("%s: trailing bytes after the end taken as cut off", name)
		}
		for n := range len(data) - 1 {
			if jpegComplete(data[:n]) {
				t.Fatalf("%s: cut at %d of %d bytes taken as complete", name, n, len(data))
			}
		}
	}
	if jpegComplete([]byte("not a jpeg at all")) {
		t.Error("text taken as a complete JPEG")
	}
}

// encodeProgressiveJPEG encodes img as a progressive JPEG with libjpeg-turbo.
func encodeProgressiveJPEG(t *testing.T, img *image.RGBA) []byte {
	t.Helper()
	b := img.Bounds()
	pix := make([]uint8, 0, 3*b.Dx()*b.Dy())
	for i := 0; i < len(img.Pix); i += 4 {
		pix = append(pix, img.Pix[i:i+3]...)
	}
	s := op.NewScope()
	in := op.Placeholder(s, tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, -1, 3)))
	out := op.EncodeJpeg(s, in, op.EncodeJpegProgressive(true), op.EncodeJpegQuality(90))
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ten, err := tf.NewTensor(pix)
	if err != nil {
		t.Fatal(err)
	}
	if err := ten.Reshape([]int64{int64(b.Dy()), int64(b.Dx()), 3}); err != nil {
		t.Fatal(err)
	}
	res, err := sess.Run(map[tf.Output]*tf.Tensor{in: ten}, []tf.Output{out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(graphs.TensorValue(res[0]).(string))
	if n := bytes.Count(data, []byte{0xff, 0xda}); n < 2 {
		t.Fatalf("the progressive encoding has %d scans", n)
	}
	return data
}
