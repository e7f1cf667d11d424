package stages

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// Evaluate is the evaluate stage kind: test-set metrics of an exported model.
type Evaluate struct{}

// EvaluateConfig is an evaluate stage's attributes.
type EvaluateConfig struct {
	Model     string `cty:"model"`
	Data      string `cty:"data"`
	BatchSize int    `cty:"batch_size"`
	Threads   int    `cty:"threads"`
}

// Evaluation is evaluation/metrics.json. Every rate is a fraction in [0, 1].
type Evaluation struct {
	Architecture string `json:"architecture"`
	Model        string `json:"model"`    // workspace-relative SavedModel folder
	Data         string `json:"data"`     // workspace-relative test set folder
	TestSet      string `json:"test_set"` // its id (testSetID): equal ids, comparable scores
	Images       int    `json:"images"`
	// SeenInTraining counts the test images whose originals the model (or the model it
	// started from) was trained or validated on (TrainedOnFile): its scores on them flatter
	// it. Zero, and left out, for a model evaluated on its own split's test set.
	SeenInTraining  int          `json:"test_images_seen_in_training,omitempty"`
	TestTop1        metric       `json:"test_top1"`
	TestTop3        metric       `json:"test_top3"`
	TestTop5        metric       `json:"test_top5"`
	TestF1Macro     metric       `json:"test_f1_macro"`
	TestF1Weighted  metric       `json:"test_f1_weighted"`
	TestLoss        metric       `json:"test_loss"`
	PerClass        []ClassScore `json:"per_class"`
	MostConfused    []Confused   `json:"most_confused"`
	Misclassified   int          `json:"misclassified"`
	MisclassifiedAt string       `json:"misclassified_list"`
}

// Value returns a metric by its JSON name (for selection), and whether it exists.
func (e *Evaluation) Value(name string) (float64, bool) {
	switch name {
	case "test_top1", "test_accuracy":
		return float64(e.TestTop1), true
	case "test_top3":
		return float64(e.TestTop3), true
	case "test_top5":
		return float64(e.TestTop5), true
	case "test_f1_macro":
		return float64(e.TestF1Macro), true
	case "test_f1_weighted":
		return float64(e.TestF1Weighted), true
	case "test_loss":
		return float64(e.TestLoss), true
	}
	return 0, false
}

// MetricMap returns every metric of EvaluationMetrics by name.
func (e *Evaluation) MetricMap() map[string]metric {
	m := map[string]metric{}
	for _, name := range EvaluationMetrics {
		v, _ := e.Value(name)
		m[name] = metric(v)
	}
	return m
}

// EvaluationMetrics lists the names Value accepts.
var EvaluationMetrics = []string{"test_f1_macro", "test_f1_weighted", "test_top1", "test_top3", "test_top5", "test_loss"}

// Misclassified is one wrong prediction in misclassified.json.
type Misclassified struct {
	Source     string   `json:"source"`
	True       string   `json:"true"`
	Predicted  string   `json:"predicted"`
	Confidence metric   `json:"confidence"` // null when the model gave NaN
	Top5       []string `json:"top5"`
}

// Name implements pipeline.Kind.
func (Evaluate) Name() string { return "evaluate" }

// Version implements pipeline.Kind. (4: the confusion matrix has counts at any class count;
// 5: long class names are shortened on it instead of squeezing its cells; 6: the test set is
// read in contentOrder and its id leaves out the names of its files.)
func (Evaluate) Version() int { return 6 }

// Outputs implements pipeline.Kind.
func (Evaluate) Outputs() []string { return []string{"evaluation"} }

// OutputTypes implements pipeline.OutputTyper.
func (Evaluate) OutputTypes() map[string]string {
	return map[string]string{"evaluation": typeEvaluation}
}

// Environment implements pipeline.Environmental: what TensorFlow's results depend on, as for
// Train, and the fonts the confusion matrix may draw class names with (evaluateEnvironment).
func (Evaluate) Environment(v *pipeline.Values) ([]string, error) {
	return evaluateEnvironment(threadsSet(v))
}

// ArtifactDir implements pipeline.ArtifactNamer: beside the model's training artifacts.
func (Evaluate) ArtifactDir(key string, v *pipeline.Values, workspace string) string {
	var info graphs.ModelInfo
	b, err := os.ReadFile(filepath.Join(workspace, v.String("model"), graphs.ModelInfoFile))
	if err != nil || json.Unmarshal(b, &info) != nil {
		return ""
	}
	// for_each over the train stage gives its keys: the folder train chose.
	return archDir(info.Spec.Architecture, key)
}

