package graphs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pipeline/pipeline/regular"
)

// BrokenModelError is LoadModel's error for a folder that holds a model which cannot answer:
// its model.json cannot be read, TensorFlow cannot load it, its weights (variables/) are
// missing, or it fails on a blank image. TensorFlow loads a SavedModel whose variables/ folder
// is gone without a word and fails only at the first prediction, so LoadModel makes one.
type BrokenModelError struct {
	Dir     string // the SavedModel folder
	Problem string // what is wrong with it, in words
	Err     error  // the error behind Problem, when it adds to it (TensorFlow's), else nil
}

func (e *BrokenModelError) Error() string {
	msg := fmt.Sprintf("model %s is broken: %s", e.Dir, e.Problem)
	if e.Err != nil {
		if said := tfMessage(e.Err); said != "" {
			msg += ": " + said
		}
	}
	return msg
}

// Unwrap returns the error behind the problem.
func (e *BrokenModelError) Unwrap() error { return e.Err }

// ErrDiverged is behind CheckModel's error for a model that answers NaN: its weights went to
// NaN in training (errors.Is).
var ErrDiverged = errors.New("the model's weights are not numbers")

// CheckModel reports whether the SavedModel folder dir (written by Export) can be served: it
// loads it, as LoadModel does, which answers one prediction on a blank image of the model's
// input size, and releases it. The error is a *BrokenModelError for a model that is there but
// damaged, or that answers NaN (not a number: its training diverged). Promotion calls it
// before a model becomes the champion.
func CheckModel(dir string) error {
	m, err := LoadModel(dir, 1)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.diverged { // seen by the blank image LoadModel answered
		return &BrokenModelError{Dir: dir, Problem: "it answers NaN (not a number): its training diverged", Err: ErrDiverged}
	}
	return nil
}

// CheckFiles reports, without loading it, a SavedModel folder written by Export whose files
// are missing or unreadable: model.json (read and parsed), saved_model.pb, or its weights
// (variables/), a named pipe or a device in the place of one of them included (none is
// read). It is what can be checked of a model cheaply, where loading it each time would cost
// too much, and needs no TensorFlow; the error is a *BrokenModelError.
func CheckFiles(dir string) error {
	for _, f := range []string{ModelInfoFile, "saved_model.pb"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return &BrokenModelError{Dir: dir, Problem: "its " + f + " is missing"}
		}
	}
	var parse *ModelInfoParseError
	var notRegular *regular.Error
	if _, err := ReadModelInfo(dir); errors.As(err, &parse) {
		return &BrokenModelError{Dir: dir, Problem: ModelInfoFile + " cannot be parsed", Err: parse.Err}
	} else if errors.As(err, &notRegular) {
		return notRegularFile(dir, notRegular)
	} else if err != nil {
		return &BrokenModelError{Dir: dir, Problem: "its " + ModelInfoFile + " cannot be read", Err: err}
	}
	if err := checkTFFiles(dir); err != nil {
		return err
	}
	if missingWeights(dir) {
		return &BrokenModelError{Dir: dir, Problem: "its weights (variables/) are missing"}
	}
	return nil
}

// checkTFFiles reports a file of the SavedModel folder dir that TensorFlow's loader reads
// (saved_model.pb, fingerprint.pb, the weights in variables/) but that is not a regular file:
// a named pipe there would block the load for ever, with a *BrokenModelError naming it. Only
// their kind is looked at; none is opened.
func checkTFFiles(dir string) error {
	files := []string{"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb"}
	entries, _ := os.ReadDir(filepath.Join(dir, "variables"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "variables.") {
			files = append(files, filepath.Join("variables", e.Name()))
		}
	}
	for _, f := range files {
		var notRegular *regular.Error
		if err := regular.Check(filepath.Join(dir, f)); errors.As(err, &notRegular) {
			return notRegularFile(dir, notRegular)
		}
	}
	return nil
}

// notRegularFile is the *BrokenModelError of the SavedModel folder dir for its file that is
// not a regular one (err).
func notRegularFile(dir string, err *regular.Error) error {
	rel, rerr := filepath.Rel(dir, err.Path)
	if rerr != nil {
		rel = err.Path
	}
	return &BrokenModelError{Dir: dir, Problem: fmt.Sprintf("its %s is %s, not a regular file", filepath.ToSlash(rel), regular.Kind(err.Kind))}
}

// warmUp runs one prediction on a blank (all zero) image and checks its answer: a probability
// per class in model.json (its error is a *BrokenModelError); an answer of NaN marks the model
// diverged.
func (m *Model) warmUp(dir string) error {
	in := m.Info.Input
	probs, err := m.Predict(make([]float32, in.Height*in.Width*in.Channels))
	switch {
	case err != nil && missingWeights(dir):
		return &BrokenModelError{Dir: dir, Problem: "its weights (variables/) are missing: it loads but cannot predict"}
	case err != nil:
		return &BrokenModelError{Dir: dir, Problem: "it fails on a blank image", Err: err}
	case len(probs) != 1 || len(probs[0]) != len(m.Info.Classes):
		n := 0
		if len(probs) > 0 {
			n = len(probs[0])
		}
		return &BrokenModelError{Dir: dir, Problem: fmt.Sprintf("it answers %d probabilities, but its %s names %d classes", n, ModelInfoFile, len(m.Info.Classes))}
	}
	// A model whose weights went to NaN in training answers NaN whatever it is shown.
	m.diverged = slices.ContainsFunc(probs[0], func(v float32) bool { return v != v })
	return nil
}

// missingWeights reports whether the SavedModel folder dir lacks its variables' index or every
// data file, as after variables/ is deleted or left out of a copy.
func missingWeights(dir string) bool {
	vars := filepath.Join(dir, "variables")
	if _, err := os.Stat(filepath.Join(vars, "variables.index")); errors.Is(err, os.ErrNotExist) {
		return true
	}
	data, _ := filepath.Glob(filepath.Join(vars, "variables.data-*"))
	return len(data) == 0
}
