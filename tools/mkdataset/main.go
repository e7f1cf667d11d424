// Command mkdataset builds the project's embedded default dataset: an imbalanced subset of
// Fashion-MNIST written as 28×28 8-bit greyscale PNGs, one folder per class.
//
//	go run ./tools/mkdataset -force \
//	    -train-images train-images-idx3-ubyte.gz -train-labels train-labels-idx1-ubyte.gz \
//	    -test-images t10k-images-idx3-ubyte.gz -test-labels t10k-labels-idx1-ubyte.gz \
//	    -out data/raw
//
// Layout: <out>/train/<class>/train-<index>.png holds images of Fashion-MNIST's train file only
// and <out>/test/<class>/test-<index>.png images of its t10k (test) file only; <index> is the
// image's position in that IDX file.
//
// Per-class train counts are round(500 * 0.1^(rank/9)) for rank 0..9 (500 down to 50, 10:1);
// test counts are round(train count * 0.2). Which class gets which rank, and which images each
// class gets, are decided by shuffles seeded with -seed (PCG), so the output is byte-identical
// from run to run for the same inputs, seed and Go toolchain.
//
// The tool writes into a temporary folder inside -out and moves train/ and test/ into place at
// the end. It refuses to touch an -out that already has train/ or test/ unless -force is given,
// in which case those two folders are removed first, so a rerun never mixes old and new files.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
)

// classNames are the folder names of Fashion-MNIST's labels 0..9.
var classNames = [10]string{
	"T-shirt top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

const (
	rows, cols = 28, 28

	largestTrain = 500  // train images of the rank-0 class
	imbalance    = 0.1  // smallest/largest train count
	testFraction = 0.2  // test images per class, as a fraction of its train count
	magicImages  = 2051 // 0x00000803: unsigned bytes, 3 dimensions
	magicLabels  = 2049 // 0x00000801: unsigned bytes, 1 dimension
)

// PCG streams: one per decision, so each is independent of how the others are used.
const (
	streamRanks = 1
	streamTrain = 100 // + label
	streamTest  = 200 // + label
)

func main() {
	var (
		trainImages = flag.String("train-images", "", "Fashion-MNIST train images (train-images-idx3-ubyte.gz)")
		trainLabels = flag.String("train-labels", "", "Fashion-MNIST train labels (train-labels-idx1-ubyte.gz)")
		testImages  = flag.String("test-images", "", "Fashion-MNIST test images (t10k-images-idx3-ubyte.gz)")
		testLabels  = flag.String("test-labels", "", "Fashion-MNIST test labels (t10k-labels-idx1-ubyte.gz)")
		out         = flag.String("out", "data/raw", "output folder; train/ and test/ are created in it")
		seed        = flag.Uint64("seed", 42, "seed of the shuffles (PCG)")
		force       = flag.Bool("force", false, "remove existing <out>/train and <out>/test first")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments: %q", flag.Args()))
	}
	for _, f := range []struct{ name, value string }{
		{"-train-images", *trainImages}, {"-train-labels", *trainLabels},
		{"-test-images", *testImages}, {"-test-labels", *testLabels},
	} {
		if f.value == "" {
			fail(fmt.Errorf("%s is required", f.name))
		}
	}
	if err := run(*trainImages, *trainLabels, *testImages, *testLabels, *out, *seed, *force); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkdataset:", err)
	os.Exit(1)
}

// set is one IDX image file with its label file.
type set struct {
	pixels []byte // n×rows×cols, row-major
	labels []byte
}

func (s set) image(i int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, cols, rows))
	copy(img.Pix, s.pixels[i*rows*cols:(i+1)*rows*cols])
	return img
}

// byClass returns the indices of each label, ascending.
func (s set) byClass() [10][]int {
	var idx [10][]int
	for i, l := range s.labels {
		idx[l] = append(idx[l], i)
	}
	return idx
}

func loadSet(imagesPath, labelsPath string) (set, error) {
	pixels, dims, err := readIDX(imagesPath, magicImages, 3)
	if err != nil {
		return set{}, err
	}
	if dims[1] != rows || dims[2] != cols {
		return set{}, fmt.Errorf("%s: images are %d×%d, want %d×%d", imagesPath, dims[1], dims[2], rows, cols)
	}
	labels, ldims, err := readIDX(labelsPath, magicLabels, 1)
	if err != nil {
		return set{}, err
	}
	if ldims[0] != dims[0] {
		return set{}, fmt.Errorf("%s has %d labels but %s has %d images", labelsPath, ldims[0], imagesPath, dims[0])
	}
	for i, l := range labels {
		if int(l) >= len(classNames) {
			return set{}, fmt.Errorf("%s: label %d of item %d is not in 0..%d", labelsPath, l, i, len(classNames)-1)
		}
	}
	return set{pixels: pixels, labels: labels}, nil
}