// ArtifactFollows implements pipeline.ArtifactFollower: the evaluation goes into the folder
// of the training whose model it evaluates.
func (Evaluate) ArtifactFollows(v *pipeline.Values) string { return v.String("model") }

// Attributes implements pipeline.Kind.
func (Evaluate) Attributes() []pipeline.Attribute {
	return []pipeline.Attribute{
		{Name: "model", Type: cty.String, Required: true, Doc: "a SavedModel (stage.train.NAME.saved_model)", Accepts: []string{typeModel}},
		{Name: "data", Type: cty.String, Required: true, Doc: "the test set (stage.split.NAME.test)", Accepts: []string{typeImages}, NonEmpty: true},
		{Name: "batch_size", Type: cty.Number, Default: cty.NumberIntVal(64), Doc: "images per inference batch"},
		{Name: "threads", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "TensorFlow threads (0: one per core)"},
	}
}

// CheckPath implements pipeline.PathChecker: a data folder written as a path that is no image
// set (a folder of photos, without a manifest) fails the stage.
func (Evaluate) CheckPath(v *pipeline.Values, attr, abs string) string {
	if attr != "data" {
		return ""
	}
	return imageSetProblem(abs)
}

// Validate implements pipeline.Validator.
func (Evaluate) Validate(v *pipeline.Values) hcl.Diagnostics {
	var d diagList
	d.intRange(v, "batch_size", 1, 65536)
	d.intRange(v, "threads", 0, 1024)
	var learnt []string
	for _, set := range fromOutputs(v, "data", "split", TrainSet, ValSet) {
		learnt = append(learnt, "a split's "+set+" set")
	}
	if len(fromOutputs(v, "data", "augment", "output")) > 0 {
		learnt = append(learnt, "an augment stage's training images")
	}
	for _, what := range learnt {
		d.warn(v, "data", "Evaluating on a set the model learns from",
			fmt.Sprintf("data takes %s: the model was trained or chosen on those images, so its scores flatter it, and select would compare models by them; give stage.<split>.test, unless that is what you want.", what))
	}
	return d.diags
}

// Run implements pipeline.Kind.
func (Evaluate) Run(ctx context.Context, job *pipeline.Job) error {
	var cfg EvaluateConfig
	if err := job.Values.Decode(&cfg); err != nil {
		return err
	}
	model, err := graphs.LoadModel(job.Path(cfg.Model), cfg.Threads)
	if err != nil {
		return err
	}
	defer model.Close()
	seen, err := readTrainedOn(SavedModelOf(job.Path(cfg.Model)))
	if err != nil {
		job.Logf("warning: %v: whether the model was trained on some of the test images cannot be told", err)
	}
	r, err := evaluateModel(ctx, model, job.Path(cfg.Data), job.Workspace, cfg.BatchSize, job.Progress, seen, false)
	if errors.Is(err, errIncomparable) {
		return fmt.Errorf("model %s %w (data %s); evaluate it on the test set of the same split", cfg.Model, err, cfg.Data)
	}
	if err != nil {
		return err
	}
	logDamaged(job, r.damaged, " of the test set", "")
	ev, conf, wrong := r.ev, r.conf, r.wrong
	ev.Model, ev.Data = cfg.Model, cfg.Data
	arch := model.Info.Spec.Architecture
	dir := filepath.Join(job.Out, "evaluation")
	sort.Slice(wrong, func(i, j int) bool { return wrong[i].Source < wrong[j].Source })
	if wrong == nil {
		wrong = []Misclassified{}
	}
	for _, w := range []struct {
		name string
		v    any
	}{{"metrics.json", ev}, {"confusion_matrix.json", conf}, {"misclassified.json", wrong}} {
		if err := writeFileJSON(dir, w.name, w.v); err != nil {
			return err
		}
	}
	if err := confusionPlot(filepath.Join(dir, "confusion_matrix.png"), arch, conf, job.Logf); err != nil {
		return fmt.Errorf("plotting the confusion matrix: %w", err)
	}
	job.Logf("%s on %s: top-1 %.3f, top-3 %.3f, top-5 %.3f, macro-F1 %.3f, weighted-F1 %.3f",
		arch, plural(ev.Images, "test image", "test images"), ev.TestTop1, ev.TestTop3, ev.TestTop5, ev.TestF1Macro, ev.TestF1Weighted)
	if ev.SeenInTraining > 0 {
		job.Logf("warning: %s was trained on %d of the %s, or the model it started from was (metrics.json: test_images_seen_in_training): these scores flatter it (sets drawn afresh since, or a starting model trained on another split, put photos it saw in the test set)",
			arch, ev.SeenInTraining, plural(ev.Images, "test image", "test images"))
	}
	nan := notANumberWarning(arch, conf, ev.Images)
	if nan != "" {
		job.Logf("%s", nan)
	}
	// Every answer NaN: that is why no class was predicted right, said above.
	if never := neverRight(ev.PerClass); len(never) > 0 && (nan == "" || conf.answered() > 0) {
		job.Logf("warning: %s of %d never predicted right on the test set (F1 0): %s (metrics.json: per_class)",
			plural(len(never), "class", "classes"), len(ev.PerClass), pipeline.ListSome(never, 5))
	}
	return nil
}

