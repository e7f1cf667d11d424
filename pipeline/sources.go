package pipeline

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// sourceProblem is what is wrong with a Source attribute's path, found without reading it.
type sourceProblem struct {
	summary    string // for a diagnostic
	detail     string // a phrase naming the attribute and the path
	suggestion string // the closest existing path when the given one looks like a typo
}

// checkSource checks the path rel of Source attribute name with a stat: it must not be empty,
// must not contain the store and must exist. file is the pipeline file's name, for the message. It returns
// nil when the path is fine.
func checkSource(workspace, file, name, rel string) *sourceProblem {
	if rel == "" { // else the workspace itself, which holds the store
		return &sourceProblem{summary: "Empty path", detail: strings.TrimSuffix(emptyPathDetail(name, file), ".")}
	}
	abs := InWorkspace(workspace, rel)
	if Inside(filepath.Join(workspace, StoreDir), abs) || abs == workspace {
		return &sourceProblem{summary: "Source contains the store",
			detail: fmt.Sprintf("%s %q contains the store %s, whose contents change with every run; point it at the data folder itself (e.g. data/raw)", name, rel, StoreDir)}
	}
	_, err := os.Stat(abs)
	switch {
	case err == nil:
		return nil
	case os.IsNotExist(err):
		return &sourceProblem{summary: "Source not found",
			detail:     fmt.Sprintf("%s %q does not exist (paths are relative to the folder of %s)", name, rel, file),
			suggestion: suggestPath(workspace, rel)}
	default:
		return &sourceProblem{summary: "Cannot read source", detail: fmt.Sprintf("%s %q: %v", name, rel, err)}
	}
}

// emptyPathDetail says that attribute name, which takes a path, is empty; file is the pipeline
// file's name.
func emptyPathDetail(name, file string) string {
	return fmt.Sprintf("%s is empty: give a path, relative to the folder of %s (an empty one would be that folder, which holds the store).", name, file)
}

// suggestPath returns rel with each missing element replaced by the closest name in its
// folder (a folder or a link, but for the last element, which may also be a file), when every
// replacement is a likely typo and the result exists; else "".
func suggestPath(workspace, rel string) string {
	parts := strings.Split(filepath.ToSlash(filepath.Clean(rel)), "/")
	dir := workspace
	changed := false
	for i, p := range parts {
		next := filepath.Join(dir, p)
		if _, err := os.Stat(next); err == nil {
			dir = next
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return ""
		}
		var names []string
		for _, e := range entries {
			folder := e.IsDir() || e.Type()&fs.ModeSymlink != 0 // a link to a folder will do
			if !strings.HasPrefix(e.Name(), ".") && (folder || i == len(parts)-1) {
				names = append(names, e.Name())
			}
		}
		sug := suggest(p, names)
		if sug == "" {
			return ""
		}
		parts[i], dir, changed = sug, filepath.Join(dir, sug), true
	}
	if !changed {
		return ""
	}
	return strings.Join(parts, "/")
}

// CheckSources reports every Source attribute whose path contains the store or does not
// exist, at the attribute, with the closest existing path when the given one looks like a
// typo; refuses a stage reference written in quotes where a stage output is expected
// (quotedReferences); and warns of paths given there that do not exist and of sources their
// kind finds unusable or questionable (PathChecks). It costs a stat per source, or per file
// for a kind that looks inside (nothing is hashed), so validate can afford it; plan and run
// find the same problems when they hash the sources. workspace is the folder that paths are
// relative to.
func (w *Workflow) CheckSources(workspace string) hcl.Diagnostics {
	return w.checkSources(workspace, checkQuoted|checkMissing|checkInside, w.Instances)
}

