package graphs

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// gradCase is one block under a finite-difference check: build maps an input of shape in to
// an output, under a context in the given mode.
type gradCase struct {
	name  string
	in    []int64
	mode  Mode
	build func(c Ctx, x tf.Output) tf.Output
}

func gradCases() []gradCase {
	return []gradCase{
		{"conv2d", []int64{2, 5, 5, 3}, Inference, func(c Ctx, x tf.Output) tf.Output {
			return Conv2D(c, x, ConvConfig{Filters: 4, Kernel: 3})
		}},
		{"conv2d_strided_valid", []int64{2, 6, 6, 2}, Inference, func(c Ctx, x tf.Output) tf.Output {
			return Conv2D(c, x, ConvConfig{Filters: 3, Kernel: 2, Stride: 2, Padding: "VALID"})
		}},
		{"dense", []int64{3, 5}, Inference, func(c Ctx, x tf.Output) tf.Output { return Dense(c, x, 4) }},
		{"dense_tokens", []int64{2, 3, 4}, Inference, func(c Ctx, x tf.Output) tf.Output { return Dense(c, x, 5) }},
		{"max_pool_odd", []int64{2, 5, 5, 2}, Inference, func(c Ctx, x tf.Output) tf.Output { return MaxPool(c, x, 2) }},
		{"adaptive_avg_pool_divisible", []int64{1, 4, 4, 2}, Inference, func(c Ctx, x tf.Output) tf.Output { return AdaptiveAvgPool(c, x, 2) }},
		{"adaptive_avg_pool_uneven", []int64{2, 3, 5, 2}, Inference, func(c Ctx, x tf.Output) tf.Output { return AdaptiveAvgPool(c, x, 2) }},
		{"batch_norm_training", []int64{4, 3, 3, 3}, Training, func(c Ctx, x tf.Output) tf.Output { return BatchNorm(c, x) }},
		{"batch_norm_inference", []int64{2, 3, 3, 3}, Inference, func(c Ctx, x tf.Output) tf.Output { return BatchNorm(c, x) }},
		{"relu", []int64{3, 4}, Inference, func(c Ctx, x tf.Output) tf.Output { return ReLU(c, x) }},
		{"gelu", []int64{3, 4}, Inference, func(c Ctx, x tf.Output) tf.Output { return GELU(c, x) }},
		{"dropout_training", []int64{4, 6}, Training, func(c Ctx, x tf.Output) tf.Output { return Dropout(c, x, 0.4) }},
		{"layer_norm", []int64{2, 3, 5}, Inference, func(c Ctx, x tf.Output) tf.Output { return LayerNorm(c, x) }},
		{"patch_embed", []int64{2, 4, 4, 3}, Inference, func(c Ctx, x tf.Output) tf.Output { return PatchEmbed(c, x, 2, 5) }},
		{"self_attention", []int64{2, 3, 4}, Inference, func(c Ctx, x tf.Output) tf.Output {
			return MultiHeadSelfAttention(c, x, 2, 0)
		}},
		{"transformer_block", []int64{2, 3, 4}, Training, func(c Ctx, x tf.Output) tf.Output {
			return TransformerBlock(c, x, 2, 2, 0.2)
		}},
		{"cross_entropy_smoothed", []int64{3, 4}, Inference, func(c Ctx, x tf.Output) tf.Output {
			return crossEntropy(c.S.SubScope("ce"), x, cnst(c.S, []int32{0, 3, 1}), 4, 0.1)
		}},
		{"cnn", []int64{2, 6, 6, 1}, Training, func(c Ctx, x tf.Output) tf.Output {
			n := &CNN{Channels: []int64{2, 3}, Dropout: 0.2, Pool: 2, Dense: 4, DenseDropout: 0.2}
			return n.Logits(c, x, 3)
		}},
		// Inference mode: in training, batch norm over the 1×1 maps of a tiny VGG normalises two
		// values per channel, a function too curved for finite differences. batch_norm_training
		// covers the training-mode gradient.
		{"vgg19_bn", []int64{2, 4, 4, 1}, Inference, func(c Ctx, x tf.Output) tf.Output {
			n := &VGG19{Width: 1.0 / 32, Classifier: 4, Pool: 1, BatchNorm: true, Dropout: 0.2}
			return n.Logits(c, x, 3)
		}},
		{"vit_cls", []int64{2, 4, 4, 3}, Training, func(c Ctx, x tf.Output) tf.Output {
			n := &ViT{Patch: 2, Dim: 4, Depth: 1, Heads: 2, MLPRatio: 2, Pool: "cls", Dropout: 0.1}
			return n.Logits(c, x, 3)
		}},
		{"vit_mean", []int64{2, 4, 4, 3}, Inference, func(c Ctx, x tf.Output) tf.Output {
			n := &ViT{Patch: 2, Dim: 4, Depth: 1, Heads: 1, MLPRatio: 1, Pool: "mean"}
			return n.Logits(c, x, 3)
		}},
	}
}

// TestGradientsMatchFiniteDifferences checks, for every block, the gradient TensorFlow's C++
// registry produces against central differences, with respect to the input and every
// trainable variable. The variables' read values are fed directly, so no initialisation runs.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, gc := range gradCases() {
		t.Run(gc.name, func(t *testing.T) { checkGradients(t, gc) })
	}
}

