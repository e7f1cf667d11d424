package graphs

import (
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// PatchEmbed cuts NHWC images into non-overlapping patch×patch tiles and projects each to dim
// features (a strided convolution), returning tokens [N, T, dim] with T = (H/patch)·(W/patch).
func PatchEmbed(c Ctx, x tf.Output, patch, dimension int64) tf.Output {
	h, w := dim(c, x, 1), dim(c, x, 2)
	if h%patch != 0 || w%patch != 0 {
		c.S.UpdateErr("PatchEmbed", fmt.Errorf("%s: image %dx%d is not divisible into %dx%d patches", c.Path, h, w, patch, patch))
		return x
	}
	y := Conv2D(c, x, ConvConfig{Filters: dimension, Kernel: patch, Stride: patch, Padding: "VALID"})
	t := (h / patch) * (w / patch)
	return op.Reshape(c.S.SubScope("reshape"), y, cnst(c.S, []int64{-1, t, dimension}))
}

// MultiHeadSelfAttention is scaled dot-product self-attention over tokens [N, T, D] with heads
// heads of size D/heads, a fused QKV projection and an output projection.
func MultiHeadSelfAttention(c Ctx, x tf.Output, heads int64, dropout float32) tf.Output {
	t, d := dim(c, x, 1), dim(c, x, 2)
	if heads <= 0 || d%heads != 0 {
		c.S.UpdateErr("MultiHeadSelfAttention", fmt.Errorf("%s: width %d is not divisible by %d heads", c.Path, d, heads))
		return x
	}
	hd := d / heads
	s := c.S
	qkv := Dense(c.Sub("qkv"), x, 3*d) // [N, T, 3D]
	// [N, T, 3, H, hd] → [3, N, H, T, hd]
	qkv = op.Reshape(s.SubScope("reshape"), qkv, cnst(s, []int64{-1, t, 3, heads, hd}))
	qkv = op.Transpose(s.SubScope("transpose"), qkv, cnst(s, []int32{2, 0, 3, 1, 4}))
	part := func(i int32) tf.Output {
		return op.StridedSlice(s.SubScope("strided_slice"), qkv, cnst(s, []int32{i}), cnst(s, []int32{i + 1}), cnst(s, []int32{1}),
			op.StridedSliceShrinkAxisMask(1))
	}
	q, k, v := part(0), part(1), part(2)
	scores := op.BatchMatMulV2(s.SubScope("batch_mat_mul_v2"), q, k, op.BatchMatMulV2AdjY(true)) // [N, H, T, T]
	scores = op.Mul(s.SubScope("mul"), scores, f32(s, float32(1/math.Sqrt(float64(hd)))))
	// Softmax on a 2-D view, the form whose gradient the C++ registry handles.
	attn := op.Reshape(s.SubScope("reshape"), op.Softmax(s.SubScope("softmax"), op.Reshape(s.SubScope("reshape"), scores, cnst(s, []int64{-1, t}))), cnst(s, []int64{-1, heads, t, t}))
	attn = Dropout(c.Sub("attn"), attn, dropout)
	o := op.BatchMatMulV2(s.SubScope("batch_mat_mul_v2"), attn, v) // [N, H, T, hd]
	o = op.Transpose(s.SubScope("transpose"), o, cnst(s, []int32{0, 2, 1, 3}))
	o = op.Reshape(s.SubScope("reshape"), o, cnst(s, []int64{-1, t, d}))
	return Dense(c.Sub("proj"), o, d)
}

// TransformerBlock is a pre-norm encoder block: x + MHSA(LN(x)), then x + MLP(LN(x)) with an
// exact-GELU MLP of width mlpRatio·D.
func TransformerBlock(c Ctx, x tf.Output, heads int64, mlpRatio float64, dropout float32) tf.Output {
	d := dim(c, x, -1)
	s := c.S
	a := MultiHeadSelfAttention(c.Sub("attn"), LayerNorm(c.Sub("ln1"), x), heads, dropout)
	x = op.AddV2(s.SubScope("add_v2"), x, Dropout(c.Sub("attn_out"), a, dropout))
	h := Dense(c.Sub("mlp1"), LayerNorm(c.Sub("ln2"), x), int64(math.Round(mlpRatio*float64(d))))
	h = Dropout(c.Sub("mlp_act"), GELU(c, h), dropout)
	h = Dense(c.Sub("mlp2"), h, d)
	return op.AddV2(s.SubScope("add_v2"), x, Dropout(c.Sub("mlp_out"), h, dropout))
}
