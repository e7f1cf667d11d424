package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// What the kinds' outputs depend on outside the workspace, for their cache keys
// (pipeline.Environmental). Each kind's Environment is built here from the same strings its
// reuse records use, so that what decides whether a previous output's images can be reused
// also decides whether the stage reruns.

// splitModules are the modules besides the standard library that decode, resize and encode
// the split's stored images (storedWith).
var splitModules = []string{"golang.org/x/image"}

// augmentModules are those that decode, transform and encode augment's copies (madeWith).
var augmentModules = []string{"golang.org/x/image", "github.com/anthonynsimon/bild"}

// splitEnvironment is the split's besides the libtensorflow version (libjpeg-turbo decodes
// and TensorFlow resizes its JPEGs): Go and splitModules do the rest, and its report plots
// class names (plotFonts).
func splitEnvironment() []string {
	return []string{"build " + buildOf(splitModules...), plotFonts()}
}

// augmentEnvironment is augment's: Go and augmentModules make the copies (stored JPEGs are
// decoded by image/jpeg, not TensorFlow), and its report plots class names. (Originals a
// split did not store are fitted by the split's code, which their manifest names:
// Manifest.FittedWith.)
func augmentEnvironment() []string {
	return []string{"build " + buildOf(augmentModules...), plotFonts()}
}

// evaluateEnvironment is evaluate's: TensorFlow computes the probabilities
// (graphs.NumericsEnvironment), and the confusion matrix plots class names.
func evaluateEnvironment(threads int) ([]string, error) {
	lines, err := graphs.NumericsEnvironment(threads)
	if err != nil {
		return nil, err
	}
	return append(lines, plotFonts()), nil
}

// threadsSet is the thread count a train or evaluate stage sets (0: the machine's choice;
// also for values not known yet or absent).
func threadsSet(v *pipeline.Values) int {
	if v == nil {
		return 0
	}
	t := v.Get("threads")
	if !t.IsWhollyKnown() || t.IsNull() || t.Type() != cty.Number {
		return 0
	}
	n, _ := t.AsBigFloat().Int64()
	return int(max(n, 0))
}

// plotFonts returns the key line naming the fonts plots may draw class names with, found once
// per process as the plots find them (fontPaths).
var plotFonts = sync.OnceValue(func() string { return plotFontsOf(fontPaths(), os.Stat) })

// plotFontsOf names the font files at paths, in the order classLabelFont tries them, by path
// and size: "plot_fonts built-in" when there are none, so that only gonum/plot's embedded
// Liberation can be drawn with; else their count and a digest. The font chosen for a plot
// depends on its class names, which a kind's environment does not know: any installed font
// could be the one, so installing or removing one reruns the stages that plot class names.
// Reading every font to hash its content would cost seconds on a desktop; a font replaced by
// another of the same path and size is taken as the same.
func plotFontsOf(paths []string, stat func(string) (fs.FileInfo, error)) string {
	if len(paths) == 0 {
		return "plot_fonts built-in"
	}
	h := sha256.New()
	for _, p := range paths {
		size := int64(-1)
		if fi, err := stat(p); err == nil {
			size = fi.Size()
		}
		fmt.Fprintf(h, "%q %d\n", filepath.Base(p), size) // not where: one font under another $HOME is the same
	}
	return fmt.Sprintf("plot_fonts built-in and %d installed %s", len(paths), hex.EncodeToString(h.Sum(nil)))
}