func checkGradients(t testing.TB, gc gradCase) {
	root := op.NewScope()
	x := op.Placeholder(root.SubScope("x"), tf.Float, op.PlaceholderShape(tf.MakeShape(gc.in...)))
	seed := op.Placeholder(root.SubScope("seed"), tf.Int64, op.PlaceholderShape(tf.MakeShape(2)))
	p := NewParams(root)
	c := NewCtx(root, p, gc.mode, seed, batchSize(root.SubScope("batch"), x)).Sub("block")
	y := gc.build(c, x)
	if err := root.Err(); err != nil {
		t.Fatal(err)
	}
	// L = Σ y·r with a fixed random r, so every output element matters with its own weight.
	yShape := y.Shape()
	ydims, err := yShape.ToSlice()
	if err != nil {
		t.Fatalf("output shape %v not static", yShape)
	}
	r := rand.New(rand.NewPCG(11, 13))
	weights := randomValues(r, numElements(ydims), 1)
	wt, _ := floatTensor(weights, ydims)
	loss := op.Sum(root.SubScope("loss"), op.Mul(root.SubScope("weigh"), y, op.Const(root.SubScope("r"), wt)),
		op.Const(root.SubScope("axes"), allAxes(len(ydims))))
	// Gradients are taken for the input and the trainable variables; non-trainable state
	// (batch-norm moving statistics) is fed too but not differentiated.
	targets := []tf.Output{x}
	names := []string{"input"}
	shapes := [][]int64{gc.in}
	vars := append(p.Trainable(), nonTrainable(p)...)
	for _, v := range vars {
		targets = append(targets, v.Read)
		names = append(names, v.Name)
		shapes = append(shapes, v.Shape)
	}
	nGrad := 1 + len(p.Trainable())
	grads := op.Gradients(root.SubScope("gradients"), []tf.Output{loss}, targets[:nGrad])
	g, err := root.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	// Values: inputs in [-1, 1]; variables from their initialisers, perturbed so that
	// ones/zeros (batch-norm γ/β) are not special points.
	values := make([][]float32, len(targets))
	values[0] = randomValues(r, numElements(gc.in), 1)
	for i, v := range vars {
		values[i+1] = v.InitialValue(5)
		for j := range values[i+1] {
			values[i+1][j] += float32(r.Float64()*0.2 - 0.1)
		}
	}
	seedT, _ := tf.NewTensor([]int64{7, 1})
	eval := func(fetch []tf.Output) []*tf.Tensor {
		feeds := map[tf.Output]*tf.Tensor{seed: seedT}
		for i, tgt := range targets {
			ft, err := floatTensor(values[i], shapes[i])
			if err != nil {
				t.Fatal(err)
			}
			feeds[tgt] = ft
		}
		out, err := sess.Run(feeds, fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lossAt := func() float64 { return float64(TensorValue(eval([]tf.Output{loss})[0]).(float32)) }
	analytic := eval(grads)

	const eps = 1e-3
	for i := 0; i < nGrad; i++ {
		ga := flatFloats(analytic[i])
		// Check up to 12 coordinates per tensor, spread deterministically.
		n := len(values[i])
		for k := 0; k < min(n, 12); k++ {
			j := (k*7919 + 3) % n
			orig := values[i][j]
			values[i][j] = orig + eps
			up := lossAt()
			values[i][j] = orig - eps
			down := lossAt()
			values[i][j] = orig
			num := (up - down) / (2 * eps)
			a := float64(ga[j])
			if math.Abs(a-num) > 2e-2*math.Max(1, math.Max(math.Abs(a), math.Abs(num))) {
				t.Errorf("d loss / d %s[%d]: analytic %.5f, finite difference %.5f", names[i], j, a, num)
			}
		}
	}
}

// errorRecorder is a testing.TB that counts Errorf calls instead of failing.
type errorRecorder struct {
	testing.TB
	errors int
}

func (r *errorRecorder) Errorf(string, ...any) { r.errors++ }

// TestGradientCheckCatchesWrongGradient guards the checker itself: a block whose registered
// gradient is wrong (x·stop_gradient(x) claims d/dx = x, the truth is 2x) must be reported.
func TestGradientCheckCatchesWrongGradient(t *testing.T) {
	rec := &errorRecorder{TB: t}
	checkGradients(rec, gradCase{"wrong", []int64{2, 3}, Inference, func(c Ctx, x tf.Output) tf.Output {
		return op.Mul(c.S.SubScope("mul"), x, op.StopGradient(c.S.SubScope("stop"), x))
	}})
	if rec.errors == 0 {
		t.Fatal("the finite-difference check accepted a wrong gradient")
	}
}

func nonTrainable(p *Params) []*Var {
	var out []*Var
	for _, v := range p.Vars() {
		if !v.Trainable {
			out = append(out, v)
		}
	}
	return out
}

func randomValues(r *rand.Rand, n int64, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32((r.Float64()*2 - 1) * scale)
	}
	return out
}

func allAxes(rank int) []int32 {
	axes := make([]int32, rank)
	for i := range axes {
		axes[i] = int32(i)
	}
	return axes
}

// flatFloats returns a float32 tensor's values in row-major order.
func flatFloats(t *tf.Tensor) []float32 {
	var buf bytes.Buffer
	if _, err := WriteTensor(&buf, t); err != nil {
		panic(err)
	}
	out := make([]float32, buf.Len()/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()[4*i:]))
	}
	return out
}
