package raster

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math/rand/v2"
	"reflect"
	"testing"
)

// ReadStoredPNG gives exactly what image/png gives for AppendPNG's files and image/png's own
// uncompressed ones, RGB and grey, over block boundaries and odd widths.
func TestReadStoredPNGMatchesImagePNG(t *testing.T) {
	for _, size := range []image.Point{{1, 1}, {5, 3}, {224, 224}, {85, 257}, {300, 300}, {21845, 3}} {
		rgba := randomRGBA(size.X, size.Y, uint64(size.X+size.Y))
		grey := image.NewGray(rgba.Rect)
		draw.Draw(grey, grey.Rect, rgba, image.Point{}, draw.Src)
		for name, img := range map[string]image.Image{"RGB": rgba, "Gray": grey} {
			ours, err := AppendPNG(nil, img)
			if err != nil {
				t.Fatal(err)
			}
			var theirs bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&theirs, img); err != nil {
				t.Fatal(err)
			}
			for writer, data := range map[string][]byte{"AppendPNG": ours, "image/png": theirs.Bytes()} {
				want, err := png.Decode(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				got, ok := ReadStoredPNG(data)
				if !ok {
					t.Fatalf("%s %v from %s: not read", name, size, writer)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s %v from %s: differs from image/png's decode (%T vs %T)", name, size, writer, got, want)
				}
			}
		}
	}
}

// Other PNGs, and damaged ones, are left to image/png (which explains what is wrong), and
// no input makes ReadStoredPNG panic or accept damage.
func TestReadStoredPNGLeavesOtherAndDamagedFilesToImagePNG(t *testing.T) {
	src := randomRGBA(40, 30, 7)
	encode := func(level png.CompressionLevel, img image.Image) []byte {
		var b bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: level}).Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pal := image.NewPaletted(src.Rect, color.Palette{color.Black, color.White})
	nrgba := image.NewNRGBA(src.Rect)
	nrgba.Pix[3] = 7 // translucent: an RGBA PNG
	good, _ := AppendPNG(nil, src)
	for name, data := range map[string][]byte{
		"compressed":     encode(png.BestSpeed, src),
		"paletted":       encode(png.NoCompression, pal),
		"with alpha":     encode(png.NoCompression, nrgba),
		"truncated":      good[:len(good)-20],
		"not a PNG":      []byte("GIF89a"),
		"transparency":   withChunk(good, "tRNS", []byte{0, 1, 0, 2, 0, 3}),
		"IEND with data": withIEND(good, []byte{1}),
		"filtered rows":  refilter(t, good),
	} {
		if _, ok := ReadStoredPNG(data); ok {
			t.Fatalf("%s: read", name)
		}
	}
	// Every single flipped bit is caught (by a CRC, the Adler-32 or a check) or harmless.
	want, _ := png.Decode(bytes.NewReader(good))
	r := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 3000; k++ {
		bad := bytes.Clone(good)
		i := r.IntN(len(bad))
		bad[i] ^= 1 << r.IntN(8)
		if got, ok := ReadStoredPNG(bad); ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("byte %d flipped: accepted with other pixels", i)
		}
		if _, ok := ReadStoredPNG(bad[:r.IntN(len(bad))]); ok {
			t.Fatal("a truncated file was read")
		}
	}
}

// withIEND replaces the IEND chunk by one holding body.
func withIEND(data, body []byte) []byte {
	i := bytes.LastIndex(data, []byte("IEND")) - 4
	c := binary.BigEndian.AppendUint32(bytes.Clone(data[:i]), uint32(len(body)))
	start := len(c)
	c = append(append(c, "IEND"...), body...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[start:]))
}

// FuzzReadStoredPNG: no input makes ReadStoredPNG panic, and what it reads is what
// image/png reads.
func FuzzReadStoredPNG(f *testing.F) {
	for _, size := range []image.Point{{1, 1}, {7, 3}, {40, 2}} {
		rgba := randomRGBA(size.X, size.Y, 9)
		grey := image.NewGray(rgba.Rect)
		for _, img := range []image.Image{rgba, grey} {
			data, _ := AppendPNG(nil, img)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := ReadStoredPNG(data)
		if !ok {
			return
		}
		want, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("read what image/png refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatal("read other pixels than image/png")
		}
	})
}

// withChunk inserts a chunk before the first IDAT.
func withChunk(data []byte, typ string, body []byte) []byte {
	i := bytes.Index(data, []byte("IDAT")) - 4
	c := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	c = append(c, typ...)
	c = append(c, body...)
	c = binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
	return append(append(bytes.Clone(data[:i]), c...), data[i:]...)
}

// refilter sets the first row's filter byte to 1 (Sub), fixing the checksums, so the file is
// still valid but filtered.
func refilter(t *testing.T, data []byte) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte("IDAT"))
	n := int(binary.BigEndian.Uint32(out[i-4:]))
	stream := out[i+4 : i+4+n]
	stream[2+5] = 1 // zlib header, stored block header, then the first row's filter byte
	adler := uint32(1)
	for p := stream[2:]; len(p) > 4; {
		m := int(binary.LittleEndian.Uint16(p[1:]))
		adler = adler32Update(adler, p[5:5+m])
		p = p[5+m:]
	}
	binary.BigEndian.PutUint32(stream[len(stream)-4:], adler)
	binary.BigEndian.PutUint32(out[i+4+n:], crc32.ChecksumIEEE(out[i:i+4+n]))
	if _, err := png.Decode(bytes.NewReader(out)); err != nil {
		t.Fatalf("refiltered file is invalid: %v", err)
	}
	return out
}
