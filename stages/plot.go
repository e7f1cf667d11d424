package stages

import (
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
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
// index order with their names, each bar labelled with its count (barCounts).
func barChart(path, title string, classes []string, ss []series, logf func(string, ...any)) error {
	p, width, height, _, err := newBarChart(title, classes, ss, logf)
	if err != nil {
		return err
	}
	return p.Save(width, height, path)
}

// newBarChart builds barChart's plot, with its size and the plotter of its count labels. The
// bars are as wide as the room per class allows (up to 24 points), and the y axis goes high
// enough for every count to sit above its bar below the legend.
func newBarChart(title string, classes []string, ss []series, logf func(string, ...any)) (*plot.Plot, vg.Length, vg.Length, *barCounts, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "images"
	p.Y.Min = 0
	p.Y.Tick.Marker = exactTicks{}
	counts := &barCounts{}
	for i, s := range ss {
		bars, err := plotter.NewBarChart(plotter.Values(s.Values), 1)
		if err != nil {
			return nil, 0, 0, nil, err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		p.Add(bars)
		if len(ss) > 1 {
			p.Legend.Add(s.Name, bars)
		}
		counts.bars = append(counts.bars, bars)
		counts.values = append(counts.values, s.Values)
	}
	p.Add(counts)
	p.Legend.Top = true
	top := 0.0
	for _, s := range ss {
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	p.X.Min, p.X.Max = -0.5, float64(len(classes))-0.5
	p.Y.Max = top + 1
	labelClasses(p, classes, false, logf)
	p.X.Tick.Label.Rotation = 0.8
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	width := vg.Length(max(6, float64(len(classes))*0.45)) * vg.Inch
	height := 5 * vg.Inch

	// The data area the plot will have (its height does not depend on the y range): bars
	// side by side fill at most 80% of a class's room, and the counts take their style from
	// the bars' width. Tall class labels make the image taller (fitData).
	var da draw.Canvas
	width, height = fitData(p, width, height, false, &da)
	pitch := da.Size().X / vg.Length(max(1, len(classes)))
	w := min(24, 0.8*pitch/vg.Length(max(1, len(ss))))
	for i, bars := range counts.bars {
		bars.Width = w
		bars.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
	}
	var texts []string
	for _, s := range ss {
		for _, v := range s.Values {
			texts = append(texts, countText(v))
		}
	}
	counts.style, counts.fit = countStyle(texts, w)
	// Headroom: every count above its bar, and the legend above them all.
	h := da.Size().Y
	var legend vg.Length
	if len(ss) > 1 {
		legend = p.Legend.Rectangle(da).Size().Y + 4
	}
	yMax := max(top*1.05, 1)
	for _, s := range ss {
		for _, v := range s.Values {
			above := legend
			if counts.fit {
				_, box := placeCount(counts.style, countText(v), 0, 0)
				above += countPad + box.Size().Y
			}
			if room := h - above; room > h/5 {
				yMax = max(yMax, v*float64(h/room))
			} else {
				yMax = max(yMax, 5*v)
			}
		}
	}
	p.Y.Max = yMax
	return p, width, height, counts, nil
}

// minDataHeight is the least height of a bar chart's data area, and side of a confusion
// matrix, whatever room their labels take (with short class names a bar chart has about 4.4
// inches of its 5).
const minDataHeight = 3.5 * vg.Inch

// fitData returns the size of an image of p, from width×height, that leaves p's data area at
// least minDataHeight high (and wide, with both), and sets *da (if not nil) to that area:
// tall tick labels (long class names, shortened but drawn at an angle) enlarge the image
// rather than squeeze the data. gonum gives no area (NaN) when the labels take more than the
// image, so the image grows by half until it has one.
func fitData(p *plot.Plot, width, height vg.Length, both bool, da *draw.Canvas) (vg.Length, vg.Length) {
	var c draw.Canvas
	for range 20 {
		c = p.DataCanvas(draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: width, Y: height}}})
		size := c.Size()
		// (Less a hundredth of a point: the area is computed in floating point.)
		okX, okY := !both || size.X >= minDataHeight-0.01, size.Y >= minDataHeight-0.01
		if okX && okY {
			break
		}
		if !okY {
			height = grow(height, size.Y)
		}
		if !okX {
			width = grow(width, size.X)
		}
	}
	if da != nil {
		*da = c
	}
	return width, height
}

