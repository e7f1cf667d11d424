package graphs

import (
	"path/filepath"
	"strings"
	"testing"
)

func tinyInput(size, channels int64) Input {
	in := Input{Height: size, Width: size, Channels: channels}
	for i := int64(0); i < channels; i++ {
		in.Mean = append(in.Mean, 90)
		in.Std = append(in.Std, 80)
	}
	return in
}

func newTiny(t *testing.T, spec Spec, in Input, classes int64, seed uint64) *Trainer {
	t.Helper()
	tr, err := NewTrainer(TrainConfig{
		Model:     Classifier{Spec: spec, Input: in, Classes: classes},
		Optimizer: Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7},
		Seed:      seed,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestArchitecturesLearn trains each architecture at a tiny size on a fixed synthetic problem:
// the training loss must at least halve and held-out accuracy reach 90 %.
func TestArchitecturesLearn(t *testing.T) {
	const classes, batch, steps = 6, 32, 150
	in := tinyInput(16, 3)
	train := Synthetic(batch*20, classes, 16, 16, 3, 42)
	test := Synthetic(256, classes, 16, 16, 3, 43)
	for _, spec := range tinySpecs() {
		t.Run(spec.Architecture, func(t *testing.T) {
			tr := newTiny(t, spec, in, classes, 42)
			var first, last float32
			for i := 0; i < steps; i++ {
				lo := (i * batch) % train.Len(in)
				r, err := tr.Step(train.Slice(in, lo, lo+batch), 2e-3)
				if err != nil {
					t.Fatal(err)
				}
				if i < 5 {
					first += r.Loss / 5
				}
				if i >= steps-10 {
					last += r.Loss / 10
				}
			}
			ev, err := tr.Evaluate(test)
			if err != nil {
				t.Fatal(err)
			}
			acc := accuracy(ev.Probabilities, test.Labels)
			t.Logf("loss %.3f → %.3f, test accuracy %.1f%%", first, last, 100*acc)
			if !(last <= first/2) {
				t.Errorf("training loss went from %.3f to %.3f; want at least halved", first, last)
			}
			if acc < 0.9 {
				t.Errorf("test accuracy %.1f%%, want ≥ 90%%", 100*acc)
			}
		})
	}
}

func accuracy(probs [][]float32, labels []int32) float64 {
	correct := 0
	for i, p := range probs {
		best := 0
		for j := range p {
			if p[j] > p[best] {
				best = j
			}
		}
		if best == int(labels[i]) {
			correct++
		}
	}
	return float64(correct) / float64(len(labels))
}

// lossTrace runs k steps and returns the losses.
func lossTrace(t *testing.T, tr *Trainer, data Batch, in Input, k int) []float32 {
	t.Helper()
	var out []float32
	for i := 0; i < k; i++ {
		lo := (i * 8) % data.Len(in)
		r, err := tr.Step(data.Slice(in, lo, lo+8), 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Loss)
	}
	return out
}

// TestSameSeedSameRun checks that initial weights and the losses of the first steps (dropout
// included) depend only on the seed.
func TestSameSeedSameRun(t *testing.T) {
	in := tinyInput(16, 3)
	data := Synthetic(32, 4, 16, 16, 3, 1)
	for _, spec := range tinySpecs() {
		t.Run(spec.Architecture, func(t *testing.T) {
			a := lossTrace(t, newTiny(t, spec, in, 4, 7), data, in, 4)
			b := lossTrace(t, newTiny(t, spec, in, 4, 7), data, in, 4)
			c := lossTrace(t, newTiny(t, spec, in, 4, 8), data, in, 4)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("same seed, step %d: loss %v vs %v", i+1, a[i], b[i])
				}
			}
			if a[0] == c[0] {
				t.Fatalf("seeds 7 and 8 gave the same first loss %v", a[0])
			}
		})
	}
}

// TestInitialWeightsDependOnSeedAndName checks the initialiser directly.
func TestInitialWeightsDependOnSeedAndName(t *testing.T) {
	v := &Var{Name: "block1/conv/kernel", Shape: []int64{3, 3, 3, 8}, Init: GlorotUniform, FanIn: 27, FanOut: 72}
	w := &Var{Name: "block2/conv/kernel", Shape: v.Shape, Init: GlorotUniform, FanIn: 27, FanOut: 72}
	a, b, c, d := v.InitialValue(1), v.InitialValue(1), v.InitialValue(2), w.InitialValue(1)
	limit := float32(0.25) // sqrt(6/(27+72))
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed and name gave different values")
		}
		if a[i] < -limit || a[i] > limit {
			t.Fatalf("value %v outside the Glorot limit ±%v", a[i], limit)
		}
	}
	if a[0] == c[0] || a[0] == d[0] {
		t.Fatal("initial values do not depend on the seed and the variable name")
	}
}

