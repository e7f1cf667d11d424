package graphs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	graphpb "github.com/wamuir/graft/tensorflow/core/framework/graph_go_proto"
	shapepb "github.com/wamuir/graft/tensorflow/core/framework/tensor_shape_go_proto"
	typespb "github.com/wamuir/graft/tensorflow/core/framework/types_go_proto"
	varpb "github.com/wamuir/graft/tensorflow/core/framework/variable_go_proto"
	cfgpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"pipeline/pipeline/regular"
)

// The SavedModel contract: tag, signature and tensor names every consumer relies on.
const (
	ServeTag       = "serve"
	SignatureKey   = "serving_default"
	InputKey       = "images"
	OutputKey      = "probabilities"
	inputOpName    = "serving_input"
	outputOpName   = "probabilities"
	ModelInfoFile  = "model.json"
	modelFormatVer = 1
)

// ModelInfoParseError is ReadModelInfo's error for a ModelInfoFile that is there but does
// not parse.
type ModelInfoParseError struct{ Err error }

func (e *ModelInfoParseError) Error() string {
	return ModelInfoFile + " cannot be parsed: " + e.Err.Error()
}

func (e *ModelInfoParseError) Unwrap() error { return e.Err }

// ReadModelInfo reads the ModelInfoFile of the SavedModel folder dir: the file's read error
// as it is (fs.ErrNotExist when there is none, a *regular.Error for a named pipe or a
// device, which is not read), or a *ModelInfoParseError.
func ReadModelInfo(dir string) (*ModelInfo, error) {
	b, err := regular.Read(filepath.Join(dir, ModelInfoFile))
	if err != nil {
		return nil, err
	}
	var info ModelInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, &ModelInfoParseError{err}
	}
	return &info, nil
}

// ModelInfo is written beside saved_model.pb so a model folder is self-contained: which network
// it is, the input it expects and how it normalises it, and the class names in index order.
type ModelInfo struct {
	FormatVersion int      `json:"format_version"`
	Spec          Spec     `json:"spec"`
	Input         Input    `json:"input"`
	Classes       []string `json:"classes"`
	// Resize is how images of another size are fitted to the input (center_crop, pad or
	// squash), as at training time.
	Resize    string `json:"resize,omitempty"`
	Signature string `json:"signature"`
	InputKey  string `json:"input_key"`
	OutputKey string `json:"output_key"`
	TFVersion string `json:"tensorflow_version"`
}

// Export writes the current weights as a SavedModel into dir, which must not exist yet: an
// inference graph (serving_input [-1,H,W,C] float32 0–255 → probabilities [-1,classes]), its
// saver, the variables, and model.json with the class names and how to fit other image sizes
// (resize). The folder appears complete or not at all.
func (t *Trainer) Export(dir string, classes []string, resize string) error {
	if t.sess == nil {
		return ErrClosed
	}
	m := t.cfg.Model
	if int64(len(classes)) != m.Classes {
		return fmt.Errorf("export: %d class names for a %d-class model", len(classes), m.Classes)
	}
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("export: %s already exists", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// Not os.MkdirTemp, whose folder is 0700: the SavedModel gets 0755 less the umask, as run
	// folders do, so that other users (a server) can read it where it is published.
	tmp := filepath.Join(filepath.Dir(dir), fmt.Sprintf(".%s.tmp-%d-%d", filepath.Base(dir), os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// Variables, saved from the training session under the names the inference graph uses.
	prefix, _ := tf.NewTensor(filepath.Join(tmp, "variables", "variables"))
	if _, err := t.sess.Run(map[tf.Output]*tf.Tensor{t.exportCkpt.prefix: prefix}, nil, []*tf.Operation{t.exportCkpt.save}); err != nil {
		return fmt.Errorf("export: saving variables: %w", err)
	}
	sm, err := inferenceSavedModel(m)
	if err != nil {
		return err
	}
	// Deterministic: map fields in key order, so that the same model exports the same bytes
	// and a retrain that reproduces it leaves its evaluation and promotion cached.
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sm)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "saved_model.pb"), b, 0o644); err != nil {
		return err
	}
	info := ModelInfo{FormatVersion: modelFormatVer, Spec: m.Spec, Input: m.Input, Classes: classes, Resize: resize,
		Signature: SignatureKey, InputKey: InputKey, OutputKey: OutputKey, TFVersion: tf.Version()}
	jb, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, ModelInfoFile), append(jb, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("export: publishing %s: %w", dir, err)
	}
	return nil
}

// inferenceNetwork adds m's network in inference mode to root, reading the images from the
// placeholder the SavedModel signature names (inputOpName), and returns its variables and
// logits. Export saves the variables under these names.
func inferenceNetwork(root *op.Scope, m Classifier) (*Params, tf.Output) {
	in := m.Input
	shape := tf.MakeShape(-1, in.Height, in.Width, in.Channels)
	x := root.AddOperation(tf.OpSpec{Type: "Placeholder", Name: inputOpName,
		Attrs: map[string]any{"dtype": tf.Float, "shape": shape}}).Output(0)
	p := NewParams(root)
	c := NewCtx(root, p, Inference, tf.Output{}, batchSize(root.SubScope("batch"), x)).Sub("model")
	return p, m.Logits(c, x)
}

