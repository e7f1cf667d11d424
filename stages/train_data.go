package stages

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages/raster"
)

// cacheLimit is the most decoded pixel data (bytes) kept in memory; larger datasets are
// decoded batch by batch, ahead of the training step.
const cacheLimit = 1 << 30

// dataset is a manifest's images, decoded to uint8 pixels on demand or cached.
type dataset struct {
	dir       string
	workspace string // where the originals of images not stored are (readEntry)
	m         *Manifest
	pixels    [][]uint8    // cached pixels per image (nil when streaming)
	damaged   damagedJPEGs // originals libjpeg-turbo decoded past damage in
}

// errEmptySet is openDataset's error for a manifest that lists no images.
var errEmptySet = errors.New("it holds no images")

// emptyHint adds to errEmptySet what makes a val or test set empty: a fraction of 0, which
// validation refuses where the set is used, or a test_source without images, which it does not.
func emptyHint(err error) error {
	if errors.Is(err, errEmptySet) {
		return fmt.Errorf("%w (a split with val = 0 or test = 0, or a test_source with no images of its classes, makes such a set)", err)
	}
	return err
}

// openDataset opens the data folder path (a manifest's), whose unstored images' source
// folders are relative to workspace, and decodes its images into memory when they fit in
// cacheLimit. It lists the images in contentOrder, not in the manifest's: a training is
// keyed by what its sets hold, not by their files' names (setContent), so it must not learn
// in the order of those names, and an evaluation's metrics are those of the test set's
// content, whatever the photos are called.
func openDataset(ctx context.Context, path, workspace string) (*dataset, error) {
	m, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	return loadDataset(ctx, path, workspace, m)
}

// loadDataset is openDataset with the manifest of path read already (as m; its images may
// have been chosen among), which it sorts into contentOrder.
func loadDataset(ctx context.Context, path, workspace string, m *Manifest) (*dataset, error) {
	slices.SortStableFunc(m.Images, contentOrder)
	if err := checkFitted(m); err != nil {
		return nil, err
	}
	if len(m.Images) == 0 {
		return nil, errEmptySet
	}
	d := &dataset{dir: path, workspace: workspace, m: m}
	if int64(len(m.Images))*int64(d.per()) <= cacheLimit {
		d.pixels = make([][]uint8, len(m.Images))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(runtime.NumCPU())
		for i := range m.Images {
			i := i
			g.Go(func() error {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				px, err := d.decode(i)
				d.pixels[i] = px
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *dataset) per() int { return d.m.Size * d.m.Size * d.m.Channels }

func (d *dataset) len() int { return len(d.m.Images) }

// decode reads image i as H·W·C bytes.
func (d *dataset) decode(i int) ([]uint8, error) {
	e := d.m.Images[i]
	img, err := readEntry(d.m, d.dir, d.workspace, e, &d.damaged)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Dx() != d.m.Size || b.Dy() != d.m.Size {
		return nil, fmt.Errorf("%s is %dx%d, the manifest says %dx%d", filepath.Join(d.dir, filepath.FromSlash(e.Path)), b.Dx(), b.Dy(), d.m.Size, d.m.Size)
	}
	px := pixelsOf(img, d.m.Channels)
	if rgb, ok := img.(*raster.RGB); ok && e.Path == "" {
		pixelBufs.put(rgb.Pix) // a fitted original's pixels, copied out
	}
	return px, nil
}

// pixelsOf returns an image's pixels as interleaved channels (1: grey, 3: RGB).
func pixelsOf(img image.Image, channels int) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, w*h*channels)
	if g, ok := img.(*image.Gray); ok && channels == 1 {
		for y := 0; y < h; y++ {
			copy(out[y*w:(y+1)*w], g.Pix[y*g.Stride:y*g.Stride+w])
		}
		return out
	}
	if c, ok := img.(*raster.RGB); ok && channels == 3 {
		for y := 0; y < h; y++ {
			copy(out[3*w*y:3*w*(y+1)], c.Pix[y*c.Stride:])
		}
		return out
	}
	if c, ok := img.(*image.RGBA); ok {
		// What toChannels gives, without its generic draw: premultiplied colour over black is
		// the colour itself, and grey is color.GrayModel's weighting of the 16-bit values.
		for y := 0; y < h; y++ {
			row := c.Pix[y*c.Stride : y*c.Stride+4*w]
			if channels == 3 {
				o := out[3*w*y : 3*w*(y+1)]
				for x := 0; x < w; x++ {
					o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
				}
				continue
			}
			o := out[w*y : w*(y+1)]
			for x := range o {
				r, g, b := uint32(row[4*x])*0x101, uint32(row[4*x+1])*0x101, uint32(row[4*x+2])*0x101
				o[x] = uint8((19595*r + 38470*g + 7471*b + 1<<15) >> 24)
			}
		}
		return out
	}
	conv := toChannels(img, channels)
	switch c := conv.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(out[y*w:(y+1)*w], c.Pix[y*c.Stride:y*c.Stride+w])
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				o := c.PixOffset(x+c.Rect.Min.X, y+c.Rect.Min.Y)
				copy(out[(y*w+x)*3:(y*w+x)*3+3], c.Pix[o:o+3])
			}
		}
	}
	return out
}

