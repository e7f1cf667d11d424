package graphs

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSavedModelLoadsInPython exports each architecture and checks that Python's
// tf.saved_model.load gives the training session's probabilities. It needs a Python with the
// same tensorflow-cpu (PIPELINE_PYTHON; `make test` provides one from tools/python-env.sh).
func TestSavedModelLoadsInPython(t *testing.T) {
	py := os.Getenv("PIPELINE_PYTHON")
	if py == "" {
		t.Skip("PIPELINE_PYTHON is not set; `make test` sets it to the venv from tools/python-env.sh")
	}
	script, err := filepath.Abs("../tools/savedmodel_predict.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range tinySpecs() {
		t.Run(spec.Architecture, func(t *testing.T) {
			in := Input{Height: 16, Width: 16, Channels: 3, Mean: []float32{100, 110, 120}, Std: []float32{60, 70, 80}}
			tr, err := NewTrainer(TrainConfig{Model: Classifier{Spec: spec, Input: in, Classes: 4}, Optimizer: DefaultOptimizer(), Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			data := Synthetic(24, 4, 16, 16, 3, 5)
			for i := 0; i < 3; i++ {
				if _, err := tr.Step(data.Slice(in, 0, 16), 1e-3); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(t.TempDir(), "model")
			if err := tr.Export(dir, []string{"w", "x", "y", "z"}, "center_crop"); err != nil {
				t.Fatal(err)
			}
			want, err := tr.Evaluate(Batch{Images: data.Images})
			if err != nil {
				t.Fatal(err)
			}
			raw := filepath.Join(t.TempDir(), "images.f32")
			f, err := os.Create(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := binary.Write(f, binary.LittleEndian, data.Images); err != nil {
				t.Fatal(err)
			}
			f.Close()
			cmd := exec.Command(py, script, dir, raw, fmt.Sprint(len(data.Labels)), "16", "16", "3")
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python could not load the SavedModel: %v", err)
			}
			var res struct {
				TensorFlow    string      `json:"tensorflow"`
				Probabilities [][]float32 `json:"probabilities"`
				Variables     int         `json:"variables"`
				TFLite        [][]float32 `json:"tflite_probabilities"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("python output: %v\n%s", err, out)
			}
			if len(res.Probabilities) != len(want.Probabilities) {
				t.Fatalf("python returned %d rows, want %d", len(res.Probabilities), len(want.Probabilities))
			}
			var maxd float64
			for i := range want.Probabilities {
				for j := range want.Probabilities[i] {
					maxd = math.Max(maxd, math.Abs(float64(res.Probabilities[i][j]-want.Probabilities[i][j])))
				}
			}
			if maxd > 1e-5 {
				t.Fatalf("python (tensorflow %s) differs from the Go session by %g", res.TensorFlow, maxd)
			}
			// Python sees the weights as variables (to inspect, fine-tune or save again),
			// and the TFLite converter finds them and gives the same answers.
			if n := len(tr.model); res.Variables != n {
				t.Errorf("python sees %d variables, the model has %d", res.Variables, n)
			}
			if len(res.TFLite) != len(want.Probabilities) {
				t.Fatalf("TFLite returned %d rows, want %d", len(res.TFLite), len(want.Probabilities))
			}
			maxd = 0
			for i := range want.Probabilities {
				for j := range want.Probabilities[i] {
					maxd = math.Max(maxd, math.Abs(float64(res.TFLite[i][j]-want.Probabilities[i][j])))
				}
			}
			if maxd > 1e-4 {
				t.Errorf("the TFLite conversion differs from the Go session by %g", maxd)
			}
		})
	}
}
