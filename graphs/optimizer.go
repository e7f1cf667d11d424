package graphs

import (
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Optimizer configures Adam or AdamW. The learning rate is not part of it: it is fed per step,
// so any schedule is the caller's choice.
type Optimizer struct {
	Name        string  `json:"name"` // "adam" or "adamw"
	Beta1       float32 `json:"beta1"`
	Beta2       float32 `json:"beta2"`
	Epsilon     float32 `json:"epsilon"`
	WeightDecay float32 `json:"weight_decay"` // decoupled; adamw only
}

// DefaultOptimizer returns AdamW with the original system's settings (β 0.9/0.999, ε 1e-7 as
// Keras, weight decay 1e-4).
func DefaultOptimizer() Optimizer {
	return Optimizer{Name: "adamw", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7, WeightDecay: 1e-4}
}

// Validate checks the optimizer settings.
func (o Optimizer) Validate() error {
	switch o.Name {
	case "adam":
		if o.WeightDecay != 0 {
			return fmt.Errorf("optimizer adam has no weight decay (got %g); use adamw", o.WeightDecay)
		}
	case "adamw":
	default:
		return fmt.Errorf("unknown optimizer %q: use \"adam\" or \"adamw\"", o.Name)
	}
	if !(o.Beta1 >= 0 && o.Beta1 < 1 && o.Beta2 >= 0 && o.Beta2 < 1) {
		return fmt.Errorf("optimizer betas %g, %g must be in [0, 1)", o.Beta1, o.Beta2)
	}
	if !(o.Epsilon > 0) || o.WeightDecay < 0 {
		return fmt.Errorf("optimizer epsilon (%g) must be positive and weight decay (%g) not negative", o.Epsilon, o.WeightDecay)
	}
	return nil
}

// BetaPowers returns β1^t and β2^t for step t (1-based), fed to the update each step.
func (o Optimizer) BetaPowers(t int64) (float32, float32) {
	return float32(math.Pow(float64(o.Beta1), float64(t))), float32(math.Pow(float64(o.Beta2), float64(t)))
}

// optimizerFeeds are the per-step scalars the update reads.
type optimizerFeeds struct {
	lr, beta1Power, beta2Power tf.Output
}

// applyOptimizer adds one update op per trainable variable and returns an op that groups them.
// AdamW's decay (v ← v − lr·wd·v, as Keras and PyTorch do it) runs before the Adam step.
func applyOptimizer(s *op.Scope, p *Params, vars []*Var, grads []tf.Output, o Optimizer, f optimizerFeeds) *tf.Operation {
	var updates []*tf.Operation
	b1, b2, eps := f32(s, o.Beta1), f32(s, o.Beta2), f32(s, o.Epsilon)
	for i, v := range vars {
		vs := s.SubScope(sanitize(v.Name))
		m := p.Get(v.Name+"/adam_m", v.Shape, Zeros, 0, 0, false)
		u := p.Get(v.Name+"/adam_v", v.Shape, Zeros, 0, 0, false)
		us := vs
		if o.Name == "adamw" && o.WeightDecay > 0 {
			decay := op.AssignSubVariableOp(vs.SubScope("assign_sub_variable_op"), v.Handle, op.Mul(vs.SubScope("mul"), v.Read, op.Mul(vs.SubScope("mul"), f.lr, f32(vs, o.WeightDecay))))
			us = vs.WithControlDependencies(decay)
		}
		updates = append(updates, op.ResourceApplyAdam(us.SubScope("resource_apply_adam"), v.Handle, m.Handle, u.Handle, f.beta1Power, f.beta2Power, f.lr, b1, b2, eps, grads[i]))
	}
	return op.NoOp(s.WithControlDependencies(updates...))
}
