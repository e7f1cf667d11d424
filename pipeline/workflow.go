package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline/dag"
)

// DefaultSeed is the pipeline seed when the pipeline block sets none (the original system's).
const DefaultSeed = 42

// Workflow is a pipeline file evaluated as far as it can be before anything runs: variables,
// pipeline settings, stage instances (for_each expanded) and the dependency graph between
// instances. Attribute values that depend on upstream outputs are evaluated per run.
type Workflow struct {
	Config    *Config
	Registry  *Registry
	Seed      int64
	Instances []*Instance // in dependency order
	Graph     *dag.Graph  // instance addresses; an edge a→b means a needs b

	vars           map[string]cty.Value
	badVar         bool // a variable's value is missing or invalid (already reported)
	pipelineVals   map[string]cty.Value
	pipelineRanges map[string]hcl.Range
	blocks         map[string]*block
	blockOrder     []string
	byAddr         map[string]*Instance
	// plain caches instances' values evaluated without upstream outputs or checks, for
	// Values.UpstreamValue.
	plainMu sync.Mutex
	plain   map[string]*Values
}

// Instance is one stage instance: a stage block, or one key of a stage with for_each.
type Instance struct {
	Addr   string // "kind.name" or "kind.name[key]"
	Block  string // "kind.name"
	Key    string
	HasKey bool
	Kind   Kind
	Deps   []string // instance addresses, sorted
	b      *block
	// attrDeps are Deps by the attribute whose expression refers to them.
	attrDeps map[string][]string
}

type block struct {
	addr        string
	cfg         *StageBlock
	kind        Kind
	deps        map[string]bool // block addresses
	refs        map[string][]stageRef
	forEach     bool
	keys        []string
	eachValues  map[string]cty.Value
	forEachFrom string // the stage block when for_each is exactly stage.KIND.NAME
	// broken blocks (unknown kind, bad for_each, or depending on such a block) produce no
	// instances; their problems are already reported, so references to them stay silent.
	broken bool
	// badAttrs have a reference problem already reported; evaluating them would only repeat it.
	badAttrs map[string]bool
}

func (b *block) hasKey(k string) bool { _, ok := b.eachValues[k]; return ok }

// Build evaluates cfg: vars are -var overrides (NAME → text, parsed as an HCL expression
// unless the variable is a string). All problems are returned together.
func Build(cfg *Config, reg *Registry, vars map[string]string) (*Workflow, hcl.Diagnostics) {
	w := &Workflow{Config: cfg, Registry: reg, Graph: dag.New(), blocks: map[string]*block{}, byAddr: map[string]*Instance{}}
	// Every phase goes as far as it can, so that one run reports all problems in the file.
	diags := w.evalVariables(vars)
	diags = append(diags, w.evalPipelineBlock()...)
	diags = append(diags, w.collectBlocks()...)
	diags = append(diags, w.checkPipelineSettings()...)
	order, d := w.sortBlocks()
	diags = append(diags, d...)
	if d.HasErrors() {
		return w, diags // without an order nothing further can be evaluated
	}
	w.blockOrder = order
	for _, addr := range order {
		b := w.blocks[addr]
		for dep := range b.deps {
			if w.blocks[dep].broken {
				b.broken = true
			}
		}
		if b.badAttrs["for_each"] {
			b.broken = true // its reference problem is reported: no keys, and no second error
		}
		if b.broken {
			continue
		}
		if d := w.expand(b); d.HasErrors() {
			diags = append(diags, d...)
			b.broken = true
		}
	}
	diags = append(diags, w.linkInstances()...)
	diags = append(diags, w.checkSchedules()...)
	diags = append(diags, w.checkInstances()...)
	return w, diags
}

