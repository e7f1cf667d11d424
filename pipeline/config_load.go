package pipeline

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "pipeline"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "stage", LabelNames: []string{"kind", "name"}},
		{Type: "schedule", LabelNames: []string{"name"}},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "default"}, {Name: "type"}, {Name: "description"}},
}

var scheduleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cron", Required: true}, {Name: "timezone"}, {Name: "targets", Required: true}, {Name: "overlap"},
	},
}

// metaAttributes are the stage attributes the engine itself interprets.
var metaAttributes = []string{"for_each", "depends_on"}

// LoadFile parses and checks the structure of a pipeline file. Problems are returned as
// diagnostics, all of them, each with a source range; the Config is nil only when the file
// could not be read or parsed at all.
func LoadFile(path string, reg *Registry) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline file",
			Detail: fmt.Sprintf("%s. Pass the path of a pipeline.hcl file.", err)}}
	}
	return LoadSource(path, src, reg)
}

// LoadSource is LoadFile on an in-memory source; path names it in diagnostics.
func LoadSource(path string, src []byte, reg *Registry) (*Config, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, path)
	cfg := &Config{Path: path, Files: p.Files()}
	if diags.HasErrors() {
		return cfg, diags
	}
	content, d := f.Body.Content(rootSchema)
	diags = append(diags, d...)

	stages := map[string]*StageBlock{}
	vars := map[string]*Variable{}
	scheds := map[string]*Schedule{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "pipeline":
			if cfg.Pipeline != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate pipeline block",
					Detail:  fmt.Sprintf("A pipeline block was already declared at %s. Merge the two into one.", cfg.Pipeline.DeclRange),
					Subject: b.DefRange.Ptr()})
				continue
			}
			pb, d := decodePipelineBlock(b)
			diags = append(diags, d...)
			cfg.Pipeline = pb
		case "variable":
			v, d := decodeVariable(b)
			diags = append(diags, d...)
			if prev, dup := vars[v.Name]; dup {
				diags = append(diags, duplicate("variable", v.Name, prev.DeclRange, b.DefRange))
				continue
			}
			vars[v.Name] = v
			cfg.Variables = append(cfg.Variables, v)
		case "stage":
			s, d := decodeStageBlock(b, reg)
			diags = append(diags, d...)
			if prev, dup := stages[s.Addr()]; dup {
				diags = append(diags, duplicate("stage", s.Addr(), prev.DeclRange, b.DefRange))
				continue
			}
			stages[s.Addr()] = s
			cfg.Stages = append(cfg.Stages, s)
		case "schedule":
			s, d := decodeSchedule(b)
			diags = append(diags, d...)
			if prev, dup := scheds[s.Name]; dup {
				diags = append(diags, duplicate("schedule", s.Name, prev.DeclRange, b.DefRange))
				continue
			}
			scheds[s.Name] = s
			cfg.Schedules = append(cfg.Schedules, s)
		}
	}
	if cfg.Pipeline == nil {
		cfg.Pipeline = &PipelineBlock{Attrs: hcl.Attributes{}}
	}
	if len(cfg.Stages) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No stages",
			Detail:  `The file declares no stage blocks. Add at least one, e.g. stage "split" "main" { source = "data/raw" }.`,
			Subject: f.Body.MissingItemRange().Ptr()})
	}
	return cfg, diags
}

func duplicate(what, name string, prev, cur hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate " + what + " " + name,
		Detail:  fmt.Sprintf("A %s named %s was already declared at %s. Names must be unique; rename one of them.", what, name, prev),
		Subject: cur.Ptr()}
}

func decodePipelineBlock(b *hcl.Block) (*PipelineBlock, hcl.Diagnostics) {
	attrs, diags := b.Body.JustAttributes()
	return &PipelineBlock{Attrs: attrs, DeclRange: b.DefRange}, diags
}

