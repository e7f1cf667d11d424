package stages

import (
	"image"
	"runtime"
	"sort"
	"sync"

	"pipeline/stages/raster"
)

// Near-duplicates: the same picture saved at another size or JPEG quality is not
// byte-identical, but a model that saw one in training has as good as seen the other in the
// test set. The split compares grey thumbnails and coarse colour grids of the stored images
// and keeps pictures whose thumbnails and colours (nearly) agree in one set.

// thumbSide is the side of the grey thumbnail images are compared by.
const thumbSide = 16

// thumbCells is the number of cells in a thumbnail.
const thumbCells = thumbSide * thumbSide

// maxThumbDiff is the largest mean difference, in grey levels, between the thumbnails of two
// near-duplicates. Copies of a picture at 40–80 % of its size and JPEG quality 50–90 differ by
// at most 0.69; the two closest of the default dataset's garments by 4.18 (the tests
// TestFingerprintsJoinResizedCopiesAndNothingElse and TestTheDefaultDatasetHasNoNearDuplicates
// log both).
const maxThumbDiff = 2

// blockSide is the side, in cells, of the blocks whose sums rule pairs out cheaply.
const blockSide = 4

// blocks is the number of blocks in a thumbnail.
const blocks = thumbCells / (blockSide * blockSide)

// maxNearGroup is the size of a near-duplicate group above which the split warns: copies of
// one picture rarely number more, chains of look-alikes can.
const maxNearGroup = 20

// chromaBlock is the side, in cells, of the blocks of the colour grid images are also
// compared by: brightness alone takes a red and a green object of the same luma for one
// picture.
const chromaBlock = 2

// chromaSide is the side of the colour grid, in blocks.
const chromaSide = thumbSide / chromaBlock

// chromaCells is the number of values in a colour grid: two colour differences per block.
const chromaCells = 2 * chromaSide * chromaSide

// maxChromaDiff is the largest mean difference between the colour grids of two
// near-duplicates, in levels of (blue − luma)/2 and (red − luma)/2, and maxChromaBlockDiff
// the largest in any one value: an object recoloured in a small part of the picture changes
// a few blocks by tens of levels and the mean little (a square of 15 % of the side: by 24 or
// more in a block). Copies at 40–80 % of a picture's size and JPEG quality 50–90 differ by at
// most 0.88 on average and 4 in a block, from image_size 32 up (11 at 24), as
// TestFingerprintsJoinResizedCopiesAndNothingElse logs at 64.
const (
	maxChromaDiff      = 3
	maxChromaBlockDiff = 16
)

// fingerprint is what the split compares images by: a grey thumbnail and a coarser colour
// grid. The sums over the thumbnail that rule most pairs out cheaply (sums) are computed when
// comparing, not kept with every image.
type fingerprint struct {
	thumb  [thumbCells]uint8
	chroma [chromaCells]uint8 // per block of the colour grid: 128 + (blue − luma)/2, 128 + (red − luma)/2
	ok     bool               // false for images too small or too flat to compare
}

