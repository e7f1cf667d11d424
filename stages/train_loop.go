package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// metric is a float that survives JSON: NaN and ±Inf (a diverged loss) become null.
type metric float64

// MarshalJSON implements json.Marshaler.
func (m metric) MarshalJSON() ([]byte, error) {
	f := float64(m)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *metric) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = metric(math.NaN())
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*m = metric(f)
	return err
}

// EpochRecord is one line of history.json.
type EpochRecord struct {
	Epoch     int    `json:"epoch"`
	TrainLoss metric `json:"train_loss"`
	TrainF1   metric `json:"train_f1"`
	ValLoss   metric `json:"val_loss"`
	ValF1     metric `json:"val_f1"`
	ValTop1   metric `json:"val_top1"`
	ValTop3   metric `json:"val_top3"`
	ValTop5   metric `json:"val_top5"`
	LR        metric `json:"learning_rate"`
	// ImagesPerS and Seconds are the epoch's speed: kept for resuming and the run log, left
	// out of history.json (see StatTrainImagesPerS).
	ImagesPerS metric `json:"images_per_s,omitempty"`
	Seconds    metric `json:"seconds,omitempty"`
}

func (r EpochRecord) value(name string) float64 {
	switch name {
	case "val_loss":
		return float64(r.ValLoss)
	case "val_top1":
		return float64(r.ValTop1)
	case "val_top3":
		return float64(r.ValTop3)
	case "val_top5":
		return float64(r.ValTop5)
	}
	return float64(r.ValF1)
}

// trainState is the resumable state, written after every completed epoch.
type trainState struct {
	Epoch     int           `json:"epoch"` // last completed epoch
	History   []EpochRecord `json:"history"`
	Best      int           `json:"best_epoch"` // 0: none yet
	BestDir   string        `json:"best_dir"`
	Since     int           `json:"epochs_since_best"`
	Schedule  *schedule     `json:"schedule"`
	Mean      []float32     `json:"mean"`
	Std       []float32     `json:"std"`
	Stopped   string        `json:"stopped,omitempty"`
	TrainSecs float64       `json:"train_seconds"`
	TrainImgs int64         `json:"train_images"`
}

// Stats a training run records (Job.SetStat): its speed, which differs from run to run and
// so stays out of the output, whose content is then a function of the inputs; a retrain that
// reproduces a model (same data, settings and seed) publishes the same object, and its
// evaluation, promotion and rollback block (keyed by its store path) still hold.
const (
	StatTrainImagesPerS = "train_images_per_s"
	StatTrainSeconds    = "train_seconds"
)

// Metrics is metrics.json: flat keys (readable by `dvc metrics show`) for the exported epoch.
type Metrics struct {
	Architecture    string         `json:"architecture"`
	ValF1           metric         `json:"val_f1"`
	ValLoss         metric         `json:"val_loss"`
	ValTop1         metric         `json:"val_top1"`
	ValTop3         metric         `json:"val_top3"`
	ValTop5         metric         `json:"val_top5"`
	TrainF1         metric         `json:"train_f1"`
	TrainLoss       metric         `json:"train_loss"`
	BestEpoch       int            `json:"best_epoch"`
	EpochsRun       int            `json:"epochs_run"`
	Params          int64          `json:"params"`
	SelectMetric    string         `json:"select_metric"`
	Selection       string         `json:"selection"`
	Hyperparameters map[string]any `json:"hyperparameters"`
	TrainImages     int            `json:"train_images"`
	ValImages       int            `json:"val_images"`
	// NormalizationMean and NormalizationStd are the per-channel statistics (0–255 scale)
	// of the original training images that the model subtracts and divides by.
	NormalizationMean []float32 `json:"normalization_mean"`
	NormalizationStd  []float32 `json:"normalization_std"`
}

