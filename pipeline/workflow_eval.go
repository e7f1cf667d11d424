package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Outputs gives the published output paths (workspace-relative) of instances that have them;
// instances without are treated as not yet produced, so references to them are unknown.
type Outputs map[string]map[string]string

// stageObject is the value of `stage` in expressions: stage.KIND.NAME is an object of
// outputs, or for a stage with for_each an object of instances, each an object of outputs.
// With typed, outputs of kinds with OutputTypes carry an outputMark (see checkOutputTypes).
func (w *Workflow) stageObject(outs Outputs, typed bool) cty.Value {
	kinds := map[string]map[string]cty.Value{}
	for _, addr := range w.blockOrder {
		b := w.blocks[addr]
		var v cty.Value
		if b.broken {
			v = cty.DynamicVal
		} else if b.forEach {
			inst := map[string]cty.Value{}
			for _, k := range b.keys {
				inst[k] = outputObject(b, k, outs[InstanceAddr(addr, k, true)], typed)
			}
			v = objectOrEmpty(inst)
		} else {
			v = outputObject(b, "", outs[addr], typed)
		}
		if kinds[b.cfg.Kind] == nil {
			kinds[b.cfg.Kind] = map[string]cty.Value{}
		}
		kinds[b.cfg.Kind][b.cfg.Name] = v
	}
	obj := map[string]cty.Value{}
	for k, names := range kinds {
		obj[k] = cty.ObjectVal(names)
	}
	return objectOrEmpty(obj)
}

// outputObject is the object of an instance's outputs (key is its instance key, if any).
func outputObject(b *block, key string, paths map[string]string, typed bool) cty.Value {
	var types map[string]string
	if t, ok := b.kind.(OutputTyper); ok && typed {
		types = t.OutputTypes()
	}
	m := map[string]cty.Value{}
	for _, o := range b.kind.Outputs() {
		if p, ok := paths[o]; ok {
			m[o] = cty.StringVal(p)
		} else {
			m[o] = cty.UnknownVal(cty.String)
		}
		if t, ok := types[o]; ok {
			m[o] = m[o].Mark(outputMark{block: b.addr, key: key, kind: b.kind.Name(), output: o, typ: t})
		}
	}
	return objectOrEmpty(m)
}

func (w *Workflow) evalContext(outs Outputs, typed bool) *hcl.EvalContext {
	ctx := w.baseContext()
	ctx.Variables["pipeline"] = objectOrEmpty(w.pipelineVals)
	ctx.Variables["stage"] = w.stageObject(outs, typed)
	return ctx
}

// uniqueDiags returns diags with each problem once: the same summary and detail at the same
// place, as a for expression gives for each element it fails on alike.
func uniqueDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		subject := ""
		if d.Subject != nil {
			subject = d.Subject.String()
		}
		id := fmt.Sprintf("%d\x00%s\x00%s\x00%s", d.Severity, d.Summary, d.Detail, subject)
		if !seen[id] {
			seen[id] = true
			out = append(out, d)
		}
	}
	return out
}

