package graphs

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Mode says which forward pass a block builds.
type Mode int

// The two forward passes: training (dropout on, batch statistics) and inference.
const (
	Inference Mode = iota
	Training
)

// Ctx is what a block needs besides its input: the op scope, the variable path, the store the
// variables live in, the mode, and where training-only side effects are collected. Blocks are
// functions of a Ctx and their inputs; Sub gives a child with a longer path.
type Ctx struct {
	S    *op.Scope
	Path string
	P    *Params
	Mode Mode
	// Seed is an int64[2] tensor fed per training step; dropout derives its randomness from it,
	// so a step's masks depend only on (seed, step) and a resumed run repeats them exactly.
	Seed tf.Output
	// Batch is the batch size as an int32 scalar computed from the input placeholder, for ops
	// that need it without depending on the variables.
	Batch tf.Output
	fx    *effects
}

// effects is shared by all Ctx derived from one root.
type effects struct {
	updates  []*tf.Operation // run with every training step (batch-norm statistics)
	dropouts int
}

// NewCtx returns a root context.
func NewCtx(s *op.Scope, p *Params, mode Mode, seed, batch tf.Output) Ctx {
	return Ctx{S: s, P: p, Mode: mode, Seed: seed, Batch: batch, fx: &effects{}}
}

// Sub returns a child context whose ops and variables are named under name.
func (c Ctx) Sub(name string) Ctx {
	c.S = c.S.SubScope(name)
	if c.Path == "" {
		c.Path = name
	} else {
		c.Path = c.Path + "/" + name
	}
	return c
}

// Training reports whether this is the training forward pass.
func (c Ctx) Training() bool { return c.Mode == Training }

// Updates returns the ops a training step must also run (batch-norm moving statistics).
func (c Ctx) Updates() []*tf.Operation { return c.fx.updates }

// Var returns the variable called name under this context's path.
func (c Ctx) Var(name string, shape []int64, init Init, fanIn, fanOut int64) tf.Output {
	return c.P.Get(c.Path+"/"+name, shape, init, fanIn, fanOut, true).Read
}

// state returns a non-trainable variable (moving statistics).
func (c Ctx) state(name string, shape []int64, init Init) *Var {
	return c.P.Get(c.Path+"/"+name, shape, init, 0, 0, false)
}

func (c Ctx) addUpdate(o *tf.Operation) { c.fx.updates = append(c.fx.updates, o) }

func (c Ctx) nextDropout() int64 {
	c.fx.dropouts++
	return int64(c.fx.dropouts)
}

// graft's Scope names an op after its type and does not make names unique, so two ops of one
// type in one scope collide. Every op here is therefore created in its own sub-scope, which
// SubScope does make unique ("mul", "mul_1", ...).

// cnst adds a constant in a fresh sub-scope of s.
func cnst(s *op.Scope, v any) tf.Output { return op.Const(s.SubScope("const"), v) }

// f32 adds a float32 scalar constant.
func f32(s *op.Scope, v float32) tf.Output { return cnst(s, v) }
