package stages

import (
	"errors"
	"io/fs"
	"pipeline/pipeline"
	"slices"
	"strings"
	"testing"
	"time"
)

// The data stages' keys name the toolchain and modules their images are made with, in the
// very strings their reuse records hold: an upgrade that stops a previous output's images
// from being reused also reruns the stage.
func TestDataStagesKeyTheBuildOfTheirImages(t *testing.T) {
	cfg := SplitConfig{ImageSize: 8, Channels: 3, Resize: ResizeCenterCrop, Format: FormatPNG, Quality: 95, Compression: CompressionNone, MaxPixels: DefaultMaxPixels}
	for _, c := range []struct {
		kind   string
		env    []string
		record string
		build  string
	}{
		{"split", envOf(t, Split{}), storedWith(cfg), buildOf(splitModules...)},
		{"augment", envOf(t, Augment{}), madeWith(1, AugmentConfig{}, &Manifest{Channels: 3}), buildOf(augmentModules...)},
	} {
		if !slices.Contains(c.env, "build "+c.build) {
			t.Errorf("%s's environment %q lacks %q", c.kind, c.env, "build "+c.build)
		}
		if !strings.HasSuffix(c.record, "; "+c.build) {
			t.Errorf("%s's reuse record %q does not end with its build %q", c.kind, c.record, c.build)
		}
		if !strings.HasPrefix(c.build, "go1.") {
			t.Errorf("%s's build %q does not start with the Go version", c.kind, c.build)
		}
	}
	env := envOf(t, Split{})
	if !slices.ContainsFunc(env, func(l string) bool { return strings.HasPrefix(l, "libtensorflow ") }) {
		t.Errorf("split's environment %q lacks the libtensorflow version its JPEG decoder is", env)
	}
}

// The kinds that plot class names have the fonts in their keys; train's plot has none.
func TestPlotFontsAreInTheKeysOfTheKindsThatPlotClassNames(t *testing.T) {
	for _, c := range []struct {
		kind string
		env  []string
		want bool
	}{
		{"split", envOf(t, Split{}), true},
		{"augment", envOf(t, Augment{}), true},
		{"evaluate", envOf(t, Evaluate{}), true},
		{"train", envOf(t, Train{}), false},
	} {
		if got := slices.Contains(c.env, plotFonts()); got != c.want {
			t.Errorf("%s: plot font line %q in %q: %v, want %v", c.kind, plotFonts(), c.env, got, c.want)
		}
	}
	if !strings.HasPrefix(plotFonts(), "plot_fonts built-in") {
		t.Errorf("plot font line %q", plotFonts())
	}
}

// fakeFile is an fs.FileInfo of a given size.
type fakeFile int64

func (f fakeFile) Name() string       { return "" }
func (f fakeFile) Size() int64        { return int64(f) }
func (f fakeFile) Mode() fs.FileMode  { return 0o644 }
func (f fakeFile) ModTime() time.Time { return time.Time{} }
func (f fakeFile) IsDir() bool        { return false }
func (f fakeFile) Sys() any           { return nil }

// The font line is the same for the same fonts, and changes when a font is added, removed,
// moved or replaced by one of another size; without installed fonts it says so.
func TestPlotFontsOfNamesTheFontsThatCanBeChosen(t *testing.T) {
	sizes := map[string]int64{"/usr/share/fonts/a/NotoSans-Regular.ttf": 500, "/usr/share/fonts/b/NotoSansCJK.ttc": 9000}
	stat := func(p string) (fs.FileInfo, error) {
		if s, ok := sizes[p]; ok {
			return fakeFile(s), nil
		}
		return nil, errors.New("gone")
	}
	fonts := []string{"/usr/share/fonts/a/NotoSans-Regular.ttf", "/usr/share/fonts/b/NotoSansCJK.ttc"}
	if got := plotFontsOf(nil, stat); got != "plot_fonts built-in" {
		t.Errorf("no fonts: %q", got)
	}
	base := plotFontsOf(fonts, stat)
	if !strings.HasPrefix(base, "plot_fonts built-in and 2 installed ") {
		t.Errorf("two fonts: %q", base)
	}
	if again := plotFontsOf(slices.Clone(fonts), stat); again != base {
		t.Errorf("the same fonts gave %q, then %q", base, again)
	}
	changed := map[string]string{
		"one removed":            plotFontsOf(fonts[:1], stat),
		"one added":              plotFontsOf(append(slices.Clone(fonts), "/usr/share/fonts/c/Extra.otf"), stat),
		"moved":                  plotFontsOf([]string{fonts[0], "/usr/local/share/fonts/NotoSansCJK.ttc"}, stat),
		"tried in another order": plotFontsOf([]string{fonts[1], fonts[0]}, stat),
	}
	sizes[fonts[1]] = 9001
	changed["replaced"] = plotFontsOf(fonts, stat)
	for what, got := range changed {
		if got == base {
			t.Errorf("%s: the line stayed %q", what, got)
		}
	}
}

// envOf returns the environment lines of a kind for values that leave everything at its
// defaults, failing the test on an error.
func envOf(t *testing.T, k pipeline.Environmental) []string {
	t.Helper()
	env, err := k.Environment(nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
