package stages

import (
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"

	"pipeline/pipeline"
)

// A file in two class folders, or near-identical to one in another, is one group and takes
// one set for all of its classes. The quotas and fillEmpty place groups one at a time and can
// get stuck where a split exists: the previous split holds a class's shared groups in train
// because the other classes have nothing else there, or the seed's order gives one class's
// sets to another's groups. splitGroups then searches the sets of the shared groups of the
// classes concerned, and of every class they share a group with, for one that gives each of
// them a group in every set; only when there is none is a class unsplittable.

// coverBudget is how many partial splits cover tries before it stops: every way to place a
// dozen shared groups, far more than real label conflicts need.
const coverBudget = 1 << 20

// splitResult is how splitGroups split the groups.
type splitResult struct {
	sets map[string]string // group digest → set
	// short are the classes assignSplits left without a group in some set, sorted; searched
	// are those and every class they share a group with, transitively, whose groups cover
	// placed.
	short, searched []string
	// moved are the groups of the searched classes that were in another set in prev.
	moved map[string]bool
	// failed are the classes linked by shared groups for which no split was found.
	failed []unsplit
}

// unsplit is a component (classes linked by shared groups) for which no split was found.
type unsplit struct {
	classes []string // sorted
	short   []string // the classes the split found leaves without a group in some set
	gaveUp  bool     // cover stopped before trying every split
}

// splitGroups splits groups as assignSplits does (prev and fixed as there). When that
// leaves a class without a group in a set it must have one in, cover searches the groups of
// its component (the classes it shares groups with, transitively): it places the shared ones
// and one more per set a class still lacks, preferring their sets in prev, and the other
// groups keep their sets or fill the quotas around them. Where cover gives up, the component
// is split without history, as if new.
func splitGroups(groups []*group, prev, fixed map[string]string, val, test float64, seed int64) splitResult {
	sets, short := assignSplits(groups, prev, fixed, val, test, seed)
	res := splitResult{sets: sets, short: short, moved: map[string]bool{}}
	if len(short) == 0 {
		return res
	}
	var free []*group
	for _, g := range groups {
		if fixed[g.Digest] == "" {
			free = append(free, g)
		}
	}
	required := requiredSets(val, test)
	pins := maps.Clone(prev)
	if pins == nil {
		pins = map[string]string{}
	}
	comps := components(free, short)
	stopped := map[string]bool{} // the classes of components cover gave up on
	for _, comp := range comps {
		res.searched = append(res.searched, comp.classes...)
		w, complete := cover(comp.groups, required, prev, seed, short, coverBudget)
		switch {
		case w != nil:
			maps.Copy(pins, w)
		case !complete:
			for _, c := range comp.classes {
				stopped[c] = true
			}
			for _, g := range comp.groups {
				delete(pins, g.Digest)
			}
		}
	}
	sort.Strings(res.searched)
	res.sets, short = assignSplits(groups, pins, fixed, val, test, seed)
	for _, comp := range comps {
		for _, g := range comp.groups {
			if p := prev[g.Digest]; p != "" && p != res.sets[g.Digest] {
				res.moved[g.Digest] = true
			}
		}
	}
	for _, comp := range components(free, short) {
		u := unsplit{classes: comp.classes, gaveUp: slices.ContainsFunc(comp.classes, func(c string) bool { return stopped[c] })}
		for _, c := range short {
			if slices.Contains(comp.classes, c) {
				u.short = append(u.short, c)
			}
		}
		res.failed = append(res.failed, u)
	}
	return res
}

// requiredSets are the sets every class needs a group in: train, and val and test when their
// fractions are positive.
func requiredSets(val, test float64) []string {
	required := []string{TrainSet}
	if val > 0 {
		required = append(required, ValSet)
	}
	if test > 0 {
		required = append(required, TestSet)
	}
	return required
}

// component is a set of classes linked by shared groups, with their groups.
type component struct {
	classes []string // sorted
	groups  []*group
}