// readIDX reads a gzip-compressed IDX file of unsigned bytes with the given magic number and
// number of dimensions, and returns its data and dimensions. The data must be exactly as long as
// the dimensions say.
func readIDX(path string, magic uint32, ndims int) ([]byte, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a gzip file: %v", path, err)
	}
	header := make([]byte, 4+4*ndims)
	if _, err := io.ReadFull(zr, header); err != nil {
		return nil, nil, fmt.Errorf("%s: reading IDX header: %v", path, err)
	}
	if got := binary.BigEndian.Uint32(header); got != magic {
		return nil, nil, fmt.Errorf("%s: IDX magic number is 0x%08x, want 0x%08x (unsigned bytes, %d dimension(s))", path, got, magic, ndims)
	}
	dims := make([]int, ndims)
	size := 1
	for i := range dims {
		d := binary.BigEndian.Uint32(header[4+4*i:])
		if d == 0 || d > 1<<20 {
			return nil, nil, fmt.Errorf("%s: IDX dimension %d is %d", path, i, d)
		}
		dims[i] = int(d)
		size *= int(d)
	}
	if size > 1<<30 {
		return nil, nil, fmt.Errorf("%s: IDX data of %d bytes is too large", path, size)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, nil, fmt.Errorf("%s: IDX header says %v (%d bytes) but reading them failed: %v", path, dims, size, err)
	}
	if n, err := io.Copy(io.Discard, zr); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", path, err)
	} else if n != 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes after the %d the IDX header %v announces", path, n, size, dims)
	}
	return data, dims, nil
}

// plan is what to write for one class.
type plan struct {
	label       int
	rank        int
	train, test []int // indices into the train and test files, ascending
}

func rng(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// pick returns n of the indices chosen by a seeded shuffle, sorted ascending.
func pick(indices []int, n int, r *rand.Rand) []int {
	s := slices.Clone(indices)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	s = s[:n]
	slices.Sort(s)
	return s
}

func makePlans(train, test set, seed uint64) ([10]plan, error) {
	var plans [10]plan
	order := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	r := rng(seed, streamRanks)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	trainIdx, testIdx := train.byClass(), test.byClass()
	for rank, label := range order {
		nTrain := int(math.Round(largestTrain * math.Pow(imbalance, float64(rank)/9)))
		nTest := int(math.Round(float64(nTrain) * testFraction))
		if len(trainIdx[label]) < nTrain {
			return plans, fmt.Errorf("class %q has %d images in the train file, %d needed", classNames[label], len(trainIdx[label]), nTrain)
		}
		if len(testIdx[label]) < nTest {
			return plans, fmt.Errorf("class %q has %d images in the test file, %d needed", classNames[label], len(testIdx[label]), nTest)
		}
		plans[label] = plan{
			label: label,
			rank:  rank,
			train: pick(trainIdx[label], nTrain, rng(seed, streamTrain+uint64(label))),
			test:  pick(testIdx[label], nTest, rng(seed, streamTest+uint64(label))),
		}
	}
	return plans, nil
}

// checkOut makes sure out exists and, unless force, holds no dataset yet.
func checkOut(out string, force bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, name := range classNames {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			return fmt.Errorf("%s already has a class folder %q directly inside it (an older layout?); remove it by hand", out, name)
		}
	}
	for _, sub := range []string{"train", "test"} {
		p := filepath.Join(out, sub)
		if _, err := os.Lstat(p); err == nil && !force {
			return fmt.Errorf("%s already exists; rerun with -force to replace %s/train and %s/test", p, out, out)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func run(trainImages, trainLabels, testImages, testLabels, out string, seed uint64, force bool) error {
	train, err := loadSet(trainImages, trainLabels)
	if err != nil {
		return err
	}
	test, err := loadSet(testImages, testLabels)
	if err != nil {
		return err
	}
	plans, err := makePlans(train, test, seed)
	if err != nil {
		return err
	}
	if err := checkOut(out, force); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp(out, ".mkdataset-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	var buf bytes.Buffer
	var files, bytesWritten int
	write := func(s set, sub string, label, index int) error {
		dir := filepath.Join(tmp, sub, classNames[label])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		buf.Reset()
		if err := enc.Encode(&buf, s.image(index)); err != nil {
			return err
		}
		files++
		bytesWritten += buf.Len()
		return os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%05d.png", sub, index)), buf.Bytes(), 0o644)
	}
	for _, p := range plans {
		for _, i := range p.train {
			if err := write(train, "train", p.label, i); err != nil {
				return err
			}
		}
		for _, i := range p.test {
			if err := write(test, "test", p.label, i); err != nil {
				return err
			}
		}
	}
	for _, sub := range []string{"train", "test"} {
		if err := os.RemoveAll(filepath.Join(out, sub)); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(tmp, sub), filepath.Join(out, sub)); err != nil {
			return err
		}
	}

	// Summary, largest class first.
	byRank := plans
	slices.SortFunc(byRank[:], func(a, b plan) int { return a.rank - b.rank })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "label\tclass\ttrain\ttest\t\n")
	var nTrain, nTest int
	for _, p := range byRank {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t\n", p.label, p.class(), len(p.train), len(p.test))
		nTrain += len(p.train)
		nTest += len(p.test)
	}
	fmt.Fprintf(tw, "\ttotal\t%d\t%d\t\n", nTrain, nTest)
	if err := tw.Flush(); err != nil {
		return err
	}
	largest, smallest := byRank[0], byRank[len(byRank)-1]
	fmt.Printf("largest/smallest: train %d/%d = %.1f, test %d/%d = %.1f\n",
		len(largest.train), len(smallest.train), float64(len(largest.train))/float64(len(smallest.train)),
		len(largest.test), len(smallest.test), float64(len(largest.test))/float64(len(smallest.test)))
	fmt.Printf("wrote %d PNG files, %d bytes (%.1f KB), to %s (seed %d)\n",
		files, bytesWritten, float64(bytesWritten)/1024, out, seed)
	return nil
}

func (p plan) class() string { return classNames[p.label] }
