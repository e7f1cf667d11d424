// Command genphotos writes a deterministic set of synthetic, photo-like JPEGs for the data
// stage benchmark (tools/bench/data/run.sh): 2,000 images in 20 imbalanced class folders
// (300 down to 30), 500×375 landscape and 375×500 portrait mixed, JPEG quality 90.
//
// No real photo collection can be downloaded on the benchmark machines, so the images are
// synthesised to have what drives the cost of decoding, resizing and re-encoding a photo: the
// size of a typical Danish Fungal Atlas photo, smooth colour gradients, soft-edged
// low-frequency shapes, mid-frequency texture and mild sensor noise, so that each file is
// ~40–80 KB at quality 90 like a real photo of that size (a flat or purely random image would
// be much cheaper or much costlier to decode). The same seed gives the same bytes.
//
// -scale N multiplies every class's size by N (N × 2,000 images, the same imbalance), for
// measuring how memory grows with a dataset's size (tools/bench/data/memscale.sh); the images
// of scale 1 are the first of every class at any scale.
//
//	go run ./tools/bench/data/genphotos -out DIR [-seed 1] [-scale 1]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// classSizes: 20 classes, 300 down to 30, 2,000 images in all (roughly geometric, like the
// original's long-tailed species counts).
var classSizes = []int{300, 258, 220, 187, 160, 135, 115, 99, 84, 71, 60, 51, 43, 36, 31, 30, 30, 30, 30, 30}

