package raster

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/math/f64"
)

func randomRGBA(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 0xff
		}
	}
	return img
}

// smooth is a photo-like image: gradients plus a little noise.
func smooth(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := img.PixOffset(x, y)
			img.Pix[i] = uint8(255 * x / w)
			img.Pix[i+1] = uint8(255 * y / h)
			img.Pix[i+2] = uint8(128 + 100*math.Sin(float64(x+y)/7) + float64(r.IntN(9)) - 4)
			img.Pix[i+3] = 0xff
		}
	}
	return img
}

// toNRGBA is src as an *image.NRGBA (the other-types path of Resize).
func toNRGBA(src *image.RGBA) *image.NRGBA {
	out := image.NewNRGBA(src.Rect)
	draw.Draw(out, out.Rect, src, src.Rect.Min, draw.Src)
	return out
}

// reference resamples with the triangle filter in float64, without intermediate rounding:
// the exact result Resize approximates. The triangle is one source pixel wide, or widened to
// the reduction when some axis shrinks 2× or more.
func reference(src *image.RGBA, sr image.Rectangle, dw, dh int) [][3]float64 {
	wide := sr.Dx() >= 2*dw || sr.Dy() >= 2*dh
	filt := func(n, m int) [][]float64 { // weights[i][x], source x over the whole axis
		scale := float64(n) / float64(m)
		fs := 1.0
		if wide {
			fs = math.Max(scale, 1)
		}
		out := make([][]float64, m)
		for i := range out {
			out[i] = make([]float64, n)
			c := (float64(i) + 0.5) * scale
			var sum float64
			for x := 0; x < n; x++ {
				if v := 1 - math.Abs((float64(x)+0.5-c)/fs); v > 0 {
					out[i][x] = v
					sum += v
				}
			}
			for x := range out[i] {
				out[i][x] /= sum
			}
		}
		return out
	}
	wx, wy := filt(sr.Dx(), dw), filt(sr.Dy(), dh)
	res := make([][3]float64, dw*dh)
	for j := 0; j < dh; j++ {
		for i := 0; i < dw; i++ {
			var acc [3]float64
			for y := 0; y < sr.Dy(); y++ {
				if wy[j][y] == 0 {
					continue
				}
				for x := 0; x < sr.Dx(); x++ {
					w := wx[i][x] * wy[j][y]
					if w == 0 {
						continue
					}
					p := src.Pix[src.PixOffset(sr.Min.X+x, sr.Min.Y+y):]
					for c := 0; c < 3; c++ {
						acc[c] += w * float64(p[c])
					}
				}
			}
			res[j*dw+i] = acc
		}
	}
	return res
}

func TestResizeMatchesTheExactFilter(t *testing.T) {
	src := smooth(120, 90, 1)
	for _, tc := range []struct {
		sr     image.Rectangle
		dw, dh int
	}{
		{image.Rect(15, 0, 105, 90), 64, 64}, // centre crop, shrink 1.4×
		{image.Rect(0, 0, 120, 90), 32, 24},  // shrink 3.75×
		{image.Rect(0, 0, 120, 90), 7, 5},    // shrink 17×
		{image.Rect(10, 10, 30, 25), 50, 40}, // enlarge
		{image.Rect(0, 0, 120, 90), 40, 90},  // different factors per axis, one ≥ 2
		{image.Rect(0, 0, 120, 90), 70, 120}, // shrink one axis < 2×, enlarge the other
	} {
		want := reference(src, tc.sr, tc.dw, tc.dh)
		for name, in := range map[string]image.Image{"RGBA": src, "NRGBA": toNRGBA(src)} {
			dst := image.NewRGBA(image.Rect(0, 0, tc.dw, tc.dh))
			Resize(dst, dst.Rect, in, tc.sr)
			worst := 0.0
			for j := 0; j < tc.dh; j++ {
				for i := 0; i < tc.dw; i++ {
					p := dst.Pix[dst.PixOffset(i, j):]
					if p[3] != 0xff {
						t.Fatalf("%s %v→%dx%d: pixel (%d,%d) alpha %d", name, tc.sr, tc.dw, tc.dh, i, j, p[3])
					}
					for c := 0; c < 3; c++ {
						worst = math.Max(worst, math.Abs(float64(p[c])-want[j*tc.dw+i][c]))
					}
				}
			}
			// Two roundings (after each pass) put the result within 1 of the exact value.
			if worst > 1.01 {
				t.Errorf("%s %v→%dx%d: off the exact filter by %.2f", name, tc.sr, tc.dw, tc.dh, worst)
			}
		}
	}
}