// expand evaluates a block's for_each (if any) into instance keys. Keys must be known before
// anything runs: a set of strings, a map, or another stage's instances.
func (w *Workflow) expand(b *block) hcl.Diagnostics {
	if !b.forEach {
		w.addInstance(&Instance{Addr: b.addr, Block: b.addr, Kind: b.kind, b: b})
		b.eachValues = map[string]cty.Value{}
		return nil
	}
	expr := b.cfg.ForEach
	ctx := w.evalContext(nil, false)
	v, diags := expr.Value(ctx)
	diags = uniqueDiags(diags) // a for expression's problem, once, not once per element
	suggestAttributes(expr, ctx, diags)
	if diags.HasErrors() {
		return diags
	}
	// A variable without a usable value (already reported) is unknown, and so is what is
	// made from it (var.keys, or pipeline.models set from it): no keys, and no second error.
	// (Another stage's instances are a known object whose outputs are unknown.)
	if w.badVar && (!v.IsKnown() || !v.Type().IsObjectType() && !v.IsWhollyKnown()) {
		b.broken = true
		return nil
	}
	bad := func(why string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each argument",
			Detail:  why + ` for_each takes a set of strings (toset(["cnn", "vit"])), a map, or another stage with for_each (stage.train.model).`,
			Subject: expr.Range().Ptr()}}
	}
	if v.IsNull() {
		return bad("The value is null.")
	}
	if !v.CanIterateElements() {
		return bad(fmt.Sprintf("The value is %s.", WithArticle(v.Type().FriendlyName())))
	}
	b.eachValues = map[string]cty.Value{}
	ty := v.Type()
	switch {
	case ty.IsSetType():
		if !v.IsKnown() {
			return bad("The set's elements are not known before upstream stages run.")
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if !e.IsKnown() || e.IsNull() || e.Type() != cty.String {
				return bad("Every element of the set must be a known string.")
			}
			b.eachValues[e.AsString()] = e
		}
	case ty.IsMapType() || ty.IsObjectType():
		if !v.IsKnown() {
			return bad("The map's keys are not known before upstream stages run.")
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			b.eachValues[k.AsString()] = e
		}
	default:
		return bad(fmt.Sprintf("The value is %s; a list may hold duplicates, so convert it with toset().", WithArticle(ty.FriendlyName())))
	}
	b.keys = sortedKeys(b.eachValues)
	for _, k := range b.keys {
		w.addInstance(&Instance{Addr: InstanceAddr(b.addr, k, true), Block: b.addr, Key: k, HasKey: true, Kind: b.kind, b: b})
	}
	return nil
}

func (w *Workflow) addInstance(i *Instance) {
	w.Instances = append(w.Instances, i)
	w.byAddr[i.Addr] = i
	w.Graph.Add(i.Addr)
}

// linkInstances resolves references to instances and adds the instance-level edges. An
// instance of a stage whose for_each is another stage depends only on its namesake there.
func (w *Workflow) linkInstances() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, inst := range w.Instances {
		b := inst.b
		deps := map[string]bool{}
		inst.attrDeps = map[string][]string{}
		for _, attr := range sortedKeys(b.refs) {
			indexed := w.indexedRefs(inst, attr)
			add := func(addr string) {
				deps[addr] = true
				if !slices.Contains(inst.attrDeps[attr], addr) {
					inst.attrDeps[attr] = append(inst.attrDeps[attr], addr)
				}
			}
			for i := range b.refs[attr] {
				r := &b.refs[attr][i]
				up := w.blocks[r.Block]
				if up.broken {
					continue
				}
				if d := r.resolve(up); d != nil {
					if !b.badAttrs[attr] { // report once per block, not per instance
						diags = append(diags, d)
						b.badAttrs[attr] = true
					}
					continue
				}
				switch {
				case r.HasKey:
					add(InstanceAddr(r.Block, r.Key, true))
				case attr == "for_each" && b.forEachFrom == r.Block && inst.HasKey:
					add(InstanceAddr(r.Block, inst.Key, true))
				case up.forEach && up.hasKey(indexed[r.Range]):
					add(InstanceAddr(r.Block, indexed[r.Range], true))
				default:
					for _, ui := range w.BlockInstances(r.Block) {
						add(ui.Addr)
					}
				}
			}
		}
		inst.Deps = sortedKeys(deps)
		for _, d := range inst.Deps {
			w.Graph.Connect(inst.Addr, d)
		}
	}
	return diags
}

