package main

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
)

func selftestCommand() *cli.Command {
	return &cli.Command{
		Name:  "selftest",
		Usage: "train a tiny CNN, VGG19 and ViT on a synthetic problem, export, reload and compare",
		Description: "Checks that this machine's libtensorflow can build, train and export every architecture.\n" +
			"Writes a SavedModel per architecture to <out>/<UTC timestamp>-selftest/<architecture>/saved_model.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "models", Usage: "folder for the run folder"},
			&cli.IntFlag{Name: "steps", Value: defaultSelftestSteps, Usage: "training steps per architecture"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of the synthetic data and of the training"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("selftest takes no arguments, got %q; give the folder for its run folder with --out", c.Args().Slice())
			}
			if steps := c.Int("steps"); steps < 1 {
				return fmt.Errorf("--steps %d: the training steps per architecture must be at least 1 (default %d)", steps, defaultSelftestSteps)
			}
			return selftest(c.App.Writer, c.String("out"), c.Int("steps"), c.Uint64("seed"))
		},
	}
}

// selftestSpecs are the architectures at a size that trains in seconds on two cores.
func selftestSpecs() []graphs.Spec {
	return []graphs.Spec{
		{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{8, 16, 32}, Dropout: 0.1, Pool: 2, Dense: 64, DenseDropout: 0.1}},
		{Architecture: "vgg19", VGG19: &graphs.VGG19{Width: 0.125, Classifier: 64, Pool: 1, BatchNorm: true, Dropout: 0.1}},
		{Architecture: "vit", ViT: &graphs.ViT{Patch: 4, Dim: 32, Depth: 2, Heads: 2, MLPRatio: 2, Pool: "cls", Dropout: 0}},
	}
}

// defaultSelftestSteps is selftest's training steps per architecture unless --steps says.
const defaultSelftestSteps = 150

func selftest(w interface{ Write([]byte) (int, error) }, out string, steps int, seed uint64) error {
	const classes, size, batch = 6, 16, 32
	in := graphs.Input{Height: size, Width: size, Channels: 3, Mean: []float32{90, 90, 90}, Std: []float32{80, 80, 80}}
	names := make([]string, classes)
	for i := range names {
		names[i] = fmt.Sprintf("class_%d", i)
	}
	train := graphs.Synthetic(batch*20, classes, size, size, 3, seed)
	test := graphs.Synthetic(256, classes, size, size, 3, seed+1)
	runDir := filepath.Join(out, time.Now().UTC().Format("20060102_150405")+"-selftest")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "architecture\tparams\tfirst loss\tlast loss\ttest accuracy\timages/s\texport Δ\tmodel")
	var unlearned, differing []string
	for _, spec := range selftestSpecs() {
		res, err := selftestOne(spec, in, names, train, test, steps, batch, seed, filepath.Join(runDir, spec.Architecture, "saved_model"))
		if err != nil {
			return fmt.Errorf("selftest %s: %w", spec.Architecture, err)
		}
		if !(res.lastLoss < res.firstLoss/2 && res.accuracy >= 0.9) {
			unlearned = append(unlearned, spec.Architecture)
		}
		if !(res.exportDiff <= 1e-5) {
			differing = append(differing, spec.Architecture)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.1f%%\t%.0f\t%.1e\t%s\n", spec.Architecture, res.params, res.firstLoss, res.lastLoss,
			100*res.accuracy, res.imagesPerSec, res.exportDiff, res.dir)
	}
	tw.Flush()
	var problems []string
	if len(unlearned) > 0 {
		p := fmt.Sprintf("%s did not learn the synthetic problem in %d steps (the last loss must be under half the first, and the test accuracy at least 90 %%)",
			strings.Join(unlearned, ", "), steps)
		if steps < defaultSelftestSteps {
			p += fmt.Sprintf("; fewer steps than the default %d can be too few: try --steps %d", defaultSelftestSteps, defaultSelftestSteps)
		}
		problems = append(problems, p)
	}
	if len(differing) > 0 {
		problems = append(problems, fmt.Sprintf("the exported %s answered differently from the trained one (by more than 1e-5)", strings.Join(differing, ", ")))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; and "))
	}
	fmt.Fprintln(w, "selftest passed: every architecture learned, exported and reloaded identically")
	return nil
}

type selftestResult struct {
	params                 int64
	firstLoss, lastLoss    float32
	accuracy, imagesPerSec float64
	exportDiff             float64
	dir                    string
}

func selftestOne(spec graphs.Spec, in graphs.Input, names []string, train, test graphs.Batch, steps, batch int, seed uint64, dir string) (selftestResult, error) {
	tr, err := graphs.NewTrainer(graphs.TrainConfig{
		Model:     graphs.Classifier{Spec: spec, Input: in, Classes: int64(len(names))},
		Optimizer: graphs.Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7},
		Seed:      seed,
	})
	if err != nil {
		return selftestResult{}, err
	}
	defer tr.Close()
	res := selftestResult{params: tr.Params(), dir: dir}
	n := train.Len(in)
	start := time.Now()
	var tail float32
	for i := 0; i < steps; i++ {
		lo := (i * batch) % n
		r, err := tr.Step(train.Slice(in, lo, lo+batch), 2e-3)
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.firstLoss = r.Loss
		}
		if i >= steps-10 {
			tail += r.Loss / 10
		}
	}
	res.lastLoss = tail
	res.imagesPerSec = float64(steps*batch) / time.Since(start).Seconds()
	ev, err := tr.Evaluate(test)
	if err != nil {
		return res, err
	}
	correct := 0
	for i, p := range ev.Probabilities {
		if argmax(p) == int(test.Labels[i]) {
			correct++
		}
	}
	res.accuracy = float64(correct) / float64(len(test.Labels))
	if err := tr.Export(dir, names, "center_crop"); err != nil {
		return res, err
	}
	m, err := graphs.LoadModel(dir, 0)
	if err != nil {
		return res, err
	}
	defer m.Close()
	got, err := m.Predict(test.Images)
	if err != nil {
		return res, err
	}
	for i := range got {
		for j := range got[i] {
			res.exportDiff = math.Max(res.exportDiff, math.Abs(float64(got[i][j]-ev.Probabilities[i][j])))
		}
	}
	return res, nil
}

func argmax(p []float32) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}
