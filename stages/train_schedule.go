package stages

import (
	"fmt"
	"math"
)

// Learning-rate schedules.
const (
	ScheduleConstant = "constant"
	ScheduleCosine   = "cosine"  // half-cosine decay to 0 over the training steps after warm-up
	SchedulePlateau  = "plateau" // ×factor when val loss has not improved for patience epochs
)

// schedule computes the learning rate of every step. Its state (plateau bookkeeping) is part
// of training checkpoints, so a resumed run continues the same curve.
type schedule struct {
	Kind          string  `json:"kind"`
	Base          float64 `json:"base"`
	WarmupSteps   int     `json:"warmup_steps"`
	TotalSteps    int     `json:"total_steps"`
	Factor        float64 `json:"factor"`
	Patience      int     `json:"patience"`
	Scale         float64 `json:"scale"` // plateau: current multiplier
	BestLoss      float64 `json:"best_loss"`
	BadEpochs     int     `json:"bad_epochs"`
	Reductions    int     `json:"reductions"`
	HaveBestValue bool    `json:"have_best"`
}

func newSchedule(kind string, base float64, warmupSteps, totalSteps int, factor float64, patience int) (*schedule, error) {
	switch kind {
	case ScheduleConstant, ScheduleCosine, SchedulePlateau:
	default:
		return nil, fmt.Errorf("unknown schedule %q", kind)
	}
	return &schedule{Kind: kind, Base: base, WarmupSteps: warmupSteps, TotalSteps: totalSteps, Factor: factor, Patience: patience, Scale: 1}, nil
}

// rate returns the learning rate of step (0-based, counted over the whole run).
func (s *schedule) rate(step int) float64 {
	lr := s.Base * s.Scale
	if s.WarmupSteps > 0 && step < s.WarmupSteps {
		return lr * float64(step+1) / float64(s.WarmupSteps)
	}
	if s.Kind == ScheduleCosine {
		span := s.TotalSteps - s.WarmupSteps
		if span > 0 {
			t := float64(step-s.WarmupSteps) / float64(span)
			lr *= 0.5 * (1 + math.Cos(math.Pi*math.Min(1, t)))
		}
	}
	return lr
}

// endEpoch feeds the epoch's validation loss to the plateau rule; it reports whether the
// rate was reduced.
func (s *schedule) endEpoch(valLoss float64) bool {
	if s.Kind != SchedulePlateau || math.IsNaN(valLoss) || math.IsInf(valLoss, 0) { // not a loss to compare
		return false
	}
	// An improvement must beat the best by a relative 1e-4 (PyTorch's default threshold).
	if !s.HaveBestValue || valLoss < s.BestLoss*(1-1e-4) {
		s.BestLoss, s.HaveBestValue, s.BadEpochs = valLoss, true, 0
		return false
	}
	s.BadEpochs++
	if s.BadEpochs > s.Patience {
		s.Scale *= s.Factor
		s.Reductions++
		s.BadEpochs = 0
		return true
	}
	return false
}

// reducedNote says the plateau reduction endEpoch just reported: for how many epochs the
// validation loss has not improved, the factor, and the learning rate it leaves from step
// (the next epoch's first), which a warm-up still in progress reaches only at its end.
func (s *schedule) reducedNote(step int) string {
	note := fmt.Sprintf("validation loss has not improved for %s: learning rate ×%g, now %.3g",
		plural(s.Patience+1, "epoch", "epochs"), s.Factor, s.Base*s.Scale)
	if step < s.WarmupSteps {
		note += " once warmed up"
	}
	return note
}