// indexedRefs finds, in attribute attr of instance inst, the stage references indexed by an
// expression of each.key and variables (stage.train.model[each.key].saved_model,
// stage.train.model[var.arch].saved_model), and returns
// the instance key each indexes for inst, by the reference's source range: such a reference
// depends on that instance alone, not on every instance of the stage.
func (w *Workflow) indexedRefs(inst *Instance, attr string) map[hcl.Range]string {
	a, ok := inst.b.cfg.Content.Attributes[attr]
	if !ok {
		return nil
	}
	expr, ok := a.Expr.(hclsyntax.Expression)
	if !ok {
		return nil
	}
	ctx := w.baseContext()
	if inst.HasKey {
		ctx = ctx.NewChild()
		ctx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{
			"key": cty.StringVal(inst.Key), "value": cty.DynamicVal})}
	}
	out := map[hcl.Range]string{}
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		ix, ok := n.(*hclsyntax.IndexExpr)
		if !ok {
			return nil
		}
		coll, ok := ix.Collection.(*hclsyntax.ScopeTraversalExpr)
		if !ok || coll.Traversal.RootName() != "stage" || len(coll.Traversal) != 3 {
			return nil
		}
		for _, tr := range ix.Key.Variables() {
			if tr.RootName() != "var" && !(tr.RootName() == "each" && len(tr) == 2 && isAttrStep(tr[1], "key")) {
				return nil
			}
		}
		if key, d := ix.Key.Value(ctx); !d.HasErrors() && key.IsWhollyKnown() && key.Type() == cty.String {
			out[coll.Traversal.SourceRange()] = key.AsString()
		}
		return nil
	})
	return out
}

func isAttrStep(step hcl.Traverser, name string) bool {
	a, ok := step.(hcl.TraverseAttr)
	return ok && a.Name == name
}

func (w *Workflow) checkSchedules() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range w.Config.Schedules {
		for _, tr := range s.Targets {
			r, d := parseStageRef(tr)
			if d != nil {
				diags = append(diags, d)
				continue
			}
			b, ok := w.blocks[r.Block]
			if !ok {
				detail := fmt.Sprintf("Schedule %q targets stage %s, which is not declared.", s.Name, r.Block)
				if sug := suggest(r.Block, w.BlockAddrs()); sug != "" {
					detail += fmt.Sprintf(" Did you mean stage.%s?", sug)
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared stage", Detail: detail, Subject: r.Range.Ptr()})
				continue
			}
			if b.broken {
				continue
			}
			if d := r.resolve(b); d != nil {
				diags = append(diags, d)
			} else if r.Output != "" {
				addr := InstanceAddr(r.Block, r.Key, r.HasKey)
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid schedule target",
					Detail:  fmt.Sprintf("Schedule %q targets stage.%s.%s, an output: targets are stages; use stage.%s.", s.Name, addr, r.Output, addr),
					Subject: r.Range.Ptr()})
			}
		}
	}
	return diags
}

// ScheduleTargets returns the instance addresses a schedule runs.
func (w *Workflow) ScheduleTargets(s *Schedule) []string {
	var out []string
	for _, tr := range s.Targets {
		r, d := parseStageRef(tr)
		if d != nil {
			continue
		}
		b := w.blocks[r.Block]
		if b == nil || r.resolve(b) != nil {
			continue
		}
		if r.HasKey {
			out = append(out, InstanceAddr(r.Block, r.Key, true))
			continue
		}
		for _, i := range w.BlockInstances(r.Block) {
			out = append(out, i.Addr)
		}
	}
	sort.Strings(out)
	return slices.Compact(out) // a stage named twice runs once
}

// Evaluate computes an instance's attribute values. References to instances missing from outs
// are unknown (Values.Known reports false).
func (w *Workflow) Evaluate(inst *Instance, outs Outputs) (*Values, hcl.Diagnostics) {
	return w.evaluate(inst, outs, false)
}

// evaluate is Evaluate; with typed it also checks that the stage outputs reaching each
// attribute are of a type the attribute accepts.
func (w *Workflow) evaluate(inst *Instance, outs Outputs, typed bool) (*Values, hcl.Diagnostics) {
	return w.evaluateAs(inst, outs, typed, true)
}

