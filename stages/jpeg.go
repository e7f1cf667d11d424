package stages

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"strings"
	"sync"

	"github.com/anthonynsimon/bild/clone"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"pipeline/graphs"
	"pipeline/stages/raster"
)

// JPEG files, by far the most common input, are decoded, cropped and resized in one call to
// TensorFlow: libjpeg-turbo (SIMD) decodes only the columns of blocks the crop keeps, at 1/2,
// 1/4 or 1/8 scale when the target size allows (DCT scaling, so a 12-megapixel photo bound
// for 224 pixels costs a fraction of a full decode), and TensorFlow's kernels resample what
// is left. The split stage and predict/serve share this path, so served images are prepared
// exactly like training images.

// jpegRatios are libjpeg's DCT scale denominators, largest first.
var jpegRatios = []int64{8, 4, 2, 1}

// jpegFit are the fetches of one DCT scale: the crop resized with two-tap bilinear
// interpolation, or with the triangle filter widened to the reduction (antialiased).
type jpegFit struct {
	bilinear, smooth tf.Output
}

type jpegDecoder struct {
	sess *tf.Session
	// Feeds: the file; the area to decode, as a crop window [y, x, height, width] of the
	// scaled image (libjpeg-turbo skips the rows above it and the block columns beside it);
	// the output size [height, width]; and its ratio to the window's size [height, width].
	// Only complete files come here (jpegComplete), so a file cut off below the crop is
	// still refused.
	contents, window, size, scale tf.Output
	// keep is where the crop lies in the decoded window, [y, x, 0] (see cropMargin), and
	// kept its size [height, width, 3].
	keep, kept tf.Output
	fits       map[int64]jpegFit
	// plain decodes a whole JPEG as it is coded (grey or RGB), at full scale: the stored
	// images a split wrote as JPEG, read back for augment, training and evaluation.
	plain tf.Output
}

// cropMargin is how many (scaled) pixels around the crop a fit decodes and then drops:
// libjpeg-turbo upsamples the colour channels of a 4:2:0 or 4:2:2 JPEG from their
// neighbours, and treats the edges of the area it decodes as the picture's edges, so the
// outermost columns and rows of a crop decoded alone differ from the same pixels of the whole
// picture (by up to tens of levels). Two blocks of context on each side leave them the same.
const cropMargin = 16

var (
	jpegOnce sync.Once
	jpegDec  *jpegDecoder
	jpegErr  error
)

// sharedJPEGDecoder returns the process's JPEG decoder (a small TensorFlow session, one
// thread per call, safe for concurrent use), built on first use.
func sharedJPEGDecoder() (*jpegDecoder, error) {
	jpegOnce.Do(func() {
		jpegDec, jpegErr = newJPEGDecoder()
	})
	return jpegDec, jpegErr
}

