package stages

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeline/pipeline"
)

// sharedGroups makes group g<i+1> of one file per class in classes[i].
func sharedGroups(classes ...string) []*group {
	var gs []*group
	for i, cs := range classes {
		g := &group{Digest: fmt.Sprintf("g%d", i+1)}
		for _, c := range cs {
			g.Members = append(g.Members, member{Class: string(c), Rel: fmt.Sprintf("%c/g%d.png", c, i+1)})
		}
		gs = append(gs, g)
	}
	return gs
}

// confirmedCase is a previous split that leaves class A with nothing held out: g2 and g3,
// which A shares with B and C, are in train, where B and C have nothing else, and g1 is A's
// own. Without history every class can have one group in each set.
func confirmedCase() ([]*group, map[string]string) {
	gs := sharedGroups("A", "AB", "AC", "B", "B", "C", "C")
	prev := map[string]string{"g1": TrainSet, "g2": TrainSet, "g3": TrainSet, "g4": ValSet, "g6": ValSet, "g5": TestSet, "g7": TestSet}
	return gs, prev
}

// missingSets returns, for each class of groups, the sets of required it has no group in.
func missingSets(groups []*group, sets map[string]string, required []string) map[string][]string {
	out := map[string][]string{}
	per := setsPerClass(groups, sets)
	for c, n := range per {
		for _, s := range required {
			if n[s] == 0 {
				out[c] = append(out[c], s)
			}
		}
	}
	return out
}

func TestAPreviousSplitThatPinsSharedImagesIsSearchedNotRefused(t *testing.T) {
	gs, prev := confirmedCase()
	// An unrelated class keeps its sets whatever happens to A, B and C.
	d := groupsOf("D", 1, 1, 1, 1)
	gs = append(gs, d...)
	for i, s := range []string{TrainSet, TrainSet, ValSet, TestSet} {
		prev[d[i].Digest] = s
	}
	all := []string{TrainSet, ValSet, TestSet}
	for seed := int64(0); seed < 20; seed++ {
		if _, short := assignSplits(gs, prev, nil, 0.2, 0.2, seed); !slices.Equal(short, []string{"A"}) {
			t.Fatalf("seed %d: the quotas alone leave %v short, want A (the case this test is about)", seed, short)
		}
		res := splitGroups(gs, prev, nil, 0.2, 0.2, seed)
		if len(res.failed) > 0 {
			t.Fatalf("seed %d: failed %+v", seed, res.failed)
		}
		if m := missingSets(gs, res.sets, all); len(m) > 0 {
			t.Fatalf("seed %d: classes without a set: %v", seed, m)
		}
		if !slices.Equal(res.short, []string{"A"}) || !slices.Equal(res.searched, []string{"A", "B", "C"}) {
			t.Errorf("seed %d: short %v, searched %v", seed, res.short, res.searched)
		}
		for _, g := range d {
			if res.sets[g.Digest] != prev[g.Digest] {
				t.Errorf("seed %d: D's %s moved %s → %s", seed, g.Digest, prev[g.Digest], res.sets[g.Digest])
			}
		}
		for _, g := range gs {
			if moved := res.sets[g.Digest] != prev[g.Digest]; moved != res.moved[g.Digest] {
				t.Errorf("seed %d: %s %s → %s, moved says %v", seed, g.Digest, prev[g.Digest], res.sets[g.Digest], res.moved[g.Digest])
			}
		}
	}
}