// evaluateAs is evaluate; the kind's checks (Validator) run only with validate.
func (w *Workflow) evaluateAs(inst *Instance, outs Outputs, typed, validate bool) (*Values, hcl.Diagnostics) {
	b := inst.b
	ctx := w.evalContext(outs, typed)
	if inst.HasKey {
		each := w.eachValue(b, inst.Key, ctx, outs, typed)
		ctx = ctx.NewChild()
		ctx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(inst.Key), "value": each})}
	}
	v := &Values{schema: map[string]Attribute{}, vals: map[string]cty.Value{}, ranges: map[string]hcl.Range{}, refs: map[string][]string{}, inherited: map[string]bool{},
		settings: w.pipelineVals, upstream: func(attr, name string) (cty.Value, bool, bool) { return w.upstreamValue(inst, attr, name) }}
	var diags hcl.Diagnostics
	for _, a := range b.kind.Attributes() {
		v.schema[a.Name] = a
		if b.badAttrs[a.Name] {
			continue
		}
		var val cty.Value
		var rng hcl.Range
		var marks cty.ValueMarks
		written, nulled := false, false
		if attr, ok := b.cfg.Content.Attributes[a.Name]; ok {
			got, d := attr.Expr.Value(ctx)
			suggestAttributes(attr.Expr, ctx, d)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			for _, r := range b.refs[a.Name] {
				v.refs[a.Name] = append(v.refs[a.Name], r.Block)
			}
			got, marks = got.UnmarkDeep() // only typed evaluation marks values
			// An optional attribute set to null (val = var.x, whose default is null) takes the
			// kind's default: not the pipeline block's value, which null opts the stage out of.
			if written = !got.IsKnown() || !got.IsNull() || a.Required; written {
				val, rng = got, attr.Expr.Range()
			}
			nulled = !written
		}
		pv, inPipeline := w.pipelineVals[a.Name]
		inPipeline = inPipeline && !nulled && (!pv.IsKnown() || !pv.IsNull()) // null there: unset
		switch {
		case written:
		case inPipeline:
			val, rng = pv, w.pipelineRanges[a.Name]
			v.inherited[a.Name] = true
		case a.Required:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail:  fmt.Sprintf("Stage kind %s needs %q (%s). Set it in the stage block or in the pipeline block.", b.kind.Name(), a.Name, a.Doc),
				Subject: b.cfg.DeclRange.Ptr()})
			continue
		case a.Default != cty.NilVal:
			val, rng = a.Default, b.cfg.DeclRange
		default:
			val, rng = cty.NullVal(a.Type), b.cfg.DeclRange
		}
		cv, err := convertTo(val, a.Type)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
				Detail: fmt.Sprintf("Attribute %q of %s stage must be %s: %s.%s", a.Name, WithArticle(b.kind.Name()), WithArticle(a.Type.FriendlyName()), conversionProblem(val, err),
					w.wholeStageHint(b, a)), Subject: rng.Ptr()})
			continue
		}
		if cv.IsKnown() && cv.IsNull() && a.Required {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail: fmt.Sprintf("Attribute %q of %s stage must not be null.", a.Name, WithArticle(b.kind.Name())), Subject: rng.Ptr()})
			continue
		}
		if where, ok := nullElement(cv); ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Null in a collection",
				Detail:  fmt.Sprintf("Attribute %q of %s stage holds null %s; remove it or give a value.", a.Name, WithArticle(b.kind.Name()), where),
				Subject: rng.Ptr()})
			continue
		}
		if d := w.checkOutputTypes(b, a, rng, marks); len(d) > 0 {
			diags = append(diags, d...)
			continue
		}
		// An empty path would be the workspace folder, which holds the store. (An optional
		// attribute taking stage outputs may be "" for none, as init_from = cond ? path : "".)
		if (a.Role == Source || a.Required && len(a.Accepts) > 0) && hasEmptyString(cv) {
			detail := emptyPathDetail(a.Name, filepath.Base(w.Config.Path))
			if !a.Required {
				detail += fmt.Sprintf(" To leave %s unset, remove the line.", a.Name)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty path", Detail: detail, Subject: rng.Ptr()})
			continue
		}
		if a.Role == Source && cv.IsKnown() && !cv.IsNull() && cv.Type() == cty.String {
			cv = cty.StringVal(w.inWorkspace(cv.AsString()))
		}
		v.vals[a.Name], v.ranges[a.Name] = cv, rng
		for m := range marks {
			if om, ok := m.(outputMark); ok {
				if v.from == nil {
					v.from = map[string][]string{}
				}
				v.from[a.Name] = append(v.from[a.Name], om.kind+"."+om.output)
			}
		}
		if from := v.from[a.Name]; len(from) > 1 {
			slices.Sort(from)
			v.from[a.Name] = slices.Compact(from)
		}
	}
	if val, ok := b.kind.(Validator); ok && validate {
		if !diags.HasErrors() {
			diags = append(diags, val.Validate(v)...)
		} else {
			// Values from the pipeline block are checked too: their errors point there.
			var given []hcl.Range
			for name := range v.vals {
				if v.inherited[name] {
					given = append(given, v.ranges[name])
				}
			}
			diags = append(diags, validateRest(val, v, b.kind.Attributes(), b.cfg.Content.Attributes, given)...)
		}
	}
	return v, diags
}

