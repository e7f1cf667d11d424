package pipeline

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Config is a pipeline file as written: its blocks, with source ranges, not yet evaluated.
// Evaluation (variables, for_each, references) happens when a Plan is built from it.
type Config struct {
	Path      string
	Files     map[string]*hcl.File // parsed sources, for printing diagnostics with snippets
	Pipeline  *PipelineBlock
	Variables []*Variable
	Stages    []*StageBlock
	Schedules []*Schedule
}

// PipelineBlock holds the pipeline-wide settings: `seed`, plus defaults that apply to every
// stage whose kind has an attribute of the same name and does not set it. Its attributes may
// refer to variables, so they are evaluated with the rest.
type PipelineBlock struct {
	Attrs     hcl.Attributes
	DeclRange hcl.Range
}

// Variable is a `variable "name" { default = …, type = …, description = … }` block.
type Variable struct {
	Name        string
	Default     cty.Value // cty.NilVal when the variable must be set with -var
	BadDefault  bool      // a default is written but is no valid value (already reported)
	Type        cty.Type  // cty.DynamicPseudoType when unconstrained
	Description string
	DeclRange   hcl.Range
}

// StageBlock is a `stage "kind" "name" { … }` block.
type StageBlock struct {
	Kind, Name string
	ForEach    hcl.Expression // nil without for_each
	DependsOn  []hcl.Traversal
	Body       hcl.Body // the kind's attributes, decoded once inputs are known
	Content    *hcl.BodyContent
	// Invalid marks a block whose kind is unknown: it can be referred to (so references to it
	// raise no second error) but produces no instances.
	Invalid   bool
	DeclRange hcl.Range
	KindRange hcl.Range
	NameRange hcl.Range
}

// Addr returns "kind.name".
func (s *StageBlock) Addr() string { return s.Kind + "." + s.Name }

// Schedule is a `schedule "name" { cron = …, targets = […] }` block, executed by
// `pipeline schedule`.
type Schedule struct {
	Name      string
	Cron      string
	Timezone  string
	Targets   []hcl.Traversal
	Overlap   string // "skip" or "queue"
	DeclRange hcl.Range
}
