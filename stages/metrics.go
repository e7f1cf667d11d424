package stages

import (
	"math"
	"slices"
	"sort"
)

// All metrics are fractions in [0, 1] (accuracy, precision, recall, F1): one convention
// everywhere, in training histories, evaluations and selection.

// Confusion is a confusion matrix: Counts[true][predicted].
type Confusion struct {
	Classes []string `json:"classes"`
	Counts  [][]int  `json:"counts"`
	// NotANumber counts, by true class, the images whose probabilities were all NaN (a model
	// that diverged): they predict no class, count as misses of their class (its support and
	// recall), and make the F1 scores NaN, as the loss is. Nil when there are none.
	NotANumber []int `json:"not_a_number,omitempty"`
}

// NewConfusion returns an empty matrix for n classes.
func NewConfusion(classes []string) *Confusion {
	c := &Confusion{Classes: classes, Counts: make([][]int, len(classes))}
	for i := range c.Counts {
		c.Counts[i] = make([]int, len(classes))
	}
	return c
}

// Add records one prediction (argmax's; -1 for probabilities that are all NaN).
func (c *Confusion) Add(truth, pred int) {
	if pred < 0 {
		if c.NotANumber == nil {
			c.NotANumber = make([]int, len(c.Classes))
		}
		c.NotANumber[truth]++
		return
	}
	c.Counts[truth][pred]++
}

// answered counts the images a class was predicted for (those whose probabilities were not
// all NaN).
func (c *Confusion) answered() int {
	n := 0
	for _, row := range c.Counts {
		for _, k := range row {
			n += k
		}
	}
	return n
}

// notANumber reports whether some image's probabilities were all NaN.
func (c *Confusion) notANumber() bool {
	return slices.ContainsFunc(c.NotANumber, func(n int) bool { return n > 0 })
}

// ClassScore is one class's precision, recall, F1 and support.
type ClassScore struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Scores returns per-class scores. A class never predicted has precision 0 (scikit-learn's
// zero_division=0), a class with no examples recall 0.
func (c *Confusion) Scores() []ClassScore {
	n := len(c.Classes)
	out := make([]ClassScore, n)
	for k := 0; k < n; k++ {
		tp := c.Counts[k][k]
		var predicted, support int
		for i := 0; i < n; i++ {
			predicted += c.Counts[i][k]
			support += c.Counts[k][i]
		}
		if c.NotANumber != nil {
			support += c.NotANumber[k] // misses: no class was predicted
		}
		s := ClassScore{Class: c.Classes[k], Support: support}
		if predicted > 0 {
			s.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			s.Recall = float64(tp) / float64(support)
		}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		out[k] = s
	}
	return out
}

// MacroF1 is the unweighted mean of per-class F1 over classes that have examples or
// predictions.
func (c *Confusion) MacroF1() float64 {
	if c.notANumber() {
		return math.NaN()
	}
	var sum float64
	var n int
	for k, s := range c.Scores() {
		if s.Support == 0 && c.predicted(k) == 0 {
			continue
		}
		sum += s.F1
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// WeightedF1 is the support-weighted mean of per-class F1.
func (c *Confusion) WeightedF1() float64 {
	if c.notANumber() {
		return math.NaN()
	}
	var sum float64
	var total int
	for _, s := range c.Scores() {
		sum += s.F1 * float64(s.Support)
		total += s.Support
	}
	if total == 0 {
		return 0
	}
	return sum / float64(total)
}

// Accuracy is the fraction on the diagonal.
func (c *Confusion) Accuracy() float64 {
	var right, total int
	for i, row := range c.Counts {
		for j, v := range row {
			total += v
			if i == j {
				right += v
			}
		}
	}
	if total == 0 {
		return 0
	}
	return float64(right) / float64(total)
}

func (c *Confusion) predicted(k int) int {
	n := 0
	for i := range c.Counts {
		n += c.Counts[i][k]
	}
	return n
}

// Confused is an off-diagonal cell.
type Confused struct {
	True      string  `json:"true"`
	Predicted string  `json:"predicted"`
	Count     int     `json:"count"`
	Rate      float64 `json:"rate"` // of the true class's examples
}

// MostConfused returns the k largest off-diagonal cells, largest first (ties by names).
func (c *Confusion) MostConfused(k int) []Confused {
	var out []Confused
	for i, row := range c.Counts {
		support := 0
		for _, v := range row {
			support += v
		}
		for j, v := range row {
			if i != j && v > 0 {
				out = append(out, Confused{True: c.Classes[i], Predicted: c.Classes[j], Count: v, Rate: float64(v) / float64(support)})
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Count != out[b].Count {
			return out[a].Count > out[b].Count
		}
		if out[a].True != out[b].True {
			return out[a].True < out[b].True
		}
		return out[a].Predicted < out[b].Predicted
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// topK reports whether label is among the k highest probabilities (ties resolved towards
// lower class indices, as a stable sort would).
func topK(probs []float32, label, k int) bool {
	p := probs[label]
	if p != p { // NaN: a diverged model is right about nothing (NaN compares below nothing)
		return false
	}
	better := 0
	for i, q := range probs {
		if q > p || (q == p && i < label) {
			better++
		}
	}
	return better < k
}

// argmax returns the index of the largest value (the first on ties), NaN values aside, or -1
// when every value is NaN: the output of a model that diverged predicts no class.
func argmax(p []float32) int {
	best := -1
	for i, v := range p {
		if v == v && (best < 0 || v > p[best]) {
			best = i
		}
	}
	return best
}