// checkInstances evaluates every instance with upstream outputs unknown, so that type errors,
// references to the wrong kind of output, missing attributes and the kinds' own checks
// surface now rather than mid-run. A problem
// that every instance of a block has alike (a value that does not depend on each.key) is
// reported once; one that only some instances have names them.
func (w *Workflow) checkInstances() hcl.Diagnostics {
	type problem struct {
		diag  *hcl.Diagnostic
		block string
		addrs []string
	}
	var order []*problem
	seen := map[string]*problem{}
	vals, instDiags := map[string]*Values{}, map[string]hcl.Diagnostics{}
	for _, inst := range w.Instances {
		v, ds := w.evaluate(inst, nil, true)
		if !ds.HasErrors() {
			vals[inst.Addr] = v
		}
		instDiags[inst.Addr] = ds
	}
	for _, inst := range w.Instances {
		ds := append(instDiags[inst.Addr], w.emptyInputs(inst, vals)...)
		for _, d := range ds {
			var subject string
			if d.Subject != nil {
				subject = d.Subject.String()
			}
			id := fmt.Sprintf("%s\x00%d\x00%s\x00%s\x00%s", inst.Block, d.Severity, d.Summary, d.Detail, subject)
			p := seen[id]
			if p == nil {
				p = &problem{diag: d, block: inst.Block}
				seen[id] = p
				order = append(order, p)
			}
			p.addrs = append(p.addrs, inst.Addr)
		}
	}
	var diags hcl.Diagnostics
	for _, p := range order {
		d := *p.diag
		if len(p.addrs) > 1 {
			// The expression's values (each.key is "cnn") are one instance's: they would mislead.
			d.Expression, d.EvalContext = nil, nil
		}
		if len(p.addrs) < len(w.BlockInstances(p.block)) {
			d.Detail = fmt.Sprintf("In %s: %s", strings.Join(p.addrs, ", "), lowerFirst(d.Detail))
		}
		diags = append(diags, &d)
	}
	sortBySubject(diags) // in the order of the file, an attribute's instances together
	return diags
}

// emptyInputs reports the references of inst's NonEmpty attributes to outputs that their
// stage will leave empty (see EmptyOutputter), given every instance's values.
func (w *Workflow) emptyInputs(inst *Instance, vals map[string]*Values) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, a := range inst.Kind.Attributes() {
		if !a.NonEmpty {
			continue
		}
		for _, r := range inst.b.refs[a.Name] {
			if r.Output == "" {
				continue
			}
			for _, up := range w.BlockInstances(r.Block) {
				eo, ok := up.Kind.(EmptyOutputter)
				if !ok || vals[up.Addr] == nil || !slices.Contains(inst.Deps, up.Addr) {
					continue
				}
				if why := eo.EmptyOutputs(vals[up.Addr])[r.Output]; why != "" {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty stage output",
						Detail: fmt.Sprintf("%s's %s takes %s's %s, which will be empty: %s.",
							inst.Kind.Name(), a.Name, up.Addr, r.Output, why),
						Subject: r.Range.Ptr()})
				}
			}
		}
	}
	return diags
}

// sortBySubject orders diagnostics by where they point (those without a subject last),
// keeping the order of those that point at the same place.
func sortBySubject(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
}

// Instance returns the instance with address addr.
func (w *Workflow) Instance(addr string) (*Instance, bool) {
	i, ok := w.byAddr[addr]
	return i, ok
}

// BlockInstances returns the instances of stage block "kind.name".
func (w *Workflow) BlockInstances(blockAddr string) []*Instance {
	var out []*Instance
	for _, i := range w.Instances {
		if i.Block == blockAddr {
			out = append(out, i)
		}
	}
	return out
}

