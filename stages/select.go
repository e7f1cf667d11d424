package stages

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// Select is the select stage kind: it ranks evaluated candidates by a metric and promotes the
// winner to promote_to, subject to an optional gate.
type Select struct{}

// SelectConfig is a select stage's attributes.
type SelectConfig struct {
	Metric           string   `cty:"metric"`
	Direction        *string  `cty:"direction"`
	TieBreak         string   `cty:"tie_break"`
	MinValue         *float64 `cty:"min_value"`
	MustBeatChampion bool     `cty:"must_beat_champion"`
	MinImprovement   float64  `cty:"min_improvement"`
	PromoteTo        string   `cty:"promote_to"`
	ClassIDsMayMove  *bool    `cty:"class_ids_may_move"`
}

// Decision is decision/decision.json.
type Decision struct {
	Metric    string      `json:"metric"`
	Direction string      `json:"direction"`
	TieBreak  string      `json:"tie_break"`
	Ranking   []Candidate `json:"ranking"`
	Winner    string      `json:"winner"`
	GatePass  bool        `json:"gate_passed"`
	Gate      string      `json:"gate"`
	PromoteTo string      `json:"promote_to"`
	MustBeat  bool        `json:"must_beat_champion"`
	MinImpr   float64     `json:"min_improvement"`
	// IDsMayMove promotes a winner that adds classes before some of the champion's, moving
	// their ids (class_ids_may_move).
	IDsMayMove bool `json:"class_ids_may_move,omitempty"`
}

// Candidate is one ranked model.
type Candidate struct {
	Name       string            `json:"candidate"`
	Arch       string            `json:"architecture"`
	Value      metric            `json:"value"`
	TieValue   metric            `json:"tie_break_value"`
	Model      string            `json:"model"`
	Evaluation string            `json:"evaluation"`
	Metrics    map[string]metric `json:"metrics"`
	Data       string            `json:"data"`     // the test set it was scored on
	TestSet    string            `json:"test_set"` // that test set's id (testSetID)
	// Seen counts the test images the model was trained on (Evaluation.SeenInTraining).
	Seen int `json:"test_images_seen_in_training,omitempty"`
}

// Name implements pipeline.Kind.
func (Select) Name() string { return "select" }

// Version implements pipeline.Kind. (4: decision.json gives each candidate's test images
// seen in training.)
func (Select) Version() int { return 6 }

// Outputs implements pipeline.Kind.
func (Select) Outputs() []string { return []string{"decision"} }

// OutputTypes implements pipeline.OutputTyper.
func (Select) OutputTypes() map[string]string { return map[string]string{"decision": typeDecision} }

// Attributes implements pipeline.Kind.
func (Select) Attributes() []pipeline.Attribute {
	return []pipeline.Attribute{
		{Name: "candidates", Type: cty.DynamicPseudoType, Required: true, Doc: "the evaluate stages to choose from (stage.evaluate.NAME)", Accepts: []string{typeEvaluation}},
		{Name: "metric", Type: cty.String, Default: cty.StringVal("test_f1_macro"), Doc: "evaluation metric to rank by"},
		{Name: "direction", Type: cty.String, Doc: "max or min (default: min for test_loss, else max)"},
		{Name: "tie_break", Type: cty.String, Default: cty.StringVal("test_top5"), Doc: "second metric for equal values (then the name)"},
		{Name: "min_value", Type: cty.Number, Doc: "gate: the value the winner must reach to be promoted, in the metric's direction (a ceiling for test_loss)"},
		{Name: "must_beat_champion", Type: cty.Bool, Default: cty.True, Doc: "gate: promote only if better than the current champion"},
		{Name: "min_improvement", Type: cty.Number, Default: cty.NumberIntVal(0), Doc: "by at least this much"},
		{Name: "promote_to", Type: cty.String, Default: cty.StringVal(DefaultPromoteTo), Doc: "where the champion is published"},
		{Name: "class_ids_may_move", Type: cty.Bool, KeyedWhenSet: true, Doc: "promote a winner whose new classes move the ids of the champion's (for clients that go by class_name); default false"},
	}
}

