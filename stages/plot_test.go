package stages

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// TestTickLabelsStateTheirValues checks, over a grid of axis ranges, that every labelled
// tick's label reads as the value it is drawn at (gonum's own labels were off by half a step
// for about one range in eight), with no more decimals than needed.
func TestTickLabelsStateTheirValues(t *testing.T) {
	for i := 0; i < 60; i++ {
		for j := 1; j < 60; j++ {
			lo := -0.3 + float64(i)*0.021
			hi := lo + float64(j)*0.0173*float64(1+i%7)
			var labels []string
			for _, tk := range (exactTicks{}).Ticks(lo, hi) {
				if tk.Label == "" {
					continue
				}
				v, err := strconv.ParseFloat(tk.Label, 64)
				if err != nil || math.Abs(v-tk.Value) > 1e-9*math.Max(1, math.Abs(tk.Value)) {
					t.Fatalf("axis %g–%g: tick at %g labelled %q", lo, hi, tk.Value, tk.Label)
				}
				labels = append(labels, tk.Label)
			}
			if len(labels) < 2 {
				t.Fatalf("axis %g–%g: labels %q", lo, hi, labels)
			}
			// Their decimals are all needed: some label ends in a digit other than 0.
			if strings.Contains(labels[0], ".") && !slices.ContainsFunc(labels, func(l string) bool { return !strings.HasSuffix(l, "0") }) {
				t.Fatalf("axis %g–%g: labels %q have a decimal none needs", lo, hi, labels)
			}
		}
	}
}

// TestEpochTicksAreWholeNumbers checks the epoch axis: whole numbers only, every epoch on a
// short run, at most eight labels on a long one.
func TestEpochTicksAreWholeNumbers(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		first    int
		n        int
	}{{1, 2, 1, 2}, {1, 8, 1, 8}, {1, 9, 1, 9}, {1, 20, 5, 4}, {1, 100, 20, 5}, {0.5, 3.5, 1, 3}, {1, 1000, 200, 5}} {
		ticks := (integerTicks{}).Ticks(c.min, c.max)
		if len(ticks) != c.n || int(ticks[0].Value) != c.first {
			t.Errorf("epochs %g–%g: %d ticks from %v, want %d from %d", c.min, c.max, len(ticks), ticks[0].Value, c.n, c.first)
		}
		for _, tk := range ticks {
			if tk.Value != math.Trunc(tk.Value) || tk.Label != strconv.Itoa(int(tk.Value)) {
				t.Errorf("epochs %g–%g: tick %v %q", c.min, c.max, tk.Value, tk.Label)
			}
		}
	}
}