// pixels returns image i, from the cache or decoded.
func (d *dataset) image(i int) ([]uint8, error) {
	if d.pixels != nil {
		return d.pixels[i], nil
	}
	return d.decode(i)
}

// batch assembles images idx into a graphs.Batch (float32 0–255).
func (d *dataset) batch(idx []int) (graphs.Batch, error) {
	per := d.per()
	b := graphs.Batch{Images: make([]float32, len(idx)*per), Labels: make([]int32, len(idx))}
	for k, i := range idx {
		px, err := d.image(i)
		if err != nil {
			return b, err
		}
		dst := b.Images[k*per : (k+1)*per]
		for j, v := range px {
			dst[j] = float32(v)
		}
		b.Labels[k] = int32(d.m.Images[i].Label)
	}
	return b, nil
}

// prefetched is a batch built ahead of the training step.
type prefetched struct {
	b   graphs.Batch
	idx []int
	err error
}

// stream builds the batches of order (in chunks of size) in a goroutine, two ahead of the
// consumer, so decoding overlaps the TensorFlow step.
func (d *dataset) stream(ctx context.Context, order []int, size int) <-chan prefetched {
	ch := make(chan prefetched, 2)
	go func() {
		defer close(ch)
		for lo := 0; lo < len(order); lo += size {
			idx := order[lo:min(lo+size, len(order))]
			b, err := d.batch(idx)
			select {
			case ch <- prefetched{b: b, idx: idx, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// channelStats returns the per-channel mean and standard deviation (0–255 units) of the
// images selected by use, decoding them on every core (reported to progress). The sums are
// integers, so the result does not depend on the order the images are read in.
func (d *dataset) channelStats(use func(Entry) bool, progress pipeline.Progress) (mean, std []float32, err error) {
	c := d.m.Channels
	var picked []int
	for i, e := range d.m.Images {
		if use(e) {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 {
		return nil, nil, fmt.Errorf("%s: no original images to compute mean and std from", d.dir)
	}
	progress.Start("normalisation statistics", int64(len(picked)))
	workers := min(runtime.NumCPU(), len(picked))
	sums := make([][2][]uint64, workers) // per worker: per channel Σv and Σv²
	var g errgroup.Group
	for w := range workers {
		sum, sq := make([]uint64, c), make([]uint64, c)
		sums[w] = [2][]uint64{sum, sq}
		g.Go(func() error {
			for k := w; k < len(picked); k += workers {
				px, err := d.image(picked[k])
				if err != nil {
					return err
				}
				for j := 0; j+c <= len(px); j += c {
					for ch := range c {
						v := uint64(px[j+ch])
						sum[ch] += v
						sq[ch] += v * v
					}
				}
				progress.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	n := float64(len(picked) * d.m.Size * d.m.Size)
	mean, std = make([]float32, c), make([]float32, c)
	for k := 0; k < c; k++ {
		var sum, sq uint64
		for _, s := range sums {
			sum, sq = sum+s[0][k], sq+s[1][k]
		}
		m := float64(sum) / n
		v := math.Max(float64(sq)/n-m*m, 0)
		mean[k], std[k] = float32(m), float32(math.Max(math.Sqrt(v), 1))
	}
	return mean, std, nil
}