func trainLoop(ctx context.Context, job *pipeline.Job, cfg resolved) error {
	trainDS, err := openDataset(ctx, job.Path(cfg.Train), job.Workspace)
	if err != nil {
		return fmt.Errorf("train set %s: %w", cfg.Train, err)
	}
	valDS, err := openDataset(ctx, job.Path(cfg.Val), job.Workspace)
	if err != nil {
		return fmt.Errorf("val set %s: %w", cfg.Val, emptyHint(err))
	}
	if d := datasetDifference(trainDS.m, valDS.m); d != "" {
		return fmt.Errorf("train set %s and val set %s differ: %s; they must come from the same split", cfg.Train, cfg.Val, d)
	}
	statePath := filepath.Join(job.Work, "state.json")
	st, resumed := readTrainState(job, statePath, trainDS.m.Channels)
	m := trainDS.m
	n := trainDS.len()
	stepsPerEpoch := (n + cfg.batch - 1) / cfg.batch
	tr, err := startTrainer(job, cfg, trainDS, st, resumed)
	if resumed && err == nil {
		if rerr := tr.Restore(filepath.Join(job.Work, fmt.Sprintf("ckpt-%d", st.Epoch))); rerr != nil {
			// The checkpoint is damaged (a file cut short, say), and the trainer may hold
			// part of it: both go, and training starts over in this run. (Only the latest
			// checkpoint is kept, so there is no earlier one to fall back to.)
			tr.Close()
			// Restore's error is one line: TensorFlow's, said without its ops and hints.
			why := strings.ReplaceAll(rerr.Error(), job.Work+string(filepath.Separator), "")
			job.Logf("warning: the checkpoint of epoch %d is damaged (%s): training from scratch", st.Epoch, why)
			clearWork(job.Work)
			st, resumed = &trainState{}, false
			tr, err = startTrainer(job, cfg, trainDS, st, false)
		}
	}
	if err != nil {
		return err
	}
	defer tr.Close()
	if resumed {
		job.Logf("resuming after epoch %d of %d (checkpoint in the stage's work area)", st.Epoch, cfg.epochs)
	} else {
		st.Schedule, err = newSchedule(cfg.Schedule, cfg.lr, cfg.WarmupEpochs*stepsPerEpoch, cfg.epochs*stepsPerEpoch, cfg.PlateauFactor, cfg.PlateauPatience)
		if err != nil {
			return err
		}
		job.Logf("training %s (%d parameters) on %s (%d classes, %dx%dx%d), validating on %d",
			cfg.Architecture, tr.Params(), plural(n, "image", "images"), len(m.Classes), m.Size, m.Size, m.Channels, valDS.len())
	}

	for epoch := st.Epoch + 1; epoch <= cfg.epochs && st.Stopped == ""; epoch++ {
		rec, err := runEpoch(ctx, job, tr, trainDS, valDS, cfg, st, epoch, stepsPerEpoch)
		if err != nil {
			return err
		}
		st.History = append(st.History, rec)
		// (After the last epoch a reduction changes nothing: it is not said.)
		if st.Schedule.endEpoch(float64(rec.ValLoss)) && epoch < cfg.epochs {
			job.Logf("%s", st.Schedule.reducedNote(epoch*stepsPerEpoch))
		}
		if improved(st, rec, cfg.SelectMetric) {
			dir := filepath.Join(job.Work, fmt.Sprintf("best-%d", epoch))
			os.RemoveAll(dir)
			if err := tr.Export(filepath.Join(dir, "saved_model"), m.Classes, m.Resize); err != nil {
				return err
			}
			st.Best, st.BestDir, st.Since = epoch, filepath.Base(dir), 0
		} else {
			st.Since++
		}
		if cfg.EarlyStopping > 0 && st.Since >= cfg.EarlyStopping && epoch < cfg.epochs {
			st.Stopped = fmt.Sprintf("early stopping after epoch %d: %s did not improve for %s", epoch, cfg.SelectMetric, plural(st.Since, "epoch", "epochs"))
			job.Logf("%s", st.Stopped)
		}
		if err := tr.Save(filepath.Join(job.Work, fmt.Sprintf("ckpt-%d", epoch))); err != nil {
			return err
		}
		st.Epoch = epoch
		if err := writeJSONAtomic(statePath, st); err != nil {
			return err
		}
		pruneWork(job.Work, epoch, st.BestDir)
	}
	return finishTraining(job, tr, cfg, st, trainDS, valDS)
}