func TestResizeIdentityUniformAndRegion(t *testing.T) {
	src := randomRGBA(33, 17, 3)
	dst := image.NewRGBA(src.Rect)
	Resize(dst, dst.Rect, src, src.Rect)
	if !bytes.Equal(dst.Pix, src.Pix) {
		t.Fatal("resizing to the same size changed the pixels")
	}
	// A uniform colour stays that colour at every scale; a translucent one comes out over
	// black (premultiplied through image/draw for other image types).
	u := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for i := 0; i < len(u.Pix); i += 4 {
		copy(u.Pix[i:], []uint8{200, 100, 50, 128})
	}
	for _, side := range []int{7, 150, 299, 600} {
		d := image.NewRGBA(image.Rect(0, 0, side, side))
		Resize(d, d.Rect, u, u.Rect)
		for i := 0; i < len(d.Pix); i += 4 {
			if p := d.Pix[i : i+4]; absDiff(p[0], 100) > 1 || absDiff(p[1], 50) > 1 || absDiff(p[2], 25) > 1 || p[3] != 255 {
				t.Fatalf("side %d: pixel %d = %v, want about {100 50 25 255}", side, i/4, p)
			}
		}
	}
	// Only dr is written; bounds that are not at the origin work.
	big := image.NewRGBA(image.Rect(-5, -5, 20, 20))
	sub := src.SubImage(image.Rect(3, 2, 13, 12)).(*image.RGBA)
	Resize(big, image.Rect(0, 0, 10, 10), sub, sub.Rect)
	for y := -5; y < 20; y++ {
		for x := -5; x < 20; x++ {
			got := big.RGBAAt(x, y)
			in := image.Pt(x, y).In(image.Rect(0, 0, 10, 10))
			if in && got != src.RGBAAt(x+3, y+2) || !in && got != (color.RGBA{}) {
				t.Fatalf("pixel (%d,%d) = %v", x, y, got)
			}
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestWarpSamplesLikeXDraw(t *testing.T) {
	src := smooth(64, 48, 5)
	r := rand.New(rand.NewPCG(9, 9))
	for k := 0; k < 20; k++ {
		th := (r.Float64()*60 - 30) * math.Pi / 180
		s := 0.8 + r.Float64()*0.5
		c, sn := math.Cos(th)*s, math.Sin(th)*s
		// About the centre, flipped on odd k, shifted a little.
		fx := 1.0
		if k%2 == 1 {
			fx = -1
		}
		m := f64.Aff3{fx * c, -sn, 0, fx * sn, c, 0}
		m[2] = 32 + r.Float64()*6 - 3 - m[0]*32 - m[1]*24
		m[5] = 24 + r.Float64()*6 - 3 - m[3]*32 - m[4]*24

		got := image.NewRGBA(image.Rect(0, 0, 64, 48))
		Warp(got, m, src)
		want := image.NewRGBA(got.Rect)
		xdraw.ApproxBiLinear.Transform(want, m, src, src.Rect, xdraw.Src, nil)
		for i := range got.Pix {
			// x/image interpolates in float and truncates, Warp uses 8-bit weights and
			// rounds: at most 2 levels apart; coverage agrees.
			if absDiff(got.Pix[i], want.Pix[i]) > 2 || (got.Pix[i] == 0) != (want.Pix[i] == 0) && i%4 == 3 {
				t.Fatalf("transform %d: byte %d (pixel %d,%d) = %d, x/image %d", k, i, (i/4)%64, i/4/64, got.Pix[i], want.Pix[i])
			}
		}
	}
	// The identity is a copy; a degenerate map leaves nothing.
	id := image.NewRGBA(src.Rect)
	Warp(id, f64.Aff3{1, 0, 0, 0, 1, 0}, src)
	if !bytes.Equal(id.Pix, src.Pix) {
		t.Fatal("the identity warp changed the image")
	}
	Warp(id, f64.Aff3{0, 0, 0, 0, 0, 0}, src)
	for _, v := range id.Pix {
		if v != 0 {
			t.Fatal("a degenerate warp left pixels")
		}
	}
}

// warpRef is Warp without its fast path: every pixel clamps its taps with taps2.
func warpRef(dst *image.RGBA, m f64.Aff3, src *image.RGBA) {
	det := m[0]*m[4] - m[1]*m[3]
	inv := f64.Aff3{m[4] / det, -m[1] / det, 0, -m[3] / det, m[0] / det, 0}
	inv[2] = -inv[0]*m[2] - inv[1]*m[5]
	inv[5] = -inv[3]*m[2] - inv[4]*m[5]
	const one = 1 << 32
	fix := func(v float64) int64 { return int64(math.Floor(v*one + 0.5)) }
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	le := binary.LittleEndian
	for y := 0; y < dst.Rect.Dy(); y++ {
		xf, yf := 0.5, float64(y)+0.5
		sx := fix(inv[0]*xf + inv[1]*yf + inv[2])
		sy := fix(inv[3]*xf + inv[4]*yf + inv[5])
		for x := 0; x < dst.Rect.Dx(); x, sx, sy = x+1, sx+fix(inv[0]), sy+fix(inv[3]) {
			d := dst.Pix[dst.PixOffset(x, y):]
			if uint64(sx) >= uint64(sw)<<32 || uint64(sy) >= uint64(sh)<<32 {
				le.PutUint32(d, 0)
				continue
			}
			x0, x1, fx := taps2(sx-one/2, sw)
			y0, y1, fy := taps2(sy-one/2, sh)
			r0, r1 := src.Pix[y0*src.Stride:], src.Pix[y1*src.Stride:]
			top := lerp(le.Uint32(r0[4*x0:]), le.Uint32(r0[4*x1:]), fx)
			bot := lerp(le.Uint32(r1[4*x0:]), le.Uint32(r1[4*x1:]), fx)
			le.PutUint32(d, lerp(top, bot, fy))
		}
	}
}

// Warp's inside-the-image path gives the same bytes as clamping every pixel's taps, for
// rotations, flips and scales, up to the edges, and for images one pixel wide or high.
func TestWarpFastPathIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for _, size := range []image.Point{{64, 48}, {1, 1}, {1, 9}, {9, 1}, {2, 2}, {37, 5}} {
		src := randomRGBA(size.X, size.Y, uint64(size.X*100+size.Y))
		for k := 0; k < 25; k++ {
			th := (r.Float64()*80 - 40) * math.Pi / 180
			sc := 0.6 + r.Float64()*1.2
			c, sn := math.Cos(th)*sc, math.Sin(th)*sc
			if k%2 == 1 {
				c = -c
			}
			cx, cy := float64(size.X)/2, float64(size.Y)/2
			m := f64.Aff3{c, -sn, 0, sn, c, 0}
			m[2] = cx + r.Float64()*4 - 2 - m[0]*cx - m[1]*cy
			m[5] = cy + r.Float64()*4 - 2 - m[3]*cx - m[4]*cy
			if k == 0 {
				m = f64.Aff3{1, 0, 0, 0, 1, 0}
			}
			got, want := image.NewRGBA(src.Rect), image.NewRGBA(src.Rect)
			Warp(got, m, src)
			warpRef(want, m, src)
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Fatalf("%v, map %d: Warp differs from the per-pixel reference", size, k)
			}
		}
	}
}

func TestAppendPNGRoundTrips(t *testing.T) {
	for _, size := range []image.Point{{1, 1}, {224, 224}, {85, 257}, {21845, 3}, {300, 300}} {
		rgba := randomRGBA(size.X, size.Y, uint64(size.X))
		grey := image.NewGray(rgba.Rect)
		draw.Draw(grey, grey.Rect, rgba, image.Point{}, draw.Src)
		rgb := NewRGB(rgba.Rect)
		for y := 0; y < size.Y; y++ {
			PackRGB(rgb.Pix[y*rgb.Stride:], rgba.Pix[y*rgba.Stride:(y+1)*rgba.Stride])
		}
		for name, img := range map[string]image.Image{"RGBA": rgba, "RGB": rgb, "Gray": grey} {
			data, err := AppendPNG([]byte("prefix"), img)
			if err != nil {
				t.Fatal(err)
			}
			if string(data[:6]) != "prefix" {
				t.Fatal("AppendPNG did not append")
			}
			back, err := png.Decode(bytes.NewReader(data[6:]))
			if err != nil {
				t.Fatalf("%s %v: image/png cannot read it: %v", name, size, err)
			}
			if back.Bounds() != img.Bounds() {
				t.Fatalf("%s %v: bounds %v", name, size, back.Bounds())
			}
			for y := 0; y < size.Y; y++ {
				for x := 0; x < size.X; x++ {
					if a, b := color.RGBAModel.Convert(back.At(x, y)), color.RGBAModel.Convert(img.At(x, y)); a != b {
						t.Fatalf("%s %v: pixel (%d,%d) = %v, want %v", name, size, x, y, a, b)
					}
				}
			}
			if _, isGrey := img.(*image.Gray); isGrey != (back.ColorModel() == color.GrayModel) {
				t.Fatalf("%s: decoded colour model %v", name, back.ColorModel())
			}
		}
	}
	if _, err := AppendPNG(nil, image.NewNRGBA(image.Rect(0, 0, 2, 2))); err == nil {
		t.Fatal("an NRGBA image was accepted")
	}
}

func TestPackRGBDropsAlphaOnly(t *testing.T) {
	for n := 0; n <= 9; n++ {
		src := make([]uint8, 4*n)
		for i := range src {
			src[i] = uint8(i*37 + 1)
		}
		dst := make([]uint8, 3*n+2)
		dst[3*n], dst[3*n+1] = 0xaa, 0xbb
		PackRGB(dst, src)
		for i := 0; i < n; i++ {
			if got, want := dst[3*i:3*i+3], src[4*i:4*i+3]; !bytes.Equal(got, want) {
				t.Fatalf("%d pixels: pixel %d = %v, want %v", n, i, got, want)
			}
		}
		if dst[3*n] != 0xaa || dst[3*n+1] != 0xbb {
			t.Fatalf("%d pixels: wrote past the last pixel", n)
		}
	}
}

func TestRGBAt(t *testing.T) {
	p := NewRGB(image.Rect(2, 3, 5, 5))
	p.Pix[p.PixOffset(4, 4)+1] = 200
	if c := p.RGBAAt(4, 4); c != (color.RGBA{0, 200, 0, 255}) {
		t.Fatalf("(4,4) = %v", c)
	}
	if c := p.RGBAAt(5, 4); c != (color.RGBA{}) {
		t.Fatalf("outside = %v, want transparent", c)
	}
}

func TestResizeOverMillionsOfPixelsStaysInRange(t *testing.T) {
	// 5,000,000 white pixels to one: rounded weights of one or two units each add up to far
	// more than 1.0, and must not wrap around.
	src := &image.RGBA{Pix: bytes.Repeat([]byte{255}, 4*5_000_000), Stride: 4 * 5_000_000, Rect: image.Rect(0, 0, 5_000_000, 1)}
	dst := image.NewRGBA(image.Rect(0, 0, 1, 1))
	Resize(dst, dst.Rect, src, src.Rect)
	if got := dst.RGBAAt(0, 0); got != (color.RGBA{255, 255, 255, 255}) {
		t.Fatalf("white resized to %v", got)
	}
}

func TestAdler32MatchesHashAdler32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	data := make([]byte, 70000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	ff := bytes.Repeat([]byte{0xff}, 70000) // the largest sums
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 5551, 5552, 5553, 5560, 65535, 70000} {
		for _, p := range [][]byte{data[:n], ff[:n]} {
			if got, want := adler32Update(1, p), adler32.Checksum(p); got != want {
				t.Fatalf("%d bytes: %08x, want %08x", n, got, want)
			}
			// Continuing from a checksum: split anywhere.
			if n > 3 {
				if got, want := adler32Update(adler32Update(1, p[:n/3]), p[n/3:]), adler32.Checksum(p); got != want {
					t.Fatalf("%d bytes in two parts: %08x, want %08x", n, got, want)
				}
			}
		}
	}
}

