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

// Validate checks the options.
func (n *CNN) Validate(h, w, ch int64) error {
	if len(n.Channels) == 0 {
		return fmt.Errorf("cnn: channels must list at least one block")
	}
	for _, c := range n.Channels {
		if c <= 0 {
			return fmt.Errorf("cnn: channels %v: every entry must be positive", n.Channels)
		}
	}
	if n.Pool <= 0 || n.Dense <= 0 {
		return fmt.Errorf("cnn: pool (%d) and dense (%d) must be positive", n.Pool, n.Dense)
	}
	return checkRates("cnn", n.Dropout, n.DenseDropout)
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

func checkRates(arch string, rates ...float32) error {
	for _, r := range rates {
		if r < 0 || r >= 1 {
			return fmt.Errorf("%s: dropout %g must be in [0, 1)", arch, r)
		}
	}
	return nil
}