// validateRest runs a kind's checks on a stage some of whose attributes did not evaluate, so
// that one wrong type does not hide the stage's other problems. The attributes that did not
// evaluate are unknown to the checks (which skip what they cannot know), not absent, which
// would read as left out (checks cope with unknown values, as upstream outputs are unknown
// when a file is validated); only errors about attributes written in the block that did
// evaluate, or at the ranges given (the pipeline block's values it took), are kept.
func validateRest(val Validator, v *Values, attrs []Attribute, written hcl.Attributes, given []hcl.Range) (diags hcl.Diagnostics) {
	ok := map[hcl.Range]bool{}
	for _, r := range given {
		ok[r] = true
	}
	for name, attr := range written {
		if _, evaluated := v.vals[name]; evaluated {
			ok[attr.Expr.Range()] = true
		}
	}
	rest := &Values{schema: v.schema, vals: maps.Clone(v.vals), ranges: v.ranges, refs: v.refs, from: v.from, settings: v.settings, inherited: v.inherited, upstream: v.upstream}
	for _, a := range attrs {
		if _, evaluated := rest.vals[a.Name]; !evaluated {
			rest.vals[a.Name] = cty.UnknownVal(a.Type)
		}
	}
	for _, d := range val.Validate(rest) {
		if d.Subject != nil && ok[*d.Subject] {
			diags = append(diags, d)
		}
	}
	return diags
}

// eachValue is each.value for key: the for_each element, with a stage's outputs filled in
// (ctx is the instance's evaluation context, without each).
func (w *Workflow) eachValue(b *block, key string, ctx *hcl.EvalContext, outs Outputs, typed bool) cty.Value {
	if b.forEachFrom != "" {
		return outputObject(w.blocks[b.forEachFrom], key, outs[InstanceAddr(b.forEachFrom, key, true)], typed)
	}
	// A for_each made of stage outputs ({ cnn = stage.train.a.saved_model }) was expanded
	// before they existed: evaluate it again for the outputs known now (marked when typed).
	if len(b.refs["for_each"]) > 0 {
		if v, d := b.cfg.ForEach.Value(ctx); !d.HasErrors() {
			if e, ok := elementAt(v, key); ok {
				return e
			}
		}
	}
	return b.eachValues[key]
}

// elementAt is the element of map or object v under key, with v's own marks.
func elementAt(v cty.Value, key string) (cty.Value, bool) {
	v, marks := v.Unmark()
	switch t := v.Type(); {
	case !v.IsKnown() || v.IsNull():
		return cty.NilVal, false
	case t.IsObjectType() && t.HasAttribute(key):
		return v.GetAttr(key).WithMarks(marks), true
	case t.IsMapType() && v.HasIndex(cty.StringVal(key)).True():
		return v.Index(cty.StringVal(key)).WithMarks(marks), true
	}
	return cty.NilVal, false
}