func decodeVariable(b *hcl.Block) (*Variable, hcl.Diagnostics) {
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
	diags := checkName("variable", v.Name, b.LabelRanges[0])
	content, d := bodyContent(b.Body, variableSchema)
	diags = append(diags, d...)
	if a, ok := content.Attributes["type"]; ok {
		t, d := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Type = t
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() && val.Type() == cty.String && val.IsKnown() && !val.IsNull() {
			v.Description = val.AsString()
		}
	}
	if a, ok := content.Attributes["default"]; ok {
		val, d := a.Expr.Value(&hcl.EvalContext{Functions: functions()})
		diags = append(diags, d...)
		v.BadDefault = d.HasErrors()
		if !d.HasErrors() {
			cv, err := convertTo(val, v.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid default value for variable",
					Detail: fmt.Sprintf("The default of variable %q must be %s, as its type says: %s. Change the default or the type.",
						v.Name, WithArticle(v.Type.FriendlyName()), conversionProblem(val, err)), Subject: a.Expr.Range().Ptr()})
				v.BadDefault = true
			} else {
				v.Default = cv
			}
		}
	}
	return v, diags
}

func decodeStageBlock(b *hcl.Block, reg *Registry) (*StageBlock, hcl.Diagnostics) {
	s := &StageBlock{Kind: b.Labels[0], Name: b.Labels[1], Body: b.Body, DeclRange: b.DefRange,
		KindRange: b.LabelRanges[0], NameRange: b.LabelRanges[1]}
	diags := checkName("stage", s.Name, s.NameRange)
	kind, ok := reg.Lookup(s.Kind)
	if !ok {
		detail := fmt.Sprintf("There is no stage kind %q. Known kinds: %s.", s.Kind, strings.Join(reg.Names(), ", "))
		if sug := suggest(s.Kind, reg.Names()); sug != "" {
			detail = fmt.Sprintf("There is no stage kind %q. Did you mean %q?", s.Kind, sug)
		}
		s.Invalid = true
		s.Content = &hcl.BodyContent{Attributes: hcl.Attributes{}}
		return s, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown stage kind",
			Detail: detail, Subject: s.KindRange.Ptr()})
	}
	content, d := bodyContent(b.Body, stageSchema(kind))
	diags = append(diags, d...)
	s.Content = content
	if a, ok := content.Attributes["for_each"]; ok {
		s.ForEach = a.Expr
	}
	if a, ok := content.Attributes["depends_on"]; ok {
		var d hcl.Diagnostics
		s.DependsOn, d = stageRefList(a.Expr, "Invalid depends_on entry", "Each depends_on entry must be a stage reference such as stage.split.main.")
		diags = append(diags, d...)
	}
	return s, diags
}

// bodyContent is body.Content(schema) with the same "did you mean" for every misspelled
// argument, whichever block it is in. HCL's own suggestion leaves out the names the body
// already sets, so `epoch = 20` beside `epochs = var.epochs` (as in a train block that sets
// most of its attributes) got none; here the closest name in the schema is suggested, and
// when the body sets it too the message says where.
func bodyContent(body hcl.Body, schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	content, diags := body.Content(schema)
	syn, ok := body.(*hclsyntax.Body)
	if !ok {
		return content, diags
	}
	var names []string
	for _, a := range schema.Attributes {
		names = append(names, a.Name)
	}
	for _, d := range diags {
		if d.Summary != "Unsupported argument" || d.Subject == nil {
			continue
		}
		for name, a := range syn.Attributes {
			if a.NameRange != *d.Subject {
				continue
			}
			d.Detail = fmt.Sprintf("An argument named %q is not expected here.", name)
			if name == "seed" {
				d.Detail += " The seed is the whole pipeline's, set in its pipeline block (pipeline { seed = 42 }): it seeds the split, augmentation and training alike (a split stage also takes a seed of its own, for its sets only)."
				continue
			}
			if sug := suggest(name, names); sug != "" {
				d.Detail += fmt.Sprintf(" Did you mean %q?", sug)
				if set, ok := syn.Attributes[sug]; ok {
					d.Detail += fmt.Sprintf(" The block sets %q too, on line %d: keep one of the two.", sug, set.NameRange.Start.Line)
				}
			}
		}
	}
	return content, diags
}

