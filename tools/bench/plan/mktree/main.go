// Command mktree writes the synthetic source tree of the plan benchmark: -files tiny valid
// greyscale PNGs (-size × -size pixels, about 150 bytes each) spread evenly over -classes class
// folders, every one with distinct bytes so that every digest differs.
//
//	go run ./tools/bench/plan/mktree -out /tmp/planbench/tree -files 50000 -classes 50
//	go run ./tools/bench/plan/mktree -one /tmp/x.png -seed 12345   # one more distinct image
//
// Layout: <out>/class_NN/img_NNNNNN.png. Pixels come from a PCG seeded with (-seed, index) and
// the index is also written into the first four pixels, so files never collide and the output
// is byte-identical from run to run (image/png is deterministic for a given Go toolchain).
//
// The tree is written into <out>.tmp-* and renamed into place at the end; an existing -out is
// refused unless -force is given (it is then removed first).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "", "folder to create (the tree)")
	files := flag.Int("files", 50000, "number of images")
	classes := flag.Int("classes", 50, "number of class folders")
	size := flag.Int("size", 8, "image side in pixels")
	seed := flag.Uint64("seed", 1, "seed of the pixel generator")
	force := flag.Bool("force", false, "replace an existing -out")
	one := flag.String("one", "", "write a single image (index -seed) to this path and exit")
	flag.Parse()

	if *one != "" {
		b := encode(*size, *seed, *seed)
		if err := os.WriteFile(*one, b, 0o644); err != nil {
			fail(err)
		}
		return
	}
	if *out == "" || *files <= 0 || *classes <= 0 {
		fail(fmt.Errorf("need -out, -files > 0 and -classes > 0"))
	}
	if _, err := os.Stat(*out); err == nil {
		if !*force {
			fail(fmt.Errorf("%s exists; use -force to replace it", *out))
		}
		if err := os.RemoveAll(*out); err != nil {
			fail(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fail(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(*out), filepath.Base(*out)+".tmp-*")
	if err != nil {
		fail(err)
	}
	var total int64
	for c := 0; c < *classes; c++ {
		if err := os.Mkdir(filepath.Join(tmp, className(c)), 0o755); err != nil {
			fail(err)
		}
	}
	for i := 0; i < *files; i++ {
		b := encode(*size, *seed, uint64(i))
		p := filepath.Join(tmp, className(i%*classes), fmt.Sprintf("img_%06d.png", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fail(err)
		}
		total += int64(len(b))
	}
	if err := os.Rename(tmp, *out); err != nil {
		fail(err)
	}
	fmt.Printf("%s: %d files in %d class folders, %d bytes (%.2f MB)\n", *out, *files, *classes, total, float64(total)/1e6)
}

func className(c int) string { return fmt.Sprintf("class_%02d", c) }

// encode returns the PNG of image index of the tree generated with seed.
func encode(size int, seed, index uint64) []byte {
	img := image.NewGray(image.Rect(0, 0, size, size))
	r := rand.New(rand.NewPCG(seed, index))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.Uint32())
	}
	// The index in the first pixels guarantees distinct content (and digests).
	for k := 0; k < 4 && k < len(img.Pix); k++ {
		img.Pix[k] = uint8(index >> (8 * k))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		fail(err)
	}
	return buf.Bytes()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mktree:", err)
	os.Exit(1)
}