// PathChecks is what every command that plans checks of the paths written in the file before
// it plans, since hashing the sources finds the rest: a stage reference written in quotes
// where a stage output is expected, an error (quotedReferences). With sources it also warns
// of each source a kind can tell will fail its stage from what is there (PathChecker: a
// split's class folder with too few files), or finds questionable (PathWarner: class folders
// differing only in case), which plan asks for the stages it will run.
// Only insts are checked.
func (w *Workflow) PathChecks(workspace string, insts []*Instance, sources bool) hcl.Diagnostics {
	if !sources {
		return w.checkSources(workspace, checkQuoted, insts)
	}
	return w.checkSources(workspace, checkQuoted|checkInside, insts)
}

// What checkSources checks.
const (
	checkQuoted  = 1 << iota // stage references in quotes (quotedReferences)
	checkMissing             // sources and paths that do not exist
	checkInside              // what kinds can tell from what is in a source (PathChecker)
)

// checkSources makes the checks what asks for (checkQuoted, checkMissing, checkInside) of
// insts.
func (w *Workflow) checkSources(workspace string, what int, insts []*Instance) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{} // a source shared by instances or stages is reported once
	bad := map[string]bool{}  // sources with a problem of their own, not looked in
	var found instanceProblems
	file := filepath.Base(w.Config.Path)
	for _, inst := range insts {
		v, _ := w.Evaluate(inst, nil) // their problems are reported by Build
		for _, a := range inst.Kind.Attributes() {
			val := v.Get(a.Name)
			if a.Role != Source && len(a.Accepts) > 0 {
				if what&checkQuoted != 0 {
					diags = append(diags, w.quotedReferences(workspace, inst, a, v, seen)...)
				}
				if what&checkMissing != 0 {
					diags = append(diags, missingPathInputs(workspace, file, inst, a, v, seen, &found)...)
				}
				continue
			}
			if what&(checkMissing|checkInside) == 0 {
				continue
			}
			if a.Role != Source || !val.IsKnown() || val.IsNull() {
				continue
			}
			rel, rng := v.String(a.Name), v.Range(a.Name)
			id := rng.String() + "\x00" + rel
			if !seen[id] {
				seen[id] = true
				if p := checkSource(workspace, file, a.Name, rel); p != nil {
					bad[id] = true
					if what&checkMissing != 0 {
						detail := p.detail + "."
						if p.suggestion != "" {
							detail = fmt.Sprintf("%s. Did you mean %q?", p.detail, p.suggestion)
						}
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: p.summary, Detail: detail, Subject: rng})
					}
				}
			}
			if bad[id] || what&checkInside == 0 {
				continue
			}
			// Each instance's own values (a for_each's val differs, say): each problem once.
			for _, d := range append(unusableSource(workspace, inst.Kind, a, v), sourceWarnings(workspace, inst.Kind, a, v)...) {
				found.add(inst, id+"\x00"+d.Detail, d)
			}
		}
	}
	diags = append(diags, found.diags(w)...)
	sortBySubject(diags)
	return diags
}

// instanceProblems are the problems kinds find in the paths given to instances (PathChecker,
// PathWarner), which depend on each instance's values (a for_each's val, its architecture):
// each problem once, with the instances that have it.
type instanceProblems struct {
	order []*instanceProblem
	byKey map[string]*instanceProblem
}

// instanceProblem is one problem of instanceProblems and the instances that have it.
type instanceProblem struct {
	diag  *hcl.Diagnostic
	insts []*Instance
}

// add records that inst has the problem d, known by key (where and what), once.
func (p *instanceProblems) add(inst *Instance, key string, d *hcl.Diagnostic) {
	if p.byKey == nil {
		p.byKey = map[string]*instanceProblem{}
	}
	q := p.byKey[key]
	if q == nil {
		q = &instanceProblem{diag: d}
		p.byKey[key] = q
		p.order = append(p.order, q)
	}
	if !slices.Contains(q.insts, inst) {
		q.insts = append(q.insts, inst)
	}
}

