package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// A champion and a winner scored on test photos one of them was trained on do not compare:
// the one that saw them scores too well there. The photos each model saw are in its
// TrainedOnFile; the comparison leaves out every test photo either saw, and is made on the
// others, when there are enough of them.

// minComparedPerClass is how many test images each class needs in the comparison of a
// champion with a winner, after the photos either model saw are left out (all of its test
// images, for a class with fewer): fewer, and the scores say more about the few photos than
// about the models.
const minComparedPerClass = 5

// errTooFewUnseen is a test set too few images of which neither model was trained on.
var errTooFewUnseen = errors.New("too few test images that neither model was trained on")

// sawLists is what the champion and the winner were trained on, as far as their
// TrainedOnFiles say.
type sawLists struct {
	union digestSet
	// champKnown and winnerKnown say whose list is known; unknown says why not, for a note.
	champKnown, winnerKnown bool
	unknown                 []string
}

// readSawLists reads the TrainedOnFiles of the champion in champDir and of the winner w. A list
// missing (a model made before they were written) or damaged is unknown, and said so.
func readSawLists(job *pipeline.Job, champDir string, w Candidate) *sawLists {
	l := &sawLists{}
	for _, m := range []struct {
		dir, who string
		known    *bool
	}{{SavedModelOf(champDir), "the champion", &l.champKnown}, {SavedModelOf(job.Path(w.Model)), w.Name, &l.winnerKnown}} {
		s, err := readTrainedOn(m.dir)
		switch {
		case err != nil:
			l.unknown = append(l.unknown, fmt.Sprintf("which test images %s saw cannot be told: %v", m.who, err))
		case s == nil:
			l.unknown = append(l.unknown, fmt.Sprintf("which test images %s saw cannot be told: it has no %s (made by an earlier version, or from a starting model that has none)", m.who, TrainedOnFile))
		default:
			*m.known = true
			l.union = append(l.union, s...)
		}
	}
	if !l.champKnown && !l.winnerKnown {
		return l
	}
	l.union = sorted(l.union)
	return l
}

// known reports whether either model's list is known.
func (l *sawLists) known() bool { return l.champKnown || l.winnerKnown }

// who says whose training photos a comparison left out.
func (l *sawLists) who() string {
	switch {
	case l.champKnown && l.winnerKnown:
		return "neither model was trained on"
	case l.champKnown:
		return "the champion was not trained on"
	default:
		return "the winner was not trained on"
	}
}

// trainedOn says whose training photos a comparison left out, as in "one either model was
// trained on".
func (l *sawLists) trainedOn() string {
	switch {
	case l.champKnown && l.winnerKnown:
		return "either model was trained on"
	case l.champKnown:
		return "the champion was trained on"
	default:
		return "the winner was trained on"
	}
}

// comparison is how the champion and the winner compare on the winner's test set.
type comparison struct {
	champ map[string]metric
	// winner is the winner's metrics on the images compared when they are not its whole
	// test set (seen > 0), else nil: its evaluation's are the comparison.
	winner map[string]metric
	// seen counts the test images left out (either model was trained on them); unseen,
	// those compared.
	seen, unseen int
	// short is the first class with too few test images left (errTooFewUnseen): its index,
	// images left and test images; -1 for none.
	short, shortLeft, shortAll int
}

// keyed is where the champion's scores on w's test set are kept in scores.json (see
// comparisonKey).
type keyed struct {
	key  string
	data string // the test set's folder, when finding the photos left out needed it
	left int    // the test images either model saw, left out of the comparison
}

