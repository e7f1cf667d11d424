package stages

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
)

// Plots label bars and matrix rows with class names, which may be in any script. gonum/plot
// embeds Liberation (Latin, Greek, Cyrillic); a name it has no glyphs for, say in Chinese,
// would be drawn as empty boxes. Such names are drawn with an installed font that has every
// glyph they need, and when none has, the log says which names show as boxes.

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
	labelFonts    sync.Map // string of the needed runes → labelFontChoice
)

type labelFontChoice struct {
	font    font.Font
	missing bool
}

// classLabelFont returns the font for class-name labels: gonum/plot's default when it has
// every glyph of names, else the first installed font (regular sans-serif faces first) that
// has them all, registered in gonum/plot's font cache. The names it cannot draw, when no font
// has all their glyphs, come back as missing.
func classLabelFont(names []string) (font.Font, []string) {
	def := plot.DefaultFont
	defFace := font.DefaultCache.Lookup(def, 10).Face
	var need []rune
	for _, n := range names {
		for _, r := range n {
			if !unicode.IsSpace(r) && unicode.IsPrint(r) && !hasGlyph(defFace, r) {
				need = append(need, r)
			}
		}
	}
	if len(need) == 0 {
		return def, nil
	}
	slices.Sort(need)
	need = slices.Compact(need)
	key := string(need)
	if c, ok := labelFonts.Load(key); ok {
		return choiceResult(c.(labelFontChoice), names, defFace)
	}
	choice := labelFontChoice{font: def, missing: true}
	if path, face := installedFontWith(need); face != nil {
		fnt := font.Font{Typeface: font.Typeface("pipeline: " + path)}
		font.DefaultCache.Add(font.Collection{{Font: fnt, Face: face}})
		choice = labelFontChoice{font: fnt}
	}
	labelFonts.Store(key, choice)
	return choiceResult(choice, names, defFace)
}

func choiceResult(c labelFontChoice, names []string, defFace *opentype.Font) (font.Font, []string) {
	if !c.missing {
		return c.font, nil
	}
	var missing []string
	for _, n := range names {
		if strings.ContainsFunc(n, func(r rune) bool {
			return !unicode.IsSpace(r) && unicode.IsPrint(r) && !hasGlyph(defFace, r)
		}) {
			missing = append(missing, n)
		}
	}
	return c.font, missing
}

// hasGlyph reports whether f has a glyph for r.
func hasGlyph(f *sfnt.Font, r rune) bool {
	if f == nil {
		return false
	}
	var b sfnt.Buffer
	g, err := f.GlyphIndex(&b, r)
	return err == nil && g != 0
}

// installedFontWith returns the first face of a font file under fontDirs (regular sans-serif
// faces first, then by path; see fontRank) that has a glyph for every rune of need, and its
// path; nil when none has. Files are only opened to look at their character maps until one
// fits, which is then read into memory. Unreadable files are skipped.
func installedFontWith(need []rune) (string, *sfnt.Font) {
	for _, path := range fontPaths() {
		i := fontIndexWith(path, need)
		if i < 0 {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		coll, err := sfnt.ParseCollection(data)
		if err != nil {
			continue
		}
		if f, err := coll.Font(i); err == nil {
			return path, f
		}
	}
	return "", nil
}

// fontIndexWith is the index of the first face in the font file at path that has every rune
// of need, or -1.
func fontIndexWith(path string, need []rune) int {
	file, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer file.Close()
	coll, err := sfnt.ParseCollectionReaderAt(file)
	if err != nil {
		return -1
	}
	for i := 0; i < coll.NumFonts(); i++ {
		f, err := coll.Font(i)
		if err == nil && !slices.ContainsFunc(need, func(r rune) bool { return !hasGlyph(f, r) }) {
			return i
		}
	}
	return -1
}

// fontPaths lists the TrueType and OpenType files and collections under fontDirs once, in
// the order installedFontWith tries them.
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

// labelClasses sets the class-name tick labels of p (the x axis, and the y axis too when
// both is set) in classLabelFont's font and warns through logf, naming the plot file, when
// some names show as boxes.
func labelClasses(p *plot.Plot, classes []string, both bool, file string, logf func(string, ...any)) {
	f, missing := classLabelFont(classes)
	p.X.Tick.Label.Font = font.From(f, p.X.Tick.Label.Font.Size)
	if both {
		p.Y.Tick.Label.Font = font.From(f, p.Y.Tick.Label.Font.Size)
	}
	if len(missing) > 0 && logf != nil {
		logf("warning: %s: no installed font has every character of %d class name(s), e.g. %q, which show as boxes; install a font for their script (Debian: fonts-noto-cjk for Chinese, Japanese and Korean) and rerun the stage with --stage and --force",
			filepath.Base(file), len(missing), missing[0])
	}
}
