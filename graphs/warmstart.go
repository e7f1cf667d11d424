package graphs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// WarmStart says which of a network's variables LoadWeights took from a SavedModel.
type WarmStart struct {
	Loaded []string // variables set from the SavedModel (the classifier's by class name)
	// Fresh are the variables that kept their seeded initial values, each with why: the
	// SavedModel has no variable of that name, or one of another shape.
	Fresh []FreshVar
	// NewClasses are this network's classes the SavedModel does not have: their classifier
	// weights keep their initial values. Classes it has are taken by name, in any order.
	NewClasses []string
	// GoneClasses are the SavedModel's classes this network does not have.
	GoneClasses []string
}

// FreshVar is a variable LoadWeights left at its initial value.
type FreshVar struct {
	Name  string  // the variable's name, as in checkpoints
	Shape []int64 // this network's
	From  []int64 // the SavedModel's; nil when it has no such variable
}

// String says why the variable starts fresh: "model/conv1/kernel [3 3 3 16], the model's [3 3 3 8]".
func (f FreshVar) String() string {
	if f.From == nil {
		return fmt.Sprintf("%s %v, not in the model", f.Name, f.Shape)
	}
	return fmt.Sprintf("%s %v, the model's %v", f.Name, f.Shape, f.From)
}

// headScope holds the classifier's variables, whose last dimension is the class: every
// architecture's logits come from Dense(c.Sub("head"), …) under the model scope.
const headScope = "model/head/"

// IsClassifierVar reports whether the variable named name is the classifier's, whose last
// dimension is the class.
func IsClassifierVar(name string) bool { return strings.HasPrefix(name, headScope) }

// LoadWeights sets the network's variables (weights and batch-norm statistics, not the
// optimizer's state) from the SavedModel in dir, which Export wrote (its model.json says what
// network it holds and its classes): each variable of the same name and shape is loaded; the
// classifier's weights are taken class by class, matched by name to classes (this network's
// class names in index order), so that a model of other or reordered classes starts the
// classes it knows where it left them; everything else keeps its seeded initial value. A
// model of another architecture, one that shares no variable with this network, or one
// whose model.json or weights cannot be read is an error. Call it before the first Step.
func (t *Trainer) LoadWeights(dir string, classes []string) (WarmStart, error) {
	var ws WarmStart
	if t.sess == nil {
		return ws, ErrClosed
	}
	if int64(len(classes)) != t.cfg.Model.Classes {
		return ws, fmt.Errorf("%d class names for a %d-class network", len(classes), t.cfg.Model.Classes)
	}
	info, err := ReadModelInfo(dir)
	var parse *ModelInfoParseError
	if errors.As(err, &parse) {
		return ws, fmt.Errorf("%s: %w", filepath.Join(dir, ModelInfoFile), parse.Err)
	} else if err != nil {
		return ws, fmt.Errorf("%s is not a model folder written by pipeline: %w", dir, err)
	}
	if arch := t.cfg.Model.Spec.Architecture; info.Spec.Architecture != arch {
		return ws, fmt.Errorf("%s holds a %s, not a %s", dir, info.Spec.Architecture, arch)
	}
	prefix := filepath.Join(dir, "variables", "variables")
	if _, err := os.Stat(prefix + ".index"); err != nil {
		return ws, fmt.Errorf("%s has no weights (variables/variables.index): %w", dir, err)
	}
	theirs, err := modelVars(Classifier{Spec: info.Spec, Input: info.Input, Classes: int64(len(info.Classes))})
	if err != nil {
		return ws, fmt.Errorf("%s: %w", filepath.Join(dir, ModelInfoFile), err)
	}
	// column[j] is the SavedModel's index of class j, or -1.
	column := make([]int, len(classes))
	for j, c := range classes {
		column[j] = slices.Index(info.Classes, c)
		if column[j] < 0 {
			ws.NewClasses = append(ws.NewClasses, c)
		}
	}
	for _, c := range info.Classes {
		if !slices.Contains(classes, c) {
			ws.GoneClasses = append(ws.GoneClasses, c)
		}
	}
	sameClasses := slices.Equal(classes, info.Classes)
	shared := len(ws.NewClasses) < len(classes)
	var load []*Var
	for _, v := range t.model {
		shape, ok := theirs[v.Name]
		head := !sameClasses && IsClassifierVar(v.Name)
		switch {
		case !ok:
			ws.Fresh = append(ws.Fresh, FreshVar{Name: v.Name, Shape: v.Shape})
		case head && (!shared || len(shape) == 0 || len(shape) != len(v.Shape) || !slices.Equal(shape[:len(shape)-1], v.Shape[:len(v.Shape)-1])),
			!head && !slices.Equal(shape, v.Shape):
			ws.Fresh = append(ws.Fresh, FreshVar{Name: v.Name, Shape: v.Shape, From: shape})
		default:
			load = append(load, v)
		}
	}
	if len(load) == 0 {
		return ws, fmt.Errorf("none of the %d weight tensors of this %s is in %s with the same shape: its options differ too much", len(t.model), t.cfg.Model.Spec.Architecture, dir)
	}
	values, err := readCheckpoint(prefix, load)
	if err != nil {
		return ws, fmt.Errorf("reading the weights of %s: %w", dir, err)
	}
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	for _, in := range t.inits {
		val, ok := values[in.v.Name]
		if !ok {
			continue
		}
		want := theirs[in.v.Name]
		if !slices.Equal(val.Shape(), want) { // model.json does not describe these weights
			return ws, fmt.Errorf("%s: %s has shape %v in its weights, %v by its model.json", dir, in.v.Name, val.Shape(), want)
		}
		if !sameClasses && IsClassifierVar(in.v.Name) {
			if val, err = byClassColumns(val, in.v.InitialValue(t.cfg.Seed), in.v.Shape, column); err != nil {
				return ws, fmt.Errorf("%s: %s: %w", dir, in.v.Name, err)
			}
		}
		feeds[in.feed] = val
		targets = append(targets, in.assign)
		ws.Loaded = append(ws.Loaded, in.v.Name)
	}
	if _, err := t.sess.Run(feeds, nil, targets); err != nil {
		return ws, fmt.Errorf("loading the weights of %s: %w", dir, err)
	}
	return ws, nil
}