// startTrainer makes the trainer of a training: for a fresh one (not resumed), with the
// normalisation statistics of the training images, which it sets in st.
func startTrainer(job *pipeline.Job, cfg resolved, trainDS *dataset, st *trainState, resumed bool) (*graphs.Trainer, error) {
	if !resumed && cfg.initFrom != "" {
		if _, err := os.Stat(job.Path(cfg.initFrom)); err != nil {
			return nil, fmt.Errorf("init_from %q: %w", cfg.initFrom, err)
		}
		if _, why := initFromModel(job.Path(cfg.initFrom)); why != "" {
			return nil, fmt.Errorf("init_from %q: %s", cfg.initFrom, why)
		}
	}
	if !resumed {
		// Normalisation statistics come from the original training images only: augmented
		// copies would shift them, and val/test must not leak in.
		var err error
		st.Mean, st.Std, err = trainDS.channelStats(func(e Entry) bool { return e.Copy == nil }, job.Progress)
		if err != nil {
			return nil, err
		}
	}
	m := trainDS.m
	classifier := graphs.Classifier{Spec: cfg.spec, Classes: int64(len(m.Classes)),
		Input: graphs.Input{Height: int64(m.Size), Width: int64(m.Size), Channels: int64(m.Channels), Mean: st.Mean, Std: st.Std}}
	opt := graphs.DefaultOptimizer()
	opt.Name, opt.WeightDecay = cfg.Optimizer, float32(effectiveWeightDecay(cfg.TrainConfig))
	tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: classifier, Optimizer: opt, LabelSmoothing: float32(cfg.LabelSmoothing),
		Seed: uint64(job.Seed), Threads: cfg.Threads})
	if err != nil || resumed || cfg.initFrom == "" {
		return tr, err // a resumed training's weights come from its checkpoint
	}
	if err := keepStartingList(job.Work, SavedModelOf(job.Path(cfg.initFrom))); err != nil {
		tr.Close()
		return nil, fmt.Errorf("init_from %q: %w", cfg.initFrom, err)
	}
	ws, err := tr.LoadWeights(SavedModelOf(job.Path(cfg.initFrom)), m.Classes)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("init_from: %w", err)
	}
	job.Logf("%s", describeWarmStart(cfg.initFrom, ws, len(m.Classes)))
	return tr, nil
}

// describeWarmStart says what a training took from the model at init_from.
func describeWarmStart(from string, ws graphs.WarmStart, classes int) string {
	total := len(ws.Loaded) + len(ws.Fresh)
	msg := fmt.Sprintf("starting from the weights of %s: %d of %d tensors", from, len(ws.Loaded), total)
	if 2*len(ws.Loaded) < total {
		// A network of other options shares a few small tensors at most: hardly a fine-tune.
		msg = "warning: " + msg + " (most of this network starts from the seed: its options differ from the model's)"
	}
	none := len(ws.NewClasses) == classes
	switch n := len(ws.NewClasses); {
	case none:
		msg += "; it has none of these classes: the classifier starts fresh"
	case n == 1:
		msg += fmt.Sprintf("; 1 class new to it (%s): its classifier weights start fresh", logName(ws.NewClasses[0]))
	case n > 1:
		msg += fmt.Sprintf("; %d classes new to it (%s): their classifier weights start fresh", n, strings.Join(logNames(ws.NewClasses), ", "))
	}
	if len(ws.GoneClasses) > 0 {
		msg += fmt.Sprintf("; not in this training set: %s", strings.Join(logNames(ws.GoneClasses), ", "))
	}
	var names []string
	for _, f := range ws.Fresh {
		if !none || !graphs.IsClassifierVar(f.Name) { // said above
			names = append(names, f.String())
		}
	}
	if len(names) > 0 {
		msg += fmt.Sprintf("; fresh (other shape or absent): %s", strings.Join(names, "; "))
	}
	return msg
}

// clearWork empties a training's work area (its folder stays): a damaged checkpoint, the
// resume state that points at it, and the exports of its best epochs, which a fresh start
// does not use.
func clearWork(work string) {
	entries, _ := os.ReadDir(work)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(work, e.Name()))
	}
}