// BlockAddrs returns every stage block address, sorted.
func (w *Workflow) BlockAddrs() []string {
	out := make([]string, 0, len(w.blocks))
	for a := range w.blocks {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// CheckSelector returns nil when s, a command line's stage selector (kind.name, kind.name[key]
// or kind.name.key), names a stage block or one of its instances, as Select takes it; else an
// error that lists what s could have meant: the keys of the block it names, with the closest
// key; the stages of the kind it names; or every stage, with the instances' keys.
func (w *Workflow) CheckSelector(s string) error {
	if _, ok := w.Instance(s); ok {
		return nil
	}
	block, key, hasKey := ParseInstanceSelector(s)
	if hasKey {
		if _, ok := w.Instance(InstanceAddr(block, key, true)); ok {
			return nil
		}
	}
	if len(w.BlockInstances(s)) > 0 {
		return nil
	}
	msg := fmt.Sprintf("no stage %q in %s", s, w.Config.Path)
	if b, ok := w.blocks[block]; ok && hasKey {
		if !b.forEach {
			return fmt.Errorf("%s: %s has no for_each, so no instances; use --stage %s", msg, block, block)
		}
		var keys []string
		for _, i := range w.BlockInstances(block) {
			keys = append(keys, i.Key)
		}
		msg = fmt.Sprintf("%s: %s has no instance %q; its keys are %s", msg, block, key, QuotedList(keys, "and"))
		if sug := suggest(key, keys); sug != "" {
			msg += fmt.Sprintf("; did you mean %q?", InstanceAddr(block, sug, true))
		}
		return errors.New(msg)
	}
	var all []string
	for _, i := range w.Instances {
		all = append(all, i.Addr)
	}
	all = append(all, w.BlockAddrs()...)
	if sug := suggest(s, all); sug != "" {
		return fmt.Errorf("%s; did you mean %q?", msg, sug)
	}
	// Each stage with its instances' keys: train.model[cnn, vgg19, vit].
	withKeys := func(a string) string {
		if !w.blocks[a].forEach {
			return a
		}
		var keys []string
		for _, i := range w.BlockInstances(a) {
			keys = append(keys, i.Key)
		}
		return a + "[" + strings.Join(keys, ", ") + "]"
	}
	var ofKind, stages []string // s a kind: its stages
	for _, a := range w.BlockAddrs() {
		if w.blocks[a].cfg.Kind == s {
			ofKind = append(ofKind, a)
		}
		stages = append(stages, withKeys(a))
	}
	switch {
	case len(ofKind) == 1:
		return fmt.Errorf("%s; %s is a stage kind: did you mean %q (%s)?", msg, s, ofKind[0], withKeys(ofKind[0]))
	case len(ofKind) > 1:
		return fmt.Errorf("%s; %s is a stage kind: its stages are %s", msg, s, JoinList(ofKind, "and"))
	}
	return fmt.Errorf("%s; stages: %s", msg, strings.Join(stages, ", "))
}

// QuotedList quotes each item and joins them as a sentence does (JoinList): "a", "b" or "c".
func QuotedList(items []string, conj string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return JoinList(q, conj)
}

func (w *Workflow) evalVariables(overrides map[string]string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	w.vars, w.badVar = map[string]cty.Value{}, false
	// A variable without a usable value is reported here once; it is unknown in expressions,
	// so that what refers to it raises no second error.
	bad := func(v *Variable) {
		w.vars[v.Name], w.badVar = cty.UnknownVal(v.Type), true
	}
	declared := map[string]*Variable{}
	var names []string
	for _, v := range w.Config.Variables {
		declared[v.Name] = v
		names = append(names, v.Name)
	}
	for name := range overrides {
		if _, ok := declared[name]; !ok {
			detail := fmt.Sprintf("-var %s: the file declares no variable %q.", name, name)
			if s := suggest(name, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += fmt.Sprintf(` Declare it with variable %q { default = … }.`, name)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable", Detail: detail})
		}
	}
	for _, v := range w.Config.Variables {
		val := v.Default
		if raw, ok := overrides[v.Name]; ok {
			parsed, err := parseVarValue(raw, v.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
					Detail: fmt.Sprintf("-var %s=%s: %s.", v.Name, raw, err), Subject: v.DeclRange.Ptr()})
				bad(v)
				continue
			}
			val = parsed
		}
		if val == cty.NilVal && v.BadDefault {
			bad(v) // the default's error says what to fix
			continue
		}
		if val == cty.NilVal {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for variable",
				Detail: fmt.Sprintf("Variable %q has no default; set it with -var %s=VALUE or give it a default.", v.Name, v.Name), Subject: v.DeclRange.Ptr()})
			bad(v)
			continue
		}
		w.vars[v.Name] = val
	}
	return diags
}

