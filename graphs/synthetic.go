package graphs

import "math/rand/v2"

// Synthetic returns n images h×w×ch whose class (of classes) is marked by a bright square in
// a class-specific quadrant and brightness over uniform noise: learnable by every
// architecture in a few hundred steps, impossible to guess. It is for self-tests and
// benchmarks, where real photos would only add decoding time.
func Synthetic(n int, classes, h, w, ch int64, seed uint64) Batch {
	r := rand.New(rand.NewPCG(seed, 7))
	per := int(h * w * ch)
	b := Batch{Images: make([]float32, n*per), Labels: make([]int32, n)}
	const cells = 4 // 2×2 quadrants, then a darker square for the next four classes
	for i := 0; i < n; i++ {
		y := int32(r.IntN(int(classes)))
		b.Labels[i] = y
		img := b.Images[i*per : (i+1)*per]
		for j := range img {
			img[j] = float32(r.IntN(96))
		}
		cell := int64(y) % cells
		level := float32(255 - 40*(int64(y)/cells)%160)
		y0, x0 := (cell/2)*h/2, (cell%2)*w/2
		for yy := y0; yy < y0+h/2; yy++ {
			for xx := x0; xx < x0+w/2; xx++ {
				for c := int64(0); c < ch; c++ {
					img[(yy*w+xx)*ch+c] = level
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