// runEpoch trains one epoch and validates.
func runEpoch(ctx context.Context, job *pipeline.Job, tr *graphs.Trainer, trainDS, valDS *dataset, cfg resolved, st *trainState, epoch, stepsPerEpoch int) (EpochRecord, error) {
	n := trainDS.len()
	// The order of an epoch depends only on the seed and the epoch number.
	perm := rand.New(rand.NewPCG(uint64(job.Seed), uint64(epoch))).Perm(n)
	job.Progress.Start(fmt.Sprintf("epoch %d/%d", epoch, cfg.epochs), int64(stepsPerEpoch))
	conf := NewConfusion(trainDS.m.Classes)
	var lossSum float64
	var steps int
	start := time.Now()
	step := (epoch - 1) * stepsPerEpoch
	lr := st.Schedule.rate(step)
	for b := range trainDS.stream(ctx, perm, cfg.batch) {
		if b.err != nil {
			return EpochRecord{}, b.err
		}
		if err := ctx.Err(); err != nil {
			return EpochRecord{}, err
		}
		lr = st.Schedule.rate(step)
		res, err := tr.Step(b.b, float32(lr))
		if err != nil {
			return EpochRecord{}, err
		}
		for k, p := range res.Predictions {
			conf.Add(int(b.b.Labels[k]), int(p))
		}
		lossSum += float64(res.Loss)
		steps++
		step++
		job.Progress.Add(1)
		if steps%5 == 0 || steps == stepsPerEpoch {
			job.Progress.Status(fmt.Sprintf("loss %.3f, %.0f img/s", lossSum/float64(steps), float64(steps*cfg.batch)/time.Since(start).Seconds()))
		}
	}
	if err := ctx.Err(); err != nil {
		return EpochRecord{}, err
	}
	secs := time.Since(start).Seconds()
	st.TrainSecs += secs
	st.TrainImgs += int64(n)
	val, err := evaluateSet(tr, valDS, max(cfg.batch, 64))
	if err != nil {
		return EpochRecord{}, err
	}
	rec := EpochRecord{Epoch: epoch, TrainLoss: metric(lossSum / float64(max(steps, 1))), TrainF1: metric(conf.MacroF1()),
		ValLoss: metric(val.loss), ValF1: metric(val.conf.MacroF1()), ValTop1: metric(val.top[1]), ValTop3: metric(val.top[3]),
		ValTop5: metric(val.top[5]), LR: metric(lr), ImagesPerS: metric(float64(n) / secs), Seconds: metric(secs)}
	job.Logf("epoch %d/%d: train loss %.4f f1 %.3f | val loss %.4f f1 %.3f top1 %.3f top5 %.3f | lr %.2g | %.0f img/s",
		epoch, cfg.epochs, rec.TrainLoss, rec.TrainF1, rec.ValLoss, rec.ValF1, rec.ValTop1, rec.ValTop5, lr, float64(rec.ImagesPerS))
	return rec, nil
}

// improved decides whether rec becomes the best epoch: a better select metric (lower for
// val_loss), or an equal one with a lower validation loss. NaN never improves.
func improved(st *trainState, rec EpochRecord, metricName string) bool {
	v := rec.value(metricName)
	if math.IsNaN(v) {
		return false
	}
	if st.Best == 0 {
		return true
	}
	best := st.History[st.Best-1]
	b := best.value(metricName)
	lowerIsBetter := metricName == "val_loss"
	switch {
	case lowerIsBetter && v < b, !lowerIsBetter && v > b:
		return true
	case v == b:
		return float64(rec.ValLoss) < float64(best.ValLoss)
	}
	return false
}

// setEval is the result of evaluating a dataset.
type setEval struct {
	conf *Confusion
	loss float64
	top  map[int]float64
}

