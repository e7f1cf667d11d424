package stages

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// Train is the train stage kind: it trains one architecture on a training set, validates
// every epoch, and exports the best epoch as a SavedModel with its metrics.
type Train struct{}

// TrainConfig is a train stage's attributes (null means the architecture's default).
type TrainConfig struct {
	Architecture    string   `cty:"architecture"`
	Train           string   `cty:"train"`
	Val             string   `cty:"val"`
	Epochs          *int     `cty:"epochs"`
	BatchSize       *int     `cty:"batch_size"`
	Optimizer       string   `cty:"optimizer"`
	LearningRate    *float64 `cty:"learning_rate"`
	WeightDecay     float64  `cty:"weight_decay"`
	Schedule        string   `cty:"schedule"`
	PlateauFactor   float64  `cty:"plateau_factor"`
	PlateauPatience int      `cty:"plateau_patience"`
	WarmupEpochs    int      `cty:"warmup_epochs"`
	EarlyStopping   int      `cty:"early_stopping"`
	LabelSmoothing  float64  `cty:"label_smoothing"`
	SelectMetric    string   `cty:"select_metric"`
	Threads         int      `cty:"threads"`
	InitFrom        *string  `cty:"init_from"`
	InitMismatch    *string  `cty:"init_mismatch"`
}

// What a training does with an init_from model of another architecture (init_mismatch).
const (
	// InitMismatchFail fails the stage before its first epoch (the default).
	InitMismatchFail = "fail"
	// InitMismatchSeed trains from the seed instead, saying so: for a pipeline whose trainings
	// of several architectures all start from the champion, only the one of its architecture
	// able to take its weights.
	InitMismatchSeed = "seed"
)

// archDefaults are the original system's per-architecture settings.
var archDefaults = map[string]struct {
	epochs, batch int
	lr            float64
}{
	"cnn":   {20, 32, 1e-3},
	"vgg19": {5, 16, 1e-4},
	"vit":   {5, 16, 5e-5},
}

// SelectMetrics are the validation metrics a train stage can keep its best epoch by.
var SelectMetrics = []string{"val_f1", "val_loss", "val_top1", "val_top3", "val_top5"}

// Name implements pipeline.Kind.
func (Train) Name() string { return "train" }

// Version implements pipeline.Kind. (6: the SavedModel names its variables as TensorFlow's
// Python tools expect (TFLite and ONNX conversion, m.variables), metrics.json records the
// plateau schedule's factor and patience; 5: the sets are read in contentOrder and keyed by what
// they hold, so renamed photos keep the model; 4: NaN and infinite epochs, exact plot ticks,
// rate axes end at 1.) A change to metrics.png's layout alone does not bump it, as that would retrain
// every model for a picture: a cached training keeps the plot it was made with (version 4 has
// had two: with and without its right edge cut).
func (Train) Version() int { return 6 }

// Outputs implements pipeline.Kind: the SavedModel folder (metrics.json, history.json and
// metrics.png sit beside it).
func (Train) Outputs() []string { return []string{"saved_model"} }

// OutputTypes implements pipeline.OutputTyper.
func (Train) OutputTypes() map[string]string { return map[string]string{"saved_model": typeModel} }

// Heavy implements pipeline.Heavy: training uses every core.
func (Train) Heavy(*pipeline.Values) bool { return true }

// Environment implements pipeline.Environmental: results depend on the TensorFlow build and
// the device, on whether its oneDNN kernels run (they round differently from the Eigen ones),
// on the thread count (it orders floating-point sums) and on the CPU's instruction set
// (graphs.NumericsEnvironment). metrics.png has no class names: the fonts do not matter.
func (Train) Environment(v *pipeline.Values) ([]string, error) {
	return graphs.NumericsEnvironment(threadsSet(v))
}

// ArtifactDir implements pipeline.ArtifactNamer: models/<timestamp>/<architecture>/, or
// <architecture>.<key> for a for_each instance whose key is not its architecture (two cnn
// trainings keyed fast and slow: cnn.fast/, cnn.slow/).
func (Train) ArtifactDir(key string, v *pipeline.Values, _ string) string {
	return archDir(v.String("architecture"), key)
}