func newJPEGDecoder() (*jpegDecoder, error) {
	s := op.NewScope()
	d := &jpegDecoder{
		contents: op.Placeholder(s.SubScope("contents"), tf.String),
		window:   op.Placeholder(s.SubScope("window"), tf.Int32, op.PlaceholderShape(tf.MakeShape(4))),
		size:     op.Placeholder(s.SubScope("size"), tf.Int32, op.PlaceholderShape(tf.MakeShape(2))),
		scale:    op.Placeholder(s.SubScope("scale"), tf.Float, op.PlaceholderShape(tf.MakeShape(2))),
		keep:     op.Placeholder(s.SubScope("keep"), tf.Int32, op.PlaceholderShape(tf.MakeShape(3))),
		kept:     op.Placeholder(s.SubScope("kept"), tf.Int32, op.PlaceholderShape(tf.MakeShape(3))),
		fits:     map[int64]jpegFit{},
	}
	d.plain = op.DecodeJpeg(s.SubScope("plain"), d.contents, op.DecodeJpegChannels(0),
		op.DecodeJpegDctMethod("INTEGER_ACCURATE"))
	for _, r := range jpegRatios {
		rs := s.SubScope(fmt.Sprintf("ratio_%d", r))
		decoded := op.DecodeAndCropJpeg(rs, d.contents, d.window, op.DecodeAndCropJpegChannels(3),
			op.DecodeAndCropJpegRatio(r), op.DecodeAndCropJpegDctMethod("INTEGER_ACCURATE"))
		img := op.Slice(rs, decoded, d.keep, d.kept)
		batch := op.ExpandDims(rs, img, op.Const(rs.SubScope("axis"), int32(0)))
		toBytes := func(s *op.Scope, x tf.Output) tf.Output {
			return op.Cast(s, op.Round(s, op.Squeeze(s, x, op.SqueezeAxis([]int64{0}))), tf.Uint8)
		}
		bs := rs.SubScope("bilinear")
		bilinear := toBytes(bs, op.ResizeBilinear(bs, batch, d.size, op.ResizeBilinearHalfPixelCenters(true)))
		ss := rs.SubScope("smooth")
		// ScaleAndTranslate is tf.image.resize's antialiased kernel; graft has no wrapper.
		smooth := ss.AddOperation(tf.OpSpec{
			Type:  "ScaleAndTranslate",
			Input: []tf.Input{batch, d.size, d.scale, op.Const(ss.SubScope("translation"), []float32{0, 0})},
			Attrs: map[string]interface{}{"kernel_type": "triangle", "antialias": true},
		})
		if smooth == nil {
			break // the scope holds the error
		}
		d.fits[r] = jpegFit{bilinear: bilinear, smooth: toBytes(ss, smooth.Output(0))}
	}
	var err error
	if d.sess, err = callerSession(s); err != nil {
		return nil, err
	}
	return d, nil
}

// callerSession finalizes s into a session whose calls run on their callers' threads
// (graphs.CallerThreadOptions).
func callerSession(s *op.Scope) (*tf.Session, error) {
	g, err := s.Finalize()
	if err != nil {
		return nil, err
	}
	return tf.NewSession(g, graphs.CallerThreadOptions())
}

// jpegRatio is the largest DCT scale denominator that still leaves the shorter side of a
// w×h JPEG at least size pixels (libjpeg rounds scaled sizes up).
func jpegRatio(w, h, size int) int64 {
	for _, r := range jpegRatios {
		if (min(w, h)+int(r)-1)/int(r) >= size {
			return r
		}
	}
	return 1
}

// layout is where fitting a w×h image to size×size by policy takes its pixels from (src, in
// the image's coordinates) and puts them (dst, in the size×size square).
func layout(w, h, size int, policy string) (src, dst image.Rectangle) {
	switch policy {
	case ResizeSquash:
		return image.Rect(0, 0, w, h), image.Rect(0, 0, size, size)
	case ResizePad:
		tw, th := size, size
		if w >= h {
			th = max(1, (h*size+w/2)/w)
		} else {
			tw = max(1, (w*size+h/2)/h)
		}
		return image.Rect(0, 0, w, h), image.Rect(0, 0, tw, th).Add(image.Pt((size-tw)/2, (size-th)/2))
	default: // center_crop
		side := min(w, h)
		x0, y0 := (w-side)/2, (h-side)/2
		return image.Rect(x0, y0, x0+side, y0+side), image.Rect(0, 0, size, size)
	}
}