// Validate implements pipeline.Validator.
func (Select) Validate(v *pipeline.Values) hcl.Diagnostics {
	var d diagList
	d.oneOf(v, "metric", EvaluationMetrics...)
	d.oneOf(v, "tie_break", EvaluationMetrics...)
	d.oneOf(v, "direction", "max", "min")
	if usable(v, "metric") && usable(v, "direction") && slices.Contains(EvaluationMetrics, v.String("metric")) {
		metric, dir, want, first := v.String("metric"), v.String("direction"), "max", "highest"
		if LowerIsBetter(metric) {
			want = "min"
		}
		if dir == "min" {
			first = "lowest"
		}
		if dir != want && (dir == "max" || dir == "min") {
			d.warn(v, "direction", "Direction against the metric",
				fmt.Sprintf("direction = %q ranks the %s %s first: the worst model by %s wins and is promoted. Leave direction out (%s for %s).", dir, first, metric, metric, want, metric))
		}
	}
	if usable(v, "promote_to") && v.String("promote_to") == "" {
		d.add(v, "promote_to", "Empty path", `promote_to is empty: give the folder the champion is published in, relative to the pipeline file's folder (such as "models/final_models").`)
	}
	if usable(v, "min_improvement") && num(v, "min_improvement") < 0 {
		d.add(v, "min_improvement", "Invalid min_improvement", "min_improvement must not be negative.")
	}
	// Scores other than a loss are fractions: 95 for 95 % would block every promotion.
	if m := v.Get("metric"); m.IsKnown() && !m.IsNull() && !LowerIsBetter(m.AsString()) {
		if usable(v, "min_value") && (num(v, "min_value") < 0 || num(v, "min_value") > 1) {
			d.add(v, "min_value", "Invalid min_value", fmt.Sprintf("min_value = %s: %s is a fraction from 0 to 1 (0.95 for 95 %%), which no model could reach.", hclValue(v.Get("min_value")), m.AsString()))
		}
		if usable(v, "min_improvement") && num(v, "min_improvement") >= 1 {
			d.add(v, "min_improvement", "Invalid min_improvement", fmt.Sprintf("min_improvement = %s: %s is a fraction from 0 to 1 (0.01 for one point), which no model could beat the champion by.", hclValue(v.Get("min_improvement")), m.AsString()))
		}
	}
	// The paths are known only once the evaluations ran, but their types are known now.
	if c := v.Get("candidates"); c.IsWhollyKnown() && !c.IsNull() {
		if _, err := candidatePaths(c); err != nil {
			d.add(v, "candidates", "Invalid candidates", err.Error())
		}
	} else if !c.IsNull() {
		if err := checkCandidates(c.Type()); err != nil {
			d.add(v, "candidates", "Invalid candidates", err.Error())
		}
	}
	return d.diags
}

// candidatePaths reads candidates: a map or object of evaluate outputs ({evaluation = path}),
// or of paths, keyed by candidate name; or the output of one evaluate stage without for_each,
// returned under the empty name (Run names it after the evaluated model's architecture).
func candidatePaths(c cty.Value) (map[string]string, error) {
	if err := checkCandidates(c.Type()); err != nil {
		return nil, err
	}
	if singleEvaluation(c.Type()) {
		e := c.GetAttr("evaluation")
		if e.IsNull() {
			return nil, fmt.Errorf("the evaluate stage has no evaluation path")
		}
		return map[string]string{"": e.AsString()}, nil
	}
	out := map[string]string{}
	for it := c.ElementIterator(); it.Next(); {
		k, v := it.Element()
		name := k.AsString()
		if v.Type() != cty.String {
			v = candidateEvaluation(v)
		}
		if v.IsNull() {
			return nil, fmt.Errorf("candidate %q has no evaluation path", name)
		}
		out[name] = v.AsString()
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no candidates")
	}
	return out, nil
}