// diags returns the problems, in the order found. A problem that not every instance of its
// stage blocks has names the instances that have it, as checkInstances does ("In
// train.model[cnn]: …"): a problem of one instance of several cannot be told from the others'
// otherwise, each pointing at the same line.
func (p *instanceProblems) diags(w *Workflow) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, q := range p.order {
		d := *q.diag
		all := true
		for _, inst := range q.insts {
			for _, other := range w.BlockInstances(inst.Block) {
				all = all && slices.Contains(q.insts, other)
			}
		}
		if !all {
			addrs := make([]string, len(q.insts))
			for i, inst := range q.insts {
				addrs[i] = inst.Addr
			}
			d.Detail = fmt.Sprintf("In %s: %s", strings.Join(addrs, ", "), lowerFirst(d.Detail))
		}
		diags = append(diags, &d)
	}
	return diags
}

// unusableSource warns when the kind finds the source of attribute a, which exists, unusable
// (PathChecker).
func unusableSource(workspace string, kind Kind, a Attribute, v *Values) hcl.Diagnostics {
	pc, ok := kind.(PathChecker)
	if !ok {
		return nil
	}
	rel := v.String(a.Name)
	why := pc.CheckPath(v, a.Name, InWorkspace(workspace, rel))
	if why == "" {
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Unusable source",
		Detail:  fmt.Sprintf("%s %q: %s. The stage will fail when it runs unless that changes first.", a.Name, rel, why),
		Subject: v.Range(a.Name)}}
}

// sourceWarnings warns of what the kind finds questionable in the source of attribute a,
// which exists, but will not fail its stage (PathWarner).
func sourceWarnings(workspace string, kind Kind, a Attribute, v *Values) hcl.Diagnostics {
	pw, ok := kind.(PathWarner)
	if !ok {
		return nil
	}
	rel := v.String(a.Name)
	var diags hcl.Diagnostics
	for _, why := range pw.WarnPath(v, a.Name, InWorkspace(workspace, rel)) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Questionable source",
			Detail: fmt.Sprintf("%s %q: %s.", a.Name, rel, why), Subject: v.Range(a.Name)})
	}
	return diags
}

// missingPathInputs warns of each path written as a string in attribute a of inst, which
// takes stage outputs, that does not exist (see pathInputs), or that the kind finds unusable
// (see PathChecker) or questionable (PathWarner), which go to found: the stage will fail when
// it runs, but the path may yet appear or change (a model promoted by a run), so it is not an
// error.
func missingPathInputs(workspace, file string, inst *Instance, a Attribute, v *Values, seen map[string]bool, found *instanceProblems) hcl.Diagnostics {
	var diags hcl.Diagnostics
	rng := v.Range(a.Name)
	for _, p := range literalPaths(a, v, workspace) {
		id := rng.String() + "\x00" + p.path
		_, err := os.Stat(p.abs)
		if pc, ok := inst.Kind.(PathChecker); ok && err == nil {
			// Instances sharing the attribute may differ (each its architecture): each
			// problem is said once, with the instances that have it.
			if why := pc.CheckPath(v, a.Name, p.abs); why != "" {
				found.add(inst, id+"\x00"+why, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unusable path",
					Detail:  fmt.Sprintf("%s %q: %s: the stage will fail when it runs unless that changes first.", a.Name, p.path, why),
					Subject: rng})
			}
		}
		if pw, ok := inst.Kind.(PathWarner); ok && err == nil {
			for _, why := range pw.WarnPath(v, a.Name, p.abs) {
				found.add(inst, id+"\x00"+why, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Questionable path",
					Detail: fmt.Sprintf("%s %q: %s.", a.Name, p.path, why), Subject: rng})
			}
		}
		if !os.IsNotExist(err) || seen[id] {
			continue
		}
		seen[id] = true
		detail := fmt.Sprintf("%s %q does not exist (paths are relative to the folder of %s): the stage will fail when it runs unless it appears first", a.Name, p.path, file)
		if sug := suggestPath(workspace, p.path); sug != "" {
			detail += fmt.Sprintf(". Did you mean %q?", sug)
		} else {
			detail += "."
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Path not found", Detail: detail, Subject: rng})
	}
	return diags
}