// randomGroups returns 3 to 8 groups of 2 to 4 classes, about a third of them shared by two
// or three classes, of 1 to 3 files per class.
func randomGroups(r *rand.Rand) []*group {
	nc, ng := 2+r.IntN(3), 3+r.IntN(6)
	var gs []*group
	for i := range ng {
		g := &group{Digest: fmt.Sprintf("g%02d", i)}
		k := 1
		if r.IntN(3) == 0 {
			k = 2 + r.IntN(2)
		}
		for _, c := range r.Perm(nc)[:min(k, nc)] {
			for f := range 1 + r.IntN(3) {
				g.Members = append(g.Members, member{Class: string(rune('A' + c)), Rel: fmt.Sprintf("%c/%d-%d.png", 'A'+c, i, f)})
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// splittable reports whether some split of groups gives every class a group in each of
// required, trying them all.
func splittable(groups []*group, required []string) bool {
	masks := make([]map[string]bool, len(groups))
	for i, g := range groups {
		masks[i] = map[string]bool{}
		for c := range g.files() {
			masks[i][c] = true
		}
	}
	n := 1
	for range groups {
		n *= len(required)
	}
	for code := range n {
		have := map[string]int{}
		for i, x := 0, code; i < len(groups); i, x = i+1, x/len(required) {
			for c := range masks[i] {
				have[c] |= 1 << (x % len(required))
			}
		}
		ok := true
		for _, h := range have {
			ok = ok && h == 1<<len(required)-1
		}
		if ok {
			return true
		}
	}
	return false
}

// Whenever some split gives every class a group in each set, the split finds one, with or
// without a previous split (random small group structures, random previous sets, random
// fractions); when none does, it names the classes.
func TestEveryClassGetsEverySetWheneverASplitCanGiveIt(t *testing.T) {
	fractions := [][2]float64{{0.1, 0.1}, {0.2, 0.2}, {0.3, 0.1}, {0.2, 0}, {0, 0.2}}
	found, none := 0, 0
	for i := range uint64(3000) {
		r := rand.New(rand.NewPCG(i, 2))
		gs := randomGroups(r)
		f := fractions[r.IntN(len(fractions))]
		val, test := f[0], f[1]
		required := requiredSets(val, test)
		prev := map[string]string{}
		for _, g := range gs {
			if r.IntN(4) > 0 {
				prev[g.Digest] = required[r.IntN(len(required))]
			}
		}
		seed := r.Int64()
		possible := splittable(gs, required)
		for _, history := range []map[string]string{nil, prev} {
			res := splitGroups(gs, history, nil, val, test, seed)
			missing := missingSets(gs, res.sets, required)
			switch {
			case possible && (len(res.failed) > 0 || len(missing) > 0):
				t.Fatalf("case %d (val %g, test %g, previous %v): failed %+v, missing %v, though a split exists; groups:\n%s", i, val, test, history, res.failed, missing, describe(gs))
			case !possible && len(res.failed) == 0:
				t.Fatalf("case %d: no split exists, and none failed; groups:\n%s", i, describe(gs))
			}
			for _, g := range gs {
				if s := res.sets[g.Digest]; !slices.Contains(required, s) {
					t.Fatalf("case %d: %s in %q", i, g.Digest, s)
				}
			}
		}
		if possible {
			found++
		} else {
			none++
		}
	}
	if found < 500 || none < 500 {
		t.Errorf("%d cases with a split, %d without: the structures test too little", found, none)
	}
}

func describe(gs []*group) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "  %s %v\n", g.Digest, g.files())
	}
	return b.String()
}

// The error names the classes linked by shared files and what drop_small_classes leaves out.
func TestUnsplittableErrorNamesTheLinkedClasses(t *testing.T) {
	res := splitGroups(conflicted(), nil, nil, 0.1, 0.1, 1)
	if len(res.failed) != 1 || !slices.Equal(res.failed[0].classes, []string{"x", "y", "z"}) || len(res.failed[0].short) == 0 || res.failed[0].gaveUp {
		t.Fatalf("failed %+v", res.failed)
	}
	msg := errUnsplittable(res.failed, 3).Error()
	if !strings.Contains(msg, `no split gives every one of "x", "y", "z"`) || !strings.Contains(msg, "drop_small_classes = true to leave out "+quoteList(res.failed[0].short)) {
		t.Errorf("error: %s", msg)
	}
	// A search cut short says so, rather than that there is no split.
	all := []string{TrainSet, ValSet, TestSet}
	if cr := cover(conflicted(), nil, all, nil, 1, []string{"z"}, coverBudget); len(cr.failed) != 1 || cr.failed[0].gaveUp {
		t.Fatalf("cover: %+v", cr)
	}
	if cr := cover(conflicted(), nil, all, nil, 1, []string{"z"}, 2); len(cr.failed) != 1 || !cr.failed[0].gaveUp {
		t.Fatalf("cover with 2 tries: %+v", cr)
	}
	u := res.failed[0]
	u.gaveUp = true
	msg = errUnsplittable([]unsplit{u}, 3).Error()
	if strings.Contains(msg, "no split gives") || !strings.Contains(msg, fmt.Sprintf("stopped after %d tries without finding one", coverBudget)) {
		t.Errorf("error after the search stopped: %s", msg)
	}
}

// The confirmed case through the stage: a first split puts B's and C's images g2 and g3 in
// train, then copies of them join class A, whose other image was in train too. The rerun
// moves images to give A, B and C one in each set, lists and logs the moves, and fails
// nothing.
func TestARerunWhosePreviousSetsPinSharedImagesMovesThem(t *testing.T) {
	// With three distinct images a class gets one per set, by the seed's order of their
	// digests: the first to test, the second to val, the last to train.
	pics := make([][]byte, 9)
	for i := range pics {
		pics[i] = randomPNG(11, uint64(i), 6, 6)
	}
	rank := func(b []byte) string { return order(pipeline.DefaultSeed, fmt.Sprintf("%x", sha256.Sum256(b))) }
	slices.SortFunc(pics, func(a, b []byte) int { return strings.Compare(rank(a), rank(b)) })
	// In each class the order is test, val, train.
	first := map[string][]byte{
		"A/x.png": pics[0], "A/y.png": pics[1], "A/g1.png": pics[8],
		"B/g5.png": pics[2], "B/g4.png": pics[3], "B/g2.png": pics[6],
		"C/g7.png": pics[4], "C/g6.png": pics[5], "C/g3.png": pics[7],
	}
	w := newWS(t, splitHCL)
	for rel, b := range first {
		w.write("raw/"+rel, b)
	}
	rec, _ := w.run(false)
	before := splitOf(t, w, rec)
	for rel, s := range map[string]string{"A/g1.png": TrainSet, "B/g2.png": TrainSet, "C/g3.png": TrainSet, "B/g4.png": ValSet, "C/g6.png": ValSet, "B/g5.png": TestSet, "C/g7.png": TestSet} {
		if before[rel] != s {
			t.Fatalf("first split: %s in %s, want %s (the case this test is about): %v", rel, before[rel], s, before)
		}
	}
	for _, rel := range []string{"A/x.png", "A/y.png"} {
		if err := os.Remove(filepath.Join(w.dir, "raw", rel)); err != nil {
			t.Fatal(err)
		}
	}
	w.write("raw/A/g2.png", first["B/g2.png"])
	w.write("raw/A/g3.png", first["C/g3.png"])
	rec, _ = w.run(false)
	var rep splitReport
	readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
	for _, c := range rep.Classes {
		if c.Train == 0 || c.Val == 0 || c.Test == 0 {
			t.Errorf("class %s: %+v", c.Name, c)
		}
	}
	after := splitOf(t, w, rec)
	// Manifests list files by their own digest: a copy of an image that was in a set counts
	// as that image.
	was := map[string]string{}
	for src, s := range before {
		was[fmt.Sprintf("%x", sha256.Sum256(first[src]))] = s
	}
	var moved []string
	for _, s := range []string{TrainSet, ValSet, TestSet} {
		m, err := ReadManifest(w.output(rec, "split.main", s))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Images {
			if from := was[e.Digest]; from != s {
				moved = append(moved, fmt.Sprintf("raw/%s: %s → %s", e.Source, from, s))
			}
		}
	}
	var listed []string
	for _, m := range rep.Moved {
		listed = append(listed, fmt.Sprintf("%s: %s → %s", m.Path, m.From, m.To))
	}
	slices.Sort(moved)
	if len(moved) == 0 || !slices.Equal(listed, moved) {
		t.Errorf("moved_from_previous_split %v, moved %v", listed, moved)
	}
	// Of the seven images of the previous split, those that kept their set: the copies of
	// g2 and g3 in A are g2 and g3.
	kept := 0
	for _, rel := range []string{"A/g1.png", "B/g2.png", "C/g3.png", "B/g4.png", "B/g5.png", "C/g6.png", "C/g7.png"} {
		if after[rel] == before[rel] {
			kept++
		}
	}
	if rep.Kept != kept {
		t.Errorf("kept_from_previous_split %d, want %d", rep.Kept, kept)
	}
	log := runLog(t, rec)
	if !strings.Contains(log, `keeping the previous split's sets left class "A" without an image in every set`) || !strings.Contains(log, "  "+moved[0]+"\n") {
		t.Errorf("run.log does not name the moves:\n%s", log)
	}
}

// bigComponent returns the groups of 43 classes c00…c42 of 1,160 files each, 2,500 of them
// groups shared by two classes (which link every class into one component), the others each
// a class's own, and where the quotas put them, as a previous split.
func bigComponent() ([]*group, map[string]string) {
	r := rand.New(rand.NewPCG(7, 7))
	const classes, files, shared = 43, 1160, 2500
	name := func(c int) string { return fmt.Sprintf("c%02d", c) }
	left := make([]int, classes)
	for c := range left {
		left[c] = files
	}
	var gs []*group
	for i := range shared {
		g := &group{Digest: fmt.Sprintf("s%04d", i)}
		for _, c := range r.Perm(classes)[:2] {
			g.Members = append(g.Members, member{Class: name(c), Rel: fmt.Sprintf("%s/s%d.png", name(c), i)})
			left[c]--
		}
		gs = append(gs, g)
	}
	for c, n := range left {
		sizes := make([]int, n)
		for i := range sizes {
			sizes[i] = 1
		}
		gs = append(gs, groupsOf(name(c), sizes...)...)
	}
	prev, short := assignSplits(gs, nil, nil, 0.1, 0.1, 1)
	if len(short) > 0 {
		panic(fmt.Sprintf("the big component alone leaves %v short", short))
	}
	return gs, prev
}

// keptOutside returns the groups of gs with no class of classes whose set differs from prev.
func keptOutside(gs []*group, prev, sets map[string]string, classes ...string) []string {
	var moved []string
	for _, g := range gs {
		mine := false
		for c := range g.files() {
			mine = mine || slices.Contains(classes, c)
		}
		if !mine && sets[g.Digest] != prev[g.Digest] {
			moved = append(moved, fmt.Sprintf("%s: %s → %s", g.Digest, prev[g.Digest], sets[g.Digest]))
		}
	}
	return moved
}

// A review's case: an impossible conflict of three classes joined through one file to 43
// large classes linked by 2,500 shared groups. Those classes fill every set with their own
// groups, so only the conflict's groups are searched: the search ends within a few hundred
// tries and says no split exists, and no other group moves.
func TestAConflictJoinedToABigComponentIsSearchedAlone(t *testing.T) {
	big, prev := bigComponent()
	// conflicted() with z's own group g5 replaced by a file also in c00: x and y need g1, g2
	// and g3 = g4 in three sets, which leaves z two.
	conflict := conflicted()[:4]
	conflict = append(conflict, &group{Digest: "g5", Members: []member{{Class: "z", Rel: "z/g5.png"}, {Class: "c00", Rel: "c00/g5.png"}}})
	prev["g5"] = TrainSet
	gs := append(big, conflict...)
	res := splitGroups(gs, prev, nil, 0.1, 0.1, 1)
	if len(res.failed) != 1 || !slices.Equal(res.failed[0].classes, []string{"x", "y", "z"}) || res.failed[0].gaveUp {
		t.Fatalf("failed %+v", res.failed)
	}
	if res.tries > 1000 {
		t.Errorf("%d tries for 5 shared groups", res.tries)
	}
	if msg := errUnsplittable(res.failed, 3).Error(); !strings.Contains(msg, `no split gives every one of "x", "y", "z"`) {
		t.Errorf("error: %s", msg)
	}
	if moved := keptOutside(gs, prev, res.sets, "x", "y", "z"); len(moved) > 0 {
		t.Errorf("groups moved outside the conflict: %v", moved)
	}
}

// When the search gives up on a knot that has a split, only the groups of the knot's classes
// are split afresh: the rest of the component keeps its previous sets.
func TestGivingUpSplitsOnlyTheKnotAfresh(t *testing.T) {
	big, prev := bigComponent()
	knot, was := confirmedCase()
	// B's copy of a file of c00, in val as B's other val image is, joins the knot to the big
	// component.
	knot = append(knot, &group{Digest: "g8", Members: []member{{Class: "B", Rel: "B/g8.png"}, {Class: "c00", Rel: "c00/g8.png"}}})
	was["g8"] = ValSet
	maps.Copy(prev, was)
	gs := append(big, knot...)
	if _, short := assignSplits(gs, prev, nil, 0.2, 0.2, 1); !slices.Equal(short, []string{"A"}) {
		t.Fatalf("the quotas alone leave %v short, want A (the case this test is about)", short)
	}
	all := []string{TrainSet, ValSet, TestSet}
	for _, budget := range []int{1, coverBudget} {
		res := splitGroupsWithin(gs, prev, nil, 0.2, 0.2, 1, budget)
		if budget == 1 && !slices.Equal(res.afresh, []string{"A", "B", "C"}) || budget > 1 && (len(res.afresh) > 0 || res.tries > 1000) {
			t.Errorf("budget %d: afresh %v after %d tries", budget, res.afresh, res.tries)
		}
		if len(res.failed) > 0 {
			t.Errorf("budget %d: failed %+v", budget, res.failed)
		}
		if m := missingSets(gs, res.sets, all); len(m) > 0 {
			t.Errorf("budget %d: classes without a set: %v", budget, m)
		}
		if moved := keptOutside(gs, prev, res.sets, "A", "B", "C"); len(moved) > 0 {
			t.Errorf("budget %d: %d groups moved outside A, B and C, such as %v", budget, len(moved), moved[0])
		}
	}
}

// A rerun after b's train image was deleted: b's two images were in test, and a new image
// that b shares with a falls to a's quota. Where the quotas put it in test, a's only test
// image, no new image can give b a train image alone, but the new images placed otherwise
// can (the shared one in train, one of a's own in test): no image of the previous split
// moves, least of all one from test into train.
func TestNewImagesFillASetBeforeAnImageOfThePreviousSplitMoves(t *testing.T) {
	gs := sharedGroups("a", "a", "ab", "b", "b")
	prev := map[string]string{"g4": TestSet, "g5": TestSet}
	all := []string{TrainSet, TestSet}
	pinned := 0
	for seed := int64(0); seed < 40; seed++ {
		quotas, _ := assignSplits(gs, prev, nil, 0, 0.2, seed)
		if quotas["g4"] != TestSet || quotas["g5"] != TestSet {
			pinned++ // the case this test is about: the quotas moved one of b's images
		}
		res := splitGroups(gs, prev, nil, 0, 0.2, seed)
		if len(res.failed) > 0 {
			t.Fatalf("seed %d: failed %+v", seed, res.failed)
		}
		if m := missingSets(gs, res.sets, all); len(m) > 0 {
			t.Fatalf("seed %d: classes without a set: %v", seed, m)
		}
		for g, s := range prev {
			if res.sets[g] != s {
				t.Errorf("seed %d: %s moved %s → %s, though the new images can fill b's train set", seed, g, s, res.sets[g])
			}
		}
	}
	if pinned == 0 {
		t.Fatal("the quotas never moved an image of b: the case this test is about is not tested")
	}
}

// A rerun after a's train image was deleted: its others are its own test image g1 and g2
// and g3, in val, shared with c and b. One image must move: g2 or g3 into train, since c and
// b have new images for val. The search tries the shared images' sets first; putting one of
// them in test, which a would lack without g1, takes g1 out of test into train: two moves,
// a test image into training.
func TestTheSearchMovesNoImageThatItsClassCanKeep(t *testing.T) {
	gs := sharedGroups("a", "ac", "ab", "b", "bd", "bd", "c", "c", "cd", "d", "d", "d", "d", "d", "d")
	prev := map[string]string{"g1": TestSet, "g2": ValSet, "g3": ValSet, "g5": TrainSet, "g6": TestSet, "g9": TestSet, "g10": TrainSet}
	all := []string{TrainSet, ValSet, TestSet}
	for seed := int64(0); seed < 20; seed++ {
		res := splitGroups(gs, prev, nil, 0.05, 0.05, seed)
		if len(res.failed) > 0 || len(missingSets(gs, res.sets, all)) > 0 {
			t.Fatalf("seed %d: failed %+v, missing %v", seed, res.failed, missingSets(gs, res.sets, all))
		}
		var moved []string
		for _, g := range gs {
			if p := prev[g.Digest]; p != "" && res.sets[g.Digest] != p {
				moved = append(moved, fmt.Sprintf("%s %s → %s", g.Digest, p, res.sets[g.Digest]))
			}
		}
		if len(moved) != 1 || res.sets["g1"] != TestSet {
			t.Errorf("seed %d: moved %v, want g2 or g3 into train", seed, moved)
		}
	}
}
