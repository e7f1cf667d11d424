package pipeline

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// outputMark is the cty mark an output of a kind with OutputTypes carries while Build checks
// the instances. Marks follow a value through each.value, for expressions, indexing,
// templates and function calls, so the check sees which outputs actually reach an attribute,
// not merely which stages its expression names.
type outputMark struct {
	block  string // "kind.name"
	key    string // instance key, "" without for_each
	kind   string
	output string
	typ    string
}

// checkOutputTypes reports the stage outputs among marks whose type attribute a does not
// accept: one diagnostic per reference in the expression they came through (or one at rng,
// the expression, for those that came through each.value).
func (w *Workflow) checkOutputTypes(b *block, a Attribute, rng hcl.Range, marks cty.ValueMarks) hcl.Diagnostics {
	if len(a.Accepts) == 0 {
		return nil
	}
	type group struct {
		rng   hcl.Range
		text  string
		whole bool // a reference to a stage or instance, not to one output
		marks []outputMark
	}
	var groups []*group
	byRange := map[hcl.Range]*group{}
	for m := range marks {
		om, ok := m.(outputMark)
		if !ok || contains(a.Accepts, om.typ) {
			continue
		}
		g := &group{rng: rng, text: w.sourceText(rng, "its value")}
		for _, r := range b.refs[a.Name] {
			if r.Block == om.block && (!r.HasKey || r.Key == om.key) && (r.Output == "" || r.Output == om.output) {
				g = &group{rng: r.Range, text: w.sourceText(r.Range, "stage."+r.Block), whole: r.Output == ""}
				break
			}
		}
		if prev, ok := byRange[g.rng]; ok {
			g = prev
		} else {
			byRange[g.rng] = g
			groups = append(groups, g)
		}
		g.marks = append(g.marks, om)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].rng.Start.Byte < groups[j].rng.Start.Byte })
	var diags hcl.Diagnostics
	for _, g := range groups {
		verb := "is"
		if g.whole || len(g.marks) > 1 {
			verb = "holds"
		}
		var what []string
		for _, typ := range uniqueTypes(g.marks) {
			what = append(what, WithArticle(typ)+" ("+w.describeOutputs(typ, g.marks, "and")+")")
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Wrong kind of stage output",
			Detail:  fmt.Sprintf("%s's %s takes %s; %s %s %s.", b.kind.Name(), a.Name, w.describeAccepts(a), g.text, verb, strings.Join(what, " and ")),
			Subject: g.rng.Ptr()})
	}
	return diags
}

// describeAccepts says what attribute a takes and which kinds' outputs provide it: "a
// trained model (a train stage's saved_model)", or in the plural for a map or object.
func (w *Workflow) describeAccepts(a Attribute) string {
	var parts []string
	for _, typ := range a.Accepts {
		var produced []outputMark
		for _, name := range w.Registry.Names() {
			k, _ := w.Registry.Lookup(name)
			if t, ok := k.(OutputTyper); ok {
				types := t.OutputTypes()
				for _, o := range k.Outputs() {
					if types[o] == typ {
						produced = append(produced, outputMark{kind: name, output: o, typ: typ})
					}
				}
			}
		}
		s := WithArticle(typ)
		if !a.Type.IsPrimitiveType() {
			s = typ + "s"
		}
		if len(produced) > 0 {
			s += " (" + w.describeOutputs(typ, produced, "or") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " or ")
}

// describeOutputs names the outputs of type typ among marks, by kind, joined with conj: "a
// split stage's train, val or test, or an augment stage's output".
func (w *Workflow) describeOutputs(typ string, marks []outputMark, conj string) string {
	outs := map[string][]string{}
	var kinds []string
	for _, m := range marks {
		if m.typ != typ || contains(outs[m.kind], m.output) {
			continue
		}
		if outs[m.kind] == nil {
			kinds = append(kinds, m.kind)
		}
		outs[m.kind] = append(outs[m.kind], m.output)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		names := outs[k]
		if kind, ok := w.Registry.Lookup(k); ok { // in the kind's order of outputs
			order := kind.Outputs()
			sort.SliceStable(names, func(i, j int) bool { return slices.Index(order, names[i]) < slices.Index(order, names[j]) })
		}
		parts = append(parts, WithArticle(k)+" stage's "+JoinList(names, conj))
	}
	return JoinList(parts, conj)
}

// sourceText is the text of rng in the pipeline file, or def when it is not one short line.
func (w *Workflow) sourceText(rng hcl.Range, def string) string {
	f := w.Config.Files[rng.Filename]
	if f == nil || rng.End.Byte > len(f.Bytes) || rng.Start.Byte > rng.End.Byte {
		return def
	}
	s := string(rng.SliceBytes(f.Bytes))
	if s == "" || len(s) > 60 || strings.ContainsAny(s, "\r\n") {
		return def
	}
	return s
}

func uniqueTypes(marks []outputMark) []string {
	var out []string
	for _, m := range marks {
		if !contains(out, m.typ) {
			out = append(out, m.typ)
		}
	}
	sort.Strings(out)
	return out
}

// ListSome joins the first n of items with commas, and says how many more there are ("a, b
// and 3 more").
func ListSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// JoinList joins "a", "a or b", "a, b or c" (conj "or"); an item that is itself a list is
// set off with commas ("a split stage's train, val or test, or an augment stage's output").
func JoinList(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	sep := " " + conj + " "
	if strings.Contains(strings.Join(items, ""), sep) {
		sep = "," + sep
	}
	return strings.Join(items[:len(items)-1], ", ") + sep + items[len(items)-1]
}