// noEffect warns of settings that change nothing with the others given: plateau options
// without the plateau schedule and weight decay with adam (left out of the key too, so
// setting them reruns nothing), a warm-up as long as the training, and an early_stopping or
// plateau_patience the training is too short to reach. A value the stage takes from the
// pipeline block is not warned of: other stages may use it.
func (d *diagList) noEffect(v *pipeline.Values) {
	warn := func(name, summary, detail string) { d.warn(v, name, summary, detail) }
	defaults := attributeDefaults(Train{}.Attributes())
	givenHere := func(name string) bool { // set otherwise than by the default or the pipeline block
		x := v.Get(name)
		return x.IsWhollyKnown() && !x.IsNull() && !x.RawEquals(defaults[name]) && !v.Inherited(name)
	}
	if usable(v, "schedule") && v.String("schedule") != SchedulePlateau {
		for _, name := range []string{"plateau_factor", "plateau_patience"} {
			if givenHere(name) {
				warn(name, "Setting without effect", fmt.Sprintf("%s applies to schedule = %q only; with schedule = %q it changes nothing.", name, SchedulePlateau, v.String("schedule")))
			}
		}
	}
	if usable(v, "optimizer") && v.String("optimizer") == "adam" && givenHere("weight_decay") && num(v, "weight_decay") != 0 {
		warn("weight_decay", "Setting without effect", `adam has no weight decay: weight_decay changes nothing with it; use optimizer = "adamw" for decoupled weight decay.`)
	}
	epochs, known := num(v, "epochs"), usable(v, "epochs")
	if def, ok := archDefaults[v.String("architecture")]; !known && ok && usable(v, "architecture") && v.Get("epochs").IsKnown() {
		epochs, known = float64(def.epochs), true
	}
	if usable(v, "warmup_epochs") && known && num(v, "warmup_epochs") > 0 && num(v, "warmup_epochs") >= epochs {
		warn("warmup_epochs", "Warm-up as long as the training", fmt.Sprintf("warmup_epochs = %s with %g epochs: the learning rate rises until training ends (reaching learning_rate at most at its last step), and the schedule after the warm-up never starts; keep warmup_epochs below epochs.", hclValue(v.Get("warmup_epochs")), epochs))
	}
	// Training stops early after an epoch before the last, once select_metric has not
	// improved for early_stopping epochs: epochs it cannot have gone without improvement
	// before its last.
	if givenHere("early_stopping") && known && num(v, "early_stopping") > 0 && num(v, "early_stopping") >= epochs {
		warn("early_stopping", "Early stopping as long as the training", fmt.Sprintf("early_stopping = %s with %g epochs: training stops early only before its last epoch, once select_metric has not improved for early_stopping epochs, which it cannot have by then; it always runs every epoch. Keep early_stopping below epochs.", hclValue(v.Get("early_stopping")), epochs))
	}
	// The plateau schedule lowers the rate after the epoch that makes plateau_patience+1
	// without improvement since the best, the first epoch's at the earliest: after epoch
	// plateau_patience+2, which must come before the last epoch for the rate to change.
	if usable(v, "schedule") && v.String("schedule") == SchedulePlateau && givenHere("plateau_patience") && known && num(v, "plateau_patience") >= epochs-2 {
		keep := fmt.Sprintf("keep plateau_patience below %g (epochs - 2)", epochs-2)
		if epochs <= 2 {
			keep = fmt.Sprintf("with %g epochs no plateau_patience lets it act", epochs)
		}
		warn("plateau_patience", "Plateau patience too long for the training", fmt.Sprintf("plateau_patience = %s with %g epochs: the plateau schedule lowers the learning rate once val loss has not improved for more than plateau_patience epochs after the best one, so after epoch plateau_patience + 2 at the earliest, and a reduction after the last epoch changes nothing: the learning rate never changes; %s.", hclValue(v.Get("plateau_patience")), epochs, keep))
	}
}

// archDir is an architecture's folder in a run folder: its name, with the instance key
// after a dot unless the key is the architecture or there is none.
func archDir(arch, key string) string {
	if key == "" || key == arch {
		return arch
	}
	return arch + "." + strings.NewReplacer("/", "_", "\x00", "_").Replace(key)
}