// checkCandidates checks the shape of candidates from its type alone, so that validation,
// when the evaluations' paths are not yet known, reports what a run would refuse.
func checkCandidates(t cty.Type) error {
	switch {
	case t == cty.DynamicPseudoType || singleEvaluation(t):
		return nil
	case t.IsObjectType():
		names := make([]string, 0, len(t.AttributeTypes()))
		for n := range t.AttributeTypes() {
			names = append(names, n)
		}
		if len(names) == 0 {
			return fmt.Errorf("no candidates")
		}
		sort.Strings(names)
		for _, n := range names {
			if !candidateType(t.AttributeType(n)) {
				return fmt.Errorf("candidate %q is %s; use evaluate stage outputs (stage.evaluate.NAME)", n, typeName(t.AttributeType(n)))
			}
		}
		return nil
	case t.IsMapType():
		if !candidateType(t.ElementType()) {
			return fmt.Errorf("every candidate is %s; use evaluate stage outputs (stage.evaluate.NAME)", typeName(t.ElementType()))
		}
		return nil
	}
	return fmt.Errorf("candidates must be a map of evaluate stages, such as stage.evaluate.test; got %s", typeName(t))
}

// typeName is a type's name with its article: "an object without evaluation", "a list of string".
func typeName(t cty.Type) string {
	switch {
	case t.IsObjectType() && !t.HasAttribute("evaluation"):
		return "an object without evaluation"
	case t.IsObjectType():
		return "an object whose evaluation is " + typeName(t.AttributeType("evaluation"))
	}
	return pipeline.WithArticle(t.FriendlyName())
}

// singleEvaluation reports whether t is the outputs of one evaluate stage without for_each:
// an object whose only attribute is evaluation.
func singleEvaluation(t cty.Type) bool {
	return t.IsObjectType() && len(t.AttributeTypes()) == 1 && t.HasAttribute("evaluation") && t.AttributeType("evaluation") == cty.String
}

// candidateType reports whether one candidate of type t has an evaluation path: a path, or
// an object or map with one under evaluation.
func candidateType(t cty.Type) bool {
	switch {
	case t == cty.String || t == cty.DynamicPseudoType:
		return true
	case t.IsObjectType():
		return t.HasAttribute("evaluation") && t.AttributeType("evaluation") == cty.String
	case t.IsMapType():
		return t.ElementType() == cty.String
	}
	return false
}

// candidateEvaluation is the evaluation path of a candidate that is an evaluate stage's
// outputs (an object or map); null when it has none.
func candidateEvaluation(v cty.Value) cty.Value {
	if v.IsNull() {
		return cty.NullVal(cty.String)
	}
	if v.Type().IsMapType() {
		if !v.HasIndex(cty.StringVal("evaluation")).True() {
			return cty.NullVal(cty.String)
		}
		return v.Index(cty.StringVal("evaluation"))
	}
	return v.GetAttr("evaluation")
}

func (c SelectConfig) direction() string {
	if c.Direction != nil {
		return *c.Direction
	}
	if LowerIsBetter(c.Metric) {
		return "min"
	}
	return "max"
}

// LowerIsBetter reports whether a smaller value of metric is the better one (a loss).
func LowerIsBetter(metric string) bool { return strings.HasSuffix(metric, "loss") }

// scoreTolerance is how near two scores count as equal: two macro-F1 equal as fractions,
// summed in different orders, can differ in their last bit, which is no difference to rank
// by or to beat a champion by.
const scoreTolerance = 1e-12

// sameScore reports whether a and b are equal scores (within scoreTolerance; NaN is NaN).
func sameScore(a, b float64) bool {
	return math.Abs(a-b) <= scoreTolerance || math.IsNaN(a) && math.IsNaN(b) || a == b
}

// better reports whether a beats b in direction dir (NaN never wins; equal scores, within
// scoreTolerance, neither).
func better(a, b float64, dir string) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	if sameScore(a, b) {
		return false
	}
	if dir == "min" {
		return a < b
	}
	return a > b
}