// components returns the components of groups that hold a class of of, by their first class.
func components(groups []*group, of []string) []component {
	parent := map[string]string{}
	var find func(c string) string
	find = func(c string) string {
		if p, ok := parent[c]; ok && p != c {
			parent[c] = find(p)
			return parent[c]
		}
		parent[c] = c
		return c
	}
	for _, g := range groups {
		home := find(g.home())
		for c := range g.files() {
			if r := find(c); r != home {
				if r < home {
					r, home = home, r
				}
				parent[r] = home // the root is the smallest class
			}
		}
	}
	byRoot := map[string]*component{}
	for _, c := range of {
		if r := find(c); byRoot[r] == nil {
			byRoot[r] = &component{}
		}
	}
	for _, g := range groups {
		if comp := byRoot[find(g.home())]; comp != nil {
			comp.groups = append(comp.groups, g)
			for c := range g.files() {
				if !slices.Contains(comp.classes, c) {
					comp.classes = append(comp.classes, c)
				}
			}
		}
	}
	var out []component
	for _, r := range slices.Sorted(maps.Keys(byRoot)) {
		sort.Strings(byRoot[r].classes)
		out = append(out, *byRoot[r])
	}
	return out
}

// cover returns sets for some of groups (one component, none fixed) that give each of their
// classes a group in every set of required: every group shared between classes, then for each
// class one of its own groups per set it still lacks. Sets in prev are tried first, so that
// few groups move. It tries every way to place the shared groups, up to budget, and
// returns nil when none works, with whether it tried them all. The groups of the classes of
// first are placed first, then those of the classes they share groups with, and so on, so
// that a choice that cannot work fails soon after it is made.
func cover(groups []*group, required []string, prev map[string]string, seed int64, first []string, budget int) (map[string]string, bool) {
	var shared []*group
	own := map[string][]*group{} // class → its groups with no other class
	classes := map[string][]string{}
	for _, g := range groups {
		classes[g.Digest] = slices.Sorted(maps.Keys(g.files()))
		if len(classes[g.Digest]) > 1 {
			shared = append(shared, g)
		} else {
			own[g.home()] = append(own[g.home()], g)
		}
	}
	dist := distances(shared, classes, first)
	near := func(g *group) int {
		d := len(dist)
		for _, c := range classes[g.Digest] {
			d = min(d, dist[c])
		}
		return d
	}
	sort.Slice(shared, func(i, j int) bool {
		if a, b := near(shared[i]), near(shared[j]); a != b {
			return a < b
		}
		return order(seed, shared[i].Digest) < order(seed, shared[j].Digest)
	})
	have := map[string]uint8{} // class → the sets of required (bits) its placed shared groups fill
	left := map[string]int{}   // class → its shared groups not yet placed
	for _, g := range groups {
		for _, c := range classes[g.Digest] {
			have[c] = 0
		}
	}
	for _, g := range shared {
		for _, c := range classes[g.Digest] {
			left[c]++
		}
	}
	lacks := func(c string) int { return len(required) - bits.OnesCount8(have[c]) }
	placed := make([]int, len(shared)) // index into required
	tries, stopped := 0, false
	var search func(i int) bool
	search = func(i int) bool {
		if i == len(shared) {
			for c := range have {
				if lacks(c) > len(own[c]) {
					return false
				}
			}
			return true
		}
		if tries++; tries > budget {
			stopped = true
			return false
		}
		g := shared[i]
		cs := classes[g.Digest]
		saved := make([]uint8, len(cs))
		for _, s := range coverOrder(required, prev[g.Digest], cs, have) {
			ok := true
			for k, c := range cs {
				saved[k] = have[c]
				have[c] |= 1 << s
				left[c]--
			}
			for _, c := range cs {
				ok = ok && lacks(c) <= left[c]+len(own[c])
			}
			if ok && search(i+1) {
				placed[i] = s
				return true
			}
			for k, c := range cs {
				have[c] = saved[k]
				left[c]++
			}
			if stopped {
				return false
			}
		}
		return false
	}
	if !search(0) {
		return nil, !stopped
	}
	w := map[string]string{}
	for i, g := range shared {
		w[g.Digest] = required[placed[i]]
	}
	for _, c := range slices.Sorted(maps.Keys(have)) {
		gs := own[c]
		// Per set it lacks, one of c's own groups: one that was there, else a new one, else
		// any, in the seed's order.
		sort.Slice(gs, func(i, j int) bool {
			if (prev[gs[i].Digest] == "") != (prev[gs[j].Digest] == "") {
				return prev[gs[i].Digest] == ""
			}
			return order(seed, gs[i].Digest) < order(seed, gs[j].Digest)
		})
		for s, name := range required {
			if have[c]&(1<<s) != 0 {
				continue
			}
			k := slices.IndexFunc(gs, func(g *group) bool { return prev[g.Digest] == name && w[g.Digest] == "" })
			if k < 0 {
				k = slices.IndexFunc(gs, func(g *group) bool { return w[g.Digest] == "" })
			}
			w[gs[k].Digest] = name
			have[c] |= 1 << s
		}
	}
	return w, true
}

