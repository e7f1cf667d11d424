// Command gotrain measures training throughput of one architecture through graphs.Trainer, on
// random images held in memory, and prints one JSON line. tools/bench/run.sh runs it side by
// side with tools/bench/keras_train.py, which trains the same network with Keras.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"pipeline/graphs"
)

func main() {
	// As cmd/pipeline does for training: TensorFlow's oneDNN kernels unless TF_ENABLE_ONEDNN_OPTS says otherwise.
	if err := graphs.EnableOneDNN(); err != nil {
		fmt.Fprintln(os.Stderr, "gotrain:", err)
	}
	arch := flag.String("arch", "cnn", "cnn, vgg19 or vit")
	size := flag.Int64("size", 64, "image height and width")
	classes := flag.Int64("classes", 10, "number of classes")
	batch := flag.Int("batch", 32, "batch size")
	steps := flag.Int("steps", 50, "timed steps")
	warmup := flag.Int("warmup", 5, "untimed steps before timing")
	threads := flag.Int("threads", 0, "TensorFlow intra-op threads (0: default)")
	xla := flag.Bool("xla", false, "compile with XLA auto-clustering")
	graphDef := flag.String("graphdef", "", "also write the training graph as a binary GraphDef to this file (for tools/bench/opprof.py)")
	flag.Parse()
	if err := run(*arch, *size, *classes, *batch, *steps, *warmup, *threads, *xla, *graphDef); err != nil {
		fmt.Fprintln(os.Stderr, "gotrain:", err)
		os.Exit(1)
	}
}

// BenchSpec returns the benchmark size of each architecture; keras_train.py builds the same.
func benchSpec(arch string) graphs.Spec {
	switch arch {
	case "vgg19":
		return graphs.Spec{Architecture: arch, VGG19: &graphs.VGG19{Width: 0.25, Classifier: 512, Pool: 1, Dropout: 0.5}}
	case "vit":
		return graphs.Spec{Architecture: arch, ViT: &graphs.ViT{Patch: 8, Dim: 128, Depth: 4, Heads: 4, MLPRatio: 2, Pool: "cls", Dropout: 0.1}}
	}
	c := graphs.DefaultCNN()
	return graphs.Spec{Architecture: arch, CNN: &c}
}

func run(arch string, size, classes int64, batch, steps, warmup, threads int, xla bool, graphDef string) error {
	in := graphs.Input{Height: size, Width: size, Channels: 3, Mean: []float32{127.5, 127.5, 127.5}, Std: []float32{64, 64, 64}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{
		Model:     graphs.Classifier{Spec: benchSpec(arch), Input: in, Classes: classes},
		Optimizer: graphs.Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7},
		Seed:      1, Threads: threads, XLA: xla,
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	if graphDef != "" {
		f, err := os.Create(graphDef)
		if err != nil {
			return err
		}
		if _, err := tr.WriteGraph(f); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", graphDef, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	// A pool of distinct batches so nothing is cached between steps.
	const pool = 8
	r := rand.New(rand.NewPCG(1, 2))
	batches := make([]graphs.Batch, pool)
	per := int(size * size * 3)
	for i := range batches {
		b := graphs.Batch{Images: make([]float32, batch*per), Labels: make([]int32, batch)}
		for j := range b.Images {
			b.Images[j] = float32(r.IntN(256))
		}
		for j := range b.Labels {
			b.Labels[j] = int32(r.IntN(int(classes)))
		}
		batches[i] = b
	}
	for i := 0; i < warmup; i++ {
		if _, err := tr.Step(batches[i%pool], 1e-3); err != nil {
			return err
		}
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		if _, err := tr.Step(batches[i%pool], 1e-3); err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"impl": "go", "xla": xla, "arch": arch, "params": tr.Params(), "batch": batch, "size": size,
		"images_per_s": float64(steps*batch) / secs, "peak_rss_mb": peakRSSMB(),
		"onednn": graphs.OneDNNSetting() == "on", "onednn_env": os.Getenv(graphs.OneDNNVar),
	})
}

// peakRSSMB reads the process's peak resident set size (VmHWM) from /proc.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
