package graphs

import (
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Batch-norm constants follow PyTorch (the original system): running statistics with
// momentum 0.1 and epsilon 1e-5.
const (
	bnMomentum = 0.1
	bnEpsilon  = 1e-5
	lnEpsilon  = 1e-6
)

// BatchNorm normalises NHWC input per channel with FusedBatchNormV3 (the version whose
// gradient TensorFlow's C++ registry has). In training it uses batch statistics and
// registers the moving-average updates with the context; in inference it uses the moving
// statistics.
func BatchNorm(c Ctx, x tf.Output) tf.Output {
	ch := dim(c, x, -1)
	gamma := c.Var("gamma", []int64{ch}, Ones, 0, 0)
	beta := c.Var("beta", []int64{ch}, Zeros, 0, 0)
	mean := c.state("moving_mean", []int64{ch}, Zeros)
	variance := c.state("moving_variance", []int64{ch}, Ones)
	if !c.Training() {
		y, _, _, _, _, _ := op.FusedBatchNormV3(c.S.SubScope("fused_batch_norm_v3"), x, gamma, beta, mean.Read, variance.Read,
			op.FusedBatchNormV3Epsilon(bnEpsilon), op.FusedBatchNormV3IsTraining(false))
		return y
	}
	empty := cnst(c.S.SubScope("empty"), []float32{})
	y, bm, bv, _, _, _ := op.FusedBatchNormV3(c.S.SubScope("fused_batch_norm_v3"), x, gamma, beta, empty, empty,
		op.FusedBatchNormV3Epsilon(bnEpsilon), op.FusedBatchNormV3IsTraining(true))
	// moving ← moving + momentum·(batch − moving); batch variance is the unbiased one.
	us := c.S.SubScope("update")
	m := f32(us, bnMomentum)
	c.addUpdate(op.AssignAddVariableOp(us.SubScope("assign_add_variable_op"), mean.Handle, op.Mul(us.SubScope("mul"), m, op.Sub(us.SubScope("sub"), bm, mean.Read))))
	c.addUpdate(op.AssignAddVariableOp(us.SubScope("assign_add_variable_op"), variance.Handle, op.Mul(us.SubScope("mul"), m, op.Sub(us.SubScope("sub"), bv, variance.Read))))
	return y
}

// LayerNorm normalises over the last axis with a learned scale and shift, built from Mean,
// SquaredDifference and Rsqrt, all of which have C++ gradients.
func LayerNorm(c Ctx, x tf.Output) tf.Output {
	d := dim(c, x, -1)
	gamma := c.Var("gamma", []int64{d}, Ones, 0, 0)
	beta := c.Var("beta", []int64{d}, Zeros, 0, 0)
	s := c.S
	axis := cnst(s, []int32{-1})
	mu := op.Mean(s.SubScope("mean"), x, axis, op.MeanKeepDims(true))
	v := op.Mean(s.SubScope("mean"), op.SquaredDifference(s.SubScope("squared_difference"), x, mu), axis, op.MeanKeepDims(true))
	xhat := op.Mul(s.SubScope("mul"), op.Sub(s.SubScope("sub"), x, mu), op.Rsqrt(s.SubScope("rsqrt"), op.AddV2(s.SubScope("add_v2"), v, f32(s, lnEpsilon))))
	return op.AddV2(s.SubScope("add_v2"), op.Mul(s.SubScope("mul"), xhat, gamma), beta)
}

// ReLU is max(x, 0).
func ReLU(c Ctx, x tf.Output) tf.Output { return op.Relu(c.S.SubScope("relu"), x) }

// GELU is the exact Gaussian error linear unit, 0.5·x·(1 + erf(x/√2)).
func GELU(c Ctx, x tf.Output) tf.Output {
	s := c.S
	e := op.Erf(s.SubScope("erf"), op.Mul(s.SubScope("mul"), x, f32(s, float32(1/math.Sqrt2))))
	return op.Mul(s.SubScope("mul"), op.Mul(s.SubScope("mul"), f32(s, 0.5), x), op.AddV2(s.SubScope("add_v2"), f32(s, 1), e))
}

// Dropout zeroes each element with probability rate and scales the rest by 1/(1−rate) in
// training; in inference it is the identity. The mask comes from a stateless generator
// seeded by the per-step seed and the dropout's index, so it is reproducible.
func Dropout(c Ctx, x tf.Output, rate float32) tf.Output {
	if !c.Training() || rate <= 0 {
		return x
	}
	s := c.S.SubScope("dropout")
	seed := op.AddV2(s.SubScope("add_v2"), c.Seed, cnst(s, []int64{0, c.nextDropout() << 32}))
	// The shape comes from the batch size, not from Shape(x), so that the mask does not sit on
	// a path from the variables to the loss (AddGradients would look for gradients of it).
	u := op.StatelessRandomUniform(s.SubScope("stateless_random_uniform"), batchShape(c, s, x), seed)
	keep := 1 - rate
	// floor(keep + u) is 1 with probability keep.
	mask := op.Mul(s.SubScope("mul"), op.Floor(s.SubScope("floor"), op.AddV2(s.SubScope("add_v2"), u, f32(s, keep))), f32(s, 1/keep))
	return op.Mul(s.SubScope("mul"), x, mask)
}

// batchShape returns x's shape as an int32 tensor built from the context's batch size and the
// static sizes of the other axes.
func batchShape(c Ctx, s *op.Scope, x tf.Output) tf.Output {
	dims := []tf.Output{c.Batch}
	for i := 1; c.S.Err() == nil && i < x.Shape().NumDimensions(); i++ {
		dims = append(dims, cnst(s, int32(dim(c, x, i))))
	}
	return op.Pack(s.SubScope("pack"), dims)
}