// TestResumeMatchesUninterrupted saves a checkpoint mid-way, restores it into a fresh trainer
// and checks the continued run is identical to one that never stopped.
func TestResumeMatchesUninterrupted(t *testing.T) {
	in := tinyInput(16, 3)
	data := Synthetic(64, 4, 16, 16, 3, 2)
	spec := tinySpecs()[0]
	straight := lossTrace(t, newTiny(t, spec, in, 4, 5), data, in, 6)

	first := newTiny(t, spec, in, 4, 5)
	lossTrace(t, first, data, in, 3)
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := first.Save(prefix); err != nil {
		t.Fatal(err)
	}
	// The configuration (seed included) is the same; weights, statistics, optimizer slots and
	// step count must come from the checkpoint. A fresh trainer's loss shows they matter.
	resumed := newTiny(t, spec, in, 4, 5)
	fresh, err := newTiny(t, spec, in, 4, 5).Step(data.Slice(in, 24, 32), 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Loss == straight[3] {
		t.Fatal("a fresh trainer reproduces step 4; the test cannot tell whether Restore works")
	}
	if err := resumed.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != 3 {
		t.Fatalf("restored step count %d, want 3", resumed.Steps())
	}
	// Steps 4–6 use data offsets 24, 32, 40 as in the straight run.
	var rest []float32
	for i := 3; i < 6; i++ {
		r, err := resumed.Step(data.Slice(in, i*8, i*8+8), 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, r.Loss)
	}
	for i, l := range rest {
		if l != straight[3+i] {
			t.Fatalf("step %d after resume: loss %v, uninterrupted %v", 4+i, l, straight[3+i])
		}
	}
}

// TestInputVariants builds each architecture for grey and colour input, odd sizes and many
// classes, and checks the output shape.
func TestInputVariants(t *testing.T) {
	cases := []struct {
		spec              Spec
		size, ch, classes int64
	}{
		{tinySpecs()[0], 28, 1, 10}, // Fashion-MNIST shape: 28 → 14 → 7 → 4 with SAME pooling
		{tinySpecs()[0], 17, 3, 43},
		{tinySpecs()[1], 20, 1, 3},
		{tinySpecs()[2], 28, 1, 10}, // 4×4 patches of 28×28
		{Spec{Architecture: "vit", ViT: &ViT{Patch: 4, Dim: 8, Depth: 1, Heads: 2, MLPRatio: 1, Pool: "mean"}}, 12, 3, 43},
	}
	for _, tc := range cases {
		in := tinyInput(tc.size, tc.ch)
		tr := newTiny(t, tc.spec, in, tc.classes, 1)
		data := Synthetic(5, tc.classes, tc.size, tc.size, tc.ch, 1)
		if _, err := tr.Step(data, 1e-3); err != nil {
			t.Fatalf("%s %dx%dx%d: %v", tc.spec.Architecture, tc.size, tc.size, tc.ch, err)
		}
		ev, err := tr.Evaluate(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Probabilities) != 5 || len(ev.Probabilities[0]) != int(tc.classes) {
			t.Fatalf("%s: probabilities %dx%d, want 5x%d", tc.spec.Architecture, len(ev.Probabilities), len(ev.Probabilities[0]), tc.classes)
		}
		var sum float32
		for _, p := range ev.Probabilities[0] {
			sum += p
		}
		if sum < 0.999 || sum > 1.001 {
			t.Fatalf("%s: probabilities sum to %v", tc.spec.Architecture, sum)
		}
	}
}

// TestConfigErrors checks that impossible configurations are refused with a message naming
// the problem, before any graph is built.
func TestConfigErrors(t *testing.T) {
	good := Classifier{Spec: tinySpecs()[0], Input: tinyInput(16, 3), Classes: 4}
	cases := []struct {
		name string
		edit func(*TrainConfig)
		want string
	}{
		{"unknown architecture", func(c *TrainConfig) { c.Model.Spec = Spec{Architecture: "resnet"} }, `unknown architecture "resnet"`},
		{"patch does not divide", func(c *TrainConfig) {
			c.Model.Spec = Spec{Architecture: "vit", ViT: &ViT{Patch: 5, Dim: 8, Depth: 1, Heads: 2, MLPRatio: 1, Pool: "cls"}}
		}, "not divisible into 5x5 patches"},
		{"heads do not divide", func(c *TrainConfig) {
			c.Model.Spec = Spec{Architecture: "vit", ViT: &ViT{Patch: 4, Dim: 10, Depth: 1, Heads: 3, MLPRatio: 1, Pool: "cls"}}
		}, "not divisible by heads 3"},
		{"one class", func(c *TrainConfig) { c.Model.Classes = 1 }, "at least 2"},
		{"two channels", func(c *TrainConfig) { c.Model.Input.Channels = 2 }, "must be 1 (grey) or 3 (RGB)"},
		{"zero std", func(c *TrainConfig) { c.Model.Input.Std = []float32{1, 0, 1} }, "std[1]"},
		{"bad optimizer", func(c *TrainConfig) { c.Optimizer.Name = "sgd" }, `unknown optimizer "sgd"`},
		{"adam with decay", func(c *TrainConfig) {
			c.Optimizer = Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7, WeightDecay: 1e-4}
		}, "use adamw"},
		{"dropout 1", func(c *TrainConfig) {
			c.Model.Spec = Spec{Architecture: "cnn", CNN: &CNN{Channels: []int64{4}, Dropout: 1, Pool: 2, Dense: 4}}
		}, "dropout 1 must be in [0, 1)"},
		{"smoothing", func(c *TrainConfig) { c.LabelSmoothing = 1 }, "label smoothing"},
	}
	for _, tc := range cases {
		cfg := TrainConfig{Model: good, Optimizer: DefaultOptimizer(), Seed: 1}
		tc.edit(&cfg)
		_, err := NewTrainer(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
