package stages

import (
	"bytes"
	"fmt"
	"image"
	"sync"

	tf "github.com/wamuir/graft/tensorflow"
	cfgpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"
)

// JPEG files, by far the most common input, are decoded by libjpeg-turbo (SIMD) through
// TensorFlow's DecodeJpeg op rather than image/jpeg: about 3× faster at photo sizes, and
// able to decode at 1/2, 1/4 or 1/8 scale (DCT scaling), so a 12-megapixel photo bound for a
// 224-pixel image costs a fraction of a full decode. The split stage and predict/serve share
// this decoder, so served images are prepared exactly like training images.

// jpegRatios are libjpeg's DCT scale denominators, largest first.
var jpegRatios = []int64{8, 4, 2, 1}

type jpegDecoder struct {
	sess *tf.Session
	in   tf.Output
	out  map[int64]tf.Output
}

var (
	jpegOnce sync.Once
	jpegDec  *jpegDecoder
	jpegErr  error
)

// sharedJPEGDecoder returns the process's JPEG decoder (a small TensorFlow session, one
// thread per call, safe for concurrent use), built on first use.
func sharedJPEGDecoder() (*jpegDecoder, error) {
	jpegOnce.Do(func() {
		s := op.NewScope()
		in := op.Placeholder(s.SubScope("contents"), tf.String)
		out := map[int64]tf.Output{}
		for _, r := range jpegRatios {
			out[r] = op.DecodeJpeg(s.SubScope(fmt.Sprintf("decode_%d", r)), in,
				op.DecodeJpegChannels(3), op.DecodeJpegRatio(r), op.DecodeJpegDctMethod("INTEGER_ACCURATE"))
		}
		g, err := s.Finalize()
		if err != nil {
			jpegErr = err
			return
		}
		// Callers run one decode per core: a negative inter-op count runs each decode on its
		// caller's thread, so concurrent decodes do not queue for a shared pool.
		cfg, err := proto.Marshal(&cfgpb.ConfigProto{IntraOpParallelismThreads: 1, InterOpParallelismThreads: -1})
		if err != nil {
			jpegErr = err
			return
		}
		sess, err := tf.NewSession(g, &tf.SessionOptions{Config: cfg})
		if err != nil {
			jpegErr = err
			return
		}
		jpegDec = &jpegDecoder{sess: sess, in: in, out: out}
	})
	return jpegDec, jpegErr
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

// decode returns the RGB pixels of a JPEG at 1/ratio scale as an opaque RGBA image.
func (d *jpegDecoder) decode(data []byte, ratio int64) (*image.RGBA, error) {
	t, err := tf.NewTensor(string(data))
	if err != nil {
		return nil, err
	}
	res, err := d.sess.Run(map[tf.Output]*tf.Tensor{d.in: t}, []tf.Output{d.out[ratio]}, nil)
	if err != nil {
		return nil, err
	}
	sh := res[0].Shape()
	if len(sh) != 3 || sh[2] != 3 {
		return nil, fmt.Errorf("decoded JPEG has shape %v", sh)
	}
	h, w := int(sh[0]), int(sh[1])
	var buf bytes.Buffer
	buf.Grow(w * h * 3)
	if _, err := res[0].WriteContentsTo(&buf); err != nil {
		return nil, err
	}
	rgb := buf.Bytes()
	if len(rgb) != w*h*3 {
		return nil, fmt.Errorf("decoded JPEG has %d bytes for %dx%d", len(rgb), w, h)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	pix := img.Pix
	for i, j := 0, 0; i < len(rgb); i, j = i+3, j+4 {
		pix[j], pix[j+1], pix[j+2], pix[j+3] = rgb[i], rgb[i+1], rgb[i+2], 0xff
	}
	return img, nil
}

// decodeImage decodes an encoded image that will be fitted to size×size pixels (size 0: keep
// full size). JPEGs go through libjpeg-turbo at the largest DCT scale that keeps the shorter
// side ≥ size; when it fails (or TensorFlow is unusable), image/jpeg decides, so a file is
// rejected with image/jpeg's reason or accepted if image/jpeg reads it. Other formats use
// Go's decoders.
func decodeImage(data []byte, format string, w, h, size int) (image.Image, error) {
	if format == "jpeg" {
		if d, err := sharedJPEGDecoder(); err == nil {
			ratio := int64(1)
			if size > 0 {
				ratio = jpegRatio(w, h, size)
			}
			if img, err := d.decode(data, ratio); err == nil {
				return img, nil
			}
		}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	return img, err
}