// Run implements pipeline.Kind: rank the candidates and write the decision.
func (Select) Run(ctx context.Context, job *pipeline.Job) error {
	var cfg SelectConfig
	if err := job.Values.Decode(&cfg); err != nil {
		return err
	}
	paths, err := candidatePaths(job.Values.Get("candidates"))
	if err != nil {
		return err
	}
	dir := cfg.direction()
	dec := Decision{Metric: cfg.Metric, Direction: dir, TieBreak: cfg.TieBreak, PromoteTo: cfg.PromoteTo, MustBeat: cfg.MustBeatChampion, MinImpr: cfg.MinImprovement,
		IDsMayMove: cfg.ClassIDsMayMove != nil && *cfg.ClassIDsMayMove}
	for name, p := range paths {
		var ev Evaluation
		file := filepath.Join(job.Path(p), "metrics.json")
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("candidate %s: %w", cmp.Or(name, p), err)
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			return fmt.Errorf("candidate %s: %s: %w", cmp.Or(name, p), file, err)
		}
		if name == "" { // one evaluate stage: named like its run folder, after train's architecture
			name = ev.Architecture
		}
		v, _ := ev.Value(cfg.Metric)
		t, _ := ev.Value(cfg.TieBreak)
		dec.Ranking = append(dec.Ranking, Candidate{Name: name, Arch: ev.Architecture, Value: metric(v), TieValue: metric(t), Model: ev.Model, Evaluation: p, Metrics: ev.MetricMap(),
			Data: ev.Data, TestSet: ev.TestSet, Seen: ev.SeenInTraining})
	}
	tieDir := "max"
	if LowerIsBetter(cfg.TieBreak) {
		tieDir = "min"
	}
	// NaN equals NaN here (NaN != NaN would skip the tie-break and the name, leaving the
	// order to the map the candidates came from).
	same := func(a, b metric) bool { return sameScore(float64(a), float64(b)) }
	sort.Slice(dec.Ranking, func(i, j int) bool {
		a, b := dec.Ranking[i], dec.Ranking[j]
		if !same(a.Value, b.Value) {
			return better(float64(a.Value), float64(b.Value), dir)
		}
		if !same(a.TieValue, b.TieValue) {
			return better(float64(a.TieValue), float64(b.TieValue), tieDir)
		}
		return a.Name < b.Name
	})
	w := dec.Ranking[0]
	dec.Winner, dec.GatePass = w.Name, true
	dec.Gate = "no minimum set"
	if math.IsNaN(float64(w.Value)) {
		dec.GatePass, dec.Gate = false, fmt.Sprintf("%s of %s is not a number", cfg.Metric, w.Name)
	} else if cfg.MinValue != nil {
		ok := !better(*cfg.MinValue, float64(w.Value), dir) // reaches the minimum (or the maximum for min)
		dec.GatePass = ok
		dec.Gate = fmt.Sprintf("%s %s %.4f %s min_value %g", w.Name, cfg.Metric, float64(w.Value), map[bool]string{true: "reaches", false: "misses"}[ok], *cfg.MinValue)
	}
	if why := testSetsDiffer(dec.Ranking); why != "" && dec.GatePass {
		dec.GatePass, dec.Gate = false, why
	}
	var lines []string
	for i, c := range dec.Ranking {
		lines = append(lines, fmt.Sprintf("%d. %s %s %.4f (%s %.4f)", i+1, c.Name, cfg.Metric, float64(c.Value), cfg.TieBreak, float64(c.TieValue)))
	}
	job.Logf("ranking by %s (%s): %s", cfg.Metric, dir, strings.Join(lines, "; "))
	return writeFileJSON(filepath.Join(job.Out, "decision"), "decision.json", dec)
}

// testSetsDiffer says, when the candidates were scored on different test sets, which on
// which, and what to do: their scores do not compare, so none is promoted for them ("" when
// they share one; candidates whose test set is not known, evaluations made before it was
// recorded, are left out).
func testSetsDiffer(ranking []Candidate) string {
	by := map[string][]string{}
	var sets []string
	for _, c := range ranking {
		if c.TestSet == "" {
			continue // an evaluation made before test sets were named: not known
		}
		if _, ok := by[c.TestSet]; !ok {
			sets = append(sets, c.TestSet)
		}
		by[c.TestSet] = append(by[c.TestSet], c.Name)
	}
	if len(sets) < 2 {
		return ""
	}
	var groups []string
	for _, s := range sets {
		groups = append(groups, strings.Join(by[s], ", "))
	}
	return fmt.Sprintf("the candidates were scored on %d different test sets (%s), whose scores do not compare: evaluate them all on one split's test set", len(sets), strings.Join(groups, "; "))
}

