package graphs

import "testing"

func TestSmoke(t *testing.T) {
	for _, arch := range []Spec{
		{Architecture: "cnn", CNN: &CNN{Channels: []int64{8, 16}, Dropout: 0.1, Pool: 2, Dense: 32, DenseDropout: 0.1}},
		{Architecture: "vgg19", VGG19: &VGG19{Width: 0.125, Classifier: 32, Pool: 1, BatchNorm: true, Dropout: 0.1}},
		{Architecture: "vit", ViT: &ViT{Patch: 4, Dim: 16, Depth: 2, Heads: 2, MLPRatio: 2, Pool: "cls", Dropout: 0.1}},
	} {
		in := Input{Height: 16, Width: 16, Channels: 3, Mean: []float32{100, 100, 100}, Std: []float32{80, 80, 80}}
		tr, err := NewTrainer(TrainConfig{Model: Classifier{Spec: arch, Input: in, Classes: 4}, Optimizer: DefaultOptimizer(), Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		data := Synthetic(64, 4, 16, 16, 3, 1)
		for i := 0; i < 20; i++ {
			r, err := tr.Step(data.Slice(in, (i%4)*16, (i%4+1)*16), 3e-3)
			if err != nil {
				t.Fatal(err)
			}
			if i%5 == 0 {
				t.Logf("%s step %d loss %.4f", arch.Architecture, i, r.Loss)
			}
		}
		t.Logf("%s params %d", arch.Architecture, tr.Params())
		tr.Close()
	}
}
