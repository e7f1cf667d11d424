package stages

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Long class names are shortened to maxLabel characters for plots, each label distinct:
// names that differ only at their end, only in their middle, or only far from both ends.
func TestPlotLabelsAreShortAndDistinct(t *testing.T) {
	long := strings.Repeat("Amanita muscaria var. ", 3) // 66 characters
	numbered := make([]string, 120)
	for i := range numbered {
		numbered[i] = fmt.Sprintf("Cantharellus cibarius %d (Almindelig kantarel)", i)
	}
	for _, c := range []struct {
		name    string
		classes []string
	}{
		{"short", []string{"Bag", "Café", strings.Repeat("x", maxLabel)}},
		{"different ends", []string{long + "alba", long + "flavivolvata", "cat"}},
		{"different starts", []string{"alba " + long, "flavivolvata " + long}},
		{"middles", numbered},
		{"far middles", []string{long + "1" + long, long + "2" + long, long + "22" + long}},
		{"near the end", []string{long + "abcdefghijklmnopq1rstuvwxyz", long + "abcdefghijklmnopq2rstuvwxyz"}},
		{"one starts the other", []string{long, long + "s"}},
	} {
		labels := plotLabels(c.classes)
		seen := map[string]string{}
		for i, l := range labels {
			if n := utf8.RuneCountInString(c.classes[i]); n <= maxLabel && l != c.classes[i] {
				t.Errorf("%s: %q shown as %q", c.name, c.classes[i], l)
			}
			if n := utf8.RuneCountInString(l); n > maxLabel {
				t.Errorf("%s: label %q has %d characters", c.name, l, n)
			}
			if other, ok := seen[l]; ok {
				t.Errorf("%s: %q and %q both shown as %q", c.name, other, c.classes[i], l)
			}
			seen[l] = c.classes[i]
		}
	}
	got := plotLabels([]string{long + "alba", long + "flavivolvata"})
	if got[0] != "Amanita musc…caria var. alba" || got[1] != "Amanita musc…r. flavivolvata" {
		t.Errorf("labels %q", got)
	}
}

// A bar chart of a class with a 100-character name still draws its bars and counts, in a
// data area of at least minDataHeight (the name's label took the whole image, and the bars
// were not drawn); so does a confusion matrix, both ways.
func TestLongClassNameKeepsTheBars(t *testing.T) {
	classes := []string{strings.Repeat("M", 100), "cat", "dog"}
	ss := []series{{"train", []float64{4, 2, 3}}, {"val", []float64{1, 1, 1}}}
	p, width, height, counts, err := newBarChart("Images per class and split", classes, ss, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := draw.New(vgimg.New(width, height))
	p.Draw(c)
	if da := p.DataCanvas(c); !(da.Size().Y >= minDataHeight-0.01) {
		t.Fatalf("data area %v high, want at least %v", da.Size().Y, minDataHeight)
	}
	if len(counts.drawn) != 6 {
		t.Fatalf("%d counts drawn, want 6", len(counts.drawn))
	}
	path := filepath.Join(t.TempDir(), "class_distribution.png")
	if err := barChart(path, "Images per class and split", classes, ss, nil); err != nil {
		t.Fatal(err)
	}
	img := readPNGFile(t, path)
	// The train bars' colour, beyond the legend's small sample of it.
	want := color.RGBAModel.Convert(palette[0]).(color.RGBA)
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == want {
				n++
			}
		}
	}
	if n < 3000 {
		t.Fatalf("%d pixels of the train bars' colour: the bars are not drawn", n)
	}

	conf := &Confusion{Classes: classes, Counts: [][]int{{3, 1, 0}, {0, 4, 0}, {1, 0, 3}}}
	cp, width, height, _ := newConfusionPlot("cnn", conf, nil)
	da := cp.DataCanvas(draw.New(vgimg.New(width, height)))
	if size := da.Size(); !(size.X >= minDataHeight-0.01 && size.Y >= minDataHeight-0.01) {
		t.Fatalf("confusion matrix %v × %v, want at least %v each way", size.X, size.Y, minDataHeight)
	}
}

// A class name's tab or newline is shown escaped on the plots, as in the log, not dropped
// (which showed "tab\tx" as a class "tabx") nor drawn as a line break; other names, spaces
// and accents included, are shown as they are. The bar chart and the confusion matrix both
// label their classes so.
func TestPlotLabelsEscapeControlCharacters(t *testing.T) {
	classes := []string{"tab\tx", "new\nline", "Ceps é", "non\u00a0break", "evil\u202egpj"}
	want := []string{`tab\tx`, `new\nline`, "Ceps é", "non\u00a0break", `evil\u202egpj`}
	if got := plotLabels(classes); !slices.Equal(got, want) {
		t.Errorf("plotLabels = %q, want %q", got, want)
	}
	long := strings.Repeat("Amanita muscaria ", 3) + "tab\there"
	if got := plotLabels([]string{long})[0]; !strings.HasSuffix(got, `\there`) || strings.ContainsAny(got, "\t\n") {
		t.Errorf("long name shown as %q", got)
	}
	ticks := func(m plot.Ticker, lo, hi float64) []string {
		var out []string
		for _, tk := range m.Ticks(lo, hi) {
			out = append(out, tk.Label)
		}
		return out
	}
	bars, _, _, _, err := newBarChart("t", classes[:3], []series{{"train", []float64{1, 2, 3}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ticks(bars.X.Tick.Marker, bars.X.Min, bars.X.Max); !slices.Equal(got, want[:3]) {
		t.Errorf("bar chart labels %q, want %q", got, want[:3])
	}
	conf := &Confusion{Classes: classes[:2], Counts: [][]int{{1, 0}, {0, 1}}}
	cp, _, _, _ := newConfusionPlot("cnn", conf, nil)
	if got := ticks(cp.X.Tick.Marker, -0.5, 1.5); !slices.Equal(got, want[:2]) {
		t.Errorf("confusion matrix labels %q, want %q", got, want[:2])
	}
	if got := ticks(cp.Y.Tick.Marker, -0.5, 1.5); !slices.Equal(got, []string{want[1], want[0]}) {
		t.Errorf("confusion matrix labels %q, want %q", got, []string{want[1], want[0]})
	}
}