// Apply implements pipeline.Effector: promote the decision's winner unless a gate says no.
// A champion whose link alone was deleted (its folder is there, and history.json names it)
// gets its link back first and is compared with as usual: deleting the link does not let a
// weaker model past must_beat_champion.
func (s Select) Apply(ctx context.Context, job *pipeline.Job, runID string) (string, error) {
	var dec Decision
	b, err := os.ReadFile(filepath.Join(job.Out, "decision", "decision.json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &dec); err != nil {
		return "", err
	}
	restored, err := restoreChampionLink(job, dec.PromoteTo)
	if err != nil {
		return "", err
	}
	note, outcome, err := s.apply(ctx, job, runID, dec)
	if err != nil {
		return "", err
	}
	w := dec.Ranking[0]
	flattered := "" // its score counts test photos it was trained on
	if w.Seen > 0 {
		note = fmt.Sprintf("warning: %s was trained on %d of its test images (or the model it started from was), which flatter its %s; %s", w.Name, w.Seen, dec.Metric, note)
		flattered = fmt.Sprintf(" (trained on %d of its test images)", w.Seen)
	}
	job.SetSummary(fmt.Sprintf("%s %.4f%s, %s", w.Name, float64(w.Value), flattered, outcome))
	if restored != "" {
		note = restored + "; " + note
	}
	return note, nil
}

// restoreChampionLink points the promotion folder to (as the pipeline file names it) at the
// champion history.json names when the link is missing, or leads to another promoted model
// (a promotion or rollback was cut off between the two, see settle), and the champion's
// folder is there, and says so ("" when it did nothing).
func restoreChampionLink(job *pipeline.Job, to string) (string, error) {
	if to == "" {
		return "", nil
	}
	promoteTo := job.Path(to)
	if note, err := FinishCutOffPromotion(promoteTo, to); note != "" || err != nil {
		return note, err
	}
	_, err := ChampionDir(promoteTo)
	var m *MissingChampionError
	if !errors.As(err, &m) || m.Target != "" || !m.Present || m.Champion == "" {
		return "", nil
	}
	unlock, err := lockPromotions(promoteTo + ".d")
	if err != nil {
		return "", err
	}
	defer unlock()
	// Again under the lock: a promotion by hand may have put a link there meanwhile.
	var again *MissingChampionError
	if _, err := ChampionDir(promoteTo); !errors.As(err, &again) || again.Target != "" || !again.Present || again.Champion != m.Champion {
		return "", nil
	}
	if err := pointTo(promoteTo, m.Champion); err != nil {
		return "", fmt.Errorf("restoring the link %s to the champion %s: %w", to, m.Champion, err)
	}
	return fmt.Sprintf("%s was missing: it points to the champion %s again, as history.json says", to, m.Champion), nil
}

// What Apply did, in its summary (pipeline.Job.SetSummary).
const (
	promoted      = "promoted"
	notPromoted   = "not promoted"
	stillChampion = "champion"
)

// apply is Apply with its decision read and the champion's link in place. It returns the
// note and the outcome: promoted, notPromoted or stillChampion.
func (Select) apply(ctx context.Context, job *pipeline.Job, runID string, dec Decision) (string, string, error) {
	w := dec.Ranking[0]
	if !dec.GatePass {
		return fmt.Sprintf("not promoted: %s", dec.Gate), notPromoted, nil
	}
	promoteTo := job.Path(dec.PromoteTo)
	// A champion on record that is gone (its folder or the .d folder deleted) or whose files
	// are (its weights deleted) is taken for none, with a warning in the note, so that the
	// winner can take its place; not an error, which would fail every run until fixed.
	var noChampion string
	champDir, err := ChampionDir(promoteTo)
	if missing := (*MissingChampionError)(nil); errors.As(err, &missing) {
		m := *missing // named as the pipeline file names them
		m.PromoteTo = dec.PromoteTo
		if m.Target != "" && pipeline.Inside(m.Target, job.Workspace) {
			m.Target, _ = filepath.Rel(job.Workspace, m.Target)
		}
		noChampion, err = m.What(), nil
	}
	if err != nil {
		return "", "", err
	}
	var champ *Card
	if champDir != "" {
		champ, _ = ReadCard(champDir)
		var broken *graphs.BrokenModelError
		if err := graphs.CheckFiles(SavedModelOf(champDir)); errors.As(err, &broken) {
			id := filepath.Base(champDir)
			if champ != nil {
				id = champ.ID
			}
			noChampion = fmt.Sprintf("the champion %s is broken, %s", id, broken.Problem)
			champDir, champ = "", nil
		}
	}
	if champ != nil && champ.Source == w.Model {
		already := fmt.Sprintf("%s (%s %.4f) is already the champion in %s", w.Name, dec.Metric, float64(w.Value), dec.PromoteTo)
		// Its files are hard links to the store's output, which the engine checks and makes
		// again when damaged (a new file): the champion's copy may still be the damaged one.
		differs, err := filesDiffer(SavedModelOf(champDir), job.Path(w.Model))
		if err != nil {
			return "", "", fmt.Errorf("%s, but its files could not be compared with the model in the store: %w", already, err)
		}
		if !differs {
			return already, stillChampion, nil
		}
		if err := reinstall(promoteTo, job.Path(w.Model), *champ); err != nil {
			return "", "", fmt.Errorf("%s, but its files differ from the model in the store (damaged on disk), and installing them again failed: %w", already, err)
		}
		return already + "; its files differed from the model in the store (damaged on disk): installed again from the store", stillChampion, nil
	}
	rb, err := rolledBack(promoteTo, w.Model)
	if err != nil {
		return "", "", err
	}
	if rb != nil {
		// By hand: its promoted folder, or, once gc has removed that, this run's model.
		by := rb.ID
		if _, err := os.Stat(filepath.Join(promoteTo+".d", rb.ID)); err != nil {
			by = runID + "/" + w.Name
		}
		return fmt.Sprintf("not promoted: %s (%s %.4f) is %s, which was %s; it is not promoted again automatically (pipeline promote %s does it by hand)",
			w.Name, dec.Metric, float64(w.Value), rb.ID, rb.How(), by), notPromoted, nil
	}
	info, err := graphs.ReadModelInfo(job.Path(w.Model))
	if err != nil {
		return "", "", err
	}
	reason := "no champion yet"
	if noChampion != "" {
		reason = "warning: " + noChampion + ", taken as no champion"
	}
	if champ != nil {
		// cv and wv are the champion's and the winner's values where they are compared
		cv, wv, on := float64(champ.Metrics[dec.Metric]), float64(w.Value), ""
		lead := fmt.Sprintf("%.4f", wv) // the winner's, as the note gives it
		comparable := true
		var saw *sawLists
		var k keyed
		var kerr error // comparisonKey's: the test set gone, say (championScore says so)
		rescore := dec.MustBeat && w.TestSet != "" && champ.TestSet != w.TestSet
		if dec.MustBeat && w.TestSet != "" {
			saw = readSawLists(job, champDir, w)
			k, kerr = comparisonKey(job, w, saw)
			// The test set the champion was promoted on: its score there compares, unless
			// either model was trained on some of its photos (a champion fine-tuned from
			// another split's model, say), which flatter it; the folder found or not.
			rescore = rescore || saw.known() && (w.Seen > 0 || champ.SeenInTraining > 0 || kerr == nil && k.left > 0)
		}
		if rescore {
			// Scores on different test sets do not compare: the champion is scored on this
			// run's test set (once; championScore keeps the result in its folder), when it
			// can be. Only a winner that adds classes after the champion's goes without the
			// comparison: one that drops a class, reorders them, gives any of them another
			// id (a class added before it) or takes other images waits for a person.
			added, dropped := classDiff(champ.Classes, info.Classes)
			reorders := len(added) == 0 && len(dropped) == 0 && !slices.Equal(champ.Classes, info.Classes)
			in, ci := info.Input, champ.Input
			var why []string
			switch {
			case reorders:
				why = append(why, "it has the champion's classes in another order (class ids differ)")
			case len(dropped) > 0:
				why = append(why, "it "+ClassChange(champ.Classes, info.Classes)) // adds …; drops …
			case len(added) > 0 && len(movedIDs(champ.Classes, info.Classes)) > 0 && !dec.IDsMayMove:
				why = append(why, "it "+ClassChange(champ.Classes, info.Classes)+": a client that keeps class ids would read them as other classes (class_ids_may_move = true promotes it)")
			}
			if in.Height != ci.Height || in.Width != ci.Width || in.Channels != ci.Channels {
				why = append(why, fmt.Sprintf("it takes %dx%dx%d images, the champion %dx%dx%d", in.Height, in.Width, in.Channels, ci.Height, ci.Width, ci.Channels))
			}
			if len(why) == 0 && len(added) > 0 {
				comparable = false
				reason = fmt.Sprintf("the champion %s cannot be compared on this run's test set: it lacks %s", champ.ID, strings.TrimPrefix(ClassChange(champ.Classes, info.Classes), "adds "))
				if dec.IDsMayMove && len(movedIDs(champ.Classes, info.Classes)) > 0 {
					reason = fmt.Sprintf("the champion %s cannot be compared on this run's test set: it %s (class_ids_may_move)", champ.ID, ClassChange(champ.Classes, info.Classes))
				}
			} else if len(why) == 0 {
				var score *comparison
				err := kerr
				if err == nil {
					score, err = championScore(ctx, job, champDir, w, saw, k)
				}
				switch {
				case errors.Is(err, errNoneUnseen):
					why = append(why, "every image of this run's test set is one "+saw.trainedOn())
				case errors.Is(err, errTooFewUnseen):
					class := fmt.Sprint(score.short)
					if score.short < len(info.Classes) {
						class = fmt.Sprintf("%q", info.Classes[score.short])
					}
					why = append(why, fmt.Sprintf("only %d of the %d test images of class %s are ones %s (fewer than %d), too few to compare on",
						score.shortLeft, score.shortAll, class, saw.who(), min(minComparedPerClass, score.shortAll)))
				case errors.Is(err, errTestSetGone):
					return fmt.Sprintf("not promoted: %s %s %.4f, but the champion %s was scored on another test set and the one %s was scored on is no longer in the store to score it on; run the candidates' evaluate stage again (pipeline run %s --force)",
						w.Name, dec.Metric, float64(w.Value), champ.ID, w.Name, evaluateStages(job)), notPromoted, nil
				case errors.Is(err, errIncomparable): // its card and its model disagree: the model's reason
					why = append(why, "the champion "+strings.TrimPrefix(err.Error(), errIncomparable.Error()+": "))
				case err != nil:
					return "", "", fmt.Errorf("scoring the champion %s on this run's test set: %w", champ.ID, err)
				case score.winner != nil:
					wv = float64(score.winner[dec.Metric])
					lead = fmt.Sprintf("%.4f on the %d of this run's %d test images %s (%.4f on all of them)", wv, score.unseen, score.unseen+score.seen, saw.who(), float64(w.Value))
					on = fmt.Sprintf(" on the %d of this run's %d test images %s, where %s has %.4f; %.4f on the test set it was promoted on",
						score.unseen, score.unseen+score.seen, saw.who(), w.Name, wv, cv)
					cv = float64(score.champ[dec.Metric])
				default:
					on = fmt.Sprintf(" on this run's test set, %.4f on the one it was promoted on", cv)
					cv = float64(score.champ[dec.Metric])
				}
				if len(saw.unknown) > 0 && err == nil {
					on += "; " + strings.Join(saw.unknown, "; ")
				}
			}
			if len(why) > 0 {
				return fmt.Sprintf("not promoted: %s (%s %.4f) cannot be compared with the champion %s on this run's test set: %s; pipeline promote %s/%s makes it the champion by hand (or set must_beat_champion = false)",
					w.Name, dec.Metric, float64(w.Value), champ.ID, strings.Join(why, ", and "), runID, w.Name), notPromoted, nil
			}
		}
		if comparable {
			margin := wv - cv
			if dec.Direction == "min" {
				margin = cv - wv
			}
			// By at least min_improvement; by anything (more than float noise) when it is 0.
			beats := margin > scoreTolerance
			if dec.MinImpr > 0 {
				beats = margin >= dec.MinImpr-scoreTolerance
			}
			if dec.MustBeat && !beats {
				if dec.MinImpr == 0 && sameScore(wv, cv) {
					return fmt.Sprintf("not promoted: %s %s %s ties the champion %s (%.4f%s): the same score does not replace it", w.Name, dec.Metric, lead, champ.ID, cv, on), notPromoted, nil
				}
				by := ""
				if dec.MinImpr > 0 {
					by = fmt.Sprintf(" by at least %g", dec.MinImpr)
				}
				return fmt.Sprintf("not promoted: %s %s %s does not beat the champion %s (%.4f%s)%s", w.Name, dec.Metric, lead, champ.ID, cv, on, by), notPromoted, nil
			}
			if on == "" && champ.TestSet != w.TestSet && w.TestSet != "" {
				on = " on the test set it was promoted on, not this run's" // must_beat_champion = false: not scored again
			}
			reason = fmt.Sprintf("champion %s had %.4f%s", champ.ID, cv, on)
		}
	}
	if champ != nil && !dec.MustBeat {
		if change := ClassChange(champ.Classes, info.Classes); change != "" {
			reason += "; it " + change + " (must_beat_champion = false promotes it whatever its classes)"
		}
	}
	card := Card{ID: sanitizeID(runID + "-" + w.Name), Architecture: info.Spec.Architecture, Classes: info.Classes, Input: info.Input,
		Metrics: w.Metrics, Metric: dec.Metric, TestSet: w.TestSet, SeenInTraining: w.Seen, Source: w.Model, Run: runID, Promoted: time.Now().UTC()}
	if err := job.Ready(); err != nil {
		return "", "", err
	}
	if err := graphs.CheckModel(job.Path(w.Model)); errors.Is(err, graphs.ErrDiverged) {
		return fmt.Sprintf("not promoted: %s answers NaN (not a number): its training diverged; retrain it, with a lower learning_rate say", w.Name), notPromoted, nil
	} else if err != nil {
		return "", "", fmt.Errorf("not promoting %s to %s: %w; the champion is unchanged (the next run notices a damaged output in the store and makes it again)", w.Name, dec.PromoteTo, err)
	}
	if err := promote(promoteTo, job.Path(w.Model), card); err != nil {
		return "", "", fmt.Errorf("promoting %s to %s: %w", w.Name, dec.PromoteTo, err)
	}
	return fmt.Sprintf("promoted %s (%s %.4f; %s) to %s", w.Name, dec.Metric, float64(w.Value), reason, dec.PromoteTo), promoted, nil
}

// evaluateStages gives the stages select's candidates come from as run's options ("--stage
// evaluate.test").
func evaluateStages(job *pipeline.Job) string {
	refs := job.Values.Refs("candidates")
	if len(refs) == 0 {
		return "--stage evaluate.NAME"
	}
	return "--stage " + strings.Join(refs, " --stage ")
}

// errTestSetGone is a winner's test set that is no longer in the store.
var errTestSetGone = errors.New("the test set is no longer in the store")

// championScores is scores.json in a champion's folder: its metrics on test sets other than
// the one it was promoted on, by test set id, so that each is computed once.
const championScores = "scores.json"

// movedTestSet returns, among the outputs of this run's stages (Job.RunOutputs), the
// workspace-relative folder of a test set with w's id and as many images as w was scored on,
// or "" when there is none: w's test set under another path, as when the split republished
// its output with the test set unchanged and the evaluation, cached, names the older object.
func movedTestSet(job *pipeline.Job, w Candidate) string {
	images := -1
	var ev Evaluation
	if b, err := os.ReadFile(filepath.Join(job.Path(w.Evaluation), "metrics.json")); err == nil && json.Unmarshal(b, &ev) == nil {
		images = ev.Images
	}
	for _, addr := range slices.Sorted(maps.Keys(job.RunOutputs)) {
		outs := job.RunOutputs[addr]
		for _, name := range slices.Sorted(maps.Keys(outs)) {
			dir := job.Path(outs[name])
			n := 0
			if _, err := EachManifestEntry(dir, func(Entry) error { n++; return nil }); err != nil || images >= 0 && n != images {
				continue // no image set, or not as many images
			}
			m, err := ReadManifest(dir)
			if err != nil {
				continue
			}
			if id, err := testSetID(dir, m); err == nil && id == w.TestSet {
				return outs[name]
			}
		}
	}
	return ""
}
