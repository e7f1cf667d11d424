package graphs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	tf "github.com/wamuir/graft/tensorflow"

	"pipeline/pipeline/regular"
)

// Model is an exported classifier loaded for inference. It is safe for concurrent use.
type Model struct {
	Info   ModelInfo
	saved  *tf.SavedModel
	input  tf.Output
	output tf.Output
	// diverged is whether the blank image the model was loaded with got NaN probabilities:
	// its weights went to NaN in training (CheckModel refuses it; evaluation scores it).
	diverged bool
}

// LoadModel loads a SavedModel folder written by Export (or any SavedModel with the same
// signature and a model.json beside it) and answers one prediction on a blank image before
// returning it, so that a model that cannot predict (its weights deleted, say) fails here,
// with a *BrokenModelError, rather than at its first request. A named pipe or a device in the
// place of a file it reads (model.json, saved_model.pb, the weights) is refused, not read.
func LoadModel(dir string, threads int) (*Model, error) {
	broken := func(problem string, err error) error { return &BrokenModelError{Dir: dir, Problem: problem, Err: err} }
	infoFile := filepath.Join(dir, ModelInfoFile)
	read, err := ReadModelInfo(dir)
	var parse *ModelInfoParseError
	var notRegular *regular.Error
	switch {
	case errors.As(err, &parse):
		return nil, broken(ModelInfoFile+" cannot be parsed", parse.Err)
	case errors.As(err, &notRegular):
		return nil, notRegularFile(dir, notRegular)
	case err != nil:
		if _, serr := os.Stat(filepath.Join(dir, "saved_model.pb")); serr == nil {
			return nil, broken("its "+ModelInfoFile+" cannot be read", err)
		}
		return nil, fmt.Errorf("loading model %s: %w", dir, err)
	}
	info := *read
	if info.FormatVersion != modelFormatVer {
		return nil, fmt.Errorf("loading model: %s: format version %d, this build reads %d", infoFile, info.FormatVersion, modelFormatVer)
	}
	if err := info.Input.Validate(); err != nil {
		return nil, broken(ModelInfoFile+" has an invalid input", err)
	}
	// TensorFlow reads its files itself, and would wait for ever on a named pipe.
	if err := checkTFFiles(dir); err != nil {
		return nil, err
	}
	sm, err := tf.LoadSavedModel(dir, []string{ServeTag}, sessionOptions(threads, false))
	if err != nil {
		if missingWeights(dir) {
			return nil, broken("its weights are missing or incomplete (variables/)", err)
		}
		return nil, broken("TensorFlow cannot load it", err)
	}
	sig, ok := sm.Signatures[info.Signature]
	if !ok {
		sm.Session.Close()
		return nil, broken(fmt.Sprintf("it has no signature %q", info.Signature), nil)
	}
	in, ok1 := sig.Inputs[info.InputKey]
	out, ok2 := sig.Outputs[info.OutputKey]
	if !ok1 || !ok2 {
		sm.Session.Close()
		return nil, broken(fmt.Sprintf("its signature %q lacks input %q or output %q", info.Signature, info.InputKey, info.OutputKey), nil)
	}
	m := &Model{Info: info, saved: sm}
	m.input, err = outputByName(sm.Graph, in.Name)
	if err == nil {
		m.output, err = outputByName(sm.Graph, out.Name)
	}
	if err != nil {
		sm.Session.Close()
		return nil, broken("its signature names a tensor the graph lacks", err)
	}
	if err := m.warmUp(dir); err != nil {
		sm.Session.Close()
		return nil, err
	}
	return m, nil
}

// outputByName resolves "op:index" (or "op") to a graph output.
func outputByName(g *tf.Graph, name string) (tf.Output, error) {
	opName, idx := name, 0
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == ':' {
			opName = name[:i]
			if _, err := fmt.Sscanf(name[i+1:], "%d", &idx); err != nil {
				return tf.Output{}, fmt.Errorf("bad tensor name %q", name)
			}
			break
		}
	}
	o := g.Operation(opName)
	if o == nil {
		return tf.Output{}, fmt.Errorf("graph has no operation %q", opName)
	}
	return o.Output(idx), nil
}

// Predict returns class probabilities [N][classes] for images, NHWC float32 0–255 with the
// model's input size.
func (m *Model) Predict(images []float32) ([][]float32, error) {
	in := m.Info.Input
	per := int(in.Height * in.Width * in.Channels)
	if len(images) == 0 || len(images)%per != 0 {
		return nil, fmt.Errorf("predict: %d values is not a whole number of %dx%dx%d images", len(images), in.Height, in.Width, in.Channels)
	}
	t, err := floatTensor(images, []int64{int64(len(images) / per), in.Height, in.Width, in.Channels})
	if err != nil {
		return nil, err
	}
	defer FreeTensor(t)
	out, err := m.saved.Session.Run(map[tf.Output]*tf.Tensor{m.input: t}, []tf.Output{m.output}, nil)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	defer FreeTensor(out...)
	// Checked before the value is read: graft panics on types it cannot decode (float16).
	if out[0].DataType() != tf.Float || len(out[0].Shape()) != 2 {
		return nil, fmt.Errorf("predict: the model's output is %v of shape %v, not probabilities per image (float32, [images, classes])", out[0].DataType(), out[0].Shape())
	}
	return TensorValue(out[0]).([][]float32), nil
}

// Close releases the session.
func (m *Model) Close() error { return m.saved.Session.Close() }
