package stages

import (
	"fmt"
	"maps"
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
// them a group in every set; only when there is none is a class unsplittable. A class with a
// group of its own for every set can be given them whatever its shared groups do, so only
// the shared groups of the other classes are searched, one knot (such classes linked by
// such groups) at a time.

// coverBudget is how many partial splits cover tries per knot before it stops: every way to
// place a dozen shared groups, far more than real label conflicts need.
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
	// afresh are the classes of the knots cover gave up on, sorted: their groups were split
	// without their previous sets.
	afresh []string
	tries  int // partial splits cover tried, over all knots
}

// unsplit is a knot (classes linked by shared groups) for which no split was found.
type unsplit struct {
	classes []string // sorted
	short   []string // the classes the split found leaves without a group in some set
	gaveUp  bool     // cover stopped before trying every split
}

// splitGroups splits groups as assignSplits does (prev and fixed as there). When that
// leaves a class without a group in a set it must have one in, or moves a group of prev to
// give it one, cover first searches the new groups of its component (the classes it shares
// groups with, transitively) for sets that keep every group of prev where it was. When there
// are none, the quotas' moves stand, and a class still without a group in a set has cover
// search the groups of its component: it places the shared ones
// that matter and one more per set a class still lacks, preferring their sets in prev, and
// the other groups keep their sets or fill the quotas around them. Where cover gives up on a
// knot, the groups of the knot's classes are split without history, as if new; the rest of
// the component keeps its sets.
func splitGroups(groups []*group, prev, fixed map[string]string, val, test float64, seed int64) splitResult {
	return splitGroupsWithin(groups, prev, fixed, val, test, seed, coverBudget)
}

// splitGroupsWithin is splitGroups with cover trying at most budget partial splits per knot.
func splitGroupsWithin(groups []*group, prev, fixed map[string]string, val, test float64, seed int64, budget int) splitResult {
	sets, short := assignSplits(groups, prev, fixed, val, test, seed)
	res := splitResult{sets: sets, short: short, moved: map[string]bool{}}
	var free []*group
	var shifted []string // the classes of groups the quotas moved out of their previous sets
	for _, g := range groups {
		if fixed[g.Digest] != "" {
			continue
		}
		free = append(free, g)
		if p := prev[g.Digest]; p != "" && sets[g.Digest] != p {
			for c := range g.files() {
				if !slices.Contains(shifted, c) {
					shifted = append(shifted, c)
				}
			}
		}
	}
	if len(short) == 0 && len(shifted) == 0 {
		return res
	}
	// fillEmpty moves a group of prev when no new group can fill a set alone, though new
	// groups placed otherwise may (a new group that another class holds in place).
	troubled := slices.Sorted(slices.Values(append(slices.Clone(short), shifted...)))
	troubled = slices.Compact(troubled)
	required := requiredSets(val, test)
	pins := maps.Clone(prev)
	if pins == nil {
		pins = map[string]string{}
	}
	var comps []component // the components cover searched without keeping every previous set
	for _, comp := range components(free, troubled) {
		if slices.ContainsFunc(comp.groups, func(g *group) bool { return prev[g.Digest] != "" }) {
			cr := cover(comp.groups, prev, required, prev, seed, troubled, budget)
			res.tries += cr.tries
			if len(cr.failed) == 0 {
				maps.Copy(pins, cr.sets)
				continue
			}
		}
		if slices.ContainsFunc(comp.classes, func(c string) bool { return slices.Contains(short, c) }) {
			comps = append(comps, comp)
		}
	}
	var knots []unsplit // the knots cover found no split for
	for _, comp := range comps {
		res.searched = append(res.searched, comp.classes...)
		cr := cover(comp.groups, nil, required, prev, seed, short, budget)
		res.tries += cr.tries
		maps.Copy(pins, cr.sets)
		for _, u := range cr.failed {
			if !u.gaveUp {
				continue // no split exists: the previous sets are as good as any
			}
			// Only the knot's groups lose their sets: a split of the knot may still exist,
			// and the other classes of the component are satisfied without it.
			res.afresh = append(res.afresh, u.classes...)
			for _, g := range comp.groups {
				for c := range g.files() {
					if slices.Contains(u.classes, c) {
						delete(pins, g.Digest)
					}
				}
			}
		}
		knots = append(knots, cr.failed...)
	}
	sort.Strings(res.searched)
	sort.Strings(res.afresh)
	res.sets, short = assignSplits(groups, pins, fixed, val, test, seed)
	for _, comp := range comps {
		for _, g := range comp.groups {
			if p := prev[g.Digest]; p != "" && p != res.sets[g.Digest] {
				res.moved[g.Digest] = true
			}
		}
	}
	rest := short // the short classes of no failed knot
	for _, u := range knots {
		for _, c := range short {
			if slices.Contains(u.classes, c) {
				u.short = append(u.short, c)
			}
		}
		if len(u.short) > 0 {
			res.failed = append(res.failed, u)
			rest = slices.DeleteFunc(slices.Clone(rest), func(c string) bool { return slices.Contains(u.classes, c) })
		}
	}
	for _, comp := range components(free, rest) {
		u := unsplit{classes: comp.classes}
		for _, c := range rest {
			if slices.Contains(comp.classes, c) {
				u.short = append(u.short, c)
			}
		}
		res.failed = append(res.failed, u)
	}
	slices.SortFunc(res.failed, func(a, b unsplit) int { return strings.Compare(a.classes[0], b.classes[0]) })
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
	sets := classSets{}
	find := sets.find
	for _, g := range groups {
		home := find(g.home())
		for c := range g.files() {
			if r := find(c); r != home {
				if r < home {
					r, home = home, r
				}
				sets[r] = home // the root is the smallest class
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

// logAfresh warns that the groups of res.afresh were split as if new.
func logAfresh(job *pipeline.Job, res splitResult) {
	if len(res.afresh) == 0 {
		return
	}
	job.Logf("warning: the search for a split that gives %s an image in every set stopped after %d tries without finding one, so their images were split again without the previous split's sets (they may move between train, val and test); the other classes keep theirs",
		classList(res.afresh), coverBudget)
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
		job.Logf("  %s: %s → %s", logName(m.Path), m.From, m.To)
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

// classSets are disjoint sets of classes (union-find): each class maps to another of its set,
// the root to itself.
type classSets map[string]string

// find returns the root of c's set (c alone until joined), shortening the path to it.
func (s classSets) find(c string) string {
	if p, ok := s[c]; ok && p != c {
		s[c] = s.find(p)
		return s[c]
	}
	s[c] = c
	return c
}