// notANumberWarning is evaluate's warning of a model that answered NaN (not a number) for
// some of the test images (conf.NotANumber), of images in all: its training diverged, and
// those images count as misses; "" when it answered numbers for every image.
func notANumberWarning(arch string, conf *Confusion, images int) string {
	n := 0
	for _, k := range conf.NotANumber {
		n += k
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("warning: %s answered NaN (not a number) for %d of the %s: its training diverged (retrain it, with a lower learning_rate say); those images count as misses of their class, and the F1 scores are NaN (confusion_matrix.json: not_a_number)",
		arch, n, plural(images, "test image", "test images"))
}

// neverRight returns the classes with test images of which none was predicted right, smallest
// first (by test images, then name).
func neverRight(scores []ClassScore) []string {
	var zero []ClassScore
	for _, c := range scores {
		if c.Support > 0 && c.Recall == 0 {
			zero = append(zero, c)
		}
	}
	slices.SortFunc(zero, func(a, b ClassScore) int {
		return cmp.Or(cmp.Compare(a.Support, b.Support), strings.Compare(a.Class, b.Class))
	})
	out := make([]string, len(zero))
	for i, c := range zero {
		out[i] = fmt.Sprintf("%q (%d)", c.Class, c.Support)
	}
	return out
}

// errIncomparable is a model and a test set that do not go together: other classes, or
// images of another size.
var errIncomparable = errors.New("does not fit the test set")

// errNoneUnseen is a test set every image of which a model was trained on.
var errNoneUnseen = errors.New("the model was trained on every image of the test set")

// evaluated is a model's results on a test set.
type evaluated struct {
	ev    Evaluation // without Model and Data, which name the caller's paths
	conf  *Confusion
	wrong []Misclassified
	// damaged are the test set's originals libjpeg-turbo decoded past damage in.
	damaged []DamagedJPEG
}

// evaluateModel runs model over the test set in folder data (of the workspace, which holds
// the originals of images not stored), batch images at a time. seen (may be nil) are the
// originals a model was trained on (TrainedOnFile): the result counts the test images among
// them (SeenInTraining), and with skipSeen leaves them out, scoring the others alone (an
// error wrapping errNoneUnseen when none is left). The result's TestSet is the whole test
// set's id either way. A model whose classes or input size differ from the test set's is
// an error wrapping errIncomparable, which says how.
func evaluateModel(ctx context.Context, model *graphs.Model, data, workspace string, batch int, progress pipeline.Progress, seen digestSet, skipSeen bool) (*evaluated, error) {
	m, err := ReadManifest(data)
	if err != nil {
		return nil, fmt.Errorf("test set %s: %w", data, err)
	}
	info := model.Info
	if fmt.Sprint(info.Classes) != fmt.Sprint(m.Classes) {
		return nil, fmt.Errorf("%w: the model was trained on classes %q, the test set has %q", errIncomparable, info.Classes, m.Classes)
	}
	if int64(m.Size) != info.Input.Height || int64(m.Channels) != info.Input.Channels {
		return nil, fmt.Errorf("%w: the model takes %dx%dx%d images, the test set holds %dx%dx%d", errIncomparable, info.Input.Height, info.Input.Width, info.Input.Channels, m.Size, m.Size, m.Channels)
	}
	set, err := testSetID(data, m)
	if err != nil {
		return nil, err
	}
	seenIn := 0
	for _, e := range m.Images {
		if seen.has(e.Digest) {
			seenIn++
		}
	}
	if skipSeen && seenIn > 0 {
		if seenIn == len(m.Images) {
			return nil, errNoneUnseen
		}
		m.Images = slices.DeleteFunc(m.Images, func(e Entry) bool { return seen.has(e.Digest) })
	}
	ds, err := loadDataset(ctx, data, workspace, m)
	if err != nil {
		return nil, fmt.Errorf("test set %s: %w", data, emptyHint(err))
	}
	conf := NewConfusion(ds.m.Classes)
	hits := map[int]int{}
	var lossSum float64
	var wrong []Misclassified
	progress.Start("test images", int64(ds.len()))
	for lo := 0; lo < ds.len(); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx := make([]int, 0, batch)
		for i := lo; i < min(lo+batch, ds.len()); i++ {
			idx = append(idx, i)
		}
		b, err := ds.batch(idx)
		if err != nil {
			return nil, err
		}
		probs, err := model.Predict(b.Images)
		if err != nil {
			return nil, err
		}
		for k, p := range probs {
			label := int(b.Labels[k])
			pred := argmax(p)
			conf.Add(label, pred)
			for _, kk := range []int{1, 3, 5} {
				if topK(p, label, kk) {
					hits[kk]++
				}
			}
			lossSum += crossEntropyOf(p[label])
			if pred != label {
				e := ds.m.Images[idx[k]]
				predicted, confidence := notANumber, metric(math.NaN())
				if pred >= 0 {
					predicted, confidence = ds.m.Classes[pred], metric(p[pred])
				}
				wrong = append(wrong, Misclassified{Source: e.Source, True: ds.m.Classes[label], Predicted: predicted,
					Confidence: confidence, Top5: topNames(p, ds.m.Classes, 5)})
			}
		}
		progress.Add(int64(len(idx)))
	}
	n := float64(ds.len())
	ev := Evaluation{Architecture: info.Spec.Architecture, TestSet: set, Images: ds.len(), SeenInTraining: seenIn,
		TestTop1: metric(float64(hits[1]) / n), TestTop3: metric(float64(hits[3]) / n), TestTop5: metric(float64(hits[5]) / n),
		TestF1Macro: metric(conf.MacroF1()), TestF1Weighted: metric(conf.WeightedF1()), TestLoss: metric(lossSum / n),
		PerClass: conf.Scores(), MostConfused: conf.MostConfused(10), Misclassified: len(wrong), MisclassifiedAt: "misclassified.json"}
	return &evaluated{ev: ev, conf: conf, wrong: wrong, damaged: ds.damaged.sorted()}, nil
}