// wholeStageHint suggests, for a string attribute given a whole stage (stage.split.main), the
// outputs of that stage it may have meant: the one named like the attribute, else those of a
// type it accepts, else all; "" when the attribute refers to no whole stage.
func (w *Workflow) wholeStageHint(b *block, a Attribute) string {
	if a.Type != cty.String {
		return ""
	}
	for _, r := range b.refs[a.Name] {
		up := w.blocks[r.Block]
		if r.Output != "" || up == nil || up.kind == nil {
			continue
		}
		ref := "stage." + r.Block
		what := "the whole stage, an object of its outputs"
		switch {
		case r.HasKey:
			ref += fmt.Sprintf("[%q]", r.Key)
		case up.forEach:
			what = "the whole stage, an object of its instances"
		}
		outs := slices.Clone(up.kind.Outputs())
		var picks []string
		if slices.Contains(outs, a.Name) {
			picks = []string{a.Name}
		} else if t, ok := up.kind.(OutputTyper); ok && len(a.Accepts) > 0 {
			types := t.OutputTypes()
			for _, o := range outs {
				if slices.Contains(a.Accepts, types[o]) {
					picks = append(picks, o)
				}
			}
		}
		if len(picks) == 0 {
			picks = outs
		}
		each := ref
		if up.forEach && !r.HasKey {
			each += "[KEY]"
		}
		for i, o := range picks {
			picks[i] = each + "." + o
		}
		return fmt.Sprintf(" %s is %s; did you mean %s?", ref, what, strings.Join(picks, " or "))
	}
	return ""
}

// hasEmptyString reports whether val is, or holds, a known empty string: in an attribute that
// takes paths, an empty path.
func hasEmptyString(val cty.Value) bool {
	found := false
	cty.Walk(val, func(_ cty.Path, x cty.Value) (bool, error) {
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.String && x.AsString() == "" {
			found = true
		}
		return !found, nil
	})
	return found
}

// upstreamValue looks for attribute name along every path of references from attribute attr
// of inst (see Values.UpstreamValue): on each path, the first instance whose kind has the
// attribute gives it its value, evaluated without upstream outputs (and without the kinds'
// checks). found reports whether some path reaches such an instance; ok, whether every path
// does and all agree on a value known before anything runs (train = cond ? augmented : split
// reaches two splits, which may differ).
func (w *Workflow) upstreamValue(inst *Instance, attr, name string) (val cty.Value, found, ok bool) {
	type result struct {
		vals    []cty.Value
		unknown bool // a path ends without the attribute, or with a value not known yet
	}
	memo := map[string]*result{}
	var resolve func(addr string) *result
	resolve = func(addr string) *result {
		if r, done := memo[addr]; done {
			if r == nil { // a cycle: reported elsewhere
				return &result{unknown: true}
			}
			return r
		}
		memo[addr] = nil
		r := &result{}
		ui := w.byAddr[addr]
		switch {
		case ui == nil || ui.b.broken:
			r.unknown = true
		case slices.ContainsFunc(ui.Kind.Attributes(), func(a Attribute) bool { return a.Name == name }):
			if v := w.plainValues(ui).Get(name); v.IsWhollyKnown() && !v.IsNull() {
				r.vals = []cty.Value{v}
			} else {
				r.unknown = true
			}
		case len(ui.Deps) == 0:
			r.unknown = true // a path given as is: the stage's inputs are not a stage's
		default:
			for _, d := range ui.Deps {
				sub := resolve(d)
				r.vals = append(r.vals, sub.vals...)
				r.unknown = r.unknown || sub.unknown
			}
		}
		memo[addr] = r
		return r
	}
	var vals []cty.Value
	unknown := false
	for _, addr := range inst.attrDeps[attr] {
		r := resolve(addr)
		vals = append(vals, r.vals...)
		unknown = unknown || r.unknown
	}
	if len(vals) == 0 {
		return cty.NilVal, false, false
	}
	for _, v := range vals[1:] {
		if !v.RawEquals(vals[0]) {
			return cty.NilVal, true, false
		}
	}
	return vals[0], true, !unknown
}

// plainValues returns inst's values evaluated without upstream outputs and without its kind's
// checks, computed once.
func (w *Workflow) plainValues(inst *Instance) *Values {
	w.plainMu.Lock()
	v, ok := w.plain[inst.Addr]
	w.plainMu.Unlock()
	if ok {
		return v
	}
	v, _ = w.evaluateAs(inst, nil, false, false)
	w.plainMu.Lock()
	if w.plain == nil {
		w.plain = map[string]*Values{}
	}
	w.plain[inst.Addr] = v
	w.plainMu.Unlock()
	return v
}