// fingerprintOf returns img's fingerprint: the mean grey (Rec. 601 luma) of each of
// thumbSide × thumbSide cells, and the mean colour differences of each block of
// chromaBlock × chromaBlock cells. An image smaller than that, or whose thumbnail is within a few
// grey levels of flat, is not comparable: it would match every other flat picture.
func fingerprintOf(img image.Image) fingerprint {
	var sum, cnt, sumR, sumB [thumbCells]uint64
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < thumbSide || h < thumbSide {
		return fingerprint{}
	}
	var edge [thumbSide + 1]int // cell cx covers x in [edge[cx], edge[cx+1])
	for cx := range edge {
		edge[cx] = (cx*w + thumbSide - 1) / thumbSide
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := (y - b.Min.Y) * thumbSide / h * thumbSide
		for cx := range thumbSide {
			x0, x1 := b.Min.X+edge[cx], b.Min.X+edge[cx+1]
			var r, g, bl uint64
			switch m := img.(type) {
			case *raster.RGB:
				r, g, bl = sumRGB(m.Pix[m.PixOffset(x0, y):m.PixOffset(x1, y)])
			case *image.RGBA: // opaque, as the stages make them: premultiplied is plain
				r, g, bl = sumRGBA(m.Pix[m.PixOffset(x0, y):m.PixOffset(x1, y)])
			case *image.NRGBA:
				r, g, bl = sumRGBA(m.Pix[m.PixOffset(x0, y):m.PixOffset(x1, y)])
			case *image.Gray:
				for _, px := range m.Pix[m.PixOffset(x0, y):m.PixOffset(x1, y)] {
					r += uint64(px)
				}
				g, bl = r, r
			default:
				for x := x0; x < x1; x++ {
					cr, cg, cb, _ := img.At(x, y).RGBA()
					r, g, bl = r+uint64(cr>>8), g+uint64(cg>>8), bl+uint64(cb>>8)
				}
			}
			// Luma (0.299, 0.587, 0.114) in 1/1024ths.
			sum[row+cx] += 306*r + 601*g + 117*bl
			sumR[row+cx] += r
			sumB[row+cx] += bl
			cnt[row+cx] += uint64(x1 - x0)
		}
	}
	var f fingerprint
	for i := range f.thumb {
		f.thumb[i] = uint8((sum[i]/cnt[i] + 512) / 1024)
	}
	var bs, br, by, bn [chromaCells / 2]int64
	for i := range thumbCells {
		k := i/thumbSide/chromaBlock*chromaSide + i%thumbSide/chromaBlock
		bs[k] += int64(sumB[i])
		br[k] += int64(sumR[i])
		by[k] += int64(sum[i])
		bn[k] += int64(cnt[i])
	}
	for k := range bs {
		// (1024·B − 1024·Y) / 2048 per pixel, rounded, around 128
		f.chroma[2*k] = uint8(128 + divRound(1024*bs[k]-by[k], 2048*bn[k]))
		f.chroma[2*k+1] = uint8(128 + divRound(1024*br[k]-by[k], 2048*bn[k]))
	}
	f.ok = f.finish()
	return f
}

// divRound is a / b rounded to the nearest integer (b > 0).
func divRound(a, b int64) int64 {
	if a < 0 {
		return -((-a + b/2) / b)
	}
	return (a + b/2) / b
}

