package stages

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// series is one set of bars in a bar chart.
type series struct {
	Name   string
	Values []float64
}

// palette gives series distinguishable colours.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
}

// barChart writes a grouped bar chart (PNG) of per-class counts: classes on the x axis in
// index order with their names, each bar labelled with its count.
func barChart(path, title string, classes []string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "images"
	p.Y.Min = 0
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
	p.NominalX(classes...)
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
