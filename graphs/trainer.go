package graphs

import (
	"errors"
	"fmt"
	"io"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// TrainConfig is everything that shapes a training graph.
type TrainConfig struct {
	Model          Classifier
	Optimizer      Optimizer
	LabelSmoothing float32
	Seed           uint64 // initial weights and dropout masks
	Threads        int    // TensorFlow intra-op threads; 0 lets TensorFlow choose
	XLA            bool   // compile clusters with XLA (off by default: slower on CPU here)
}

// Trainer owns a training graph and its session: one training forward pass with loss,
// gradients and optimizer updates, and one inference forward pass over the same variables
// for evaluation and export.
type Trainer struct {
	cfg    TrainConfig
	graph  *tf.Graph
	sess   *tf.Session
	params *Params
	model  []*Var // variables of the network (no optimizer slots)

	images, labels, seed tf.Output
	feeds                optimizerFeeds
	loss, trainPred      tf.Output
	train                *tf.Operation
	probs, evalLoss      tf.Output
	ckpt                 checkpointOps // every variable, for resuming
	exportCkpt           checkpointOps // the network's variables, for export
	inits                []initOp

	step int64 // optimizer steps taken so far
}

type initOp struct {
	v      *Var
	feed   tf.Output
	assign *tf.Operation
}

// ErrClosed is returned by a Trainer used after Close.
var ErrClosed = errors.New("trainer is closed")

// NewTrainer builds the training graph, opens a session and initialises the variables from
// cfg.Seed.
func NewTrainer(cfg TrainConfig) (*Trainer, error) {
	if err := cfg.Model.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Optimizer.Validate(); err != nil {
		return nil, err
	}
	if cfg.LabelSmoothing < 0 || cfg.LabelSmoothing >= 1 {
		return nil, fmt.Errorf("label smoothing %g must be in [0, 1)", cfg.LabelSmoothing)
	}
	t := &Trainer{cfg: cfg}
	root := op.NewScope()
	in := cfg.Model.Input
	s := root.SubScope("input")
	t.images = op.Placeholder(s.SubScope("images"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, in.Height, in.Width, in.Channels)))
	t.labels = op.Placeholder(s.SubScope("labels"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
	t.seed = op.Placeholder(s.SubScope("seed"), tf.Int64, op.PlaceholderShape(tf.MakeShape(2)))
	batch := batchSize(s, t.images)
	t.params = NewParams(root)

	// Training forward, loss, gradients, updates.
	tc := NewCtx(root.SubScope("train"), t.params, Training, t.seed, batch)
	logits := cfg.Model.Logits(tc.Sub("model"), t.images)
	ls := root.SubScope("loss")
	perExample := crossEntropy(ls, logits, t.labels, cfg.Model.Classes, cfg.LabelSmoothing)
	t.loss = op.Mean(ls.SubScope("mean"), perExample, cnst(ls, []int32{0}))
	t.trainPred = op.ArgMax(ls.SubScope("arg_max"), logits, cnst(ls, int32(1)), op.ArgMaxOutputType(tf.Int32))

	// Inference forward over the same variables.
	ec := NewCtx(root.SubScope("eval"), t.params, Inference, t.seed, batch)
	evalLogits := cfg.Model.Logits(ec.Sub("model"), t.images)
	es := root.SubScope("evaluate")
	t.probs = op.Softmax(es.SubScope("softmax"), evalLogits)
	t.evalLoss = crossEntropy(es, evalLogits, t.labels, cfg.Model.Classes, 0)
	t.model = t.params.Vars()

	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("building the %s network: %w", cfg.Model.Spec.Architecture, err)
	}
	trainable := t.params.Trainable()
	reads := make([]tf.Output, len(trainable))
	for i, v := range trainable {
		reads[i] = v.Read
	}
	grads := op.Gradients(root.SubScope("gradients"), []tf.Output{t.loss}, reads)
	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("computing gradients of the %s network: %w", cfg.Model.Spec.Architecture, err)
	}
	{
		for i, g := range grads {
			if g.Op == nil {
				return nil, fmt.Errorf("variable %s does not affect the loss", trainable[i].Name)
			}
		}
	}
	opt := root.SubScope("optimizer")
	t.feeds = optimizerFeeds{
		lr:         op.Placeholder(opt.SubScope("learning_rate"), tf.Float, op.PlaceholderShape(tf.ScalarShape())),
		beta1Power: op.Placeholder(opt.SubScope("beta1_power"), tf.Float, op.PlaceholderShape(tf.ScalarShape())),
		beta2Power: op.Placeholder(opt.SubScope("beta2_power"), tf.Float, op.PlaceholderShape(tf.ScalarShape())),
	}
	if root.Err() == nil {
		apply := applyOptimizer(opt, t.params, trainable, grads, cfg.Optimizer, t.feeds)
		t.train = op.NoOp(root.SubScope("train_step").WithControlDependencies(append(tc.Updates(), apply)...))
	}

	is := root.SubScope("init")
	for _, v := range t.params.Vars() {
		vs := is.SubScope(sanitize(v.Name))
		feed := op.Placeholder(vs.SubScope("placeholder"), tf.Float, op.PlaceholderShape(tf.MakeShape(v.Shape...)))
		t.inits = append(t.inits, initOp{v: v, feed: feed, assign: op.AssignVariableOp(vs.SubScope("assign_variable_op"), v.Handle, feed)})
	}
	t.ckpt = addCheckpointOps(root.SubScope("checkpoint"), t.params.Vars())
	t.exportCkpt = addCheckpointOps(root.SubScope("export"), t.model)

	g, err := root.Finalize()
	if err != nil {
		return nil, fmt.Errorf("building the %s training graph: %w", cfg.Model.Spec.Architecture, err)
	}
	t.graph = g
	if t.sess, err = tf.NewSession(g, sessionOptions(cfg.Threads, cfg.XLA)); err != nil {
		return nil, fmt.Errorf("starting a TensorFlow session: %w", err)
	}
	if err := t.initialise(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// batchSize returns the leading dimension of x as an int32 scalar.
func batchSize(s *op.Scope, x tf.Output) tf.Output {
	return op.StridedSlice(s.SubScope("strided_slice"), op.Shape(s.SubScope("shape"), x), cnst(s, []int32{0}), cnst(s, []int32{1}), cnst(s, []int32{1}),
		op.StridedSliceShrinkAxisMask(1))
}

// crossEntropy returns the per-example softmax cross-entropy against one-hot labels, smoothed
// towards the uniform distribution by smoothing. The dense op is used because its gradient is
// registered in TensorFlow's C++ gradient registry; the sparse one's is not.
func crossEntropy(s *op.Scope, logits, labels tf.Output, classes int64, smoothing float32) tf.Output {
	on, off := 1-smoothing+smoothing/float32(classes), smoothing/float32(classes)
	target := op.OneHot(s.SubScope("one_hot"), labels, cnst(s, int32(classes)), f32(s, on), f32(s, off))
	loss, _ := op.SoftmaxCrossEntropyWithLogits(s.SubScope("softmax_cross_entropy_with_logits"), logits, target)
	return loss
}

// initialise assigns every variable its seeded initial value.
func (t *Trainer) initialise() error {
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	for _, in := range t.inits {
		val, err := floatTensor(in.v.InitialValue(t.cfg.Seed), in.v.Shape)
		if err != nil {
			return err
		}
		feeds[in.feed] = val
		targets = append(targets, in.assign)
	}
	if _, err := t.sess.Run(feeds, nil, targets); err != nil {
		return fmt.Errorf("initialising variables: %w", err)
	}
	t.step = 0
	return nil
}

// Params returns the number of trainable scalars.
func (t *Trainer) Params() int64 { return t.params.Count() }

// Steps returns the number of optimizer steps taken.
func (t *Trainer) Steps() int64 { return t.step }

// Config returns the configuration the trainer was built with.
func (t *Trainer) Config() TrainConfig { return t.cfg }

// StepResult is what one training step reports.
type StepResult struct {
	Loss        float32 // mean training loss of the batch (with dropout, before the update)
	Predictions []int32 // arg-max class of each image in training mode
}

// Step runs one optimizer step on a batch: images [N,H,W,C] in 0–255 and labels [N].
func (t *Trainer) Step(b Batch, lr float32) (StepResult, error) {
	if t.sess == nil {
		return StepResult{}, ErrClosed
	}
	imgs, labels, err := b.tensors(t.cfg.Model.Input)
	if err != nil {
		return StepResult{}, err
	}
	next := t.step + 1
	b1p, b2p := t.cfg.Optimizer.BetaPowers(next)
	seed, _ := tf.NewTensor([]int64{int64(t.cfg.Seed), next})
	feeds := map[tf.Output]*tf.Tensor{
		t.images: imgs, t.labels: labels, t.seed: seed,
		t.feeds.lr: scalar(lr), t.feeds.beta1Power: scalar(b1p), t.feeds.beta2Power: scalar(b2p),
	}
	defer freeFeeds(feeds)
	out, err := t.sess.Run(feeds, []tf.Output{t.loss, t.trainPred}, []*tf.Operation{t.train})
	if err != nil {
		return StepResult{}, fmt.Errorf("training step %d: %w", next, err)
	}
	defer FreeTensor(out...)
	t.step = next
	return StepResult{Loss: TensorValue(out[0]).(float32), Predictions: TensorValue(out[1]).([]int32)}, nil
}

// Evaluation is the inference-mode output for a batch.
type Evaluation struct {
	Probabilities [][]float32 // [N][classes]
	Loss          []float32   // per-example cross-entropy (no smoothing); nil without labels
}

// Evaluate runs the inference forward pass (no dropout, moving batch-norm statistics).
// Labels may be nil, then no loss is computed.
func (t *Trainer) Evaluate(b Batch) (Evaluation, error) {
	if t.sess == nil {
		return Evaluation{}, ErrClosed
	}
	imgs, labels, err := b.tensors(t.cfg.Model.Input)
	if err != nil {
		return Evaluation{}, err
	}
	feeds := map[tf.Output]*tf.Tensor{t.images: imgs}
	fetch := []tf.Output{t.probs}
	if labels != nil {
		feeds[t.labels] = labels
		fetch = append(fetch, t.evalLoss)
	}
	defer freeFeeds(feeds)
	out, err := t.sess.Run(feeds, fetch, nil)
	if err != nil {
		return Evaluation{}, fmt.Errorf("evaluating: %w", err)
	}
	defer FreeTensor(out...)
	ev := Evaluation{Probabilities: TensorValue(out[0]).([][]float32)}
	if labels != nil {
		ev.Loss = TensorValue(out[1]).([]float32)
	}
	return ev, nil
}

// WriteGraph writes the training graph (forward, loss, gradients, optimizer, evaluation and
// checkpoint ops) to w as a binary GraphDef, for inspection with TensorFlow's tools.
func (t *Trainer) WriteGraph(w io.Writer) (int64, error) { return t.graph.WriteTo(w) }

// Close releases the session.
func (t *Trainer) Close() error {
	if t.sess == nil {
		return nil
	}
	err := t.sess.Close()
	t.sess = nil
	return err
}

func scalar(v float32) *tf.Tensor {
	t, _ := tf.NewTensor(v)
	return t
}

// floatTensor wraps flat data in a tensor of the given shape without per-element reflection.
func floatTensor(data []float32, shape []int64) (*tf.Tensor, error) {
	if len(shape) == 0 && len(data) == 1 {
		return tf.NewTensor(data[0])
	}
	if int64(len(data)) != numElements(shape) {
		return nil, fmt.Errorf("tensor of shape %v needs %d values, got %d", shape, numElements(shape), len(data))
	}
	t, err := tf.NewTensor(data)
	if err != nil {
		return nil, err
	}
	if err := t.Reshape(shape); err != nil {
		return nil, err
	}
	return t, nil
}