// conversionProblem says why val could not be converted, for a diagnostic that has already
// said what was expected: cty's "a number is required" says it again, so what was given is
// named instead ("got the string \"abc\"").
func conversionProblem(val cty.Value, err error) string {
	// An element of a list or map at fault is named by where it is: at [1], got an object.
	if sub, where, inner, ok := elementAtFault(val, err); ok {
		return fmt.Sprintf("at %s, %s", where, conversionProblem(sub, inner))
	}
	msg := err.Error()
	if !strings.HasSuffix(msg, " is required") && !strings.Contains(msg, " required, but have ") || !val.IsWhollyKnown() || val.IsNull() {
		return msg
	}
	switch t := val.Type(); {
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "got a list"
	case t.IsObjectType() || t.IsMapType():
		return "got an object"
	case t == cty.String:
		return fmt.Sprintf("got the string %q", val.AsString())
	case t == cty.Bool:
		return fmt.Sprintf("got %v", val.True())
	case t == cty.Number:
		return "got the number " + val.AsBigFloat().Text('g', -1)
	default:
		return "got " + WithArticle(t.FriendlyName())
	}
}

// elementAtFault finds the element of val, a list or map (or object), that a conversion of val
// failed on, from err: cty's PathError for a map, its "element N: …" for a list. It returns
// the element, where it is ([1], ["b"]) and the error about it alone.
func elementAtFault(val cty.Value, err error) (cty.Value, string, error, bool) {
	if !val.IsWhollyKnown() || val.IsNull() {
		return cty.NilVal, "", nil, false
	}
	var pe cty.PathError
	if errors.As(err, &pe) && len(pe.Path) == 1 {
		if st, ok := pe.Path[0].(cty.IndexStep); ok && st.Key.Type() == cty.String && val.Type().IsObjectType() && val.Type().HasAttribute(st.Key.AsString()) {
			return val.GetAttr(st.Key.AsString()), fmt.Sprintf("[%q]", st.Key.AsString()), errors.New(pe.Error()), true
		}
	}
	var i int
	var rest string
	if n, _ := fmt.Sscanf(err.Error(), "element %d:", &i); n == 1 && val.Type().IsTupleType() && i >= 0 && i < val.LengthInt() {
		_, rest, _ = strings.Cut(err.Error(), ": ")
		return val.Index(cty.NumberIntVal(int64(i))), fmt.Sprintf("[%d]", i), errors.New(rest), true
	}
	return cty.NilVal, "", nil, false
}

// suggestAttributes adds a "did you mean" to each diagnostic in diags, from evaluating expr in
// ctx, that says an object has no attribute of the name given (each.value.saved_modle, where
// each.value is a stage's outputs): the closest name the object has, or else its names when
// they are few. A reference straight to a stage output gets its suggestion from the stage
// (stageRef.resolve); one through each.value, a variable or a pipeline setting gets it here,
// from the value found by evaluating the reference up to the step at fault.
func suggestAttributes(expr hcl.Expression, ctx *hcl.EvalContext, diags hcl.Diagnostics) {
	misses := map[hcl.Range][]*hcl.Diagnostic{} // a for expression misses once per element
	for _, d := range diags {
		if d.Summary == "Unsupported attribute" && d.Subject != nil && strings.HasPrefix(d.Detail, "This object does not have an attribute named ") {
			misses[*d.Subject] = append(misses[*d.Subject], d)
		}
	}
	syn, ok := expr.(hclsyntax.Expression)
	if len(misses) == 0 || !ok {
		return
	}
	suggestIn(syn, ctx, misses)
}