// Attributes implements pipeline.Kind.
func (Train) Attributes() []pipeline.Attribute {
	return []pipeline.Attribute{
		{Name: "architecture", Type: cty.String, Required: true, Doc: "cnn, vgg19 or vit"},
		{Name: "train", Type: cty.String, Required: true, Doc: "training set (an augment output or a split's train)", Accepts: []string{typeImages}, NonEmpty: true, ByContent: true},
		{Name: "val", Type: cty.String, Required: true, Doc: "validation set (a split's val)", Accepts: []string{typeImages}, NonEmpty: true, ByContent: true},
		{Name: "options", Type: cty.DynamicPseudoType, Doc: "architecture options, e.g. { channels = [16, 32], dense = 128 } for cnn"},
		{Name: "epochs", Type: cty.Number, Doc: "default: cnn 20, vgg19 5, vit 5"},
		{Name: "batch_size", Type: cty.Number, Doc: "default: cnn 32, vgg19 16, vit 16"},
		{Name: "optimizer", Type: cty.String, Default: cty.StringVal("adamw"), Doc: "adam or adamw"},
		{Name: "learning_rate", Type: cty.Number, Doc: "default: cnn 1e-3, vgg19 1e-4, vit 5e-5"},
		{Name: "weight_decay", Type: cty.Number, Default: cty.NumberFloatVal(1e-4), Doc: "decoupled (adamw)"},
		{Name: "schedule", Type: cty.String, Default: cty.StringVal(SchedulePlateau), Doc: "constant, cosine or plateau"},
		{Name: "plateau_factor", Type: cty.Number, Default: cty.NumberFloatVal(0.1), Doc: "plateau: rate multiplier"},
		{Name: "plateau_patience", Type: cty.Number, Default: cty.NumberIntVal(5), Doc: "plateau: epochs without val-loss improvement"},
		{Name: "warmup_epochs", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "linear warm-up"},
		{Name: "early_stopping", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "stop after this many epochs without improvement (0: never)"},
		{Name: "label_smoothing", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "0 to <1"},
		{Name: "select_metric", Type: cty.String, Default: cty.StringVal("val_f1"), Doc: "metric that picks the exported epoch"},
		{Name: "threads", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "TensorFlow threads (0: one per core)"},
		{Name: "init_from", Type: cty.String, Accepts: []string{typeModel}, KeyedWhenSet: true,
			Doc: "a SavedModel of the same architecture whose weights start the training (fine-tuning); tensors of another shape, such as the classifier of other classes, start fresh"},
		{Name: "init_mismatch", Type: cty.String, KeyedWhenSet: true,
			Doc: "when init_from holds a model of another architecture: fail (the default), or seed (train from the seed, saying so)"},
	}
}