// grow returns the side of an image whose data area is data long that way, enlarged to
// leave minDataHeight to the data.
func grow(side, data vg.Length) vg.Length {
	if math.IsNaN(float64(data)) || math.IsInf(float64(data), 0) || data < 0 {
		return side * 3 / 2
	}
	return side + minDataHeight - data
}

// countPad is the gap between a bar and its count.
const countPad = vg.Length(2)

// countText is how a count is written above its bar.
func countText(v float64) string { return strconv.Itoa(int(v)) }

// countStyle returns the style of the counts above bars w wide: 7-point text across the bar
// when the widest count fits in it, else running up the bar, made smaller (down to 5 points)
// when even a line of text is wider than the bar. fit is false when no size fits: the counts
// are then left out.
func countStyle(texts []string, w vg.Length) (sty text.Style, fit bool) {
	sty = text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 7), Handler: plot.DefaultTextHandler}
	room := 0.95 * w
	widest := vg.Length(0)
	for _, t := range texts {
		widest = max(widest, sty.Width(t))
	}
	if widest <= room {
		return sty, true
	}
	sty.Rotation = math.Pi / 2
	e := sty.FontExtents()
	if across := e.Ascent + e.Descent; across > room {
		size := sty.Font.Size * room / across
		if size < 5 {
			return sty, false
		}
		sty.Font = font.From(plot.DefaultFont, size)
	}
	return sty, true
}

// placeCount returns the style and box that draw txt in sty's font and direction (across, or
// up when sty is rotated) centred on x, its box starting at y; the box spans the font's
// ascent and descent across the text, its width along it. (gonum's Style.Rectangle counts
// the line gap below the text, which puts a rotated box beside the drawn digits.)
func placeCount(sty text.Style, txt string, x, y vg.Length) (text.Style, vg.Rectangle) {
	e := sty.FontExtents()
	across, along := e.Ascent+e.Descent, sty.Width(txt)
	if sty.Rotation == 0 {
		sty.XAlign, sty.YAlign = draw.XCenter, alignBaseline(sty, txt, e.Descent)
		return sty, vg.Rectangle{Min: vg.Point{X: x - along/2, Y: y}, Max: vg.Point{X: x + along/2, Y: y + across}}
	}
	// Rotated a quarter turn: the text's own y runs towards −x, its x up.
	sty.XAlign, sty.YAlign = draw.XLeft, alignBaseline(sty, txt, (e.Descent-e.Ascent)/2)
	return sty, vg.Rectangle{Min: vg.Point{X: x - across/2, Y: y}, Max: vg.Point{X: x + across/2, Y: y + along}}
}

// alignBaseline returns the YAlign that draws txt in sty with its baseline at baseline from
// the anchor, across the text (the text's descent below it, its ascent above): gonum's plain
// text handler draws the baseline at h·YAlign − ascent + size, h being ascent + descent.
func alignBaseline(sty text.Style, txt string, baseline vg.Length) text.YAlignment {
	return text.YAlignment((baseline + sty.FontExtents().Ascent - sty.Font.Size) / sty.Height(txt))
}

// barCounts draws each bar's count above it in one style (countStyle); a count that would
// overlap one drawn before it, or leave the data area, is left out. drawn holds the
// rectangles of the counts drawn by the last Plot.
type barCounts struct {
	bars   []*plotter.BarChart
	values [][]float64
	style  text.Style
	fit    bool
	drawn  []vg.Rectangle
}

// Plot implements plot.Plotter.
func (b *barCounts) Plot(c draw.Canvas, p *plot.Plot) {
	b.drawn = b.drawn[:0]
	if !b.fit {
		return
	}
	trX, trY := p.Transforms(&c)
	for si, bars := range b.bars {
		for i, v := range b.values[si] {
			txt := countText(v)
			at := vg.Point{X: trX(float64(i)) + bars.Offset, Y: trY(v) + countPad}
			sty, r := placeCount(b.style, txt, at.X, at.Y)
			if r.Max.Y > c.Max.Y || slices.ContainsFunc(b.drawn, func(d vg.Rectangle) bool { return overlap(d, r) }) {
				continue
			}
			c.FillText(sty, at, txt)
			b.drawn = append(b.drawn, r)
		}
	}
}

