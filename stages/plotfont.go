package stages

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"

	"pipeline/pipeline"
)

// Plots label bars and matrix rows with class names, which may be in any script. gonum/plot
// embeds Liberation (Latin, Greek, Cyrillic); a name it has no glyphs for, say in Chinese,
// is drawn with an installed font that has every glyph it needs. When none has, the plot
// draws □ for each character its font lacks, so that the name shows it is incomplete, and the
// log names the classes once per run.

// fontDirs are the folders searched for fonts (as fontconfig's defaults on Linux).
var fontDirs = func() []string {
	dirs := []string{"/usr/share/fonts", "/usr/local/share/fonts"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".local", "share", "fonts"), filepath.Join(home, ".fonts"))
	}
	return dirs
}()

var (
	fontPathsOnce sync.Once
	fontPathList  []string
	labelFonts    sync.Map // the names joined by NUL → labelFontChoice
)

// labelFontChoice is the font chosen for a set of names, and the names it cannot draw.
type labelFontChoice struct {
	font    font.Font
	missing []string
}

// classLabelFont returns the font for class-name labels: gonum/plot's default when it has
// every character of names, else the installed font that has every character of the most
// names (the first such in fontPaths' order, regular sans-serif faces first), registered in
// gonum/plot's font cache; or the default when no font draws more names than it does. The
// names the font cannot draw come back as missing.
func classLabelFont(names []string) (font.Font, []string) {
	def := plot.DefaultFont
	defFace := font.DefaultCache.Lookup(def, 10).Face
	missing := undrawable(defFace, names)
	if len(missing) == 0 {
		return def, nil
	}
	key := strings.Join(names, "\x00")
	if c, ok := labelFonts.Load(key); ok {
		c := c.(labelFontChoice)
		return c.font, c.missing
	}
	choice := labelFontChoice{font: def, missing: missing}
	bestPath, bestIndex := "", -1
	for _, path := range fontPaths() {
		i, m := bestFace(path, names)
		if i >= 0 && len(m) < len(choice.missing) {
			bestPath, bestIndex, choice.missing = path, i, m
			if len(m) == 0 {
				break
			}
		}
	}
	if f := readFace(bestPath, bestIndex); f != nil {
		choice.font = font.Font{Typeface: font.Typeface(fmt.Sprintf("pipeline: %s#%d", bestPath, bestIndex))}
		font.DefaultCache.Add(font.Collection{{Font: choice.font, Face: f}})
	} else {
		choice.missing = missing
	}
	labelFonts.Store(key, choice)
	return choice.font, choice.missing
}

// undrawable lists the names f lacks a character of (spaces and control characters aside).
func undrawable(f *sfnt.Font, names []string) []string {
	var out []string
	var b sfnt.Buffer
	for _, n := range names {
		if strings.ContainsFunc(n, func(r rune) bool { return !hasGlyph(f, &b, r) }) {
			out = append(out, n)
		}
	}
	return out
}

// hasGlyph tells whether f draws r; spaces and control characters count as drawn.
func hasGlyph(f *sfnt.Font, b *sfnt.Buffer, r rune) bool {
	if unicode.IsSpace(r) || !unicode.IsPrint(r) {
		return true
	}
	g, err := f.GlyphIndex(b, r)
	return err == nil && g != 0
}

// missingGlyph stands for a character a plot's font has no glyph for: a white square, or a
// question mark in a font without one.
func missingGlyph(f *sfnt.Font) rune {
	if hasGlyph(f, &sfnt.Buffer{}, '□') {
		return '□'
	}
	return '?'
}

// asDrawn returns name with each character f has no glyph for replaced by missingGlyph (a
// font draws nothing for a character it lacks, which hid that the name was incomplete).
func asDrawn(f *sfnt.Font, name string) string {
	var b sfnt.Buffer
	return strings.Map(func(r rune) rune {
		if hasGlyph(f, &b, r) {
			return r
		}
		return missingGlyph(f)
	}, name)
}

