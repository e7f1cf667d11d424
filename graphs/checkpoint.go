package graphs

import (
	"encoding/json"
	"fmt"
	"os"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// checkpointOps save and restore a set of variables in TensorFlow's V2 checkpoint format
// (prefix.index + prefix.data-00000-of-00001), keyed by variable name.
type checkpointOps struct {
	prefix  tf.Output
	save    *tf.Operation
	restore *tf.Operation
}

// addCheckpointOps adds SaveV2 and RestoreV2 over vars. The prefix is a string placeholder
// with a default, so the same ops serve a SavedModel's saver (which feeds the path).
func addCheckpointOps(s *op.Scope, vars []*Var) checkpointOps {
	names := make([]string, len(vars))
	slices := make([]string, len(vars))
	reads := make([]tf.Output, len(vars))
	dtypes := make([]tf.DataType, len(vars))
	for i, v := range vars {
		names[i], reads[i], dtypes[i] = v.Name, v.Read, tf.Float
	}
	prefix := op.PlaceholderWithDefault(s.SubScope("filename"), cnst(s.SubScope("default"), "model"), tf.ScalarShape())
	nameT, sliceT := cnst(s.SubScope("tensor_names"), names), cnst(s.SubScope("shape_and_slices"), slices)
	save := op.SaveV2(s.SubScope("save_v2"), prefix, nameT, sliceT, reads)
	restored := op.RestoreV2(s.SubScope("restore_v2"), prefix, nameT, sliceT, dtypes)
	assigns := make([]*tf.Operation, len(vars))
	for i, v := range vars {
		assigns[i] = op.AssignVariableOp(s.SubScope("assign"), v.Handle, restored[i])
	}
	return checkpointOps{prefix: prefix, save: save, restore: op.NoOp(s.SubScope("restore_all").WithControlDependencies(assigns...))}
}

// checkpointState is the part of a training checkpoint that lives outside the tensors.
type checkpointState struct {
	Step int64 `json:"step"`
}

// Save writes every variable (weights, batch-norm statistics, optimizer slots) and the step
// count under prefix, so that Restore continues training exactly where it stopped.
func (t *Trainer) Save(prefix string) error {
	if t.sess == nil {
		return ErrClosed
	}
	p, _ := tf.NewTensor(prefix)
	if _, err := t.sess.Run(map[tf.Output]*tf.Tensor{t.ckpt.prefix: p}, nil, []*tf.Operation{t.ckpt.save}); err != nil {
		return fmt.Errorf("saving checkpoint %s: %s", prefix, tfMessage(err))
	}
	b, _ := json.Marshal(checkpointState{Step: t.step})
	return writeFileAtomic(prefix+".state.json", b)
}

// Restore loads a checkpoint written by Save of a trainer with the same configuration. Its
// error is one line (TensorFlow's said as tfMessage says it), fit for a log line.
func (t *Trainer) Restore(prefix string) error {
	if t.sess == nil {
		return ErrClosed
	}
	b, err := os.ReadFile(prefix + ".state.json")
	if err != nil {
		return fmt.Errorf("restoring checkpoint: %w", err)
	}
	var st checkpointState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("restoring checkpoint %s.state.json: %w", prefix, err)
	}
	p, _ := tf.NewTensor(prefix)
	if _, err := t.sess.Run(map[tf.Output]*tf.Tensor{t.ckpt.prefix: p}, nil, []*tf.Operation{t.ckpt.restore}); err != nil {
		return fmt.Errorf("restoring checkpoint %s: %s", prefix, tfMessage(err))
	}
	t.step = st.Step
	return nil
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