// Validate implements pipeline.Validator.
func (Train) Validate(v *pipeline.Values) hcl.Diagnostics {
	var d diagList
	d.oneOf(v, "architecture", graphs.Architectures()...)
	d.oneOf(v, "optimizer", "adam", "adamw")
	d.oneOf(v, "schedule", ScheduleConstant, ScheduleCosine, SchedulePlateau)
	d.oneOf(v, "select_metric", SelectMetrics...)
	d.oneOf(v, "init_mismatch", InitMismatchFail, InitMismatchSeed)
	if usable(v, "init_mismatch") && !v.Inherited("init_mismatch") && v.Get("init_from").IsKnown() && (v.Get("init_from").IsNull() || v.String("init_from") == "") {
		d.warn(v, "init_mismatch", "Setting without effect", "init_mismatch says what to do with an init_from model of another architecture, and this stage has no init_from: it changes nothing.")
	}
	d.intRange(v, "epochs", 1, 100000)
	d.noEffect(v)
	d.intRange(v, "batch_size", 1, 65536)
	d.positive(v, "learning_rate")
	d.intRange(v, "warmup_epochs", 0, 100000)
	d.intRange(v, "early_stopping", 0, 100000)
	d.intRange(v, "plateau_patience", 0, 100000)
	d.intRange(v, "threads", 0, 1024)
	if usable(v, "weight_decay") && num(v, "weight_decay") < 0 {
		d.add(v, "weight_decay", "Invalid weight_decay", "weight_decay must not be negative.")
	}
	if usable(v, "label_smoothing") && (num(v, "label_smoothing") < 0 || num(v, "label_smoothing") >= 1) {
		d.add(v, "label_smoothing", "Invalid label_smoothing", "label_smoothing must be in [0, 1).")
	}
	if usable(v, "plateau_factor") && (num(v, "plateau_factor") <= 0 || num(v, "plateau_factor") >= 1) {
		d.add(v, "plateau_factor", "Invalid plateau_factor", "plateau_factor must be in (0, 1).")
	}
	// The test set chooses the exported epoch when given as val: its scores then flatter the model.
	if len(fromOutputs(v, "val", "split", TestSet)) > 0 {
		d.warn(v, "val", "Validating on the test set",
			"val takes a split's test set: the training picks the epoch it exports by its scores there, so the evaluation on that test set flatters the model; give stage.<split>.val, unless that is what you want.")
	}
	for _, set := range fromOutputs(v, "train", "split", ValSet, TestSet) {
		d.warn(v, "train", "Training on a held-out set",
			fmt.Sprintf("train takes a split's %s set: the model learns the images it is meant to be chosen or scored on; give stage.<split>.train (or an augment stage of it), unless that is what you want.", set))
	}
	// train and val from splits that store images another way fail the training.
	for _, name := range []string{"image_size", "channels"} {
		t, _, tok := v.UpstreamValue("train", name)
		va, _, vok := v.UpstreamValue("val", name)
		if tok && vok && !t.RawEquals(va) && t.Type() == cty.Number && va.Type() == cty.Number {
			tn, _ := t.AsBigFloat().Int64()
			vn, _ := va.AsBigFloat().Int64()
			d.add(v, "val", "Train and val sets of different splits",
				fmt.Sprintf("The train set comes from a split with %s = %d and the val set from one with %s = %d: the training would stop with an error. Take both from one split.", name, tn, name, vn))
		}
	}
	// The options of an unknown architecture (reported above) cannot be checked.
	if usable(v, "architecture") && slices.Contains(graphs.Architectures(), v.String("architecture")) && v.Get("options").IsWhollyKnown() {
		spec, err := archSpec(v.String("architecture"), v.Get("options"))
		var problems graphs.OptionErrors
		switch {
		case errors.As(err, &problems):
			for _, e := range problems { // every problem, each said once
				d.add(v, "options", "Invalid architecture options", e.Error())
			}
		case err != nil:
			d.add(v, "options", "Invalid architecture options", err.Error())
		}
		// Options read in full (their own problems, which CheckOptions finds, said above) are
		// also checked against the image size.
		full := err == nil
		if cerr := spec.CheckOptions(); err != nil && cerr != nil && cerr.Error() == err.Error() {
			full = true
		}
		switch {
		case !full:
		case spec.ViT != nil:
			n, exact := imageSide(v)
			if n > 0 && spec.ViT.Patch > 0 && n%spec.ViT.Patch != 0 {
				// Sure to stop the training when the split's size is known: an error, before
				// anything runs; a warning when the split's size is a guess.
				what, unless, severity := fmt.Sprintf("the pipeline's image_size %d", n), " unless its split stores images of another size", hcl.DiagWarning
				if exact {
					what, unless, severity = fmt.Sprintf("the image_size %d of its split", n), "", hcl.DiagError
				}
				d.diags = append(d.diags, &hcl.Diagnostic{Severity: severity, Summary: "Patch size does not tile the images",
					Detail: fmt.Sprintf("A vit patch of %d does not divide %s: training stops with an error%s. Choose a patch that divides the image size (for %d: %s).",
						spec.ViT.Patch, what, unless, n, patchChoices(n, spec.ViT.Patch)),
					Subject: v.Range("options")})
			}
		case spec.CNN != nil || spec.VGG19 != nil:
			if n, exact := imageSide(v); n > 0 {
				if msg := poolTooLarge(spec, n, exact); msg != "" {
					d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Pool larger than the feature map",
						Detail: msg, Subject: v.Range("options")})
				}
			}
		}
	}
	return d.diags
}

