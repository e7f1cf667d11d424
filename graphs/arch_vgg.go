package graphs

import (
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"
)

// vgg19Blocks is VGG19's layout: convolutions per block and their base widths.
var vgg19Blocks = [5]struct{ convs, filters int64 }{{2, 64}, {2, 128}, {4, 256}, {4, 512}, {4, 512}}

// VGG19 is VGG19 (16 conv3×3 layers in 5 blocks, max-pool after each, two hidden dense layers
// and the classifier). Width scales every convolution's channel count (1 is the original),
// Classifier is the hidden dense width (4096 originally), Pool the adaptive-average-pool grid
// before the classifier (7 as in torchvision), BatchNorm adds BN after every convolution.
type VGG19 struct {
	Width      float64 `json:"width"`
	Classifier int64   `json:"classifier"`
	Pool       int64   `json:"pool"`
	BatchNorm  bool    `json:"batch_norm"`
	Dropout    float32 `json:"dropout"`
}

// DefaultVGG19 returns the original VGG19 sizes.
func DefaultVGG19() VGG19 {
	return VGG19{Width: 1, Classifier: 4096, Pool: 7, Dropout: 0.5}
}

// Validate checks the options, reporting every option that is wrong.
func (n *VGG19) Validate(h, w, ch int64) error {
	p := optionProblems{arch: "vgg19"}
	positive(&p, "width", n.Width)
	positive(&p, "classifier", n.Classifier)
	positive(&p, "pool", n.Pool)
	p.rate("dropout", n.Dropout)
	return p.err()
}

// Logits builds the network.
func (n *VGG19) Logits(c Ctx, x tf.Output, classes int64) tf.Output {
	for bi, blk := range vgg19Blocks {
		filters := int64(math.Max(1, math.Round(float64(blk.filters)*n.Width)))
		for j := int64(0); j < blk.convs; j++ {
			l := c.Sub(fmt.Sprintf("block%d_conv%d", bi+1, j+1))
			x = Conv2D(l, x, ConvConfig{Filters: filters, Kernel: 3, NoBias: n.BatchNorm})
			if n.BatchNorm {
				x = BatchNorm(l.Sub("bn"), x)
			}
			x = ReLU(l, x)
		}
		x = MaxPool(c, x, 2)
	}
	x = Flatten(c, AdaptiveAvgPool(c.Sub("pool"), x, n.Pool))
	x = Dropout(c, ReLU(c, Dense(c.Sub("fc1"), x, n.Classifier)), n.Dropout)
	x = Dropout(c, ReLU(c, Dense(c.Sub("fc2"), x, n.Classifier)), n.Dropout)
	return Dense(c.Sub("head"), x, classes)
}
