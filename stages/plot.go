package stages

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// series is one set of bars in a bar chart.
type series struct {
	Name   string
	Values []float64
}

// exactTicks is plot.DefaultTicks with every label showing its tick's value: gonum's labels
// are rounded to the decimals of the tick step, so a tick at 1.15 (step 0.2) read "1.2", half
// a step from where it was drawn. Each label gets the fewest decimals that state every
// labelled value of the axis exactly. With upTo set, no tick goes past it (a rate's 1, where
// the axis goes higher only to leave the legend room).
type exactTicks struct{ upTo float64 }

// Ticks implements plot.Ticker.
func (e exactTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	if e.upTo != 0 {
		ticks = slices.DeleteFunc(ticks, func(t plot.Tick) bool { return t.Value > e.upTo+1e-9 })
	}
	var labelled []float64
	for _, t := range ticks {
		if t.Label != "" {
			labelled = append(labelled, t.Value)
		}
	}
	relabel(ticks, labelled)
	return ticks
}

// relabel writes the labels of the labelled ticks with the fewest decimals (at most 12) that
// state each of values exactly, up to floating-point noise.
func relabel(ticks []plot.Tick, values []float64) {
	scale := 0.0
	for _, v := range values {
		scale = math.Max(scale, math.Abs(v))
	}
	tol := 1e-9 * math.Max(scale, 1e-300)
	decimals := 0
	for ; decimals < 12; decimals++ {
		exact := true
		for _, v := range values {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', decimals, 64), 64)
			exact = exact && math.Abs(r-v) <= tol
		}
		if exact {
			break
		}
	}
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', decimals, 64)
		}
	}
}

// integerTicks labels whole numbers only (epochs): every one on a short axis, else every
// 2nd, 5th, 10th, 20th, … so that about eight are labelled.
type integerTicks struct{}

// Ticks implements plot.Ticker.
func (integerTicks) Ticks(min, max float64) []plot.Tick {
	step := 1.0
	for i := 0; (max-min)/step > 8; i++ {
		step = []float64{2, 5, 10}[i%3] * math.Pow(10, float64(i/3))
	}
	var ticks []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}

// palette gives series distinguishable colours.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
}

// barChart writes a grouped bar chart (PNG) of per-class counts: classes on the x axis in
// index order with their names, each bar labelled with its count.
func barChart(path, title string, classes []string, ss []series, logf func(string, ...any)) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "images"
	p.Y.Min = 0
	p.Y.Tick.Marker = exactTicks{}
	w := vg.Points(float64(min(24, max(6, 300/max(1, len(classes)*len(ss))))))
	for i, s := range ss {
		bars, err := plotter.NewBarChart(plotter.Values(s.Values), w)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(bars)
		if len(ss) > 1 {
			p.Legend.Add(s.Name, bars)
		}
		labels, err := countLabels(s.Values, bars.Offset)
		if err == nil && len(classes) <= 60 {
			p.Add(labels)
		}
	}
	p.Legend.Top = true
	// Room for the outer bars of the first and last class, and above the tallest bar for its
	// count and the legend.
	top := 0.0
	for _, s := range ss {
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	p.X.Min, p.X.Max = -0.5, float64(len(classes))-0.5
	p.Y.Max = top*1.25 + 1
	p.NominalX(classes...)
	labelClasses(p, classes, false, path, logf)
	p.X.Tick.Label.Rotation = 0.8
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	width := vg.Length(max(6, float64(len(classes))*0.45)) * vg.Inch
	return p.Save(width, 5*vg.Inch, path)
}

// countLabels puts each bar's count above it.
func countLabels(values []float64, offset vg.Length) (*plotter.Labels, error) {
	xys := make(plotter.XYs, len(values))
	text := make([]string, len(values))
	for i, v := range values {
		xys[i] = plotter.XY{X: float64(i), Y: v}
		text[i] = fmt.Sprint(int(v))
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = -0.5
		l.TextStyle[i].Font.Size = vg.Points(7)
	}
	l.Offset = vg.Point{X: offset, Y: 2}
	return l, nil
}

// confusionGrid adapts a row-normalised confusion matrix to plotter.GridXYZ (row 0 at top).
type confusionGrid struct {
	rates [][]float64
}

func (g confusionGrid) Dims() (c, r int)   { return len(g.rates), len(g.rates) }
func (g confusionGrid) Z(c, r int) float64 { return g.rates[len(g.rates)-1-r][c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// confusionPlot writes a row-normalised confusion-matrix heatmap with class names, the count
// in each non-empty cell when the matrix is small enough to read.
func confusionPlot(path, title string, c *Confusion, logf func(string, ...any)) error {
	n := len(c.Classes)
	rates := make([][]float64, n)
	for i, row := range c.Counts {
		rates[i] = make([]float64, n)
		total := 0
		for _, v := range row {
			total += v
		}
		for j, v := range row {
			if total > 0 {
				rates[i][j] = float64(v) / float64(total)
			}
		}
	}
	p := plot.New()
	p.Title.Text = title + ": confusion matrix (rows: true class, normalised)"
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	pal := moreno{}
	hm := plotter.NewHeatMap(confusionGrid{rates}, pal)
	hm.Min, hm.Max = 0, 1
	p.Add(hm)
	if n <= 30 {
		var xys plotter.XYs
		var text []string
		for i, row := range c.Counts {
			for j, v := range row {
				if v == 0 {
					continue
				}
				xys = append(xys, plotter.XY{X: float64(j), Y: float64(n - 1 - i)})
				text = append(text, fmt.Sprint(v))
			}
		}
		if len(xys) > 0 {
			labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
			if err != nil {
				return err
			}
			for k := range labels.TextStyle {
				labels.TextStyle[k].XAlign, labels.TextStyle[k].YAlign = -0.5, -0.5
				labels.TextStyle[k].Font.Size = vg.Points(max(5, 11-float64(n)/4))
				i := n - 1 - int(xys[k].Y)
				if rates[i][int(xys[k].X)] > 0.5 {
					labels.TextStyle[k].Color = color.White
				}
			}
			p.Add(labels)
		}
	}
	reversed := make([]string, n)
	for i, name := range c.Classes {
		reversed[n-1-i] = name
	}
	p.NominalX(c.Classes...)
	p.NominalY(reversed...)
	labelClasses(p, c.Classes, true, path, logf)
	p.X.Tick.Label.Rotation = 0.8
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	side := vg.Length(max(5, 2+float64(n)*0.45)) * vg.Inch
	return p.Save(side+vg.Inch, side, path)
}

// moreno is a white-to-blue palette for rates in [0, 1].
type moreno struct{}

func (moreno) Colors() []color.Color {
	out := make([]color.Color, 64)
	for i := range out {
		t := float64(i) / 63
		out[i] = color.RGBA{uint8(255 - 224*t), uint8(255 - 170*t), uint8(255 - 75*t), 255}
	}
	return out
}