// parseVarValue reads a -var value: as text for string variables, else as an HCL expression
// (numbers, lists, maps), falling back to text for unconstrained variables.
func parseVarValue(raw string, t cty.Type) (cty.Value, error) {
	if t == cty.String {
		return cty.StringVal(raw), nil
	}
	expr, d := hclsyntax.ParseExpression([]byte(raw), "-var", hcl.InitialPos)
	if !d.HasErrors() {
		v, d := expr.Value(&hcl.EvalContext{Functions: functions()})
		if !d.HasErrors() {
			return convertTo(v, t)
		}
	}
	if t == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	return cty.NilVal, fmt.Errorf("not a valid %s", t.FriendlyName())
}

func (w *Workflow) baseContext() *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": objectOrEmpty(w.vars)},
		Functions: functions(),
	}
}

func (w *Workflow) evalPipelineBlock() hcl.Diagnostics {
	var diags hcl.Diagnostics
	w.pipelineVals = map[string]cty.Value{}
	w.pipelineRanges = map[string]hcl.Range{}
	ctx := w.baseContext()
	for name, a := range w.Config.Pipeline.Attrs {
		v, d := a.Expr.Value(ctx)
		suggestAttributes(a.Expr, ctx, d)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		w.pipelineVals[name] = v
		w.pipelineRanges[name] = a.Expr.Range()
	}
	w.Seed = DefaultSeed
	if v, ok := w.pipelineVals["seed"]; ok && !(v.IsKnown() && v.IsNull()) { // null: the default
		seed, err := wholeNumber(v)
		switch {
		case !v.IsKnown():
			// only a variable without a usable value, already reported, makes it unknown
		case err != nil:
			r := w.pipelineRanges["seed"]
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid seed",
				Detail: fmt.Sprintf("seed must be a whole number: %s.", err), Subject: r.Ptr()})
		default:
			w.Seed = seed
		}
	} else {
		w.pipelineVals["seed"] = cty.NumberIntVal(DefaultSeed)
	}
	return diags
}

// checkPipelineSettings reports a pipeline block setting that nothing uses: no stage kind in
// the file has an attribute of its name and no expression refers to it as pipeline.NAME. One
// that no registered kind has either is an error, as an unknown argument in a stage block is:
// it is most often a misspelling (sed for seed, image_sise), which would otherwise leave every
// stage on its default, and rerun them all for a changed seed. One that a kind absent from the
// file has (epochs, with the train stage commented out) is a warning: it has no effect now;
// so is one every stage that has it sets itself (epochs = var.epochs in every train stage).
func (w *Workflow) checkPipelineSettings() hcl.Diagnostics {
	used := map[string]bool{"seed": true}
	kindsKnown := true // every block's kind is known, so used holds all their attributes
	// takers are the blocks that have an attribute and leave it unset, taking the pipeline's.
	takers := map[string]int{}
	for _, b := range w.blocks {
		if b.kind == nil {
			kindsKnown = false // an unknown kind, reported already: its attributes are unknown
			continue
		}
		if r, ok := b.kind.(SettingReader); ok {
			for _, name := range r.ReadsSettings() {
				used[name] = true
				takers[name]++
			}
		}
		for _, a := range b.kind.Attributes() {
			used[a.Name] = true
			if b.cfg == nil || b.cfg.Content == nil {
				takers[a.Name]++ // not known: taken as unset
			} else if _, set := b.cfg.Content.Attributes[a.Name]; !set {
				takers[a.Name]++
			}
		}
	}
	referred := map[string]bool{}
	for _, f := range w.Config.Files {
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && len(e.Traversal) > 1 && e.Traversal.RootName() == "pipeline" {
				if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
					used[a.Name], referred[a.Name] = true, true
				}
			}
			return nil
		})
	}
	kindsOf := map[string][]string{} // attribute → the registered kinds that have it
	for _, name := range w.Registry.Names() {
		k, _ := w.Registry.Lookup(name)
		for _, a := range k.Attributes() {
			kindsOf[a.Name] = append(kindsOf[a.Name], name)
		}
	}
	var diags hcl.Diagnostics
	for _, name := range sortedKeys(w.Config.Pipeline.Attrs) {
		if used[name] && name != "seed" && kindsKnown && !referred[name] && takers[name] == 0 && len(kindsOf[name]) > 0 {
			r := w.Config.Pipeline.Attrs[name].NameRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unused pipeline setting",
				Detail:  fmt.Sprintf("Every stage that has an attribute %q sets its own, and nothing refers to pipeline.%s, so the setting has no effect: remove it, or leave %s unset where the pipeline's should apply.", name, name, name),
				Subject: r.Ptr()})
			continue
		}
		if used[name] {
			continue
		}
		r := w.Config.Pipeline.Attrs[name].NameRange
		if kinds := kindsOf[name]; len(kinds) > 0 {
			if !kindsKnown {
				continue
			}
			detail := fmt.Sprintf("No stage in this file has an attribute %q (only %s stages do) and nothing refers to pipeline.%s, so the setting has no effect.",
				name, JoinList(kinds, "or"), name)
			if s := suggest(name, sortedKeys(used)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unused pipeline setting", Detail: detail, Subject: r.Ptr()})
			continue
		}
		detail := fmt.Sprintf("No stage kind has an attribute %q and nothing refers to pipeline.%s: the pipeline block takes seed and defaults for the stages' attributes.", name, name)
		s := suggest(name, sortedKeys(used))
		if s == "" {
			s = suggest(name, sortedKeys(kindsOf))
		}
		if s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		} else {
			detail += fmt.Sprintf(" Remove it, or use it somewhere as pipeline.%s.", name)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown pipeline setting", Detail: detail, Subject: r.Ptr()})
	}
	sortBySubject(diags)
	return diags
}