// fit decodes a w×h (as stored) JPEG with EXIF orientation o and fits its displayed frame to
// size×size by policy: an RGB image (black where pad leaves the square uncovered). The crop
// and resize work on the stored pixels, in the rectangles the displayed frame's layout maps
// to; only the size×size result is turned. said is what libjpeg-turbo wrote meanwhile (its
// first warning, of damage in the coded data it decoded past; or why it refused the file),
// printed nowhere else.
func (d *jpegDecoder) fit(data []byte, w, h, o, size int, policy string) (img *raster.RGB, said string, err error) {
	r := jpegRatio(w, h, size)
	sw, sh := (w+int(r)-1)/int(r), (h+int(r)-1)/int(r) // libjpeg's scaled size
	ow, oh := orientedSize(o, sw, sh)
	osr, odr := layout(ow, oh, size, policy)
	sr, dr := storedRect(o, osr, sw, sh), storedRect(o, odr, size, size)
	fetch := d.fits[r].bilinear
	if raster.Antialias(sr.Dx(), sr.Dy(), dr.Dx(), dr.Dy()) {
		fetch = d.fits[r].smooth
	}
	wr := image.Rect(max(0, sr.Min.X-cropMargin), max(0, sr.Min.Y-cropMargin),
		min(sw, sr.Max.X+cropMargin), min(sh, sr.Max.Y+cropMargin))
	feeds := map[tf.Output]*tf.Tensor{}
	defer func() { // a photo's bytes and its resized image, freed now (graphs.FreeTensor)
		for _, t := range feeds {
			graphs.FreeTensor(t)
		}
	}()
	for out, v := range map[tf.Output]any{
		d.contents: string(data),
		d.window:   []int32{int32(wr.Min.Y), int32(wr.Min.X), int32(wr.Dy()), int32(wr.Dx())},
		d.keep:     []int32{int32(sr.Min.Y - wr.Min.Y), int32(sr.Min.X - wr.Min.X), 0},
		d.kept:     []int32{int32(sr.Dy()), int32(sr.Dx()), 3},
		d.size:     []int32{int32(dr.Dy()), int32(dr.Dx())},
		d.scale:    []float32{float32(dr.Dy()) / float32(sr.Dy()), float32(dr.Dx()) / float32(sr.Dx())},
	} {
		t, err := tf.NewTensor(v)
		if err != nil {
			return nil, "", err
		}
		feeds[out] = t
	}
	var res []*tf.Tensor
	said, err = graphs.CaptureCallerStderr(func() (err error) {
		res, err = d.sess.Run(feeds, []tf.Output{fetch}, nil)
		return err
	})
	if err != nil {
		return nil, said, err
	}
	defer graphs.FreeTensor(res...)
	if sh := res[0].Shape(); len(sh) != 3 || sh[0] != int64(dr.Dy()) || sh[1] != int64(dr.Dx()) || sh[2] != 3 {
		return nil, said, fmt.Errorf("fitted JPEG has shape %v, want [%d %d 3]", sh, dr.Dy(), dr.Dx())
	}
	out := &raster.RGB{Pix: pixelBufs.get(3 * size * size), Stride: 3 * size, Rect: image.Rect(0, 0, size, size)}
	rows := out.Pix
	if dr != out.Rect {
		clear(out.Pix) // the bars are black
		rows = make([]uint8, 3*dr.Dx()*dr.Dy())
	}
	if n, err := graphs.WriteTensor(&fixedWriter{b: rows}, res[0]); err != nil {
		return nil, said, fmt.Errorf("fitted JPEG for %v: %w", dr, err)
	} else if n != int64(len(rows)) {
		return nil, said, fmt.Errorf("fitted JPEG has %d bytes for %v", n, dr)
	}
	if dr != out.Rect { // pad: the rows go between black bars
		dw := 3 * dr.Dx()
		for y := 0; y < dr.Dy(); y++ {
			copy(out.Pix[out.PixOffset(dr.Min.X, dr.Min.Y+y):][:dw], rows[dw*y:dw*(y+1)])
		}
	}
	return orientRGB(out, o), said, nil
}