// quotedReferences refuses each string in attribute a of inst, which takes stage outputs, that
// is no existing path and reads as a reference to a stage: stage.KIND.NAME, with or without an
// instance and an output, KIND a kind. Written in quotes, input = "stage.split.main.train" is
// a path, which the stage would fail to find when it runs, and no dependency on split.main.
// seen is shared with missingPathInputs, which then does not also warn that the path does not
// exist.
func (w *Workflow) quotedReferences(workspace string, inst *Instance, a Attribute, v *Values, seen map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	rng := v.Range(a.Name)
	cty.Walk(v.Get(a.Name), func(path cty.Path, val cty.Value) (bool, error) {
		if !val.IsKnown() || val.IsNull() || val.Type() != cty.String {
			return true, nil
		}
		text := val.AsString()
		id := rng.String() + "\x00" + CleanPath(text)
		tr, d := hclsyntax.ParseTraversalAbs([]byte(text), "", hcl.InitialPos)
		if seen[id] || d.HasErrors() || tr.RootName() != "stage" {
			return true, nil
		}
		ref, bad := parseStageRef(tr)
		if kind, _, _ := strings.Cut(ref.Block, "."); bad != nil || !w.isKind(kind) {
			return true, nil
		}
		if _, err := os.Lstat(InWorkspace(workspace, text)); !os.IsNotExist(err) {
			return true, nil // a path after all (or one that cannot be told)
		}
		seen[id] = true
		// The reference as it should be written where the string is: the attribute's value,
		// or the element of a map or list it is in.
		written := a.Name + " = " + text
		if len(path) > 0 {
			written = text
			switch step := path[len(path)-1].(type) {
			case cty.GetAttrStep:
				written = step.Name + " = " + text
			case cty.IndexStep:
				if step.Key.Type() == cty.String {
					written = step.Key.AsString() + " = " + text
				}
			}
		}
		detail := fmt.Sprintf("%s %q is a string, not a reference: remove the quotes (%s). In quotes it is a path, which does not exist, and the stage does not wait for %s.",
			a.Name, text, written, ref.Block)
		b, ok := w.blocks[ref.Block]
		if ok && b.kind != nil {
			// The reference without quotes would be wrong too (stage.split.main.trian): say
			// how, rather than suggest it as it is.
			if d := ref.resolve(b); d != nil {
				detail = fmt.Sprintf("%s %q is a string, not a reference: remove the quotes, and mend it: %s", a.Name, text, d.Detail)
			}
		}
		if !ok {
			detail = fmt.Sprintf("%s %q is a string, not a reference: remove the quotes, and name a stage of this file (there is no stage %s", a.Name, text, ref.Block)
			if sug := suggest(ref.Block, w.BlockAddrs()); sug != "" {
				detail += fmt.Sprintf("; did you mean stage.%s?).", sug)
			} else {
				detail += fmt.Sprintf("; its stages are %s).", strings.Join(w.BlockAddrs(), ", "))
			}
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Stage reference in quotes", Detail: detail,
			Subject: literalRange(inst.b.cfg.Content.Attributes[a.Name], text, rng)})
		return true, nil
	})
	return diags
}

// literalRange is the range of the string literal text in attr's expression, as in
// candidates = { a = "stage.evaluate.a.evaluation" }, or def when attr has no such literal (its
// value comes from a variable, say) or is nil.
func literalRange(attr *hcl.Attribute, text string, def *hcl.Range) *hcl.Range {
	if attr == nil {
		return def
	}
	expr, ok := attr.Expr.(hclsyntax.Expression)
	if !ok {
		return def
	}
	found := def
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		t, ok := n.(*hclsyntax.TemplateExpr)
		if !ok || found != def || len(t.Parts) != 1 {
			return nil
		}
		if lit, ok := t.Parts[0].(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String && lit.Val.AsString() == text {
			r := t.SrcRange
			found = &r
		}
		return nil
	})
	return found
}

// InWorkspace is where a path written in the pipeline file is: relative to the workspace (the
// pipeline file's folder) unless absolute.
func InWorkspace(workspace, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(workspace, p)
}