func wholeNumber(v cty.Value) (int64, error) {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0, fmt.Errorf("got %s", v.Type().FriendlyName())
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != big.Exact {
		return 0, fmt.Errorf("%s is not a whole number", bf.String())
	}
	return i, nil
}

// collectBlocks reads every stage block's references and checks that they name declared
// stages, variables and pipeline settings.
func (w *Workflow) collectBlocks() hcl.Diagnostics {
	var diags hcl.Diagnostics
	var addrs []string
	for _, s := range w.Config.Stages {
		addrs = append(addrs, s.Addr())
	}
	for _, s := range w.Config.Stages {
		k, _ := w.Registry.Lookup(s.Kind)
		w.blocks[s.Addr()] = &block{addr: s.Addr(), cfg: s, kind: k, deps: map[string]bool{}, refs: map[string][]stageRef{},
			forEach: s.ForEach != nil, broken: s.Invalid, badAttrs: map[string]bool{}}
	}
	for _, s := range w.Config.Stages {
		b := w.blocks[s.Addr()]
		if b.broken {
			continue
		}
		traversals := map[string][]hcl.Traversal{}
		for name, a := range s.Content.Attributes {
			if name == "depends_on" {
				continue
			}
			traversals[name] = a.Expr.Variables()
		}
		traversals["depends_on"] = s.DependsOn
		for _, name := range sortedKeys(traversals) {
			for _, tr := range traversals[name] {
				if d := w.checkTraversal(b, name, tr, addrs); d.HasErrors() {
					diags = append(diags, d...)
					b.badAttrs[name] = true
				}
			}
		}
		if s.ForEach != nil {
			if tr, d := hcl.AbsTraversalForExpr(s.ForEach); !d.HasErrors() && tr.RootName() == "stage" && len(tr) == 3 {
				if r, dd := parseStageRef(tr); dd == nil {
					b.forEachFrom = r.Block
				}
			}
		}
	}
	return diags
}