// distances returns how many shared groups separate each class of shared from the classes of
// from (0 for those); classes is each group's classes.
func distances(shared []*group, classes map[string][]string, from []string) map[string]int {
	dist := map[string]int{}
	var frontier []string
	for _, c := range from {
		dist[c] = 0
		frontier = append(frontier, c)
	}
	for len(frontier) > 0 {
		var next []string
		for _, g := range shared {
			reached := slices.ContainsFunc(classes[g.Digest], func(c string) bool { return slices.Contains(frontier, c) })
			for _, c := range classes[g.Digest] {
				if _, ok := dist[c]; !ok && reached {
					dist[c] = dist[frontier[0]] + 1
					next = append(next, c)
				}
			}
		}
		frontier = next
	}
	return dist
}

// coverOrder returns the sets (indexes into required) to try for a shared group of classes
// cs: its set in prev, then the sets the most of cs lack, test and val first on a tie.
func coverOrder(required []string, was string, cs []string, have map[string]uint8) []int {
	var out []int
	for _, name := range splitOrder {
		if s := slices.Index(required, name); s >= 0 {
			out = append(out, s)
		}
	}
	lacking := func(s int) int {
		n := 0
		for _, c := range cs {
			if have[c]&(1<<s) == 0 {
				n++
			}
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool {
		if wi, wj := required[out[i]] == was, required[out[j]] == was; wi != wj {
			return wi
		}
		return lacking(out[i]) > lacking(out[j])
	})
	return out
}

// logSearchedMoves warns about the images of res.moved's groups (moves, sorted by path) and
// lists them.
func logSearchedMoves(job *pipeline.Job, res splitResult, moves []movedImage) {
	if len(moves) == 0 {
		return
	}
	job.Logf("warning: keeping the previous split's sets left %s without an image in every set, and no image could move there alone (images in several classes hold one another in place), so %s of %s changed set to give each an image in every set (report/split.json: moved_from_previous_split):",
		classList(res.short), plural(len(moves), "image", "images"), classList(res.searched))
	for i, m := range moves {
		if i == 10 {
			job.Logf("  … and %d more", len(moves)-10)
			break
		}
		job.Logf("  %s: %s → %s", m.Path, m.From, m.To)
	}
}

// errUnsplittable explains the components for which no split was found (failed), and what
// drop_small_classes would leave out. need is the number of sets.
func errUnsplittable(failed []unsplit, need int) error {
	var parts, short []string
	for _, u := range failed {
		parts = append(parts, unsplitReason(u, u.short, need))
		short = append(short, u.short...)
	}
	return fmt.Errorf("%s. Remove the files that are in two class folders, or set drop_small_classes = true to leave out %s and split the other classes again",
		strings.Join(parts, "; "), quoteList(short))
}

// unsplitReason says why classes, some of u's, are left without an image in some set; need
// is the number of sets.
func unsplitReason(u unsplit, classes []string, need int) string {
	s := fmt.Sprintf("%s %s: some of %s images are also in other classes, and each such file takes one set for all of its classes",
		agree(len(classes), "class", "classes"), quoteList(classes), agree(len(classes), "its", "their"))
	linked := ""
	if len(u.classes) > len(classes) {
		linked = " (the classes such files link)"
	}
	if u.gaveUp {
		return s + fmt.Sprintf("; the search for a split that gives every one of %s%s an image in each of the %d sets stopped after %d tries without finding one", quoteList(u.classes), linked, need, coverBudget)
	}
	return s + fmt.Sprintf("; no split gives every one of %s%s an image in each of the %d sets", quoteList(u.classes), linked, need)
}

// classList is `class "a"` or `classes "a", "b"`.
func classList(cs []string) string {
	return agree(len(cs), "class ", "classes ") + quoteList(cs)
}

// quoteList quotes each of list and joins them with commas.
func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, c := range list {
		q[i] = strconv.Quote(c)
	}
	return strings.Join(q, ", ")
}
