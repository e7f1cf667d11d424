package stages

import (
	"maps"
	"math/bits"
	"slices"
	"sort"
	"strings"
)

// coverResult is what cover found for one component.
type coverResult struct {
	sets   map[string]string // group digest → set, for the groups cover placed
	failed []unsplit         // the knots for which no split was found (short left empty)
	tries  int               // partial splits tried, over all knots
}

// cover returns sets for some of groups (one component, none fixed) that give each of their
// classes a group in every set of required: the groups shared with a tight class (one with
// fewer groups of its own than sets it lacks), then for each class one of its own groups per
// set it still lacks. The groups of kept (nil for none) keep their sets there: cover places
// only the others, and a class lacks the sets its kept groups leave empty. A class that is
// not tight can be given every set it lacks by its own groups, so shared
// groups of such classes only are left to the quotas, and the tight classes fall into knots
// (linked by shared groups) that are searched apart: a split of one does not constrain
// another. Sets in prev are tried first, so that few groups move. cover tries every way to
// place a knot's shared groups, up to budget per knot, and lists the knots for which none
// works, with whether it tried them all; their classes get no sets. The groups of the classes
// of first are placed first, then those of the classes they share groups with, and so on, so
// that a choice that cannot work fails soon after it is made.
func cover(groups []*group, kept map[string]string, required []string, prev map[string]string, seed int64, first []string, budget int) coverResult {
	s := coverSearch{required: required, prev: prev, budget: budget,
		classes: map[string][]string{}, own: map[string][]*group{}, ownWas: map[string]uint8{}, have: map[string]uint8{}, left: map[string]int{}}
	var multi []*group
	for _, g := range groups {
		cs := slices.Sorted(maps.Keys(g.files()))
		s.classes[g.Digest] = cs
		var bit uint8
		if i := slices.Index(required, kept[g.Digest]); i >= 0 {
			bit = 1 << i
		}
		for _, c := range cs {
			s.have[c] |= bit
		}
		switch {
		case bit != 0:
		case len(cs) > 1:
			multi = append(multi, g)
		default:
			s.own[g.home()] = append(s.own[g.home()], g)
		}
	}
	for c, gs := range s.own {
		for _, g := range gs {
			if i := slices.Index(required, prev[g.Digest]); i >= 0 {
				s.ownWas[c] |= 1 << i
			}
		}
	}
	lacking := map[string]int{} // the sets each class lacks before the search
	for c := range s.have {
		lacking[c] = s.lacks(c)
	}
	tight := func(c string) bool { return len(s.own[c]) < lacking[c] }
	var shared []*group
	for _, g := range multi {
		if slices.ContainsFunc(s.classes[g.Digest], tight) {
			shared = append(shared, g)
			for _, c := range s.classes[g.Digest] {
				s.left[c]++
			}
		}
	}
	rank := map[string]string{} // group digest → its place in the seed's order
	for _, g := range shared {
		rank[g.Digest] = order(seed, g.Digest)
	}
	res := coverResult{sets: map[string]string{}}
	failed := map[string]bool{} // the classes of failed knots
	for _, k := range knots(slices.Sorted(maps.Keys(s.have)), shared, s.classes, tight) {
		dist := distances(k.groups, s.classes, first)
		near := func(g *group) int {
			d := len(dist)
			for _, c := range s.classes[g.Digest] {
				d = min(d, dist[c])
			}
			return d
		}
		sort.Slice(k.groups, func(i, j int) bool {
			if a, b := near(k.groups[i]), near(k.groups[j]); a != b {
				return a < b
			}
			return rank[k.groups[i].Digest] < rank[k.groups[j].Digest]
		})
		s.tries, s.stopped = 0, false
		placed, ok := s.search(k.groups, k.classes)
		res.tries += s.tries
		if !ok {
			res.failed = append(res.failed, unsplit{classes: k.classes, gaveUp: s.stopped})
			for _, c := range k.classes {
				failed[c] = true
			}
			continue
		}
		for i, g := range k.groups {
			res.sets[g.Digest] = required[placed[i]]
		}
	}
	for _, c := range slices.Sorted(maps.Keys(s.have)) {
		if failed[c] || s.lacks(c) == 0 {
			continue
		}
		gs := s.own[c]
		keys := make(map[string]string, len(gs))
		for _, g := range gs {
			keys[g.Digest] = order(seed, g.Digest)
		}
		// Per set it lacks, one of c's own groups: one that was there, else a new one, else
		// any, in the seed's order.
		slices.SortFunc(gs, func(a, b *group) int {
			if (prev[a.Digest] == "") != (prev[b.Digest] == "") {
				if prev[a.Digest] == "" {
					return -1
				}
				return 1
			}
			return strings.Compare(keys[a.Digest], keys[b.Digest])
		})
		for i, name := range required {
			if s.have[c]&(1<<i) != 0 {
				continue
			}
			k := slices.IndexFunc(gs, func(g *group) bool { return prev[g.Digest] == name && res.sets[g.Digest] == "" })
			if k < 0 {
				k = slices.IndexFunc(gs, func(g *group) bool { return res.sets[g.Digest] == "" })
			}
			if k < 0 {
				break // not reached: c is in a failed knot unless its own groups suffice
			}
			res.sets[gs[k].Digest] = name
			s.have[c] |= 1 << i
		}
	}
	return res
}