// decode decodes a whole JPEG at full scale, as coded: an *image.Gray for a grey one, a
// *raster.RGB otherwise. The stages read back the JPEGs a split stored with it, so that
// training and evaluation see the pixels predict and serve get from libjpeg-turbo for the
// same file (image/jpeg upsamples colour differently, by several levels on average).
func (d *jpegDecoder) decode(data []byte) (image.Image, error) {
	in, err := tf.NewTensor(string(data))
	if err != nil {
		return nil, err
	}
	defer graphs.FreeTensor(in)
	var res []*tf.Tensor
	if _, err := graphs.CaptureCallerStderr(func() (err error) {
		res, err = d.sess.Run(map[tf.Output]*tf.Tensor{d.contents: in}, []tf.Output{d.plain}, nil)
		return err
	}); err != nil {
		return nil, err
	}
	defer graphs.FreeTensor(res...)
	sh := res[0].Shape()
	if len(sh) != 3 || sh[2] != 1 && sh[2] != 3 {
		return nil, fmt.Errorf("decoded JPEG has shape %v", sh)
	}
	h, w, c := int(sh[0]), int(sh[1]), int(sh[2])
	pix := make([]uint8, h*w*c)
	if n, err := graphs.WriteTensor(&fixedWriter{b: pix}, res[0]); err != nil {
		return nil, err
	} else if n != int64(len(pix)) {
		return nil, fmt.Errorf("decoded JPEG has %d bytes for %dx%dx%d", n, w, h, c)
	}
	if c == 1 {
		return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	}
	return &raster.RGB{Pix: pix, Stride: 3 * w, Rect: image.Rect(0, 0, w, h)}, nil
}

// fixedWriter writes into b, in place, and refuses to write past its end.
type fixedWriter struct {
	b []byte
	n int
}

func (w *fixedWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.b)-w.n {
		return 0, fmt.Errorf("%d bytes do not fit the %d left", len(p), len(w.b)-w.n)
	}
	w.n += copy(w.b[w.n:], p)
	return len(p), nil
}

// prepareImage decodes an encoded image and fits it to size×size by policy, in channels (1:
// grey, 3: RGB). A JPEG is fitted as displayed, turned by its EXIF orientation. JPEGs go
// through TensorFlow (fit); when that fails (or TensorFlow is unusable, or the file stops
// before its end, see jpegComplete), image/jpeg decides, so a file is rejected with
// image/jpeg's reason or accepted if image/jpeg reads it. Other formats use Go's decoders
// and raster.Resize, which filters the same way (a JPEG decoded at a DCT scale is cropped on
// the scaled pixels, so its crop can sit a few full-size pixels from the one image/jpeg's
// decode gets).
func prepareImage(data []byte, format string, w, h, size int, policy string, channels int) (image.Image, error) {
	img, _, err := prepare(data, format, w, h, size, policy, channels)
	return img, err
}

// decodeNote is how a JPEG's decode went, when not plainly.
type decodeNote struct {
	// fallback: decoded by image/jpeg after libjpeg-turbo refused it (or TensorFlow was
	// unusable).
	fallback bool
	// libjpeg is what libjpeg-turbo said: the damage in the coded data it decoded past (a
	// warning, such as "Corrupt JPEG data: premature end of data segment"), or, with fallback,
	// why it refused the file.
	libjpeg string
}

// prepare is prepareImage, also saying how a JPEG's decode went.
func prepare(data []byte, format string, w, h, size int, policy string, channels int) (image.Image, decodeNote, error) {
	o := imageOrientation(data, format)
	var note decodeNote
	if format == "jpeg" {
		if d, err := sharedJPEGDecoder(); err == nil && jpegComplete(data) {
			img, said, err := d.fit(data, w, h, o, size, policy)
			note.libjpeg = strings.ReplaceAll(said, "\n", "; ")
			if err == nil {
				note.libjpeg = damageSaid(said)
				if channels == 1 {
					g := opaque(img, 1)
					pixelBufs.put(img.Pix) // converted: the RGB pixels are dead
					return g, note, nil
				}
				return img, note, nil
			}
		}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, decodeNote{}, err
	}
	switch {
	case format == "webp":
		img = webpToRGB(img)
	case format == "gif" && img.Bounds() != image.Rect(0, 0, w, h):
		img = onCanvas(img, w, h)
	}
	note.fallback = format == "jpeg"
	return fitImage(orientImage(img, o), size, policy, channels), note, nil
}