// evaluateSet runs the inference pass over a dataset.
func evaluateSet(tr *graphs.Trainer, ds *dataset, batch int) (setEval, error) {
	out := setEval{conf: NewConfusion(ds.m.Classes), top: map[int]float64{}}
	hits := map[int]int{}
	order := make([]int, ds.len())
	for i := range order {
		order[i] = i
	}
	var lossSum float64
	for lo := 0; lo < len(order); lo += batch {
		idx := order[lo:min(lo+batch, len(order))]
		b, err := ds.batch(idx)
		if err != nil {
			return out, err
		}
		ev, err := tr.Evaluate(b)
		if err != nil {
			return out, err
		}
		for k, p := range ev.Probabilities {
			label := int(b.Labels[k])
			out.conf.Add(label, argmax(p))
			for _, kk := range []int{1, 3, 5} {
				if topK(p, label, kk) {
					hits[kk]++
				}
			}
			lossSum += float64(ev.Loss[k])
		}
	}
	for _, k := range []int{1, 3, 5} {
		out.top[k] = float64(hits[k]) / float64(ds.len())
	}
	out.loss = lossSum / float64(ds.len())
	return out, nil
}

// divergedSince returns the epoch from which every epoch of history had a training loss that
// is not a finite number (the training diverged, and its weights are NaN or infinite), or 0
// when the last epoch's loss is finite.
func divergedSince(history []EpochRecord) int {
	since := 0
	for i := len(history) - 1; i >= 0; i-- {
		l := float64(history[i].TrainLoss)
		if !math.IsNaN(l) && !math.IsInf(l, 0) {
			break
		}
		since = history[i].Epoch
	}
	return since
}

// finishTraining publishes the best epoch's model (the last one if no epoch ever produced a
// usable metric) with metrics.json, history.json and metrics.png.
func finishTraining(job *pipeline.Job, tr *graphs.Trainer, cfg resolved, st *trainState, trainDS, valDS *dataset) error {
	if since := divergedSince(st.History); since > 0 {
		job.Logf("warning: the training diverged: its loss is not a number since epoch %d; retrain with a lower learning_rate (epochs after that learn nothing)", since)
	}
	sel := fmt.Sprintf("epoch %d had the best %s", st.Best, cfg.SelectMetric)
	src := filepath.Join(job.Work, st.BestDir, "saved_model")
	if st.Best == 0 {
		// Every epoch's metric was NaN: keep the last epoch and say so.
		st.Best = st.Epoch
		sel = fmt.Sprintf("%s never improved (no finite value); kept the last epoch, %d", cfg.SelectMetric, st.Epoch)
		src = filepath.Join(job.Work, "last", "saved_model")
		os.RemoveAll(filepath.Dir(src))
		if err := tr.Export(src, trainDS.m.Classes, trainDS.m.Resize); err != nil {
			return err
		}
		job.Logf("warning: %s", sel)
	}
	if err := pipeline.LinkTree(src, filepath.Join(job.Out, "saved_model")); err != nil {
		return err
	}
	if err := writeExamples(trainDS, filepath.Join(job.Out, "saved_model", "examples")); err != nil {
		return err
	}
	var start digestSet
	known := true
	if cfg.initFrom != "" {
		var err error
		if start, known, err = startingList(job.Work); err != nil {
			return err
		}
	}
	if known {
		if err := writeTrainedOn(job, filepath.Join(job.Out, "saved_model"), start, trainDS, valDS); err != nil {
			return err
		}
	} else {
		// A list without the starting model's photos would pass them for unseen.
		job.Logf("the starting model lists no photos it was trained on (%s; made by an earlier version): this model has no list either, and evaluate and select cannot tell which test photos it saw", TrainedOnFile)
	}
	best := st.History[st.Best-1]
	last := st.History[len(st.History)-1]
	if st.Stopped != "" {
		sel += "; " + st.Stopped
	}
	met := Metrics{
		Architecture: cfg.Architecture, ValF1: best.ValF1, ValLoss: best.ValLoss, ValTop1: best.ValTop1, ValTop3: best.ValTop3,
		ValTop5: best.ValTop5, TrainF1: best.TrainF1, TrainLoss: best.TrainLoss, BestEpoch: st.Best, EpochsRun: last.Epoch,
		Params: tr.Params(), SelectMetric: cfg.SelectMetric,
		Selection: sel, TrainImages: trainDS.len(), ValImages: valDS.len(), NormalizationMean: st.Mean, NormalizationStd: st.Std,
		Hyperparameters: map[string]any{"epochs": cfg.epochs, "batch_size": cfg.batch, "optimizer": cfg.Optimizer, "learning_rate": cfg.lr,
			"weight_decay": effectiveWeightDecay(cfg.TrainConfig), "schedule": cfg.Schedule, "warmup_epochs": cfg.WarmupEpochs, "label_smoothing": cfg.LabelSmoothing,
			"early_stopping": cfg.EarlyStopping, "architecture_options": cfg.spec, "seed": job.Seed},
	}
	if cfg.Schedule == "plateau" { // the only schedule they act in
		met.Hyperparameters["plateau_factor"], met.Hyperparameters["plateau_patience"] = cfg.PlateauFactor, cfg.PlateauPatience
	}
	if cfg.initFrom != "" {
		// A path in the store names the whole upstream output, of which only the model is in
		// this stage's key: metrics.json, a function of the key, does not name it.
		from := cfg.initFrom
		if pipeline.Inside(job.Path(from), filepath.Join(job.Workspace, pipeline.StoreDir)) {
			from = "an upstream stage's saved_model"
		}
		met.Hyperparameters["init_from"] = from
	}
	if err := writeFileJSON(job.Out, "metrics.json", met); err != nil {
		return err
	}
	job.SetStat(StatTrainImagesPerS, float64(st.TrainImgs)/math.Max(st.TrainSecs, 1e-9))
	job.SetStat(StatTrainSeconds, st.TrainSecs)
	history := make([]EpochRecord, len(st.History))
	for i, r := range st.History {
		r.ImagesPerS, r.Seconds = 0, 0 // in the run log and the stats (see StatTrainImagesPerS)
		history[i] = r
	}
	if err := writeFileJSON(job.Out, "history.json", history); err != nil {
		return err
	}
	if err := trainingPlot(filepath.Join(job.Out, "metrics.png"), cfg.Architecture, st.History, st.Best); err != nil {
		return fmt.Errorf("plotting metrics: %w", err)
	}
	trainDS.damaged.merge(&valDS.damaged)
	logDamaged(job, trainDS.damaged.sorted(), " of the train and val sets", "")
	job.Logf("%s: exported epoch %d (%s = %.4f); %s", cfg.Architecture, st.Best, cfg.SelectMetric, best.value(cfg.SelectMetric), sel)
	return nil
}

