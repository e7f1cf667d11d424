package stages

import (
	"fmt"
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestConfusionMetricsByHand checks the metrics against a matrix worked out on paper,
// including class c, which is never predicted, and class d, which has no examples but is
// predicted once.
func TestConfusionMetricsByHand(t *testing.T) {
	c := NewConfusion([]string{"a", "b", "c", "d"})
	// true a: 3 right, 1 → b        true b: 2 right, 1 → a
	// true c: 1 → a, 1 → b, 1 → d   (never predicted as c)
	pairs := [][2]int{{0, 0}, {0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {1, 0}, {2, 0}, {2, 1}, {2, 3}}
	for _, p := range pairs {
		c.Add(p[0], p[1])
	}
	s := c.Scores()
	// a: predicted 5 (3 right) → P 3/5, R 3/4, F1 2·0.6·0.75/1.35 = 2/3
	// b: predicted 4 (2 right) → P 1/2, R 2/3, F1 2·(1/2)(2/3)/(7/6) = 4/7
	// c: predicted 0 → P 0, R 0, F1 0;  d: predicted 1, support 0 → P 0, R 0, F1 0
	want := []struct{ p, r, f float64 }{{0.6, 0.75, 2.0 / 3}, {0.5, 2.0 / 3, 4.0 / 7}, {0, 0, 0}, {0, 0, 0}}
	for i, w := range want {
		if !near(s[i].Precision, w.p) || !near(s[i].Recall, w.r) || !near(s[i].F1, w.f) {
			t.Errorf("%s: P %.4f R %.4f F1 %.4f, want %.4f %.4f %.4f", s[i].Class, s[i].Precision, s[i].Recall, s[i].F1, w.p, w.r, w.f)
		}
	}
	if s[3].Support != 0 || s[2].Support != 3 {
		t.Errorf("supports %d %d", s[2].Support, s[3].Support)
	}
	// Macro over a, b, c, d (d counts: it was predicted): (2/3 + 4/7 + 0 + 0) / 4.
	if got, want := c.MacroF1(), (2.0/3+4.0/7)/4; !near(got, want) {
		t.Errorf("macro F1 %.6f, want %.6f", got, want)
	}
	// Weighted by support 4, 3, 3, 0 over 10.
	if got, want := c.WeightedF1(), (4*(2.0/3)+3*(4.0/7))/10; !near(got, want) {
		t.Errorf("weighted F1 %.6f, want %.6f", got, want)
	}
	if got := c.Accuracy(); !near(got, 0.5) {
		t.Errorf("accuracy %.3f, want 0.5", got)
	}
	mc := c.MostConfused(2)
	if len(mc) != 2 || mc[0].Count != 1 || mc[0].True != "a" || mc[0].Predicted != "b" {
		t.Errorf("most confused %+v", mc)
	}
}

func TestTopK(t *testing.T) {
	p := []float32{0.1, 0.4, 0.2, 0.3}
	cases := []struct {
		label, k int
		want     bool
	}{{1, 1, true}, {3, 1, false}, {3, 2, true}, {0, 3, false}, {0, 4, true}}
	for _, c := range cases {
		if got := topK(p, c.label, c.k); got != c.want {
			t.Errorf("topK(label %d, k %d) = %v", c.label, c.k, got)
		}
	}
	// Ties count the lower index first.
	if !topK([]float32{0.5, 0.5}, 0, 1) || topK([]float32{0.5, 0.5}, 1, 1) {
		t.Error("tie handling")
	}
}

func TestScheduleShapes(t *testing.T) {
	s, _ := newSchedule(ScheduleCosine, 1, 10, 110, 0.1, 5)
	if !near(s.rate(0), 0.1) || !near(s.rate(9), 1) || !near(s.rate(10), 1) || !near(s.rate(60), 0.5) || s.rate(109) > 0.001 {
		t.Errorf("cosine: %v %v %v %v %v", s.rate(0), s.rate(9), s.rate(10), s.rate(60), s.rate(109))
	}
	p, _ := newSchedule(SchedulePlateau, 1, 0, 100, 0.1, 2)
	losses := []float64{1, 0.9, 0.95, 0.91, 0.92, 0.93}
	reduced := 0
	for _, l := range losses {
		if p.endEpoch(l) {
			reduced++
		}
	}
	// Best 0.9 at epoch 2; epochs 3, 4, 5 do not improve; patience 2 → reduce after the third.
	if reduced != 1 || !near(p.rate(0), 0.1) {
		t.Errorf("plateau: %d reductions, rate %v", reduced, p.rate(0))
	}
}

// A plateau reduction's log line gives the new learning rate as well as the factor, and says
// when a warm-up still in progress reaches it only at its end.
func TestPlateauReductionSaysTheNewRate(t *testing.T) {
	p, _ := newSchedule(SchedulePlateau, 1e-3, 20, 100, 0.1, 1)
	var notes []string
	for epoch, l := range []float64{1, 1, 1, 1, 1} {
		if p.endEpoch(l) {
			notes = append(notes, p.reducedNote((epoch+1)*10))
		}
	}
	want := []string{
		"validation loss has not improved for 2 epochs: learning rate ×0.1, now 0.0001",
		"validation loss has not improved for 2 epochs: learning rate ×0.1, now 1e-05",
	}
	if fmt.Sprint(notes) != fmt.Sprint(want) {
		t.Errorf("notes %q, want %q", notes, want)
	}
	if got := p.reducedNote(10); got != want[1]+" once warmed up" {
		t.Errorf("during warm-up: %q", got)
	}
}

// The plateau schedule lowers the rate after epoch patience + 2 at the earliest (the first
// epoch sets the best loss, and patience + 1 more without improvement follow), the boundary
// validate's warning of a patience the training is too short to reach relies on.
func TestPlateauFirstReductionEpoch(t *testing.T) {
	for patience := 0; patience < 4; patience++ {
		p, _ := newSchedule(SchedulePlateau, 1, 0, 100, 0.1, patience)
		first := 0
		for epoch := 1; epoch <= 10 && first == 0; epoch++ {
			if p.endEpoch(1) {
				first = epoch
			}
		}
		if first != patience+2 {
			t.Errorf("patience %d: first reduction after epoch %d, want %d", patience, first, patience+2)
		}
	}
}
