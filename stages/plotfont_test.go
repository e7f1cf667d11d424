package stages

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/image/font/gofont/goregular"
	"gonum.org/v1/plot"
)

// useFontDirs makes the plots look for installed fonts in dirs only, for the test.
func useFontDirs(t *testing.T, dirs ...string) {
	old := fontDirs
	reset := func(d []string) {
		fontDirs = d
		fontPathsOnce = sync.Once{}
		fontPathList = nil
		labelFonts = sync.Map{}
	}
	reset(dirs)
	t.Cleanup(func() { reset(old) })
}

// Go Regular has superscript digits, which gonum/plot's Liberation lacks: a class name with
// one is drawn with the installed Go Regular; a name no installed font can draw is reported,
// and drawn in the font that draws the most of the others.
func TestClassLabelsUseAnInstalledFontThatHasTheirGlyphs(t *testing.T) {
	StartRun()
	dir := t.TempDir()
	goRegular := filepath.Join(dir, "sub", "GoRegular.ttf")
	if err := os.MkdirAll(filepath.Dir(goRegular), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goRegular, goregular.TTF, 0o644); err != nil {
		t.Fatal(err)
	}
	// Not fonts, or not readable as fonts: skipped.
	if err := os.WriteFile(filepath.Join(dir, "Broken-Sans.ttf"), []byte("not a font"), 0o644); err != nil {
		t.Fatal(err)
	}
	useFontDirs(t, filepath.Join(dir, "missing"), dir)

	if f, missing := classLabelFont([]string{"Amanita muscaria", "Kantarel – æøå", "Лисичка"}); f != plot.DefaultFont || missing != nil {
		t.Fatalf("names the default font draws: %v, missing %q", f, missing)
	}
	f, missing := classLabelFont([]string{"plain", "type⁰", "type ⁹"})
	if string(f.Typeface) != "pipeline: "+goRegular+"#0" || missing != nil {
		t.Fatalf("superscripts: font %q, missing %q; want Go Regular", f.Typeface, missing)
	}
	// No font draws them all: the one that draws the most names.
	f, missing = classLabelFont([]string{"plain", "type⁰", "蘑菇"})
	if string(f.Typeface) != "pipeline: "+goRegular+"#0" || strings.Join(missing, ",") != "蘑菇" {
		t.Fatalf("a name no font draws: font %q, missing %q; want Go Regular, 蘑菇", f.Typeface, missing)
	}
	// Liberation has ƀ and Ɓ, Go Regular does not: it stays the font for these names.
	f, missing = classLabelFont([]string{"ƀ", "Ɓ", "type⁰"})
	if f != plot.DefaultFont || strings.Join(missing, ",") != "type⁰" {
		t.Fatalf("a font that draws fewer names: font %q, missing %q; want the default, type⁰", f.Typeface, missing)
	}
	f, missing = classLabelFont([]string{"蘑菇"})
	if f != plot.DefaultFont || strings.Join(missing, ",") != "蘑菇" {
		t.Fatalf("a name no font draws: font %q, missing %q", f.Typeface, missing)
	}

	// The plots use the font and warn, naming the file, when it cannot show names in full.
	chart := func(dirs []string, names ...string) ([]byte, []string) {
		useFontDirs(t, dirs...)
		var logged []string
		path := filepath.Join(t.TempDir(), "class_distribution.png")
		if err := barChart(path, "t", names, []series{{"train", []float64{3, 4}}}, func(format string, args ...any) {
			logged = append(logged, fmt.Sprintf(format, args...))
		}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data, logged
	}
	withFont, logged := chart([]string{dir}, "a⁰", "b⁹")
	if logged != nil {
		t.Fatalf("warned with a font installed: %q", logged)
	}
	blank, logged := chart(nil, "a⁰", "b⁹")
	if len(logged) != 1 || !strings.Contains(logged[0], `classes "a⁰" and "b⁹"`) || !strings.Contains(logged[0], "□") {
		t.Fatalf("without a font: logged %q", logged)
	}
	if bytes.Equal(withFont, blank) {
		t.Fatal("the chart looks the same with the font that has the glyphs and without")
	}
	useFontDirs(t, dir)
	conf := &Confusion{Classes: []string{"蘑菇", "b"}, Counts: [][]int{{1, 0}, {0, 1}}}
	var warned []string
	logf := func(format string, args ...any) { warned = append(warned, fmt.Sprintf(format, args...)) }
	for range 3 { // once per run: every plot of these classes has the same problem
		if err := confusionPlot(filepath.Join(t.TempDir(), "confusion_matrix.png"), "cnn", conf, logf); err != nil {
			t.Fatal(err)
		}
	}
	if err := barChart(filepath.Join(t.TempDir(), "class_distribution.png"), "t", conf.Classes, []series{{"train", []float64{3, 4}}}, logf); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], `class "蘑菇":`) {
		t.Fatalf("confusion matrix: logged %q", warned)
	}
	// A plot of other classes warns about the names not warned about yet.
	if err := barChart(filepath.Join(t.TempDir(), "class_distribution.png"), "t", []string{"蘑菇", "マツタケ", "b"}, []series{{"train", []float64{3, 4, 5}}}, logf); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 2 || !strings.Contains(warned[1], `class "マツタケ":`) || strings.Contains(warned[1], "蘑菇") {
		t.Fatalf("new names: logged %q", warned)
	}
	StartRun() // the next run of the process warns again, in its own log
	if err := confusionPlot(filepath.Join(t.TempDir(), "confusion_matrix.png"), "cnn", conf, logf); err != nil || len(warned) != 3 {
		t.Fatalf("the next run: %v, logged %q", err, warned)
	}
}

// A class name with characters no font draws is labelled with □ in their place (a font
// draws nothing for a character it lacks, which hid that the name was cut short); the
// warning names at most three classes.
func TestClassLabelsMarkMissingCharacters(t *testing.T) {
	StartRun()
	useFontDirs(t)
	names := []string{"Tricholoma matsutake マツタケ", "Boletus edulis (Karl Johan)", "蘑菇", "松茸", "椎茸", "Лисичка"}
	var warned []string
	p, _, _, _, err := newBarChart("t", names, []series{{"train", []float64{1, 2, 3, 4, 5, 6}}}, func(format string, args ...any) {
		warned = append(warned, fmt.Sprintf(format, args...))
	})
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		shown = append(shown, tk.Label)
	}
	want := []string{"Tricholoma matsutake □□□□", "Boletus edulis (Karl Johan)", "□□", "□□", "□□", "Лисичка"}
	if !slices.Equal(shown, want) {
		t.Fatalf("labels %q, want %q", shown, want)
	}
	if len(warned) != 1 || !strings.HasPrefix(warned[0], `warning: no font here draws every character of classes "Tricholoma matsutake マツタケ", "蘑菇", "松茸" and 1 more: plots show □ `) {
		t.Fatalf("logged %q", warned)
	}
}