// ResumeNote implements pipeline.Resumer: a training interrupted after an epoch resumes
// from its checkpoint, when its resume state can be used (as readTrainState checks it).
func (Train) ResumeNote(workDir string) string {
	st, why, err := loadTrainState(filepath.Join(workDir, "state.json"), -1)
	if err != nil || why != "" {
		return ""
	}
	return fmt.Sprintf("resumes an interrupted training after its epoch %d", st.Epoch)
}

// readTrainState reads the resume state left in the work area by an interrupted run, and
// reports whether training can resume from it. A state that cannot be used (unreadable, from
// another format, inconsistent, or without its checkpoint) is logged and left for a fresh
// start: resuming from half of it would train from fresh weights as if epochs were done.
func readTrainState(job *pipeline.Job, path string, channels int) (*trainState, bool) {
	st, why, err := loadTrainState(path, channels)
	if err != nil {
		return &trainState{}, false // none: a first run
	}
	if why != "" {
		job.Logf("warning: the resume state %s cannot be used (%s): training starts over", path, why)
		return &trainState{}, false
	}
	return st, true
}

// loadTrainState reads the resume state at path and says why training cannot resume from it
// ("" when it can); channels < 0 leaves out the check of its normalisation statistics
// against the images. The error is the file's, when it cannot be read.
func loadTrainState(path string, channels int) (*trainState, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var st trainState
	why := ""
	switch {
	case json.Unmarshal(b, &st) != nil:
		why = "it does not parse"
	case st.Epoch < 1 || len(st.History) != st.Epoch:
		why = fmt.Sprintf("it records epoch %d with %s of history", st.Epoch, plural(len(st.History), "epoch", "epochs"))
	case st.Schedule == nil:
		why = "it has no learning-rate schedule"
	case channels >= 0 && (len(st.Mean) != channels || len(st.Std) != channels):
		why = "its normalisation statistics do not match the images"
	case st.Best < 0 || st.Best > st.Epoch:
		why = fmt.Sprintf("its best epoch %d is not among its %d", st.Best, st.Epoch)
	}
	if why == "" {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), fmt.Sprintf("ckpt-%d.state.json", st.Epoch))); err != nil {
			why = fmt.Sprintf("the checkpoint of epoch %d is missing", st.Epoch)
		} else if st.BestDir != "" {
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), st.BestDir, "saved_model")); err != nil {
				why = fmt.Sprintf("the export of its best epoch (%s) is missing", st.BestDir)
			}
		}
	}
	return &st, why, nil
}