// imageSide returns the side of the images a training stage will get, as far as validation
// can tell (0 when it cannot): the image_size of the split its train set comes from (through an
// augment stage, say), or else of its val set's (which must match), with exact set, or, when
// neither is a stage's output, the pipeline block's image_size, which splits use unless they
// set their own. A train set that comes from one of several splits of different sizes (an
// expression choosing between them) is not known until it runs: 0.
// ReadsSettings implements pipeline.SettingReader: the pool and patch checks take the pipeline
// block's image_size when no split says the images' size (imageSide).
func (Train) ReadsSettings() []string { return []string{"image_size"} }

func imageSide(v *pipeline.Values) (n int64, exact bool) {
	size, found, ok := v.UpstreamValue("train", "image_size")
	if !found {
		// train is a path: the val set's split, whose images the training's must match
		size, found, ok = v.UpstreamValue("val", "image_size")
	}
	exact = ok
	if found && !ok {
		return 0, false
	}
	if !ok {
		size, ok = v.Setting("image_size")
	}
	if !ok || size.Type() != cty.Number {
		return 0, false
	}
	n, _ = size.AsBigFloat().Int64()
	return n, exact
}

// poolTooLarge says why a cnn's or vgg19's pool is wasteful on images of side size, or "":
// its max-pools (stride 2, rounding up) leave a grid of some side, and an adaptive pool to a
// larger grid repeats values, multiplying the dense layer's inputs (and the time a step
// takes) for no more information. exact says the size is that of the stage's split, not the
// pipeline block's.
func poolTooLarge(spec graphs.Spec, size int64, exact bool) string {
	var pool, stages, channels int64
	var what string
	switch {
	case spec.CNN != nil && len(spec.CNN.Channels) > 0:
		pool, stages, channels = spec.CNN.Pool, int64(len(spec.CNN.Channels)), spec.CNN.Channels[len(spec.CNN.Channels)-1]
		what = fmt.Sprintf("its %s", plural(int(stages), "block", "blocks"))
	case spec.VGG19 != nil:
		pool, stages = spec.VGG19.Pool, 5
		channels = max(1, int64(math.Round(512*spec.VGG19.Width)))
		what = "its 5 blocks"
	default:
		return ""
	}
	side := size
	for range stages {
		side = (side + 1) / 2
	}
	if pool <= side {
		return ""
	}
	whose, unless := "the pipeline's", ", unless its split stores larger images"
	if exact {
		whose, unless = "its split's", ""
	}
	return fmt.Sprintf("A %s pool of %d is larger than the %d×%d grid %s leave of %s %d-pixel images: the pooling repeats values, and the dense layer takes %d×%d×%d = %d inputs where %d×%d×%d = %d hold the same information (more weights, slower steps). Choose a pool of %s%s.",
		spec.Architecture, pool, side, side, what, whose, size, pool, pool, channels, pool*pool*channels, side, side, channels, side*side*channels, poolChoice(side), unless)
}

// WarnPath implements pipeline.PathWarner: an init_from that is a promotion folder
// (models/final_models) rather than its SavedModel keys the training by the folder's card and
// scores.json too, which change whenever select scores the champion: each change would
// retrain the stage for nothing.
func (Train) WarnPath(v *pipeline.Values, attr, abs string) []string {
	if attr != "init_from" {
		return nil
	}
	if _, ok := PromotedSavedModel(abs); !ok {
		return nil
	}
	if card, err := ReadCard(abs); err != nil || card.ID == "" {
		return nil // a run's model folder (cnn/), which holds no card
	}
	return []string{fmt.Sprintf("it is a promotion folder, whose card and %s change whenever select scores the champion, and each change would retrain this stage for nothing; give its SavedModel, %q", championScores, filepath.ToSlash(filepath.Join(v.String(attr), "saved_model")))}
}

// poolChoice says which pools fit a side×side grid: "1", or "at most 4".
func poolChoice(side int64) string {
	if side <= 1 {
		return "1"
	}
	return fmt.Sprintf("at most %d", side)
}

