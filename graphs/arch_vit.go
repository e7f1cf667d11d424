package graphs

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// ViT is a Vision Transformer: patch embedding, learned position embeddings, Depth pre-norm
// encoder blocks, a final layer norm, and a linear head on the class token (Pool "cls") or on
// the mean of the patch tokens (Pool "mean").
type ViT struct {
	Patch    int64   `json:"patch"`
	Dim      int64   `json:"dim"`
	Depth    int64   `json:"depth"`
	Heads    int64   `json:"heads"`
	MLPRatio float64 `json:"mlp_ratio"`
	Pool     string  `json:"pool"`
	Dropout  float32 `json:"dropout"`
}

// DefaultViT returns ViT-Base/16.
func DefaultViT() ViT {
	return ViT{Patch: 16, Dim: 768, Depth: 12, Heads: 12, MLPRatio: 4, Pool: "cls", Dropout: 0.1}
}

// Validate checks the options against the input size, reporting every option that is
// wrong.
func (n *ViT) Validate(h, w, ch int64) error {
	p := optionProblems{arch: "vit"}
	positive(&p, "patch", n.Patch)
	positive(&p, "dim", n.Dim)
	positive(&p, "depth", n.Depth)
	positive(&p, "heads", n.Heads)
	positive(&p, "mlp_ratio", n.MLPRatio)
	if n.Patch > 0 && (h%n.Patch != 0 || w%n.Patch != 0) {
		p.add("image %dx%d is not divisible into %dx%d patches; choose a patch size that divides both sides", h, w, n.Patch, n.Patch)
	}
	if n.Dim > 0 && n.Heads > 0 && n.Dim%n.Heads != 0 {
		p.add("dim %d is not divisible by heads %d", n.Dim, n.Heads)
	}
	if n.Pool != "cls" && n.Pool != "mean" {
		p.add("pool %q must be \"cls\" or \"mean\"", n.Pool)
	}
	p.rate("dropout", n.Dropout)
	return p.err()
}

// Logits builds the network.
func (n *ViT) Logits(c Ctx, x tf.Output, classes int64) tf.Output {
	s := c.S
	tok := PatchEmbed(c.Sub("patch_embed"), x, n.Patch, n.Dim) // [N, T, D]
	t := dim(c, tok, 1)
	if n.Pool == "cls" {
		cls := c.Var("cls_token", []int64{1, 1, n.Dim}, TruncNormal02, 0, 0)
		// Tile by the batch size taken from the input, not from tok, to keep Shape off the
		// gradient path.
		mult := op.Pack(s.SubScope("pack"), []tf.Output{c.Batch, cnst(s, int32(1)), cnst(s, int32(1))})
		tok = op.ConcatV2(s.SubScope("concat_v2"), []tf.Output{op.Tile(s.SubScope("tile"), cls, mult), tok}, cnst(s, int32(1)))
		t++
	}
	pos := c.Var("pos_embed", []int64{1, t, n.Dim}, TruncNormal02, 0, 0)
	tok = Dropout(c.Sub("embed"), op.AddV2(s.SubScope("add_v2"), tok, pos), n.Dropout)
	for i := int64(0); i < n.Depth; i++ {
		tok = TransformerBlock(c.Sub(fmt.Sprintf("block%d", i+1)), tok, n.Heads, n.MLPRatio, n.Dropout)
	}
	tok = LayerNorm(c.Sub("ln"), tok)
	var feat tf.Output
	if n.Pool == "cls" {
		feat = op.StridedSlice(s.SubScope("strided_slice"), tok, cnst(s, []int32{0, 0, 0}), cnst(s, []int32{0, 1, 0}), cnst(s, []int32{1, 1, 1}),
			op.StridedSliceBeginMask(0b101), op.StridedSliceEndMask(0b101), op.StridedSliceShrinkAxisMask(0b010))
	} else {
		feat = op.Mean(s.SubScope("mean"), tok, cnst(s, []int32{1}))
	}
	return Dense(c.Sub("head"), feat, classes)
}