// pruneWork removes checkpoints and best-model exports older than the current ones.
func pruneWork(work string, epoch int, bestDir string) {
	entries, _ := os.ReadDir(work)
	keep := map[string]bool{fmt.Sprintf("ckpt-%d", epoch): true, bestDir: true, "state.json": true, "start": true}
	for _, e := range entries {
		name := e.Name()
		base := name
		if i := indexDot(name); i > 0 {
			base = name[:i]
		}
		if keep[base] || keep[name] {
			continue
		}
		os.RemoveAll(filepath.Join(work, name))
	}
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// readJSONFileIfExists decodes path into v and reports whether it existed and parsed.
func readJSONFileIfExists(path string, v any) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// writeJSONAtomic writes v as indented JSON to path, all or nothing (pipeline.WriteFileAtomic).
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(path, b)
}

// writeExamples puts one reference image per class (an original training image, never a
// test image) into dir as <label><ext>, so a served model can show what each class looks like.
func writeExamples(ds *dataset, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	best := map[int]Entry{}
	for _, e := range ds.m.Images {
		if e.Copy != nil {
			continue
		}
		if b, ok := best[e.Label]; !ok || e.Digest < b.Digest {
			best[e.Label] = e
		}
	}
	for label, e := range best {
		if e.Path == "" {
			// not stored: the original as the model sees it, not the photo (nor a link to it)
			img, err := readEntry(ds.m, ds.dir, ds.workspace, e, &ds.damaged)
			if err != nil {
				return err
			}
			data, err := storedFormat{format: FormatPNG}.encode(img)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", label)), data, 0o644); err != nil {
				return err
			}
			continue
		}
		src := filepath.Join(ds.dir, filepath.FromSlash(e.Path))
		if err := pipeline.LinkFile(src, filepath.Join(dir, fmt.Sprintf("%d%s", label, filepath.Ext(src)))); err != nil {
			return err
		}
	}
	return nil
}

// effectiveWeightDecay is the weight decay training applies: none with adam.
func effectiveWeightDecay(c TrainConfig) float64 {
	if c.Optimizer == "adam" {
		return 0
	}
	return c.WeightDecay
}

// datasetDifference says how the manifests of a train set and a val set differ in what a
// network's input and output depend on ("image size 60 and 64 px; channels 1 and 3"), or "".
func datasetDifference(train, val *Manifest) string {
	var d []string
	if train.Size != val.Size {
		d = append(d, fmt.Sprintf("image size %d and %d px", train.Size, val.Size))
	}
	if train.Channels != val.Channels {
		d = append(d, fmt.Sprintf("channels %d and %d", train.Channels, val.Channels))
	}
	if !slices.Equal(train.Classes, val.Classes) {
		added, dropped := classDiff(train.Classes, val.Classes)
		if len(added) > 0 {
			d = append(d, "the val set has classes the train set lacks ("+quoteList(added)+")")
		}
		if len(dropped) > 0 {
			d = append(d, "the val set lacks classes of the train set ("+quoteList(dropped)+")")
		}
		if len(added)+len(dropped) == 0 {
			d = append(d, "the same classes in another order")
		}
	}
	return strings.Join(d, "; ")
}