// onCanvas places a GIF's first frame on its w×h canvas (the logical screen its header
// gives, which the split checks against max_pixels and min_side) where the file puts it, the
// rest transparent, as browsers show it: image/gif gives the frame alone, in its own bounds,
// which fitting would stretch over the whole picture.
func onCanvas(frame image.Image, w, h int) image.Image {
	canvas := image.NewRGBA(image.Rect(0, 0, w, h))
	b := frame.Bounds().Intersect(canvas.Rect)
	draw.Draw(canvas, b, frame, b.Min, draw.Src)
	return canvas
}

// jpegEncoder encodes opaque RGB and grey images as baseline JPEG at one quality with
// libjpeg-turbo, through a TensorFlow session (safe for concurrent use, one thread per call).
type jpegEncoder struct {
	sess    *tf.Session
	in, out tf.Output
}

// newJPEGEncoder starts an encoder at quality (1–100); its default 4:2:0 chroma subsampling
// is image/jpeg's too.
func newJPEGEncoder(quality int) (*jpegEncoder, error) {
	s := op.NewScope()
	e := &jpegEncoder{in: op.Placeholder(s.SubScope("pixels"), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, -1, -1)))}
	e.out = op.EncodeJpeg(s, e.in, op.EncodeJpegQuality(int64(quality)))
	var err error
	if e.sess, err = callerSession(s); err != nil {
		return nil, err
	}
	return e, nil
}

// encode returns img as JPEG bytes: *image.Gray as a grey JPEG, *raster.RGB and opaque
// *image.RGBA (alpha ignored) as an RGB one; other types are converted to RGBA first.
func (e *jpegEncoder) encode(img image.Image) ([]byte, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	var pix []byte
	ch := 3
	switch m := img.(type) {
	case *image.Gray:
		ch, pix = 1, contiguous(m.Pix, m.Stride, w, h)
	case *raster.RGB:
		pix = contiguous(m.Pix, m.Stride, 3*w, h)
	default:
		rgba, ok := img.(*image.RGBA)
		if !ok {
			rgba = clone.AsRGBA(img)
		}
		pix = make([]byte, w*h*3)
		for y := 0; y < h; y++ {
			raster.PackRGB(pix[3*w*y:3*w*(y+1)], rgba.Pix[y*rgba.Stride:y*rgba.Stride+4*w])
		}
	}
	t, err := tf.ReadTensor(tf.Uint8, []int64{int64(h), int64(w), int64(ch)}, bytes.NewReader(pix))
	if err != nil {
		return nil, err
	}
	defer graphs.FreeTensor(t)
	res, err := e.sess.Run(map[tf.Output]*tf.Tensor{e.in: t}, []tf.Output{e.out}, nil)
	if err != nil {
		return nil, err
	}
	defer graphs.FreeTensor(res...)
	s, ok := graphs.TensorValue(res[0]).(string)
	if !ok {
		return nil, fmt.Errorf("EncodeJpeg returned %T", graphs.TensorValue(res[0]))
	}
	return []byte(s), nil
}

// contiguous returns the h rows of n bytes, stride apart, that start pix, as one slice: pix
// itself when they are contiguous, else a copy.
func contiguous(pix []byte, stride, n, h int) []byte {
	if stride == n {
		return pix[:n*h]
	}
	out := make([]byte, 0, n*h)
	for y := 0; y < h; y++ {
		out = append(out, pix[y*stride:y*stride+n]...)
	}
	return out
}

// close releases the encoder's session.
func (e *jpegEncoder) close() { e.sess.Close() }
