package graphs

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
)

// Batch is a batch of images, NHWC float32 in 0–255, with their class indices.
type Batch struct {
	Images []float32 // N·H·W·C values
	Labels []int32   // N class indices; nil when unknown
}

// Len returns the number of images given the per-image size of in.
func (b Batch) Len(in Input) int {
	return len(b.Images) / int(in.Height*in.Width*in.Channels)
}

func (b Batch) tensors(in Input) (imgs, labels *tf.Tensor, err error) {
	per := int(in.Height * in.Width * in.Channels)
	if len(b.Images) == 0 || len(b.Images)%per != 0 {
		return nil, nil, fmt.Errorf("batch of %d values is not a whole number of %dx%dx%d images", len(b.Images), in.Height, in.Width, in.Channels)
	}
	n := len(b.Images) / per
	if imgs, err = floatTensor(b.Images, []int64{int64(n), in.Height, in.Width, in.Channels}); err != nil {
		return nil, nil, err
	}
	if b.Labels == nil {
		return imgs, nil, nil
	}
	if len(b.Labels) != n {
		return nil, nil, fmt.Errorf("batch has %d images but %d labels", n, len(b.Labels))
	}
	labels, err = tf.NewTensor(b.Labels)
	return imgs, labels, err
}