// CheckPath implements pipeline.PathChecker: an init_from that holds no model exported by
// pipeline, or one of another architecture than the stage trains, fails the stage, as does a
// train or val folder that is no image set (a folder of photos, without a manifest).
func (Train) CheckPath(v *pipeline.Values, attr, abs string) string {
	if attr == "train" || attr == "val" {
		return imageSetProblem(abs)
	}
	if attr != "init_from" {
		return ""
	}
	info, why := initFromModel(abs)
	if why != "" {
		return why
	}
	if arch := v.String("architecture"); usable(v, "architecture") && info.Spec.Architecture != arch && v.String("init_mismatch") != InitMismatchSeed {
		return fmt.Sprintf("it holds a %s, and this stage trains a %s", info.Spec.Architecture, arch)
	}
	return ""
}

// initFromModel reads the model.json of the model an init_from folder abs holds (the folder
// itself, or the SavedModel of a promotion or run folder), or says why it holds none that
// pipeline exported, in the words of the path the user wrote rather than of the SavedModel
// folder looked in.
func initFromModel(abs string) (*graphs.ModelInfo, string) {
	dir := SavedModelOf(abs)
	info, err := graphs.ReadModelInfo(dir)
	var parse *graphs.ModelInfoParseError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "it holds no model exported by pipeline (no " + graphs.ModelInfoFile + ")"
	case errors.As(err, &parse):
		return nil, fmt.Sprintf("%s cannot be parsed: %v", filepath.Join(dir, graphs.ModelInfoFile), parse.Err)
	case err != nil:
		return nil, fmt.Sprintf("%s: %v", filepath.Join(dir, graphs.ModelInfoFile), err)
	}
	return info, ""
}

// patchChoices lists the patch sizes from 2 to n/2 that divide n: the six nearest patch (the
// one asked for), smallest first.
func patchChoices(n, patch int64) string {
	var divs []int64
	for p := int64(2); p <= n/2; p++ {
		if n%p == 0 {
			divs = append(divs, p)
		}
	}
	if len(divs) == 0 {
		return "only 1 or the whole image"
	}
	// The six nearest the patch asked for, in order.
	slices.SortStableFunc(divs, func(a, b int64) int { return cmp.Compare(abs64(a-patch), abs64(b-patch)) })
	divs = divs[:min(6, len(divs))]
	slices.Sort(divs)
	out := make([]string, len(divs))
	for i, p := range divs {
		out[i] = strconv.FormatInt(p, 10)
	}
	return strings.Join(out, ", ")
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// archSpec builds the graphs.Spec of an architecture from its defaults and the options
// attribute (an object whose keys are the JSON names of the architecture's fields).
func archSpec(arch string, options cty.Value) (graphs.Spec, error) {
	spec := graphs.Spec{Architecture: arch}
	if _, err := spec.Network(); err != nil { // fills the defaults
		return spec, err
	}
	if options.IsNull() || !options.IsKnown() {
		return spec, nil
	}
	if !options.Type().IsObjectType() && !options.Type().IsMapType() {
		return spec, fmt.Errorf("options must be an object such as { dense = 128 }, got %s", options.Type().FriendlyName())
	}
	raw, err := ctyjson.Marshal(options, options.Type())
	if err != nil {
		return spec, err
	}
	var target any
	switch arch {
	case "cnn":
		target = spec.CNN
	case "vgg19":
		target = spec.VGG19
	case "vit":
		target = spec.ViT
	}
	names := optionNames(target)
	// Options it does not have are said with the problems of those it has, all at once.
	var unknown graphs.OptionErrors
	var unknownNames []string
	for it := options.ElementIterator(); it.Next(); {
		k, _ := it.Element()
		if name := k.AsString(); !slices.Contains(names, name) {
			msg := fmt.Sprintf("%s has no option %q", arch, name)
			if sug := pipeline.Suggest(name, names); sug != "" {
				msg += fmt.Sprintf("; did you mean %q?", sug)
			} else {
				msg += "."
			}
			unknown = append(unknown, fmt.Errorf("%s The %s options are %s.", msg, arch, pipeline.JoinList(names, "and")))
			unknownNames = append(unknownNames, name)
		}
	}
	if len(unknown) > 0 {
		// The options it has, checked as they would be alone.
		var given map[string]json.RawMessage
		if err := json.Unmarshal(raw, &given); err != nil {
			return spec, err
		}
		for _, name := range unknownNames {
			delete(given, name)
		}
		if raw, err = json.Marshal(given); err != nil {
			return spec, err
		}
		known, err := archSpecJSON(spec, target, arch, raw)
		var problems graphs.OptionErrors
		switch {
		case errors.As(err, &problems):
			unknown = append(unknown, problems...)
		case err != nil:
			unknown = append(unknown, err)
		}
		return known, unknown
	}
	return archSpecJSON(spec, target, arch, raw)
}

// archSpecJSON decodes raw, options the architecture arch has, into target (the options
// struct of spec) and checks them.
func archSpecJSON(spec graphs.Spec, target any, arch string, raw []byte) (graphs.Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // optionNames lists them all; this is a second guard
	if err := dec.Decode(target); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return spec, fmt.Errorf("%s option %s must be %s, not %s", arch, te.Field, jsonKindName(te.Type), jsonValueName(te.Value))
		}
		return spec, fmt.Errorf("%s options: %v (see docs/stages.md for the option names)", arch, err)
	}
	return spec, spec.CheckOptions()
}

