package stages

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"sort"
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

// targets returns how many of n images go to test, val and train: rounded fractions, with at
// least one test and one val image for classes of three or more when the fraction is
// positive.
func targets(n int, val, test float64) map[string]int {
	t := int(math.Round(float64(n) * test))
	v := int(math.Round(float64(n) * val))
	if n >= 3 {
		if test > 0 && t < 1 {
			t = 1
		}
		if val > 0 && v < 1 {
			v = 1
		}
	}
	if t+v > n {
		t, v = min(t, n), max(0, n-min(t, n))
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
// per-class counts equal targets() exactly; after images are only added they still do.
// fixed assigns groups to a split unconditionally (e.g. a separate test folder).
func assignSplits(groups []*group, prev map[string]string, fixed map[string]string, val, test float64, seed int64) map[string]string {
	out := map[string]string{}
	byHome := map[string][]*group{}
	count := map[string]map[string]int{} // class → split → files
	size := map[string]int{}             // class → files
	add := func(g *group, split string) {
		out[g.Digest] = split
		for _, m := range g.Members {
			if count[m.Class] == nil {
				count[m.Class] = map[string]int{}
			}
			count[m.Class][split]++
		}
	}
	for _, g := range groups {
		if fixed[g.Digest] != "" {
			// Fixed groups (a separate test folder) are outside the quotas, which divide
			// the remaining images.
			out[g.Digest] = fixed[g.Digest]
			continue
		}
		for _, m := range g.Members {
			size[m.Class]++
		}
		switch {
		case prev[g.Digest] != "":
			add(g, prev[g.Digest])
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
		sort.Slice(gs, func(i, j int) bool { return order(seed, gs[i].Digest) < order(seed, gs[j].Digest) })
		want := targets(size[c], val, test)
		for _, g := range gs {
			best, bestDeficit := "", math.MinInt
			for _, s := range splitOrder {
				if want[s] == 0 && s != TrainSet {
					continue // a split the configuration leaves empty
				}
				if d := want[s] - count[c][s]; d > bestDeficit {
					best, bestDeficit = s, d
				}
			}
			add(g, best)
		}
	}
	return out
}