func main() {
	out := flag.String("out", "", "output folder (class folders are created in it)")
	seed := flag.Uint64("seed", 1, "random seed")
	quality := flag.Int("quality", 90, "JPEG quality")
	scale := flag.Int("scale", 1, "multiply every class's size by this")
	flag.Parse()
	if *out == "" {
		log.Fatal("genphotos: -out is required")
	}
	if *scale < 1 {
		log.Fatal("genphotos: -scale must be 1 or more")
	}
	type job struct {
		class, index, global int
	}
	var jobs []job
	g := 0
	for c, n := range classSizes {
		if err := os.MkdirAll(filepath.Join(*out, className(c)), 0o755); err != nil {
			log.Fatal(err)
		}
		for i := 0; i < n; i++ {
			jobs = append(jobs, job{c, i, g})
			g++
		}
	}
	// Beyond scale 1, more images per class, numbered on (their seeds follow scale 1's).
	for c, n := range classSizes {
		for i := n; i < n**scale; i++ {
			jobs = append(jobs, job{c, i, g})
			g++
		}
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				r := rand.New(rand.NewPCG(*seed, uint64(j.global)))
				w, h := 500, 375
				if r.IntN(3) == 0 {
					w, h = 375, 500
				}
				img := photo(r, w, h, j.class)
				path := filepath.Join(*out, className(j.class), fmt.Sprintf("IMG_%04d.jpg", j.index+1))
				n, err := writeJPEG(path, img, *quality)
				if err != nil {
					log.Fatal(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	fmt.Printf("genphotos: %d images in %d classes, %.1f MB (mean %.1f KB) in %s\n",
		len(jobs), len(classSizes), float64(total)/1e6, float64(total)/float64(len(jobs))/1e3, *out)
}

func className(c int) string { return fmt.Sprintf("species_%02d", c+1) }

func writeJPEG(path string, img image.Image, quality int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(f)
	if err := jpeg.Encode(bw, img, &jpeg.Options{Quality: quality}); err != nil {
		f.Close()
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return st.Size(), f.Close()
}

// valueNoise is a smooth random field: random values on a coarse grid, interpolated with a
// smoothstep, in [-1, 1].
type valueNoise struct {
	gw, gh int
	cell   float64
	v      []float64
}

func newValueNoise(r *rand.Rand, w, h int, cell float64) *valueNoise {
	gw, gh := int(float64(w)/cell)+2, int(float64(h)/cell)+2
	n := &valueNoise{gw: gw, gh: gh, cell: cell, v: make([]float64, gw*gh)}
	for i := range n.v {
		n.v[i] = r.Float64()*2 - 1
	}
	return n
}

func (n *valueNoise) at(x, y float64) float64 {
	fx, fy := x/n.cell, y/n.cell
	ix, iy := int(fx), int(fy)
	tx, ty := fx-float64(ix), fy-float64(iy)
	tx, ty = tx*tx*(3-2*tx), ty*ty*(3-2*ty)
	a := n.v[iy*n.gw+ix]*(1-tx) + n.v[iy*n.gw+ix+1]*tx
	b := n.v[(iy+1)*n.gw+ix]*(1-tx) + n.v[(iy+1)*n.gw+ix+1]*tx
	return a*(1-ty) + b*ty
}

type blob struct {
	cx, cy, rx, ry, rot float64
	cos, sin, reach     float64
	col, rim            [3]float64
	soft                float64
}

// photo renders one image: a two-colour gradient background (sky/ground or foliage), a
// coarse tint field, mid-frequency texture, a few soft-edged shaded ellipses ("caps" and
// "stems", biased per class so classes differ in colour), and Gaussian sensor noise.
func photo(r *rand.Rand, w, h, class int) *image.RGBA {
	// Background colours: random, pulled halfway towards a grey of random brightness
	// (natural scenes are rarely fully saturated).
	rc := func() [3]float64 {
		g := 40 + r.Float64()*170
		return [3]float64{(r.Float64()*255 + g) / 2, (r.Float64()*255 + g) / 2, (r.Float64()*255 + g) / 2}
	}
	top, bottom := rc(), rc()
	// A class hue: shapes of a class share a colour family.
	cr := rand.New(rand.NewPCG(99, uint64(class)))
	classCol := [3]float64{40 + cr.Float64()*200, 40 + cr.Float64()*200, 40 + cr.Float64()*200}
	horizon := 0.3 + 0.4*r.Float64()
	coarse := [3]*valueNoise{newValueNoise(r, w, h, 160), newValueNoise(r, w, h, 160), newValueNoise(r, w, h, 160)}
	tex := newValueNoise(r, w, h, 9+r.Float64()*8)
	tex2 := newValueNoise(r, w, h, 2+r.Float64()*1.5) // fine detail (grass, moss), strongest below the horizon
	texAmp := 10 + r.Float64()*14
	tex2Amp := 16 + r.Float64()*16
	var blobs []blob
	nb := 3 + r.IntN(5)
	for i := 0; i < nb; i++ {
		b := blob{
			cx: r.Float64() * float64(w), cy: r.Float64() * float64(h),
			rx: 20 + r.Float64()*float64(w)/4, ry: 15 + r.Float64()*float64(h)/4,
			rot: r.Float64() * math.Pi, soft: 0.05 + r.Float64()*0.3,
		}
		b.cos, b.sin = math.Cos(b.rot), math.Sin(b.rot)
		b.reach = math.Max(b.rx, b.ry) * (1 + b.soft)
		for k := 0; k < 3; k++ {
			b.col[k] = clamp(classCol[k] + r.NormFloat64()*30)
			b.rim[k] = clamp(b.col[k]*0.55 + r.NormFloat64()*10)
		}
		blobs = append(blobs, b)
	}
	sigma := 3.5 + r.Float64()*3
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		fy := float64(y) / float64(h)
		// Background: smooth blend across a soft horizon.
		t := 1 / (1 + math.Exp(-(fy-horizon)*12))
		for x := 0; x < w; x++ {
			fx, fyy := float64(x), float64(y)
			var px [3]float64
			tv := tex.at(fx, fyy)*texAmp + tex2.at(fx, fyy)*tex2Amp*(0.5+0.5*t)
			for k := 0; k < 3; k++ {
				px[k] = top[k]*(1-t) + bottom[k]*t + coarse[k].at(fx, fyy)*35 + tv
			}
			for _, b := range blobs {
				dx, dy := fx-b.cx, fyy-b.cy
				if math.Abs(dx) > b.reach || math.Abs(dy) > b.reach {
					continue
				}
				u, v := (dx*b.cos+dy*b.sin)/b.rx, (-dx*b.sin+dy*b.cos)/b.ry
				d := math.Sqrt(u*u + v*v)
				if d >= 1+b.soft {
					continue
				}
				a := 1.0
				if d > 1-b.soft {
					a = (1 + b.soft - d) / (2 * b.soft)
					a = a * a * (3 - 2*a)
				}
				shade := 1 - 0.35*v // lit from above
				for k := 0; k < 3; k++ {
					col := (b.col[k]*(1-d*d) + b.rim[k]*d*d) * shade
					px[k] = px[k]*(1-a) + (col+tv*0.6)*a
				}
			}
			i := img.PixOffset(x, y)
			for k := 0; k < 3; k++ {
				img.Pix[i+k] = uint8(clamp(px[k] + r.NormFloat64()*sigma))
			}
			img.Pix[i+3] = 255
		}
	}
	return img
}

func clamp(v float64) float64 { return math.Max(0, math.Min(255, math.Round(v))) }