func (w *Workflow) checkTraversal(b *block, attr string, tr hcl.Traversal, addrs []string) hcl.Diagnostics {
	rng := tr.SourceRange()
	switch tr.RootName() {
	case "stage":
		r, d := parseStageRef(tr)
		if d != nil {
			return hcl.Diagnostics{d}
		}
		if _, ok := w.blocks[r.Block]; !ok {
			detail := fmt.Sprintf("There is no stage %s in this file.", r.Block)
			if typo := w.misspelledKind(r.Block); typo != nil {
				// The block is there, its kind misspelled (reported): suggesting the
				// misspelling here would lead the other way.
				detail = fmt.Sprintf("There is no stage %s in this file, but stage %q %q (%s, line %d) looks like it, with its kind misspelled: fix the kind there, and this reference holds.",
					r.Block, typo.Kind, typo.Name, filepath.Base(typo.KindRange.Filename), typo.KindRange.Start.Line)
			} else if s := suggest(r.Block, addrs); s != "" {
				detail += fmt.Sprintf(" Did you mean stage.%s?", s)
			} else {
				detail += fmt.Sprintf(" Declared stages: %s.", strings.Join(addrs, ", "))
			}
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Reference to undeclared stage", Detail: detail, Subject: rng.Ptr()}}
		}
		b.deps[r.Block] = true
		b.refs[attr] = append(b.refs[attr], r)
	case "each":
		if !b.forEach || attr == "for_each" {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: `Reference to "each" without for_each`,
				Detail: "each.key and each.value exist only in the attributes of a stage that sets for_each.", Subject: rng.Ptr()}}
		}
	case "var":
		if len(tr) < 2 {
			break
		}
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, ok := w.vars[a.Name]; !ok && !w.declaresVar(a.Name) {
				var names []string
				for _, v := range w.Config.Variables {
					names = append(names, v.Name)
				}
				detail := fmt.Sprintf("There is no variable %q.", a.Name)
				if s := suggest(a.Name, names); s != "" {
					detail += fmt.Sprintf(" Did you mean var.%s?", s)
				} else {
					detail += fmt.Sprintf(" Declare it with variable %q { default = … }.", a.Name)
				}
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Reference to undeclared variable", Detail: detail, Subject: rng.Ptr()}}
			}
		}
	case "pipeline":
		if len(tr) < 2 {
			break
		}
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, ok := w.pipelineVals[a.Name]; !ok {
				detail := fmt.Sprintf("The pipeline block does not set %q.", a.Name)
				if s := suggest(a.Name, sortedKeys(w.pipelineVals)); s != "" {
					detail += fmt.Sprintf(" Did you mean pipeline.%s?", s)
				}
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown pipeline setting", Detail: detail, Subject: rng.Ptr()}}
			}
		}
	default:
		// split.main.train for stage.split.main.train: HCL's own message, that there is no
		// variable named "split", does not say what was meant.
		if len(tr) >= 2 && w.isKind(tr.RootName()) {
			meant := traversalString(tr)
			// With the stage's name mistyped too (split.mian.train), the closest stage.
			if step, ok := tr[1].(hcl.TraverseAttr); ok {
				if block := tr.RootName() + "." + step.Name; w.blocks[block] == nil {
					if like := suggest(block, w.BlockAddrs()); like != "" {
						meant = like + strings.TrimPrefix(meant, block)
					}
				}
			}
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown variable",
				Detail: fmt.Sprintf("There is no variable named %q. A reference to a stage starts with stage (%s is a stage kind): did you mean stage.%s?",
					tr.RootName(), tr.RootName(), meant),
				Subject: rng.Ptr()}}
		}
	}
	return nil
}

// isKind reports whether name is the kind of a stage in the file or a registered kind.
func (w *Workflow) isKind(name string) bool {
	for _, s := range w.Config.Stages {
		if s.Kind == name {
			return true
		}
	}
	_, ok := w.Registry.Lookup(name)
	return ok
}

func (w *Workflow) declaresVar(name string) bool {
	for _, v := range w.Config.Variables {
		if v.Name == name {
			return true
		}
	}
	return false
}