// byClassColumns builds a classifier variable of shape (last dimension: this network's
// classes) from theirs, whose last dimension is the SavedModel's classes: column j is their
// column column[j], or initial's for a class they do not have (-1).
func byClassColumns(theirs *tf.Tensor, initial []float32, shape []int64, column []int) (*tf.Tensor, error) {
	var flat []float32
	switch v := TensorValue(theirs).(type) {
	case []float32:
		flat = v
	case [][]float32:
		for _, row := range v {
			flat = append(flat, row...)
		}
	default:
		return nil, fmt.Errorf("a classifier tensor of rank %d", len(theirs.Shape()))
	}
	ts := theirs.Shape()
	theirCols, ours := int(ts[len(ts)-1]), int(shape[len(shape)-1])
	out := slices.Clone(initial)
	for r := range len(out) / ours {
		for j, i := range column {
			if i >= 0 {
				out[r*ours+j] = flat[r*theirCols+i]
			}
		}
	}
	return floatTensor(out, shape)
}

// modelVars returns the shape of each variable of the network m, by name, as Export saves
// them.
func modelVars(m Classifier) (map[string][]int64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	root := op.NewScope()
	p, _ := inferenceNetwork(root, m)
	if err := root.Err(); err != nil {
		return nil, err
	}
	out := map[string][]int64{}
	for _, v := range p.Vars() {
		out[v.Name] = v.Shape
	}
	return out, nil
}

// readCheckpoint reads the float32 tensors of vars, by name, from the V2 checkpoint at
// prefix, which holds every one of them.
func readCheckpoint(prefix string, vars []*Var) (map[string]*tf.Tensor, error) {
	s := op.NewScope()
	names, slices := make([]string, len(vars)), make([]string, len(vars))
	dtypes := make([]tf.DataType, len(vars))
	for i, v := range vars {
		names[i], dtypes[i] = v.Name, tf.Float
	}
	outs := op.RestoreV2(s, cnst(s.SubScope("prefix"), prefix), cnst(s.SubScope("names"), names), cnst(s.SubScope("slices"), slices), dtypes)
	g, err := s.Finalize()
	if err != nil {
		return nil, err
	}
	sess, err := tf.NewSession(g, CallerThreadOptions())
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	res, err := sess.Run(nil, outs, nil)
	if err != nil {
		return nil, errors.New(tfMessage(err))
	}
	out := map[string]*tf.Tensor{}
	for i, v := range vars {
		out[v.Name] = res[i]
	}
	return out, nil
}
