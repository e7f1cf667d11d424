package stages

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// trainingPlot writes metrics.png: loss, macro-F1 and top-k accuracy per epoch, train against
// validation, with the exported epoch marked.
func trainingPlot(path, arch string, hist []EpochRecord, best int) error {
	panel := func(title, ylabel string, lines []struct {
		name string
		get  func(EpochRecord) metric
	}) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "epoch"
		p.Y.Label.Text = ylabel
		p.X.Tick.Marker, p.Y.Tick.Marker = integerTicks{}, exactTicks{}
		if strings.Contains(ylabel, "(0–1)") { // a rate: no tick past 1 in the legend's room
			p.Y.Tick.Marker = exactTicks{upTo: 1}
		}
		for i, l := range lines {
			var xys plotter.XYs
			for _, r := range hist {
				if v := float64(l.get(r)); !math.IsNaN(v) && !math.IsInf(v, 0) {
					xys = append(xys, plotter.XY{X: float64(r.Epoch), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = palette[i%len(palette)], palette[i%len(palette)]
			p.Add(line, points)
			p.Legend.Add(l.name, line)
		}
		// Headroom above the curves for the legend, so that it covers none of them; the
		// exported epoch's mark stops below it, so that it does not cross the legend.
		top := p.Y.Max
		p.Y.Max += 0.08 * float64(len(lines)) * max(p.Y.Max-p.Y.Min, 1e-3)
		if best > 0 {
			mark, err := plotter.NewLine(plotter.XYs{{X: float64(best), Y: p.Y.Min}, {X: float64(best), Y: top}})
			if err == nil {
				mark.Color = color.Gray{Y: 150}
				mark.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
				p.Add(mark)
			}
		}
		p.Legend.Top = true
		return p, nil
	}
	type line = struct {
		name string
		get  func(EpochRecord) metric
	}
	loss, err := panel("Loss", "cross-entropy", []line{
		{"train", func(r EpochRecord) metric { return r.TrainLoss }}, {"val", func(r EpochRecord) metric { return r.ValLoss }}})
	if err != nil {
		return err
	}
	f1, err := panel("Macro F1", "F1 (0–1)", []line{
		{"train", func(r EpochRecord) metric { return r.TrainF1 }}, {"val", func(r EpochRecord) metric { return r.ValF1 }}})
	if err != nil {
		return err
	}
	topk, err := panel("Validation top-k accuracy", "accuracy (0–1)", []line{
		{"top-1", func(r EpochRecord) metric { return r.ValTop1 }}, {"top-3", func(r EpochRecord) metric { return r.ValTop3 }},
		{"top-5", func(r EpochRecord) metric { return r.ValTop5 }}})
	if err != nil {
		return err
	}
	const w, h = 15 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	// The last epoch's points, its tick label and the legend's line samples reach the right
	// edge of a panel's canvas: the padding on the right keeps the last panel's inside the
	// image, and the gap between panels the others' clear of their neighbour.
	tiles := draw.Tiles{Rows: 1, Cols: 3, PadX: vg.Millimeter * 8, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 8,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 6}
	plots := [][]*plot.Plot{{loss, f1, topk}}
	canvases := plot.Align(plots, tiles, dc)
	for j, p := range plots[0] {
		p.Draw(canvases[0][j])
	}
	dc.FillText(draw.TextStyle{Color: color.Black, Font: loss.Title.TextStyle.Font, XAlign: draw.XCenter, Handler: plot.DefaultTextHandler},
		vg.Point{X: w / 2, Y: h - vg.Millimeter*5}, fmt.Sprintf("%s — exported epoch %d (dashed)", arch, best))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