func TestUnpackRGBUndoesPackRGB(t *testing.T) {
	for n := 0; n <= 9; n++ {
		rgba := randomRGBA(n, 1, uint64(n)) // opaque
		rgb := make([]uint8, 3*n)
		PackRGB(rgb, rgba.Pix)
		back := make([]uint8, 4*n+2)
		back[4*n], back[4*n+1] = 0xaa, 0xbb
		UnpackRGB(back, rgb)
		if !bytes.Equal(back[:4*n], rgba.Pix) {
			t.Fatalf("%d pixels: % x, want % x", n, back[:4*n], rgba.Pix)
		}
		if back[4*n] != 0xaa || back[4*n+1] != 0xbb {
			t.Fatalf("%d pixels: wrote past the last pixel", n)
		}
	}
}

// A translucent non-premultiplied image (a PNG or WebP with alpha) is composited over black
// to the nearest level: 201 at alpha 77 is 201·77/255 = 60.7, so 61.
func TestResizeCompositesTranslucentColourToTheNearestLevel(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(src.Pix, []uint8{201, 201, 201, 77, 10, 120, 250, 200})
	dst := image.NewRGBA(image.Rect(0, 0, 2, 1))
	Resize(dst, dst.Rect, src, src.Rect)
	want := []uint8{61, 61, 61, 255, 8, 94, 196, 255} // 7.84, 94.12, 196.08 for the second
	if !bytes.Equal(dst.Pix, want) {
		t.Fatalf("composited %v, want %v", dst.Pix, want)
	}
}
