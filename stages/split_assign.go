package stages

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
)

// Split names.
const (
	TrainSet = "train"
	ValSet   = "val"
	TestSet  = "test"
)

// splitOrder breaks ties between equal deficits: test and val first, so that small classes
// get their held-out images.
var splitOrder = []string{TestSet, ValSet, TrainSet}

// member is one file of a group.
type member struct {
	Class string
	Rel   string
	// Shown is the file's path as the reports name it: its folder as configured (source or
	// test_source) joined with Rel, as in rejected.json, telling a test_source file from a
	// source file of the same name.
	Shown string
	Test  bool   // from test_source
	Exact string // the group of files stored as the same image that it belongs to
}

// group is every file stored as one image, with its near-duplicates: they always share a
// split.
type group struct {
	Digest  string
	Members []member
}

// home is the class that decides a group's split: its first class in sorted order.
func (g *group) home() string {
	h := g.Members[0].Class
	for _, m := range g.Members[1:] {
		if m.Class < h {
			h = m.Class
		}
	}
	return h
}

// targets returns how many of n images go to test, val and train: as near their exact shares
// as whole images allow (largest remainder: each set gets the whole part of its share, and
// the images left go one each to the sets with the largest fractional parts, test, then val,
// then train on a tie; 25 images at 0.1 and 0.1 are 20, 2 and 3, where rounding each
// held-out share up would leave 19 to train on), with at least one test and one val image for
// classes of three or more when the fraction is positive, and at least one train image.
func targets(n int, val, test float64) map[string]int {
	const eps = 1e-9 // 3 × 0.1 is 0.30000000000000004 in binary
	exact := [3]float64{float64(n) * test, float64(n) * val, 0}
	exact[2] = float64(n) - exact[0] - exact[1]
	var whole [3]int
	left := n
	for i, e := range exact {
		whole[i] = int(math.Floor(max(e, 0) + eps))
		left -= whole[i]
	}
	byRemainder := []int{0, 1, 2} // test, val, train: the order on a tie
	sort.SliceStable(byRemainder, func(a, b int) bool {
		i, j := byRemainder[a], byRemainder[b]
		return exact[i]-float64(whole[i]) > exact[j]-float64(whole[j])+eps
	})
	for _, i := range byRemainder[:max(0, min(left, 3))] {
		whole[i]++
	}
	t, v := whole[0], whole[1]
	if n >= 3 {
		if test > 0 && t < 1 {
			t = 1
		}
		if val > 0 && v < 1 {
			v = 1
		}
	}
	// Keep one for train, taken from the larger held-out share (val on a tie: the test set
	// is what models are compared on).
	for n > 0 && t+v > n-1 {
		if v >= t {
			v--
		} else {
			t--
		}
	}
	return map[string]int{TestSet: t, ValSet: v, TrainSet: n - t - v}
}

// order ranks digests pseudo-randomly but reproducibly for a seed.
func order(seed int64, digest string) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h := sha256.New()
	h.Write(b[:])
	h.Write([]byte(digest))
	return hex.EncodeToString(h.Sum(nil))
}

// assignSplits decides the split of every group. Groups already in prev keep their split (a
// retrain never moves an image between train and test); the others fill each class's
// remaining quota, in an order fixed by the seed and their content. With no history the
// per-class counts equal targets() exactly; after images are only added, the new ones fill
// the sets below their quota, so a count passes its quota only if it did before (a quota can
// shrink as a class grows: 7 images at val 0.2 and test 0.2 are 5 train, 1 val and 1 test, 8
// are 4, 2 and 2, which one new image cannot reach).
// fixed assigns groups to a split unconditionally (e.g. a separate test folder). Then every
// class gets a file in each set it must have one in (fillEmpty); the classes for which that
// was impossible are returned, sorted.
func assignSplits(groups []*group, prev map[string]string, fixed map[string]string, val, test float64, seed int64) (map[string]string, []string) {
	a := assignment{out: map[string]string{}, count: map[string]map[string]int{}}
	byHome := map[string][]*group{}
	size := map[string]int{} // class → files
	var free []*group        // the groups not fixed
	for _, g := range groups {
		if fixed[g.Digest] != "" {
			// Fixed groups (a separate test folder) are outside the quotas, which divide
			// the remaining images.
			a.out[g.Digest] = fixed[g.Digest]
			continue
		}
		free = append(free, g)
		for _, m := range g.Members {
			size[m.Class]++
		}
		switch {
		case prev[g.Digest] != "":
			a.add(g, prev[g.Digest])
		default:
			byHome[g.home()] = append(byHome[g.home()], g)
		}
	}
	classes := make([]string, 0, len(byHome))
	for c := range byHome {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		gs := byHome[c]
		keys := make(map[string]string, len(gs)) // hashed once, not per comparison
		for _, g := range gs {
			keys[g.Digest] = order(seed, g.Digest)
		}
		sort.Slice(gs, func(i, j int) bool { return keys[gs[i].Digest] < keys[gs[j].Digest] })
		want := targets(size[c], val, test)
		for _, g := range gs {
			best, bestDeficit := "", math.MinInt
			for _, s := range splitOrder {
				if want[s] == 0 && s != TrainSet {
					continue // a split the configuration leaves empty
				}
				if d := want[s] - a.count[c][s]; d > bestDeficit {
					best, bestDeficit = s, d
				}
			}
			a.add(g, best)
		}
	}
	return a.out, a.fillEmpty(free, size, prev, val, test, seed)
}