// A rate's axis, stretched past 1 for the legend, has no tick past 1.
func TestRateTicksStopAtOne(t *testing.T) {
	ticks := (exactTicks{upTo: 1}).Ticks(0.3, 1.25)
	if len(ticks) == 0 {
		t.Fatal("no ticks")
	}
	for _, tk := range ticks {
		if tk.Value > 1 {
			t.Fatalf("tick at %v (%q) past 1", tk.Value, tk.Label)
		}
	}
	if all := (exactTicks{}).Ticks(0.3, 1.25); all[len(all)-1].Value <= 1 {
		t.Fatal("the test's axis has no tick past 1 to drop")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 139018: "139,018", 1147114: "1,147,114", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// The counts above the bars of a class-distribution chart never overlap one another, a bar
// or the legend, and every one is drawn, from 3 classes to 120 with one to three series and
// counts of one to five digits.
func TestBarCountsDoNotOverlap(t *testing.T) {
	for _, n := range []int{3, 10, 43, 120} {
		for k := 1; k <= 3; k++ {
			classes := make([]string, n)
			ss := make([]series, k)
			for i := range classes {
				classes[i] = fmt.Sprintf("Cantharellus cibarius %d (Almindelig kantarel)", i)
				for j := range ss {
					ss[j].Name = fmt.Sprint("set ", j)
					ss[j].Values = append(ss[j].Values, float64([]int{12345, 7, 2400, 255, 0, 99}[(i+j)%6]))
				}
			}
			p, width, height, counts, err := newBarChart("Images per class and split", classes, ss, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := draw.New(vgimg.New(width, height))
			p.Draw(c)
			if len(counts.drawn) != n*k {
				t.Fatalf("%d classes, %d series: %d counts drawn, want %d", n, k, len(counts.drawn), n*k)
			}
			dc := p.DataCanvas(c)
			trX, trY := p.Transforms(&dc)
			var bars []vg.Rectangle
			for j, b := range counts.bars {
				for i, v := range ss[j].Values {
					x := trX(float64(i)) + b.Offset
					bars = append(bars, vg.Rectangle{Min: vg.Point{X: x - b.Width/2, Y: trY(0)}, Max: vg.Point{X: x + b.Width/2, Y: trY(v)}})
				}
			}
			// The legend is drawn at the top right of the plot below its title.
			legend := p.Legend.Rectangle(c).Size()
			top := height - p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y - p.Title.Padding
			legendBox := vg.Rectangle{Min: vg.Point{X: width - legend.X, Y: top - legend.Y}, Max: vg.Point{X: width, Y: top}}
			for a, r := range counts.drawn {
				for b := range a {
					if overlap(r, counts.drawn[b]) {
						t.Fatalf("%d classes, %d series: counts %d and %d overlap: %v, %v", n, k, a, b, r, counts.drawn[b])
					}
				}
				for b, bar := range bars {
					if overlap(r, bar) {
						t.Fatalf("%d classes, %d series: count %d overlaps bar %d: %v, %v", n, k, a, b, r, bar)
					}
				}
				if k > 1 && overlap(r, legendBox) {
					t.Fatalf("%d classes, %d series: count %d overlaps the legend: %v, %v", n, k, a, r, legendBox)
				}
				if r.Min.X < bars[a].Min.X-1 || r.Max.X > bars[a].Max.X+1 {
					t.Fatalf("%d classes, %d series: count %d (%v) is wider than its bar (%v)", n, k, a, r, bars[a])
				}
			}
		}
	}
}

// Counts too long for their bars even up the bar at 5 points are left out; short ones run
// across the bar when they fit.
func TestCountStyleFitsTheBar(t *testing.T) {
	if sty, fit := countStyle([]string{"7", "2400"}, 24); !fit || sty.Rotation != 0 || sty.Font.Size != 7 {
		t.Fatalf("wide bars: %+v, fit %v", sty, fit)
	}
	if sty, fit := countStyle([]string{"7", "2400"}, 8); !fit || sty.Rotation == 0 {
		t.Fatalf("narrow bars: %+v, fit %v", sty, fit)
	}
	if sty, fit := countStyle([]string{"7", "2400"}, 6); !fit || sty.Rotation == 0 || sty.Font.Size >= 7 || sty.Font.Size < 5 {
		t.Fatalf("narrower bars: %+v, fit %v", sty, fit)
	}
	if _, fit := countStyle([]string{"7"}, 3); fit {
		t.Fatal("3-point bars: counts drawn")
	}
}

// The confusion matrix has the count of every non-empty cell inside the cell, from 3 classes
// to 120, with counts of up to four digits.
func TestConfusionCountsFitTheirCells(t *testing.T) {
	for _, n := range []int{3, 10, 43, 120} {
		conf := &Confusion{Counts: make([][]int, n)}
		nonZero := 0
		for i := range n {
			conf.Classes = append(conf.Classes, fmt.Sprintf("Cantharellus cibarius %d (Almindelig kantarel)", i))
			conf.Counts[i] = make([]int, n)
			for j := range n {
				conf.Counts[i][j] = []int{0, 0, 3, 0, 17, 0, 1234}[(i*7+j)%7]
				if i == j {
					conf.Counts[i][j] = 2400
				}
				if conf.Counts[i][j] != 0 {
					nonZero++
				}
			}
		}
		p, width, height, counts := newConfusionPlot("cnn", conf, nil)
		c := draw.New(vgimg.New(width, height))
		p.Draw(c)
		if len(counts.drawn) != nonZero {
			t.Fatalf("%d classes: %d counts drawn, want %d", n, len(counts.drawn), nonZero)
		}
		dc := p.DataCanvas(c)
		trX, trY := p.Transforms(&dc)
		k := 0
		for i, row := range conf.Counts {
			for j, v := range row {
				if v == 0 {
					continue
				}
				cell := vg.Rectangle{Min: vg.Point{X: trX(float64(j) - 0.5), Y: trY(float64(n-1-i) - 0.5)}, Max: vg.Point{X: trX(float64(j) + 0.5), Y: trY(float64(n-1-i) + 0.5)}}
				r := counts.drawn[k]
				if r.Min.X < cell.Min.X || r.Max.X > cell.Max.X || r.Min.Y < cell.Min.Y || r.Max.Y > cell.Max.Y {
					t.Fatalf("%d classes: count %d of cell (%d, %d) at %v, outside the cell %v", n, v, i, j, r, cell)
				}
				k++
			}
		}
	}
}

// TestTrainingPlotKeepsEverythingInsideTheImage checks that metrics.png draws nothing in its
// outermost columns: the last epoch's points, its tick label and the legend's line samples of
// the right panel reached the image's right edge and were cut.
func TestTrainingPlotKeepsEverythingInsideTheImage(t *testing.T) {
	for _, epochs := range []int{8, 120} {
		var hist []EpochRecord
		for e := 1; e <= epochs; e++ {
			f := float64(e) / float64(epochs)
			hist = append(hist, EpochRecord{Epoch: e, TrainLoss: metric(1.5 - f), ValLoss: metric(1.4 - 0.8*f), TrainF1: metric(0.5 + 0.4*f),
				ValF1: metric(0.45 + 0.4*f), ValTop1: metric(0.5 + 0.4*f), ValTop3: metric(0.8 + 0.15*f), ValTop5: metric(0.9 + 0.09*f)})
		}
		path := filepath.Join(t.TempDir(), "metrics.png")
		if err := trainingPlot(path, "cnn", hist, epochs); err != nil {
			t.Fatal(err)
		}
		img := readPNGFile(t, path)
		b := img.Bounds()
		for _, x := range []int{b.Min.X, b.Min.X + 1, b.Max.X - 2, b.Max.X - 1} {
			for y := b.Min.Y; y < b.Max.Y; y++ {
				if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
					t.Fatalf("%d epochs: something is drawn at the image's edge, at (%d, %d)", epochs, x, y)
				}
			}
		}
	}
}

// readPNGFile decodes the PNG file at path.
func readPNGFile(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
