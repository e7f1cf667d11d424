package graphs

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
)

// CNN is the original system's small convolutional network: per entry of Channels a block
// conv3×3 → batch norm → ReLU → max-pool 2 → dropout, then adaptive average pooling to
// Pool×Pool, a dense layer with ReLU and dropout, and the classifier.
type CNN struct {
	Channels     []int64 `json:"channels"`
	Dropout      float32 `json:"dropout"`
	Pool         int64   `json:"pool"`
	Dense        int64   `json:"dense"`
	DenseDropout float32 `json:"dense_dropout"`
}

// DefaultCNN returns the original's sizes: 32/64/128 channels, pool 4, dense 512.
func DefaultCNN() CNN {
	return CNN{Channels: []int64{32, 64, 128}, Dropout: 0.2, Pool: 4, Dense: 512, DenseDropout: 0.3}
}

// Validate checks the options, reporting every option that is wrong.
func (n *CNN) Validate(h, w, ch int64) error {
	p := optionProblems{arch: "cnn"}
	if len(n.Channels) == 0 {
		p.add("channels must list at least one block")
	}
	for i, c := range n.Channels {
		if c <= 0 {
			p.add("channels %s: entry %d (%d) must be positive", intList(n.Channels), i+1, c)
			break
		}
	}
	positive(&p, "pool", n.Pool)
	positive(&p, "dense", n.Dense)
	p.rate("dropout", n.Dropout)
	p.rate("dense_dropout", n.DenseDropout)
	return p.err()
}

// Logits builds the network.
func (n *CNN) Logits(c Ctx, x tf.Output, classes int64) tf.Output {
	for i, ch := range n.Channels {
		b := c.Sub(fmt.Sprintf("block%d", i+1))
		x = Conv2D(b.Sub("conv"), x, ConvConfig{Filters: ch, Kernel: 3, NoBias: true})
		x = ReLU(b, BatchNorm(b.Sub("bn"), x))
		x = Dropout(b, MaxPool(b, x, 2), n.Dropout)
	}
	x = Flatten(c, AdaptiveAvgPool(c.Sub("pool"), x, n.Pool))
	x = Dropout(c, ReLU(c, Dense(c.Sub("fc"), x, n.Dense)), n.DenseDropout)
	return Dense(c.Sub("head"), x, classes)
}