// stageRefList reads a list of stage references (depends_on, schedule targets).
func stageRefList(expr hcl.Expression, summary, detail string) ([]hcl.Traversal, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(expr)
	var out []hcl.Traversal
	for _, e := range exprs {
		tr, d := hcl.AbsTraversalForExpr(e)
		if d.HasErrors() || tr.RootName() != "stage" {
			detail := detail
			root := ""
			if !d.HasErrors() && len(tr) >= 2 {
				root = tr.RootName()
			}
			switch {
			case root == "":
			case strings.EqualFold(root, "stage"): // Stage.split.main
				detail += fmt.Sprintf(" Did you mean stage%s?", strings.TrimPrefix(traversalString(tr), root))
			case !slices.Contains([]string{"var", "each", "pipeline", "local", "path"}, root): // xform.b for stage.xform.b
				detail += fmt.Sprintf(" Did you mean stage.%s?", traversalString(tr))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: e.Range().Ptr()})
			continue
		}
		out = append(out, tr)
	}
	return out, diags
}

// stageSchema is a kind's attributes plus the meta-attributes. Nothing is marked required
// here: a pipeline-level default may supply a value, so required-ness is checked later.
func stageSchema(k Kind) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, m := range metaAttributes {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: m})
	}
	for _, a := range k.Attributes() {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.Name})
	}
	return s
}

func decodeSchedule(b *hcl.Block) (*Schedule, hcl.Diagnostics) {
	s := &Schedule{Name: b.Labels[0], Timezone: "Local", Overlap: "skip", DeclRange: b.DefRange}
	diags := checkName("schedule", s.Name, b.LabelRanges[0])
	content, d := bodyContent(b.Body, scheduleSchema)
	diags = append(diags, d...)
	// str sets dst to the string attribute name, and reports whether the file gives it.
	str := func(name string, dst *string) bool {
		a, ok := content.Attributes[name]
		if !ok {
			return false
		}
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			return false
		}
		if v.Type() != cty.String || v.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
				Detail: fmt.Sprintf("%s must be a string.", name), Subject: a.Expr.Range().Ptr()})
			return false
		}
		*dst = v.AsString()
		return true
	}
	if str("cron", &s.Cron) {
		if sum, detail := cronProblem(s.Cron, time.Now()); sum != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: sum, Detail: detail, Subject: content.Attributes["cron"].Expr.Range().Ptr()})
		}
	}
	if str("timezone", &s.Timezone) {
		if sum, detail := checkTimezone(s.Timezone); sum != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: sum, Detail: detail, Subject: content.Attributes["timezone"].Expr.Range().Ptr()})
		}
	}
	overlapSet := str("overlap", &s.Overlap)
	if a := content.Attributes["overlap"]; overlapSet && s.Overlap != "skip" && s.Overlap != "queue" {
		detail := fmt.Sprintf("overlap is %q; use \"skip\" (drop a trigger while a run is going) or \"queue\" (run it afterwards).", s.Overlap)
		if sug := suggest(s.Overlap, []string{"skip", "queue"}); sug != "" {
			detail += fmt.Sprintf(" Did you mean %q?", sug)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid overlap policy",
			Detail: detail, Subject: a.Expr.Range().Ptr()})
	}
	if a, ok := content.Attributes["targets"]; ok {
		var d hcl.Diagnostics
		s.Targets, d = stageRefList(a.Expr, "Invalid schedule target", "Each target must be a stage reference such as stage.select.best.")
		diags = append(diags, d...)
		if exprs, ed := hcl.ExprList(a.Expr); !ed.HasErrors() && len(exprs) == 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No schedule targets",
				Detail:  "targets is empty: list the stages a trigger brings up to date, such as [stage.select.best] (what they need runs too).",
				Subject: a.Expr.Range().Ptr()})
		}
	}
	return s, diags
}

func checkName(what, name string, rng hcl.Range) hcl.Diagnostics {
	if hclsyntax.ValidIdentifier(name) {
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + what + " name",
		Detail:  fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter.", name),
		Subject: rng.Ptr()}}
}