// suggestIn is suggestAttributes for the misses left in expr, evaluated in ctx. The
// expressions of a for expression ({ for k, v in stage.train.m : k => v.saved_modle }) are
// looked at with its variables bound to the collection's first element.
func suggestIn(expr hclsyntax.Expression, ctx *hcl.EvalContext, misses map[hcl.Range][]*hcl.Diagnostic) {
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		if len(misses) == 0 {
			return nil
		}
		var tr hcl.Traversal
		var from func(hcl.Traversal) (cty.Value, hcl.Diagnostics) // the value of a prefix of tr
		switch e := n.(type) {
		case *hclsyntax.ForExpr:
			coll, d := e.CollExpr.Value(ctx)
			coll, _ = coll.UnmarkDeep()
			if d.HasErrors() || !coll.IsKnown() || coll.IsNull() || !coll.CanIterateElements() || coll.LengthInt() == 0 {
				return nil
			}
			it := coll.ElementIterator()
			it.Next()
			k, v := it.Element()
			child := ctx.NewChild()
			child.Variables = map[string]cty.Value{e.ValVar: v}
			if e.KeyVar != "" {
				child.Variables[e.KeyVar] = k
			}
			for _, sub := range []hclsyntax.Expression{e.KeyExpr, e.ValExpr, e.CondExpr} {
				if sub != nil {
					suggestIn(sub, child, misses)
				}
			}
			return nil
		case *hclsyntax.ScopeTraversalExpr:
			tr = e.Traversal
			from = func(prefix hcl.Traversal) (cty.Value, hcl.Diagnostics) { return prefix.TraverseAbs(ctx) }
		case *hclsyntax.RelativeTraversalExpr:
			tr = e.Traversal
			from = func(prefix hcl.Traversal) (cty.Value, hcl.Diagnostics) {
				src, d := e.Source.Value(ctx)
				if d.HasErrors() {
					return cty.NilVal, d
				}
				return prefix.TraverseRel(src)
			}
		default:
			return nil
		}
		for i, step := range tr {
			a, ok := step.(hcl.TraverseAttr)
			if !ok || misses[a.SrcRange] == nil {
				continue
			}
			obj, pd := from(tr[:i])
			if pd.HasErrors() || obj == cty.NilVal {
				continue
			}
			obj, _ = obj.Unmark()
			if !obj.Type().IsObjectType() {
				continue
			}
			names := sortedKeys(obj.Type().AttributeTypes())
			for _, d := range misses[a.SrcRange] {
				if sug := suggest(a.Name, names); sug != "" {
					d.Detail += fmt.Sprintf(" Did you mean %q?", sug)
				} else if len(names) > 0 && len(names) <= 10 {
					d.Detail += fmt.Sprintf(" Its attributes are %s.", quoteList(names))
				}
			}
			delete(misses, a.SrcRange)
		}
		return nil
	})
}

// nullElement finds a null element in a list, set, tuple or map value (nested too), which the
// kinds' checks and keys cannot read, and says where ("as its element 2", "at key \"a\""). Null
// attributes of objects are left alone: an object's optional attributes may be null.
func nullElement(v cty.Value) (string, bool) {
	if !v.IsKnown() || v.IsNull() {
		return "", false
	}
	t := v.Type()
	if !t.IsListType() && !t.IsSetType() && !t.IsTupleType() && !t.IsMapType() {
		return "", false
	}
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		k, e := it.Element()
		where := fmt.Sprintf("as its element %d", i+1)
		if t.IsMapType() {
			where = fmt.Sprintf("at key %q", k.AsString())
		}
		if e.IsKnown() && e.IsNull() {
			return where, true
		}
		if inner, ok := nullElement(e); ok {
			return where + ", " + inner, true
		}
	}
	return "", false
}

// inWorkspace is a source path as keys and records take it (WorkspaceRel): an absolute path
// inside the workspace (the pipeline file's folder) relative to it, so that writing the
// folder either way is one folder, one key and the same sets; any other path as written.
func (w *Workflow) inWorkspace(p string) string {
	if !filepath.IsAbs(p) || w.Config == nil {
		return p
	}
	file, err := filepath.Abs(w.Config.Path)
	if err != nil {
		return p
	}
	return WorkspaceRel(filepath.Dir(file), p)
}