// notANumber is what misclassified.json says a model that gave NaN predicted.
const notANumber = "(not a number)"

// testSetID names the test set in folder data, whose manifest is m, by what it holds, as a
// training's sets are keyed (setHasher): its classes, and each image's label, original and
// the digest of the image stored for it (read here), not the names of its files (the same
// photos stored another way, at another JPEG quality say, are another test set; renamed,
// the same): two evaluations with the same id scored the same pixels with the same labels.
func testSetID(data string, m *Manifest) (string, error) {
	var sh setHasher
	for _, e := range m.Images {
		stored := "-" // not stored: the original, whose digest the manifest has and reading checks
		if e.Path != "" {
			img, err := os.ReadFile(filepath.Join(data, filepath.FromSlash(e.Path)))
			if err != nil {
				return "", err
			}
			sum := sha256.Sum256(img)
			stored = hex.EncodeToString(sum[:])
		}
		sh.add(e, stored)
	}
	return hex.EncodeToString(sh.sum(m).Sum(nil)), nil
}

// crossEntropyOf is −log p, with p floored so a confident mistake costs a finite amount.
func crossEntropyOf(p float32) float64 {
	return -math.Log(max(float64(p), 1e-12))
}

// topNames returns the class names of the k largest probabilities, largest first.
func topNames(p []float32, classes []string, k int) []string {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	out := make([]string, 0, k)
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, classes[i])
	}
	return out
}
