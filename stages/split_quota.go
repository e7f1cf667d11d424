package stages

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Images keep the sets an earlier split gave them, and only new images fill a set below its
// quota (assignSplits). Photos taken out of a class's val or test set (deleted, or moved
// aside) therefore leave that set short of its quota until photos are added: the models are
// then compared on fewer of the class's images than the fractions promise, which nothing
// else shows. The split says so, with what the user can do.

// shortHeldOut says which classes of counts have fewer val or test images than their quotas
// (targets of their images outside test_source, at val and test), among those of kept, the
// classes with images the previous split placed: a split drawn afresh fills its quotas (but
// for groups of identical or near-identical images, which can overshoot one). testSource is
// whether the test set is test_source's (it has no quota then). It returns the warning, or
// "" when every class fills its quotas.
func shortHeldOut(counts []classCounts, kept map[string]bool, val, test float64, testSource bool) string {
	var short []string
	for _, c := range counts {
		if !kept[c.Name] {
			continue
		}
		n, have := c.Train+c.Val+c.Test, map[string]int{ValSet: c.Val, TestSet: c.Test}
		if testSource {
			n -= c.Test
		}
		want := targets(n, val, test)
		var sets []string
		for _, s := range []string{ValSet, TestSet} {
			if have[s] < want[s] && (s == ValSet || !testSource) {
				sets = append(sets, fmt.Sprintf("%s of %d", plural(have[s], s+" image", s+" images"), want[s]))
			}
		}
		if len(sets) > 0 {
			short = append(short, fmt.Sprintf("%q (%s)", c.Name, strings.Join(sets, ", ")))
		}
	}
	if len(short) == 0 {
		return ""
	}
	moves := "train, val and test"
	if testSource {
		moves = "train and val"
	}
	return fmt.Sprintf("%s %s %s fewer held-out images than %s: images keep the sets the previous split gave them, and only new photos fill a set below its quota; add photos to %s, or set a new seed for the split to draw its sets afresh (images then move between %s)",
		agree(len(short), "class", "classes"), listSome(short), agree(len(short), "has", "have"), agree(len(short), "its quota", "their quotas"),
		agree(len(short), "the class", "these classes"), moves)
}

// noTestImages says that test_source, the folder, gave no usable image of class, though it has
// a folder for it: the folder is empty, or every file in it was rejected (of rejected, those
// with that class below test_source), which the test set then lacks, as it lacks a class
// with no folder there.
func noTestImages(testSource, class string, rejected []Rejected) string {
	var in []Rejected
	dir := filepath.ToSlash(filepath.Clean(testSource)) // "." shows its files without "./"
	for _, r := range rejected {
		if r.Class == class && (dir == "." || strings.HasPrefix(r.Path, dir+"/")) {
			in = append(in, r)
		}
	}
	why := "its folder has no files"
	if len(in) > 0 {
		reasons, _ := rejectedWhy(in, nil)
		why = "rejected in its folder: " + reasons
	}
	return fmt.Sprintf("test_source %s has no usable images of class %q (%s): the test set has no images of it", testSource, class, why)
}
