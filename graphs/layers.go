package graphs

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// ConvConfig describes a 2-D convolution over NHWC input.
type ConvConfig struct {
	Filters int64
	Kernel  int64
	Stride  int64  // 1 when zero
	Padding string // "SAME" when empty
	NoBias  bool   // for convolutions followed by batch norm
}

// Conv2D applies a convolution with a Glorot-uniform kernel and a zero bias.
func Conv2D(c Ctx, x tf.Output, cfg ConvConfig) tf.Output {
	in := dim(c, x, -1)
	if cfg.Stride == 0 {
		cfg.Stride = 1
	}
	if cfg.Padding == "" {
		cfg.Padding = "SAME"
	}
	k := cfg.Kernel
	w := c.Var("kernel", []int64{k, k, in, cfg.Filters}, GlorotUniform, k*k*in, k*k*cfg.Filters)
	y := op.Conv2D(c.S.SubScope("conv2_d"), x, w, []int64{1, cfg.Stride, cfg.Stride, 1}, cfg.Padding)
	if cfg.NoBias {
		return y
	}
	b := c.Var("bias", []int64{cfg.Filters}, Zeros, 0, 0)
	return op.BiasAdd(c.S.SubScope("bias_add"), y, b)
}

// Dense applies a fully connected layer to the last axis of a 2-D or 3-D input.
func Dense(c Ctx, x tf.Output, units int64) tf.Output {
	in := dim(c, x, -1)
	rank := 2
	if c.S.Err() == nil {
		rank = x.Shape().NumDimensions()
	}
	w := c.Var("kernel", []int64{in, units}, GlorotUniform, in, units)
	b := c.Var("bias", []int64{units}, Zeros, 0, 0)
	if rank == 2 {
		return op.BiasAdd(c.S.SubScope("bias_add"), op.MatMul(c.S.SubScope("mat_mul"), x, w), b)
	}
	// [N, T, D] → [N·T, D] → MatMul → [N, T, units]: MatMul has a registered gradient,
	// a rank-3 contraction would need BatchMatMul against a tiled kernel.
	t := dim(c, x, 1)
	flat := op.Reshape(c.S.SubScope("reshape"), x, cnst(c.S, []int64{-1, in}))
	y := op.BiasAdd(c.S.SubScope("bias_add"), op.MatMul(c.S.SubScope("mat_mul"), flat, w), b)
	return op.Reshape(c.S.SubScope("reshape"), y, cnst(c.S, []int64{-1, t, units}))
}

// MaxPool applies k×k max pooling with stride k and SAME padding, so odd sizes round up
// instead of dropping a row.
func MaxPool(c Ctx, x tf.Output, k int64) tf.Output {
	return op.MaxPool(c.S.SubScope("max_pool"), x, []int64{1, k, k, 1}, []int64{1, k, k, 1}, "SAME")
}

// AdaptiveAvgPool averages NHWC input down to an out×out grid the way PyTorch's
// AdaptiveAvgPool2d does: cell i covers [floor(i·n/out), ceil((i+1)·n/out)).
func AdaptiveAvgPool(c Ctx, x tf.Output, out int64) tf.Output {
	h, w := dim(c, x, 1), dim(c, x, 2)
	if h == out && w == out {
		return x
	}
	if h%out == 0 && w%out == 0 {
		kh, kw := h/out, w/out
		return op.AvgPool(c.S.SubScope("avg_pool"), x, []int64{1, kh, kw, 1}, []int64{1, kh, kw, 1}, "VALID")
	}
	x = adaptiveAxis(c.Sub("rows"), x, 1, h, out)
	return adaptiveAxis(c.Sub("cols"), x, 2, w, out)
}

func adaptiveAxis(c Ctx, x tf.Output, axis int, n, out int64) tf.Output {
	if n == out {
		return x
	}
	cells := make([]tf.Output, out)
	for i := int64(0); i < out; i++ {
		lo, hi := i*n/out, ((i+1)*n+out-1)/out
		begin, end := []int32{0, 0, 0, 0}, []int32{0, 0, 0, 0}
		begin[axis], end[axis] = int32(lo), int32(hi)
		// Masks mark the other axes as "whole range".
		mask := int64(0b1111 &^ (1 << axis))
		part := op.StridedSlice(c.S.SubScope("strided_slice"), x, cnst(c.S, begin), cnst(c.S, end), cnst(c.S, []int32{1, 1, 1, 1}),
			op.StridedSliceBeginMask(mask), op.StridedSliceEndMask(mask))
		cells[i] = op.Mean(c.S.SubScope("mean"), part, cnst(c.S, []int32{int32(axis)}), op.MeanKeepDims(true))
	}
	return op.ConcatV2(c.S.SubScope("concat_v2"), cells, cnst(c.S, int32(axis)))
}

// Flatten reshapes NHWC input to [N, H·W·C].
func Flatten(c Ctx, x tf.Output) tf.Output {
	n := int64(1)
	for i := 1; c.S.Err() == nil && i < x.Shape().NumDimensions(); i++ {
		n *= dim(c, x, i)
	}
	return op.Reshape(c.S.SubScope("reshape"), x, cnst(c.S, []int64{-1, n}))
}

// dim returns the static size of axis i (negative counts from the end). An unknown size is a
// construction error: every block here needs static feature sizes.
func dim(c Ctx, x tf.Output, i int) int64 {
	if c.S.Err() != nil || x.Op == nil {
		return 1 // an earlier error is already recorded
	}
	sh := x.Shape()
	r := sh.NumDimensions()
	if r < 0 {
		c.S.UpdateErr("dim", fmt.Errorf("%s: input rank unknown", c.Path))
		return 1
	}
	if i < 0 {
		i += r
	}
	d := sh.Size(i)
	if d < 0 {
		c.S.UpdateErr("dim", fmt.Errorf("%s: axis %d of input %v has no static size", c.Path, i, sh))
		return 1
	}
	return d
}