// comparisonKey returns the key of the champion's scores in scores.json for a comparison with
// w: w's test set id, and with saw's lists known, a digest of the test photos they leave out,
// so that another winner leaving out the same ones (one trained on more photos, none of them
// in the test set) finds the champion's score kept; with the test set's folder and the number
// of photos left out when the lists are known.
func comparisonKey(job *pipeline.Job, w Candidate, saw *sawLists) (keyed, error) {
	if !saw.known() {
		return keyed{key: w.TestSet}, nil // the whole test set, as before lists were kept
	}
	data, err := testSetFolder(job, w)
	if err != nil {
		return keyed{}, err
	}
	var left [][sha256.Size]byte
	if _, err := EachManifestEntry(job.Path(data), func(e Entry) error {
		if saw.union.has(e.Digest) {
			d, _ := digestOf(e.Digest)
			left = append(left, d)
		}
		return nil
	}); err != nil {
		return keyed{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%v %v\n", saw.champKnown, saw.winnerKnown)
	for _, d := range sorted(left) {
		h.Write(d[:])
	}
	return keyed{key: w.TestSet + " less " + hex.EncodeToString(h.Sum(nil))[:16], data: data, left: len(left)}, nil
}

// testSetFolder returns the workspace-relative folder of w's test set: the one it was scored
// on, or, when that is gone, the same test set among the run's outputs. An evaluation cached
// across a split that republished its output (the same test images) names the old object,
// which gc may have removed since; the same test set is the one this run's split gave.
func testSetFolder(job *pipeline.Job, w Candidate) (string, error) {
	if _, err := os.Stat(filepath.Join(job.Path(w.Data), ManifestFile)); !errors.Is(err, fs.ErrNotExist) {
		return w.Data, nil
	}
	if moved := movedTestSet(job, w); moved != "" {
		return moved, nil
	}
	return "", errTestSetGone
}

// Scores' keys in scores.json beside the metrics: how many test images were compared and how
// many left out, and the first class with too few left (its index, -1 for none; the images
// left of it and its test images).
const (
	comparedKey  = "images_compared"
	leftOutKey   = "images_left_out"
	shortKey     = "class_too_few"
	shortLeftKey = "class_too_few_left"
	shortAllKey  = "class_too_few_test_images"
)

// shortClass finds the first class of the test set in folder data whose images left in the
// scores per (the support of each class after the photos left out) are fewer than
// minComparedPerClass and fewer than all of its test images: its index, the images left and
// its test images; index -1 for none.
func shortClass(data string, per []ClassScore) (int, int, int, error) {
	all := make([]int, len(per))
	_, err := EachManifestEntry(data, func(e Entry) error {
		if e.Label < len(all) {
			all[e.Label]++
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	for i, c := range per {
		if c.Support < min(minComparedPerClass, all[i]) {
			return i, c.Support, all[i], nil
		}
	}
	return -1, 0, 0, nil
}

// championScore compares the champion in champDir with the winner w on w's test set, leaving
// out the photos either was trained on (saw; both scored on the rest), or, when neither list
// is known, on all of it: the champion's metrics, from its scores.json or by evaluating it
// (errIncomparable when it has other classes or input size) and adding them to scores.json,
// and the winner's on the same photos when they are not all of its test set (kept there too).
// It fails with errNoneUnseen when no photo is left, errTooFewUnseen when fewer than
// minComparedPerClass a class are, and errTestSetGone when the test set is nowhere.
func championScore(ctx context.Context, job *pipeline.Job, champDir string, w Candidate, saw *sawLists, k keyed) (*comparison, error) {
	file := filepath.Join(champDir, championScores)
	scores := map[string]map[string]metric{}
	if b, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(b, &scores); err != nil {
			scores = map[string]map[string]metric{} // recomputed and rewritten below
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, data := k.key, k.data
	winnerKey := "winner " + w.Model + " on " + key
	c := &comparison{short: -1}
	done := func() (*comparison, error) {
		switch {
		case c.unseen == 0 && c.seen > 0:
			return nil, errNoneUnseen
		case c.seen > 0 && c.short >= 0:
			return c, errTooFewUnseen
		}
		return c, nil
	}
	_, checked := scores[key][shortKey] // the floor checked (an entry with photos left out has it)
	if s, ok := scores[key]; ok && (!saw.known() || s[comparedKey] > 0 || s[leftOutKey] > 0) && (s[leftOutKey] == 0 || s[comparedKey] == 0 || checked) {
		c.champ, c.unseen, c.seen = s, int(s[comparedKey]), int(s[leftOutKey])
		if checked {
			c.short, c.shortLeft, c.shortAll = int(s[shortKey]), int(s[shortLeftKey]), int(s[shortAllKey])
		}
		if c.seen == 0 || c.unseen == 0 || c.short >= 0 {
			return done()
		}
		if ws, ok := scores[winnerKey]; ok {
			c.winner = ws
			return done()
		}
	}
	if data == "" {
		var err error
		if data, err = testSetFolder(job, w); err != nil {
			return nil, err
		}
	}
	if err := job.Ready(); err != nil {
		return nil, err
	}
	score := func(dir, what string) (*evaluated, error) {
		model, err := graphs.LoadModel(dir, 0)
		if err != nil {
			return nil, err
		}
		defer model.Close()
		r, err := evaluateModel(ctx, model, job.Path(data), job.Workspace, 64, job.Progress, saw.union, true)
		if err != nil {
			return nil, err
		}
		logDamaged(job, r.damaged, " of the test set "+what+" was scored on", "")
		if r.ev.TestSet != w.TestSet {
			return nil, fmt.Errorf("the test set %s changed since it was evaluated", data)
		}
		return r, nil
	}
	keep := func() {
		if err := writeJSONAtomic(file, scores); err != nil {
			job.Logf("warning: keeping the champion's score in %s: %v", file, err) // computed again next time
		}
	}
	if c.champ == nil {
		if saw.known() {
			job.Logf("scoring the champion %s on this run's test set (%s), less the photos %s, once", filepath.Base(champDir), data, saw.trainedOn())
		} else {
			job.Logf("scoring the champion %s on this run's test set (%s), once", filepath.Base(champDir), data)
		}
		r, err := score(SavedModelOf(champDir), "the champion")
		if errors.Is(err, errNoneUnseen) {
			scores[key] = map[string]metric{comparedKey: 0, leftOutKey: metric(k.left)}
			keep()
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		c.champ, c.unseen, c.seen = r.ev.MetricMap(), r.ev.Images, r.ev.SeenInTraining
		c.champ[comparedKey], c.champ[leftOutKey] = metric(c.unseen), metric(c.seen)
		if c.seen > 0 {
			if c.short, c.shortLeft, c.shortAll, err = shortClass(job.Path(data), r.ev.PerClass); err != nil {
				return nil, err
			}
			c.champ[shortKey], c.champ[shortLeftKey], c.champ[shortAllKey] = metric(c.short), metric(c.shortLeft), metric(c.shortAll)
		}
		scores[key] = c.champ
		keep()
		if c.seen == 0 {
			return done()
		}
	}
	if c.short >= 0 {
		return done()
	}
	job.Logf("scoring %s on the %d of this run's %d test images %s", w.Name, c.unseen, c.unseen+c.seen, saw.who())
	r, err := score(SavedModelOf(job.Path(w.Model)), w.Name)
	if err != nil {
		return nil, err
	}
	c.winner = r.ev.MetricMap()
	// Only this winner's scores are kept: an earlier winner that did not beat the champion
	// is seldom the winner again, and each would add an entry for good.
	for k := range scores {
		if strings.HasPrefix(k, "winner ") && !strings.HasPrefix(k, "winner "+w.Model+" on ") {
			delete(scores, k)
		}
	}
	scores[winnerKey] = c.winner
	keep()
	return done()
}
