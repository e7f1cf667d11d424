package graphs

import "math/rand/v2"

// Synthetic returns n images h×w×ch whose class (of classes) is marked by a bright square
// over uniform noise: its quadrant is class mod 4 and its pattern (solid, horizontal stripes,
// vertical stripes, checkerboard) class/4 mod 4. Learnable by every architecture in a few
// hundred steps, impossible to guess. It is for self-tests and
// benchmarks, where real photos would only add decoding time.
func Synthetic(n int, classes, h, w, ch int64, seed uint64) Batch {
	r := rand.New(rand.NewPCG(seed, 7))
	per := int(h * w * ch)
	b := Batch{Images: make([]float32, n*per), Labels: make([]int32, n)}
	for i := 0; i < n; i++ {
		y := int32(r.IntN(int(classes)))
		b.Labels[i] = y
		img := b.Images[i*per : (i+1)*per]
		for j := range img {
			img[j] = float32(r.IntN(96))
		}
		cell, pattern := int64(y)%4, (int64(y)/4)%4
		y0, x0 := (cell/2)*h/2, (cell%2)*w/2
		for yy := y0; yy < y0+h/2; yy++ {
			for xx := x0; xx < x0+w/2; xx++ {
				on := pattern == 0 || (pattern == 1 && yy%2 == 0) || (pattern == 2 && xx%2 == 0) || (pattern == 3 && (xx+yy)%2 == 0)
				if !on {
					continue
				}
				for c := int64(0); c < ch; c++ {
					img[(yy*w+xx)*ch+c] = 255
				}
			}
		}
	}
	return b
}

// Slice returns images [lo, hi) of b, sharing its storage; in gives the image size.
func (b Batch) Slice(in Input, lo, hi int) Batch {
	per := int(in.Height * in.Width * in.Channels)
	out := Batch{Images: b.Images[lo*per : hi*per]}
	if b.Labels != nil {
		out.Labels = b.Labels[lo:hi]
	}
	return out
}