// sortBlocks orders the stage blocks and reports every dependency cycle.
func (w *Workflow) sortBlocks() ([]string, hcl.Diagnostics) {
	g := dag.New()
	for addr, b := range w.blocks {
		g.Add(addr)
		for d := range b.deps {
			g.Connect(addr, d)
		}
	}
	order, err := g.Sort()
	if err == nil {
		return order, nil
	}
	var diags hcl.Diagnostics
	for _, cycle := range err.(*dag.CycleError).Cycles {
		if len(cycle) == 1 {
			diags = append(diags, w.selfReference(cycle[0]))
			continue
		}
		var steps []string
		viaDependsOn, viaOutputs := false, false
		for i, a := range cycle {
			next := cycle[(i+1)%len(cycle)]
			attr, rng := w.refWhere(a, next)
			if attr == "depends_on" {
				viaDependsOn = true
				steps = append(steps, fmt.Sprintf("%s lists stage.%s in depends_on (%s)", a, next, rng))
			} else {
				viaOutputs = true
				steps = append(steps, fmt.Sprintf("%s refers to stage.%s in %s (%s)", a, next, cmp.Or(attr, "its block"), rng))
			}
		}
		why := "A stage cannot depend on its own output"
		switch {
		case viaDependsOn && viaOutputs:
			why = "A stage cannot wait for itself, through outputs or depends_on"
		case viaDependsOn:
			why = "A stage cannot wait for itself through depends_on"
		}
		first := w.blocks[cycle[0]].cfg.DeclRange
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
			Summary: "Dependency cycle: " + strings.Join(append(append([]string{}, cycle...), cycle[0]), " → "),
			Detail:  strings.Join(steps, "; ") + ". " + why + "; remove one of these references.",
			Subject: first.Ptr()})
	}
	return nil, diags
}

// selfReference is the diagnostic of a stage that names itself, at the reference.
func (w *Workflow) selfReference(addr string) *hcl.Diagnostic {
	attr, rng := w.refWhere(addr, addr)
	if attr == "depends_on" {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Stage depends on itself",
			Detail:  fmt.Sprintf("%s lists itself in depends_on: a stage cannot wait for itself; remove that entry.", addr),
			Subject: rng.Ptr()}
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Stage refers to itself",
		Detail:  fmt.Sprintf("%s refers to stage.%s in %s: a stage cannot use its own output; refer to another stage's output, or to a path.", addr, addr, cmp.Or(attr, "its block")),
		Subject: rng.Ptr()}
}

// refWhere returns the attribute and range of a reference of stage block from to stage block
// to: one in an attribute rather than in depends_on when there are both (the one that makes
// the dependency whatever depends_on says), and the block itself when none is found.
func (w *Workflow) refWhere(from, to string) (string, hcl.Range) {
	b := w.blocks[from]
	attrs := sortedKeys(b.refs)
	slices.SortStableFunc(attrs, func(x, y string) int { return cmpBool(x == "depends_on", y == "depends_on") })
	for _, attr := range attrs {
		for _, r := range b.refs[attr] {
			if r.Block == to {
				return attr, r.Range
			}
		}
	}
	return "", b.cfg.DeclRange
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// lowerFirst returns s with its first letter in lower case when it only starts a sentence ("A
// vit patch" after "In train.model[vit]: "), not when the word is a name or an acronym (ViT).
func lowerFirst(s string) string {
	r := []rune(s)
	if len(r) < 2 || !unicode.IsUpper(r[0]) || !(unicode.IsLower(r[1]) || r[1] == ' ') {
		return s
	}
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// misspelledKind returns the block of an unknown kind that a reference to addr (kind.name)
// was meant for: one of that name whose kind is a misspelling of addr's kind, if any.
func (w *Workflow) misspelledKind(addr string) *StageBlock {
	kind, name, _ := strings.Cut(addr, ".")
	for _, a := range sortedKeys(w.blocks) { // the first by address, whatever the map's order
		if b := w.blocks[a]; b.kind == nil && b.cfg.Name == name && suggest(b.cfg.Kind, []string{kind}) != "" {
			return b.cfg
		}
	}
	return nil
}