// assignment is the split of each group so far, and each class's files per split.
type assignment struct {
	out   map[string]string         // group digest → split
	count map[string]map[string]int // class → split → files
}

// add puts g into split.
func (a *assignment) add(g *group, split string) {
	a.out[g.Digest] = split
	for _, m := range g.Members {
		if a.count[m.Class] == nil {
			a.count[m.Class] = map[string]int{}
		}
		a.count[m.Class][split]++
	}
}

// move takes g out of its split and puts it into split.
func (a *assignment) move(g *group, split string) {
	from := a.out[g.Digest]
	for _, m := range g.Members {
		a.count[m.Class][from]--
	}
	a.add(g, split)
}

// fillEmpty moves groups into the sets a class has no file in: every class needs one in
// train, and in val and test when their fractions are positive, whatever the quotas gave. The
// quotas count the members of the groups they are given (the split gives one per class for
// files stored as one image, pictures), so a group of five near-identical files fills five
// places of its set, and a group shared with another class (a label conflict) is placed by that class's quota. A group
// moves only if every class it is in keeps a file in the set it leaves; groups not in the
// previous split move first, then those from the set where the class has the most files over
// its quota, the smallest, and in the seed's order. groups are the groups not fixed; size is
// each class's files among them. It returns the classes still without a file in some set,
// sorted.
func (a *assignment) fillEmpty(groups []*group, size map[string]int, prev map[string]string, val, test float64, seed int64) []string {
	required := requiredSets(val, test)
	in := map[string][]*group{} // class → the groups with a file in it
	for _, g := range groups {
		for c := range g.files() {
			in[c] = append(in[c], g)
		}
	}
	classes := slices.Sorted(maps.Keys(in))
	// Each move gives a class a set it lacked and takes none from any class, so this ends.
	for moved := true; moved; {
		moved = false
		for _, c := range classes {
			for _, s := range required {
				if a.count[c][s] > 0 {
					continue
				}
				if g := a.donor(in[c], c, s, required, targets(size[c], val, test), prev, seed); g != nil {
					a.move(g, s)
					moved = true
				}
			}
		}
	}
	var lacking []string
	for _, c := range classes {
		for _, s := range required {
			if a.count[c][s] == 0 {
				lacking = append(lacking, c)
				break
			}
		}
	}
	return lacking
}

// donor returns the group of gs (class c's) to move into split s, as fillEmpty prefers them,
// or nil when none can leave its split without emptying it for one of its classes. want is
// c's quota.
func (a *assignment) donor(gs []*group, c, s string, required []string, want map[string]int, prev map[string]string, seed int64) *group {
	type rank struct {
		kept    bool // in the previous split
		surplus int  // c's files in the group's split beyond its quota
		files   int  // c's files in the group
		order   string
	}
	less := func(x, y rank) bool {
		if x.kept != y.kept {
			return !x.kept
		}
		return cmp.Or(cmp.Compare(y.surplus, x.surplus), cmp.Compare(x.files, y.files), strings.Compare(x.order, y.order)) < 0
	}
	var best *group
	var bestRank rank
	for _, g := range gs {
		from := a.out[g.Digest]
		if from == s || !a.canLeave(g, from, required) {
			continue
		}
		files := g.files()
		r := rank{kept: prev[g.Digest] != "", surplus: a.count[c][from] - want[from], files: files[c], order: order(seed, g.Digest)}
		if best == nil || less(r, bestRank) {
			best, bestRank = g, r
		}
	}
	return best
}

// canLeave reports whether g can leave split from: from is not required, or every class of
// g has files there besides g's.
func (a *assignment) canLeave(g *group, from string, required []string) bool {
	if !slices.Contains(required, from) {
		return true
	}
	for c, n := range g.files() {
		if a.count[c][from] <= n {
			return false
		}
	}
	return true
}

// files returns how many files of each class g has.
func (g *group) files() map[string]int {
	n := map[string]int{}
	for _, m := range g.Members {
		n[m.Class]++
	}
	return n
}