// coverSearch is cover's state while it searches the knots.
type coverSearch struct {
	required []string
	prev     map[string]string
	budget   int
	classes  map[string][]string // group digest → its classes, sorted
	own      map[string][]*group // class → its groups with no other class
	ownWas   map[string]uint8    // class → the sets of required (bits) its own groups were in, in prev
	have     map[string]uint8    // class → the sets of required (bits) its placed shared groups fill
	left     map[string]int      // class → its searched shared groups not yet placed
	tries    int                 // partial splits tried in this knot
	stopped  bool                // tries passed budget
}

// lacks is how many sets of required c has no placed shared group in.
func (s *coverSearch) lacks(c string) int { return len(s.required) - bits.OnesCount8(s.have[c]) }

// search places shared (a knot's groups) so that each of classes (the knot's) can fill the
// sets it lacks with its own groups, and returns each group's set (an index into required),
// or false when no placement works or the budget ran out (s.stopped). have and left are as
// they were when it returns false.
func (s *coverSearch) search(shared []*group, classes []string) ([]int, bool) {
	placed := make([]int, len(shared))
	var try func(i int) bool
	try = func(i int) bool {
		if i == len(shared) {
			return !slices.ContainsFunc(classes, func(c string) bool { return s.lacks(c) > len(s.own[c]) })
		}
		if s.tries++; s.tries > s.budget {
			s.stopped = true
			return false
		}
		g := shared[i]
		cs := s.classes[g.Digest]
		saved := make([]uint8, len(cs))
		for _, set := range coverOrder(s.required, s.prev[g.Digest], cs, s.have, s.ownWas) {
			ok := true
			for k, c := range cs {
				saved[k] = s.have[c]
				s.have[c] |= 1 << set
				s.left[c]--
			}
			for _, c := range cs {
				ok = ok && s.lacks(c) <= s.left[c]+len(s.own[c])
			}
			if ok && try(i+1) {
				placed[i] = set
				return true
			}
			for k, c := range cs {
				s.have[c] = saved[k]
				s.left[c]++
			}
			if s.stopped {
				return false
			}
		}
		return false
	}
	return placed, try(0)
}

// knots returns the classes of all for which tight is true, linked by shared (groups of
// several classes, each with a tight one), with their groups in shared's order, by their
// first class. A tight class with no shared group is a knot of its own, with no groups.
func knots(all []string, shared []*group, classes map[string][]string, tight func(string) bool) []component {
	sets := classSets{}
	find := sets.find
	root := func(g *group) string { // the root of g's first tight class
		return find(classes[g.Digest][slices.IndexFunc(classes[g.Digest], tight)])
	}
	for _, g := range shared {
		r := root(g)
		for _, c := range classes[g.Digest] {
			if tight(c) {
				if o := find(c); o != r {
					sets[o] = r
				}
			}
		}
	}
	byRoot := map[string]*component{}
	for _, c := range all {
		if !tight(c) {
			continue
		}
		r := find(c)
		if byRoot[r] == nil {
			byRoot[r] = &component{}
		}
		byRoot[r].classes = append(byRoot[r].classes, c)
	}
	for _, g := range shared {
		k := byRoot[root(g)]
		k.groups = append(k.groups, g)
	}
	var out []component
	for _, k := range byRoot {
		sort.Strings(k.classes)
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b component) int { return strings.Compare(a.classes[0], b.classes[0]) })
	return out
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
// cs: its set in prev, then the sets the most of cs lack, test and val first on a tie. A class
// with an own group that was in a set (ownWas) does not lack it: that group fills it without
// moving.
func coverOrder(required []string, was string, cs []string, have, ownWas map[string]uint8) []int {
	var out []int
	for _, name := range splitOrder {
		if s := slices.Index(required, name); s >= 0 {
			out = append(out, s)
		}
	}
	lacking := func(s int) int {
		n := 0
		for _, c := range cs {
			if (have[c]|ownWas[c])&(1<<s) == 0 {
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
