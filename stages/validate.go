package stages

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"pipeline/pipeline"
)

// diagList collects attribute problems with their source ranges. Unknown values (known only
// after upstream stages run) are not checked.
type diagList struct{ diags hcl.Diagnostics }

func (d *diagList) add(v *pipeline.Values, name, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: v.Range(name)})
}

// fromOutputs returns the outputs among outputs of stages of kind whose values reach
// attribute name (Values.FromOutputs), each once, in their order there: the sets of a split
// a training set or an evaluation's data takes, say.
func fromOutputs(v *pipeline.Values, name, kind string, outputs ...string) []string {
	var out []string
	for _, from := range v.FromOutputs(name) {
		if o, ok := strings.CutPrefix(from, kind+"."); ok && slices.Contains(outputs, o) {
			out = append(out, o)
		}
	}
	return out
}

// warn adds a warning about attribute name: a setting that works, but likely not as meant.
func (d *diagList) warn(v *pipeline.Values, name, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: detail, Subject: v.Range(name)})
}

func usable(v *pipeline.Values, name string) bool {
	x := v.Get(name)
	return x.IsKnown() && !x.IsNull()
}

func known(v *pipeline.Values, names ...string) bool {
	for _, n := range names {
		if !v.Get(n).IsKnown() {
			return false
		}
	}
	return true
}

// num returns a number attribute, 0 when null or unknown.
func num(v *pipeline.Values, name string) float64 {
	if !usable(v, name) {
		return 0
	}
	f, _ := v.Get(name).AsBigFloat().Float64()
	return f
}

func (d *diagList) fraction(v *pipeline.Values, name string, allowZero bool) {
	if !usable(v, name) {
		return
	}
	f := num(v, name)
	if f < 0 || f >= 1 || (!allowZero && f == 0) {
		d.add(v, name, "Invalid "+name, fmt.Sprintf("%s = %s: use a fraction in [0, 1), e.g. 0.1.", name, hclValue(v.Get(name))))
	}
}

func (d *diagList) intRange(v *pipeline.Values, name string, lo, hi int64) {
	if !usable(v, name) {
		return
	}
	if _, ok := wholeNumber(v, name, lo, hi); !ok {
		d.add(v, name, "Invalid "+name, fmt.Sprintf("%s = %s: use a whole number from %d to %d.", name, hclValue(v.Get(name)), lo, hi))
	}
}

// wholeNumber returns a number attribute as an int64 when it is known and a whole number from
// lo to hi (what intRange accepts).
func wholeNumber(v *pipeline.Values, name string, lo, hi int64) (int64, bool) {
	if !usable(v, name) {
		return 0, false
	}
	i, acc := v.Get(name).AsBigFloat().Int64()
	return i, acc == big.Exact && i >= lo && i <= hi
}

func (d *diagList) positive(v *pipeline.Values, name string) {
	if usable(v, name) && num(v, name) <= 0 {
		d.add(v, name, "Invalid "+name, fmt.Sprintf("%s = %s: must be positive.", name, hclValue(v.Get(name))))
	}
}

func (d *diagList) oneOf(v *pipeline.Values, name string, options ...string) {
	if !usable(v, name) {
		return
	}
	x := v.Get(name)
	var s string
	if x.Type() == cty.Number {
		s = x.AsBigFloat().String()
	} else {
		s = x.AsString()
	}
	for _, o := range options {
		if s == o {
			return
		}
	}
	detail := fmt.Sprintf("%s = %s: use one of %s.", name, hclValue(x), strings.Join(options, ", "))
	if sug := closest(s, options); sug != "" && x.Type() == cty.String {
		detail += fmt.Sprintf(" Did you mean %q?", sug)
	}
	d.add(v, name, "Invalid "+name, detail)
}

// closest returns the option a mistyped or shortened value most likely means: the one
// pipeline.Suggest finds (a typo), else the first option that contains the value (test_f1 for
// test_f1_macro, rotate for flip_rotate_crop); "" when none does.
func closest(given string, options []string) string {
	if sug := pipeline.Suggest(given, options); sug != "" {
		return sug
	}
	if len(given) < 3 {
		return ""
	}
	for _, o := range options {
		if strings.Contains(strings.ToLower(o), strings.ToLower(given)) {
			return o
		}
	}
	return ""
}

// hclValue shows a number or string as it would be written in the pipeline file: numbers
// bare (2; 1e+300 for one of many digits), strings quoted ("png"); other values by their type.
func hclValue(x cty.Value) string {
	switch {
	case !x.IsKnown() || x.IsNull():
		return x.GoString()
	case x.Type() == cty.Number:
		// 1e300 as written, not its 301 digits; 0.000001 too.
		if s := x.AsBigFloat().Text('f', -1); len(s) <= 20 {
			return s
		}
		return x.AsBigFloat().Text('g', 10)
	case x.Type() == cty.String:
		return strconv.Quote(x.AsString())
	}
	return pipeline.WithArticle(x.Type().FriendlyName())
}