// bestFace opens the font file at path only to look at its character maps and returns the
// index of its face that can draw the most names, with the names that face cannot draw; -1
// when the file is not a readable font.
func bestFace(path string, names []string) (int, []string) {
	file, err := os.Open(path)
	if err != nil {
		return -1, nil
	}
	defer file.Close()
	coll, err := sfnt.ParseCollectionReaderAt(file)
	if err != nil {
		return -1, nil
	}
	best, bestMissing := -1, []string(nil)
	for i := 0; i < coll.NumFonts(); i++ {
		f, err := coll.Font(i)
		if err != nil {
			continue
		}
		if m := undrawable(f, names); best < 0 || len(m) < len(bestMissing) {
			best, bestMissing = i, m
		}
	}
	return best, bestMissing
}

// readFace reads face i of the font file at path into memory; nil when it cannot.
func readFace(path string, i int) *sfnt.Font {
	if i < 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	coll, err := sfnt.ParseCollection(data)
	if err != nil {
		return nil
	}
	f, err := coll.Font(i)
	if err != nil {
		return nil
	}
	return f
}

// fontPaths lists the TrueType and OpenType files and collections under fontDirs once, in
// the order classLabelFont tries them.
func fontPaths() []string {
	fontPathsOnce.Do(func() {
		for _, dir := range fontDirs {
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					switch strings.ToLower(filepath.Ext(path)) {
					case ".ttf", ".otf", ".ttc", ".otc":
						fontPathList = append(fontPathList, path)
					}
				}
				return nil
			})
		}
		slices.SortStableFunc(fontPathList, func(a, b string) int {
			if d := fontRank(a) - fontRank(b); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
	})
	return fontPathList
}

// fontRank orders font files by name: regular sans-serif faces (0) before other sans-serif
// ones, then the rest.
func fontRank(path string) int {
	name := strings.ToLower(filepath.Base(path))
	rank := 2
	if strings.Contains(name, "sans") && !strings.Contains(name, "serif") {
		rank = 0
	}
	for _, style := range []string{"bold", "italic", "oblique", "light", "thin", "black", "mono", "condensed", "heavy", "medium"} {
		if strings.Contains(name, style) {
			return rank + 1
		}
	}
	return rank
}

// labelClasses labels the x axis of p with the class names (and the y axis too, last class
// at the top, when both is set), long ones shortened (plotLabels), in classLabelFont's font,
// each character that font lacks drawn as missingGlyph; logf warns about such names, each
// once per run.
func labelClasses(p *plot.Plot, classes []string, both bool, logf func(string, ...any)) {
	f, missing := classLabelFont(classes)
	face := font.DefaultCache.Lookup(f, 10).Face
	shown := plotLabels(classes)
	for i, l := range shown {
		shown[i] = asDrawn(face, l)
	}
	p.NominalX(shown...)
	p.X.Tick.Label.Font = font.From(f, p.X.Tick.Label.Font.Size)
	if both {
		reversed := slices.Clone(shown)
		slices.Reverse(reversed)
		p.NominalY(reversed...)
		p.Y.Tick.Label.Font = font.From(f, p.Y.Tick.Label.Font.Size)
	}
	if logf == nil {
		return
	}
	var fresh []string
	for _, name := range missing {
		if _, warned := fontWarned.LoadOrStore(name, true); !warned {
			fresh = append(fresh, strconv.Quote(name))
		}
	}
	if len(fresh) == 0 {
		return
	}
	noun := agree(len(fresh), "class", "classes")
	if len(fresh) > 3 {
		fresh = append(fresh[:3], fmt.Sprintf("%d more", len(fresh)-3))
	}
	logf("warning: no font here draws every character of %s %s: plots show %c for the missing ones (docs/stages.md#class-names-in-plots)",
		noun, pipeline.JoinList(fresh, "and"), missingGlyph(face))
}

// fontWarned holds the class names labelClasses has warned about in this run.
var fontWarned sync.Map

// StartRun resets the warnings given once per run (class names no installed font draws):
// run and the scheduler call it before each run's first stage, so that each run's log has
// them however many runs the process makes.
func StartRun() { fontWarned.Clear() }
