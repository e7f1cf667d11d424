package pipeline

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// stageRef is a parsed reference `stage.KIND.NAME[KEY].OUTPUT` (key and output optional).
type stageRef struct {
	Block  string // "kind.name"
	Key    string
	HasKey bool
	Output string
	Range  hcl.Range
	// rest is the traversal after KIND.NAME, interpreted once we know whether the stage
	// has instances.
	rest hcl.Traversal
}

// parseStageRef reads the block part of a traversal rooted at "stage". Key and output are
// resolved by resolve, which needs to know the stage's instances.
func parseStageRef(tr hcl.Traversal) (stageRef, *hcl.Diagnostic) {
	r := stageRef{Range: tr.SourceRange()}
	names := make([]string, 0, 2)
	for _, step := range tr[1:] {
		if len(names) == 2 {
			break
		}
		a, ok := step.(hcl.TraverseAttr)
		if !ok {
			break
		}
		names = append(names, a.Name)
	}
	if len(names) < 2 {
		return r, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete stage reference",
			Detail:  "A stage reference names the stage's kind and name, e.g. stage.split.main or stage.split.main.train.",
			Subject: r.Range.Ptr()}
	}
	r.Block = names[0] + "." + names[1]
	r.rest = tr[3:]
	return r, nil
}

// resolve interprets the steps after KIND.NAME: for a stage with instances, an instance key
// (attribute or index) may come first; then an output name.
func (r *stageRef) resolve(b *block) *hcl.Diagnostic {
	rest := r.rest
	if b.forEach && len(rest) > 0 {
		var key string
		switch s := rest[0].(type) {
		case hcl.TraverseAttr:
			key = s.Name
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String && s.Key.IsKnown() {
				key = s.Key.AsString()
			} else if s.Key.Type() == cty.Number && s.Key.IsKnown() {
				key = s.Key.AsBigFloat().String()
			}
		}
		if !b.hasKey(key) {
			return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown stage instance",
				Detail: fmt.Sprintf("Stage %s has no instance %q; its instances are %s. Refer to one as stage.%s[%q].OUTPUT, or to all of them as stage.%s.",
					b.addr, key, quoteList(b.keys), b.addr, firstOr(b.keys, "KEY"), b.addr),
				Subject: r.Range.Ptr()}
		}
		r.Key, r.HasKey = key, true
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return nil
	}
	a, ok := rest[0].(hcl.TraverseAttr)
	if !ok {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid stage reference",
			Detail: fmt.Sprintf("Expected an output name of stage %s (%s).", b.addr, strings.Join(b.kind.Outputs(), ", ")), Subject: r.Range.Ptr()}
	}
	if !contains(b.kind.Outputs(), a.Name) {
		detail := fmt.Sprintf("Stage %s (kind %s) has no output %q; its outputs are %s.", b.addr, b.kind.Name(), a.Name, quoteList(b.kind.Outputs()))
		if s := suggest(a.Name, b.kind.Outputs()); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown stage output", Detail: detail, Subject: a.SrcRange.Ptr()}
	}
	r.Output = a.Name
	return nil
}

// traversalString writes tr as an expression (split.main["x"].train), for a message that
// suggests a corrected reference.
func traversalString(tr hcl.Traversal) string {
	var b strings.Builder
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			switch k := s.Key; {
			case !k.IsKnown() || k.IsNull():
				b.WriteString("[…]")
			case k.Type() == cty.String:
				b.WriteString("[" + strconv.Quote(k.AsString()) + "]")
			case k.Type() == cty.Number:
				b.WriteString("[" + k.AsBigFloat().Text('f', -1) + "]")
			default:
				b.WriteString("[…]")
			}
		case hcl.TraverseSplat:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

// InstanceAddr formats the address of instance key of a stage block: "kind.name" for a
// stage without for_each, "kind.name[key]" otherwise (quoted when not a plain word).
func InstanceAddr(block string, key string, hasKey bool) string {
	if !hasKey {
		return block
	}
	if hclsyntax.ValidIdentifier(key) {
		return block + "[" + key + "]"
	}
	return block + "[" + strconv.Quote(key) + "]"
}

// ParseInstanceSelector splits a command-line stage selector: "kind.name", "kind.name[key]",
// kind.name["key"] or "kind.name.key".
func ParseInstanceSelector(s string) (block, key string, hasKey bool) {
	if i := strings.IndexByte(s, '['); i > 0 && strings.HasSuffix(s, "]") {
		k := s[i+1 : len(s)-1]
		if uq, err := strconv.Unquote(k); err == nil {
			k = uq
		}
		return s[:i], k, true
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) == 3 {
		return parts[0] + "." + parts[1], parts[2], true
	}
	return s, "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	sort.Strings(q)
	return strings.Join(q, ", ")
}

func firstOr(list []string, def string) string {
	if len(list) == 0 {
		return def
	}
	return list[0]
}