// inferenceSavedModel builds the serving graph for m and wraps it in a SavedModel proto with a
// V1 saver (no object graph), which both TensorFlow's C++ loader and Python's
// tf.saved_model.load accept.
func inferenceSavedModel(m Classifier) (*cfgpb.SavedModel, error) {
	root := op.NewScope()
	p, logits := inferenceNetwork(root, m)
	var probs tf.Output
	if root.Err() == nil {
		probs = root.AddOperation(tf.OpSpec{Type: "Softmax", Name: outputOpName, Input: []tf.Input{logits}}).Output(0)
	}
	ss := root.SubScope("save")
	ck := addCheckpointOps(ss, p.Vars())
	saveTensor := op.Identity(ss.SubScope("control_dependency").WithControlDependencies(ck.save), ck.prefix)
	g, err := root.Finalize()
	if err != nil {
		return nil, fmt.Errorf("export: building the inference graph: %w", err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		return nil, err
	}
	gd := &graphpb.GraphDef{}
	if err := proto.Unmarshal(buf.Bytes(), gd); err != nil {
		return nil, err
	}
	collections, err := nameVariables(gd, p.Vars(), ck.restore.Name())
	if err != nil {
		return nil, err
	}
	dims := func(ds ...int64) *shapepb.TensorShapeProto {
		sp := &shapepb.TensorShapeProto{}
		for _, d := range ds {
			sp.Dim = append(sp.Dim, &shapepb.TensorShapeProto_Dim{Size: d})
		}
		return sp
	}
	sig := &cfgpb.SignatureDef{
		Inputs: map[string]*cfgpb.TensorInfo{InputKey: {
			Encoding: &cfgpb.TensorInfo_Name{Name: inputOpName + ":0"}, Dtype: typespb.DataType_DT_FLOAT,
			TensorShape: dims(-1, m.Input.Height, m.Input.Width, m.Input.Channels)}},
		Outputs: map[string]*cfgpb.TensorInfo{OutputKey: {
			Encoding: &cfgpb.TensorInfo_Name{Name: probs.Op.Name() + ":0"}, Dtype: typespb.DataType_DT_FLOAT,
			TensorShape: dims(-1, m.Classes)}},
		MethodName: "tensorflow/serving/predict",
	}
	mg := &cfgpb.MetaGraphDef{
		MetaInfoDef: &cfgpb.MetaGraphDef_MetaInfoDef{Tags: []string{ServeTag}, TensorflowVersion: tf.Version()},
		GraphDef:    gd,
		SaverDef: &cfgpb.SaverDef{
			FilenameTensorName: ck.prefix.Op.Name() + ":0",
			SaveTensorName:     saveTensor.Op.Name() + ":0",
			RestoreOpName:      ck.restore.Name(),
			MaxToKeep:          1,
			Version:            cfgpb.SaverDef_V2,
		},
		SignatureDef:  map[string]*cfgpb.SignatureDef{SignatureKey: sig},
		CollectionDef: collections,
	}
	return &cfgpb.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*cfgpb.MetaGraphDef{mg}}, nil
}

// nameVariables makes the serving graph's variables what TensorFlow's Python tools expect of
// a V1 SavedModel: each variable's node is named as the variable (its shared name, also its
// checkpoint key, "model/block1/bn/beta", rather than the op path the graph builder gave it),
// which the TFLite converter and tf2onnx look variables up by; and the "variables" and
// "trainable_variables" collections list them (a VariableDef each, restored by the saver's
// restore op), so that tf.saved_model.load gives them as variables (to inspect, fine-tune or
// save again) rather than loading weights it does not show.
func nameVariables(gd *graphpb.GraphDef, vars []*Var, restoreOp string) (map[string]*cfgpb.CollectionDef, error) {
	trainable := map[string]bool{}
	for _, v := range vars {
		trainable[v.Name] = v.Trainable
	}
	names := map[string]bool{}
	for _, n := range gd.Node {
		names[n.Name] = true
	}
	rename := map[string]string{}
	for _, n := range gd.Node {
		if n.Op != "VarHandleOp" {
			continue
		}
		shared := string(n.Attr["shared_name"].GetS())
		if _, ok := trainable[shared]; !ok {
			return nil, fmt.Errorf("export: variable node %s has shared name %q, which is no variable of the model", n.Name, shared)
		}
		if names[shared] {
			return nil, fmt.Errorf("export: variable %s would take the name of another node", shared)
		}
		rename[n.Name] = shared
	}
	renamed := func(input string) string {
		ctl := strings.HasPrefix(input, "^")
		name, port, hasPort := strings.Cut(strings.TrimPrefix(input, "^"), ":")
		if to, ok := rename[name]; ok {
			name = to
		}
		if hasPort {
			name += ":" + port
		}
		if ctl {
			name = "^" + name
		}
		return name
	}
	for _, n := range gd.Node {
		if to, ok := rename[n.Name]; ok {
			n.Name = to
		}
		for i, in := range n.Input {
			n.Input[i] = renamed(in)
		}
	}
	// A variable's snapshot is the first read of it, in the graph's order.
	snapshot := map[string]string{}
	for _, n := range gd.Node {
		if n.Op == "ReadVariableOp" && len(n.Input) > 0 {
			if v, _, _ := strings.Cut(n.Input[0], ":"); snapshot[v] == "" {
				snapshot[v] = n.Name + ":0"
			}
		}
	}
	all, train := &cfgpb.CollectionDef_BytesList{}, &cfgpb.CollectionDef_BytesList{}
	for _, v := range vars {
		def, err := proto.MarshalOptions{Deterministic: true}.Marshal(&varpb.VariableDef{
			VariableName: v.Name + ":0", SnapshotName: snapshot[v.Name], InitializerName: restoreOp,
			IsResource: true, Trainable: v.Trainable})
		if err != nil {
			return nil, err
		}
		all.Value = append(all.Value, def)
		if v.Trainable {
			train.Value = append(train.Value, def)
		}
	}
	return map[string]*cfgpb.CollectionDef{
		"variables":           {Kind: &cfgpb.CollectionDef_BytesList_{BytesList: all}},
		"trainable_variables": {Kind: &cfgpb.CollectionDef_BytesList_{BytesList: train}},
	}, nil
}
