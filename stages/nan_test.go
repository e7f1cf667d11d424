package stages

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// A diverged model gives NaN probabilities: it is right about nothing, its prediction is a
// class with a number or none at all, which makes the F1 scores NaN (so that select's gate
// refuses the model), and what records it still writes as JSON.
func TestNaNProbabilitiesCountAsWrong(t *testing.T) {
	nan := float32(math.NaN())
	if topK([]float32{nan, nan, nan}, 1, 3) || topK([]float32{0.2, nan, 0.5}, 1, 3) {
		t.Fatal("a NaN probability counted as a hit")
	}
	if !topK([]float32{0.2, nan, 0.5}, 2, 1) {
		t.Fatal("a real top-1 next to a NaN was missed")
	}
	if got := argmax([]float32{nan, 0.1, 0.7, nan}); got != 2 {
		t.Fatalf("argmax with NaNs = %d, want 2", got)
	}
	c := NewConfusion([]string{"a", "b"})
	c.Add(0, argmax([]float32{0.9, 0.1}))
	c.Add(1, argmax([]float32{0.2, 0.8}))
	c.Add(1, argmax([]float32{nan, nan}))
	cb := c.Scores()[1]
	if !slices.Equal(c.NotANumber, []int{0, 1}) || c.Counts[1][0] != 0 || cb.Support != 2 || cb.Recall != 0.5 || !math.IsNaN(c.MacroF1()) || !math.IsNaN(c.WeightedF1()) {
		t.Fatalf("a prediction of all NaN: %+v, class b %+v, macro F1 %g, weighted %g; want it a miss of b, apart from the matrix, and the F1 scores NaN", c, cb, c.MacroF1(), c.WeightedF1())
	}
	b, err := json.Marshal(Misclassified{Confidence: metric(nan)})
	if err != nil || !strings.Contains(string(b), `"confidence":null`) {
		t.Fatalf("%s, %v", b, err)
	}
}

// An infinite validation loss is no loss to compare: the plateau rule ignores it, and the
// schedule (saved in the resume state) stays JSON.
func TestInfiniteValidationLossLeavesThePlateauRule(t *testing.T) {
	s := &schedule{Kind: SchedulePlateau, Patience: 1, Factor: 0.1, Base: 1, Scale: 1}
	s.endEpoch(1.0)
	s.endEpoch(math.Inf(1))
	if s.BestLoss != 1 || s.BadEpochs != 0 {
		t.Fatalf("after +Inf: best %v, bad epochs %d", s.BestLoss, s.BadEpochs)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	fresh := &schedule{Kind: SchedulePlateau, Patience: 1, Factor: 0.1, Base: 1, Scale: 1}
	fresh.endEpoch(math.Inf(1))
	if _, err := json.Marshal(fresh); err != nil || fresh.HaveBestValue {
		t.Fatalf("+Inf first: %+v, %v", fresh, err)
	}
}

// A resume state that cannot be used as a whole is not used at all: training starts over
// rather than resume from fresh weights as if epochs were done.
func TestUnusableResumeStateStartsOver(t *testing.T) {
	dir := t.TempDir()
	good := `{"epoch":2,"history":[{"epoch":1},{"epoch":2}],"best_epoch":2,"best_dir":"best-2","schedule":{"kind":"plateau"},"mean":[1],"std":[2]}`
	os.WriteFile(filepath.Join(dir, "ckpt-2.state.json"), []byte(`{"step":10}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "best-2", "saved_model"), 0o755)
	var log strings.Builder
	job := &pipeline.Job{Log: &log}
	for name, c := range map[string]struct {
		state string
		ok    bool
	}{
		"whole":              {good, true},
		"wrong type":         {strings.Replace(good, `"epoch":2,`, `"epoch":"2",`, 1), false},
		"no schedule":        {strings.Replace(good, `"schedule":{"kind":"plateau"},`, ``, 1), false},
		"short history":      {strings.Replace(good, `{"epoch":1},`, ``, 1), false},
		"other channels":     {strings.Replace(good, `"mean":[1]`, `"mean":[1,1,1]`, 1), false},
		"missing checkpoint": {strings.Replace(strings.Replace(good, `"epoch":2,"history"`, `"epoch":1,"history"`, 1), `{"epoch":1},{"epoch":2}`, `{"epoch":1}`, 1), false},
	} {
		path := filepath.Join(dir, "state.json")
		os.WriteFile(path, []byte(c.state), 0o644)
		st, ok := readTrainState(job, path, 1)
		if ok != c.ok || !ok && (st.Epoch != 0 || st.History != nil) {
			t.Errorf("%s: resumed %v at epoch %d, want %v\n%s", name, ok, st.Epoch, c.ok, log.String())
		}
	}
}

// Evaluate warns of a model that answered NaN, saying for how many test images, and says
// nothing of one that answered numbers for all.
func TestEvaluateWarnsOfNaNAnswers(t *testing.T) {
	c := NewConfusion([]string{"a", "b"})
	c.Add(0, 0)
	if w := notANumberWarning("cnn", c, 1); w != "" {
		t.Fatalf("a model that answered numbers: %q", w)
	}
	c.Add(1, -1)
	c.Add(1, -1)
	if w := notANumberWarning("cnn", c, 3); !strings.Contains(w, "cnn answered NaN (not a number) for 2 of the 3 test images: its training diverged") {
		t.Fatalf("a model that answered NaN for 2 images: %q", w)
	}
	if c.answered() != 1 {
		t.Fatalf("answered %d, want 1", c.answered())
	}
}

// A training whose loss became NaN (or infinite) and stayed so is said to have diverged from
// that epoch; one whose last loss is a number is not.
func TestDivergedSince(t *testing.T) {
	nan, inf := metric(math.NaN()), metric(math.Inf(1))
	for _, c := range []struct {
		losses []metric
		want   int
	}{
		{[]metric{1.2, 0.8}, 0},
		{[]metric{nan, nan}, 1},
		{[]metric{1.2, 0.8, inf, nan}, 3},
		{[]metric{nan, 0.9}, 0},
		{nil, 0},
	} {
		var h []EpochRecord
		for i, l := range c.losses {
			h = append(h, EpochRecord{Epoch: i + 1, TrainLoss: l})
		}
		if got := divergedSince(h); got != c.want {
			t.Errorf("losses %v: diverged since %d, want %d", c.losses, got, c.want)
		}
	}
}