// optionNames are the JSON names of the fields of the architecture options struct that
// target points to, in declaration order: the names its options attribute takes.
func optionNames(target any) []string {
	t := reflect.TypeOf(target)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case name == "":
			names = append(names, f.Name)
		default:
			names = append(names, name)
		}
	}
	return names
}

// jsonKindName says in HCL terms what an options field of type t takes.
func jsonKindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonKindName(t.Elem()), "a "), "an ") + "s"
	}
	return pipeline.WithArticle(t.Kind().String())
}

// jsonValueName says in HCL terms what an option was given, from the JSON description in
// json.UnmarshalTypeError ("string", "number 4.5", "array").
func jsonValueName(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	}
	return pipeline.WithArticle(v)
}

// resolved is the training configuration with architecture defaults applied.
type resolved struct {
	TrainConfig
	epochs, batch int
	lr            float64
	spec          graphs.Spec
	initFrom      string // "" for none
}

func resolve(v *pipeline.Values) (resolved, error) {
	var r resolved
	if err := v.Decode(&r.TrainConfig); err != nil {
		return r, err
	}
	def, ok := archDefaults[r.Architecture]
	if !ok {
		return r, fmt.Errorf("unknown architecture %q", r.Architecture)
	}
	r.epochs, r.batch, r.lr = def.epochs, def.batch, def.lr
	if r.Epochs != nil {
		r.epochs = *r.Epochs
	}
	if r.BatchSize != nil {
		r.batch = *r.BatchSize
	}
	if r.LearningRate != nil {
		r.lr = *r.LearningRate
	}
	if r.InitFrom != nil {
		r.initFrom = *r.InitFrom
	}
	var err error
	r.spec, err = archSpec(r.Architecture, v.Get("options"))
	return r, err
}

// Run implements pipeline.Kind.
func (Train) Run(ctx context.Context, job *pipeline.Job) error {
	cfg, err := resolve(job.Values)
	if err != nil {
		return err
	}
	if cfg.initFrom != "" && cfg.InitMismatch != nil && *cfg.InitMismatch == InitMismatchSeed {
		// Decided by the model there now, which the key has: a resumed training decides alike.
		if info, why := initFromModel(job.Path(cfg.initFrom)); why == "" && info.Spec.Architecture != cfg.Architecture {
			job.Logf("init_from %q holds a %s, and this stage trains a %s: training from the seed (init_mismatch = %q)", cfg.initFrom, info.Spec.Architecture, cfg.Architecture, InitMismatchSeed)
			cfg.initFrom = ""
		}
	}
	return trainLoop(ctx, job, cfg)
}

// writeFileJSON writes v as indented JSON.
func writeFileJSON(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, name), v)
}