// finish reports whether f's thumbnail has the contrast to be compared.
func (f *fingerprint) finish() bool {
	lo, hi := uint8(255), uint8(0)
	for _, v := range f.thumb {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo >= 8
}

// sums returns the sum of f's thumbnail cells and the sums of each blockSide × blockSide
// block of cells, row by row: they bound the thumbnail difference from below.
func (f *fingerprint) sums() (sum int32, bs [blocks]int32) {
	for i, v := range f.thumb {
		sum += int32(v)
		y, x := i/thumbSide, i%thumbSide
		bs[y/blockSide*(thumbSide/blockSide)+x/blockSide] += int32(v)
	}
	return sum, bs
}

// sumRGB returns the sums of the red, green and blue samples of packed RGB pixels.
func sumRGB(p []byte) (r, g, b uint64) {
	for len(p) >= 12 { // four pixels a step
		r += uint64(uint32(p[0]) + uint32(p[3]) + uint32(p[6]) + uint32(p[9]))
		g += uint64(uint32(p[1]) + uint32(p[4]) + uint32(p[7]) + uint32(p[10]))
		b += uint64(uint32(p[2]) + uint32(p[5]) + uint32(p[8]) + uint32(p[11]))
		p = p[12:]
	}
	for len(p) >= 3 {
		r, g, b = r+uint64(p[0]), g+uint64(p[1]), b+uint64(p[2])
		p = p[3:]
	}
	return r, g, b
}

// sumRGBA returns the sums of the red, green and blue samples of RGBA pixels.
func sumRGBA(p []byte) (r, g, b uint64) {
	for len(p) >= 16 { // four pixels a step
		r += uint64(uint32(p[0]) + uint32(p[4]) + uint32(p[8]) + uint32(p[12]))
		g += uint64(uint32(p[1]) + uint32(p[5]) + uint32(p[9]) + uint32(p[13]))
		b += uint64(uint32(p[2]) + uint32(p[6]) + uint32(p[10]) + uint32(p[14]))
		p = p[16:]
	}
	for len(p) >= 4 {
		r, g, b = r+uint64(p[0]), g+uint64(p[1]), b+uint64(p[2])
		p = p[4:]
	}
	return r, g, b
}

// limit is the largest summed difference of two near-duplicates' thumbnails.
const limit = maxThumbDiff * thumbCells

// closeThumbs reports whether two thumbnails differ by at most limit in all.
func closeThumbs(a, b *[thumbCells]uint8) bool {
	d := 0
	for i := range a {
		d += abs(int(a[i]) - int(b[i]))
		if d > limit {
			return false
		}
	}
	return true
}

// chromaLimit is the largest summed difference of two near-duplicates' colour grids.
const chromaLimit = maxChromaDiff * chromaCells

// closeChroma reports whether two colour grids differ by at most chromaLimit in all and
// maxChromaBlockDiff in each value.
func closeChroma(a, b *[chromaCells]uint8) bool {
	d := 0
	for i := range a {
		v := abs(int(a[i]) - int(b[i]))
		if v > maxChromaBlockDiff {
			return false
		}
		d += v
	}
	return d <= chromaLimit
}

// nearPrints reports whether two comparable fingerprints are near-duplicates.
func nearPrints(a, b *fingerprint) bool {
	return closeThumbs(&a.thumb, &b.thumb) && closeChroma(&a.chroma, &b.chroma)
}

// closeBlocks reports whether two fingerprints' block sums differ by at most limit in all:
// necessary for near-duplicates, since the difference of a sum over cells is at most the
// summed difference of the cells.
func closeBlocks(a, b *[blocks]int32) bool {
	var d int32
	for i := range a {
		v := a[i] - b[i]
		d += max(v, -v)
		if d > limit {
			return false
		}
	}
	return true
}

func abs(v int) int { return max(v, -v) }

// nearDuplicates returns the pairs (i < j) of comparable fingerprints that are
// near-duplicates (thumbnails at most maxThumbDiff grey levels apart on average, colour grids
// at most maxChromaDiff), each once,
// sorted. Only fingerprints whose sums are within limit can be near, so it compares each with
// those following it in order of sum, first by block sums, kept side by side in that order.
func nearDuplicates(fs []fingerprint) [][2]int {
	ps := make([]*fingerprint, len(fs))
	for i := range fs {
		ps[i] = &fs[i]
	}
	return nearDuplicatesOf(ps)
}

// nearDuplicatesOf is nearDuplicates for fingerprints held elsewhere (the split's are in its
// per-file records: a copy of them all would be a third of a kilobyte per image).
func nearDuplicatesOf(fs []*fingerprint) [][2]int {
	var idx []int
	for i := range fs {
		if fs[i].ok {
			idx = append(idx, i)
		}
	}
	all := make([]int32, len(fs))
	for _, i := range idx {
		all[i], _ = fs[i].sums()
	}
	sort.Slice(idx, func(a, b int) bool { return all[idx[a]] < all[idx[b]] })
	sums := make([]int32, len(idx))
	keys := make([][blocks]int32, len(idx))
	for k, i := range idx {
		sums[k], keys[k] = fs[i].sums()
	}
	// Every core takes every n-th fingerprint (neighbours in sum order cost alike).
	n := runtime.NumCPU()
	found := make([][][2]int, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for a := w; a < len(idx); a += n {
				for b := a + 1; b < len(idx) && sums[b]-sums[a] <= limit; b++ {
					if closeBlocks(&keys[a], &keys[b]) && nearPrints(fs[idx[a]], fs[idx[b]]) {
						i, j := idx[a], idx[b]
						found[w] = append(found[w], [2]int{min(i, j), max(i, j)})
					}
				}
			}
		})
	}
	wg.Wait()
	var out [][2]int
	for _, f := range found {
		out = append(out, f...)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a][0] != out[b][0] {
			return out[a][0] < out[b][0]
		}
		return out[a][1] < out[b][1]
	})
	return out
}