// overlap tells whether two rectangles share more than an edge.
func overlap(a, b vg.Rectangle) bool {
	return a.Min.X < b.Max.X && b.Min.X < a.Max.X && a.Min.Y < b.Max.Y && b.Min.Y < a.Max.Y
}

// confusionGrid adapts a row-normalised confusion matrix to plotter.GridXYZ (row 0 at top).
type confusionGrid struct {
	rates [][]float64
}

func (g confusionGrid) Dims() (c, r int)   { return len(g.rates), len(g.rates) }
func (g confusionGrid) Z(c, r int) float64 { return g.rates[len(g.rates)-1-r][c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// confusionPlot writes a row-normalised confusion-matrix heatmap with class names and the
// count of every non-empty cell (cellCounts).
func confusionPlot(path, title string, c *Confusion, logf func(string, ...any)) error {
	p, width, height, _ := newConfusionPlot(title, c, logf)
	return p.Save(width, height, path)
}

// newConfusionPlot builds confusionPlot's plot, with its size and the plotter of its counts.
func newConfusionPlot(title string, c *Confusion, logf func(string, ...any)) (*plot.Plot, vg.Length, vg.Length, *cellCounts) {
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
	counts := &cellCounts{counts: c.Counts, rates: rates}
	p.Add(counts)
	labelClasses(p, c.Classes, true, logf)
	p.X.Tick.Label.Rotation = 0.8
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	side := vg.Length(max(5, 2+float64(n)*0.45)) * vg.Inch
	// Long class labels make the image larger rather than the matrix smaller.
	width, height := fitData(p, side+vg.Inch, side, true, nil)
	return p, width, height, counts
}

// cellCounts writes the count of every non-empty cell of a confusion matrix in the cell's
// middle (white on cells more than half their row), in one size for the whole matrix: 11
// points when the widest count fits its cell so, else as large as it fits, down to 5 points.
// A count wider than its cell even at 5 points is left out. drawn holds the boxes of the
// counts drawn by the last Plot.
type cellCounts struct {
	counts [][]int
	rates  [][]float64
	drawn  []vg.Rectangle
}

// Plot implements plot.Plotter.
func (cc *cellCounts) Plot(c draw.Canvas, p *plot.Plot) {
	cc.drawn = cc.drawn[:0]
	n := len(cc.counts)
	if n == 0 {
		return
	}
	trX, trY := p.Transforms(&c)
	cellW, cellH := trX(1)-trX(0), trY(1)-trY(0)
	sty := text.Style{Font: font.From(plot.DefaultFont, 11), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	widest := vg.Length(0)
	for _, row := range cc.counts {
		for _, v := range row {
			if v != 0 {
				widest = max(widest, sty.Width(strconv.Itoa(v)))
			}
		}
	}
	e := sty.FontExtents()
	scale := min(1, 0.9*cellW/max(widest, 1), 0.8*cellH/(e.Ascent+e.Descent))
	sty.Font = font.From(plot.DefaultFont, max(5, 11*scale))
	e = sty.FontExtents()
	across := e.Ascent + e.Descent
	for i, row := range cc.counts {
		for j, v := range row {
			if v == 0 {
				continue
			}
			txt := strconv.Itoa(v)
			w := sty.Width(txt)
			if w > 0.95*cellW || across > 0.95*cellH {
				continue
			}
			at := vg.Point{X: trX(float64(j)), Y: trY(float64(n - 1 - i))}
			s := sty
			s.Color = color.Black
			if cc.rates[i][j] > 0.5 {
				s.Color = color.White
			}
			s.YAlign = alignBaseline(s, txt, (e.Descent-e.Ascent)/2) // centred
			c.FillText(s, at, txt)
			cc.drawn = append(cc.drawn, vg.Rectangle{Min: vg.Point{X: at.X - w/2, Y: at.Y - across/2}, Max: vg.Point{X: at.X + w/2, Y: at.Y + across/2}})
		}
	}
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
