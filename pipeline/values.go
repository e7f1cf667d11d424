package pipeline

import (
	"fmt"
	"reflect"
	"slices"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Values are a stage instance's evaluated attributes, with where each came from.
type Values struct {
	schema map[string]Attribute
	vals   map[string]cty.Value
	ranges map[string]hcl.Range
	refs   map[string][]string // attribute → stage blocks ("kind.name") its expression refers to
	// from are the stage outputs ("kind.output") whose values reach each attribute.
	from map[string][]string
	// settings are the pipeline block's values, for checks that look beyond the stage.
	settings map[string]cty.Value
	// inherited are the attributes whose value is the pipeline block's (the stage sets none).
	inherited map[string]bool
	// upstream looks up an attribute of the stages an attribute refers to (UpstreamValue).
	upstream func(attr, name string) (val cty.Value, found, ok bool)
}

// Inherited reports whether name's value is the pipeline block's: the stage leaves it unset.
func (v *Values) Inherited(name string) bool { return v.inherited[name] }

// Setting returns the pipeline block's value of name, or false when the block does not set
// it (or it is not known yet): what a kind's check may compare its attributes with, such as
// the image_size of the images it will be given, when no attribute of its own says.
func (v *Values) Setting(name string) (cty.Value, bool) {
	val, ok := v.settings[name]
	if !ok || !val.IsWhollyKnown() || val.IsNull() {
		return cty.NilVal, false
	}
	return val, true
}

// UpstreamValue returns the value of attribute name of the stage instances attribute attr
// takes outputs from, or else of the instances they take theirs from, and so on, each path of
// references stopping at its first instance with the attribute: for a check that depends on
// what an upstream stage makes, such as the size of the images a training gets from its split
// (through an augment stage, say). found reports whether some path reaches such an instance;
// ok, whether every path does and all agree on a value known before anything runs (an
// expression choosing between two splits of different sizes is not known until it runs).
func (v *Values) UpstreamValue(attr, name string) (val cty.Value, found, ok bool) {
	if v.upstream == nil {
		return cty.NilVal, false, false
	}
	return v.upstream(attr, name)
}

// Get returns the value of attribute name (null when unset and without default).
func (v *Values) Get(name string) cty.Value {
	if val, ok := v.vals[name]; ok {
		return val
	}
	return cty.NullVal(cty.DynamicPseudoType)
}

// String returns a string attribute, "" when null.
func (v *Values) String(name string) string {
	val := v.Get(name)
	if val.IsNull() || !val.IsKnown() || val.Type() != cty.String {
		return ""
	}
	return val.AsString()
}

// Refs returns the stage blocks ("kind.name") that attribute name's expression refers to,
// sorted.
func (v *Values) Refs(name string) []string {
	return slices.Sorted(slices.Values(v.refs[name]))
}

// FromOutputs returns the stage outputs attribute name's value comes from, as "kind.output"
// (a split's test set is "split.test"), sorted and each once: the outputs the value is made
// of, not merely those its expression names; none for a value written as a path.
func (v *Values) FromOutputs(name string) []string { return v.from[name] }

// Range returns where attribute name was set (the stage block or pipeline default), for
// diagnostics.
func (v *Values) Range(name string) *hcl.Range {
	r := v.ranges[name]
	return &r
}

// Names returns the attribute names, sorted.
func (v *Values) Names() []string {
	out := make([]string, 0, len(v.vals))
	for n := range v.vals {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Known reports whether every value is known (false while an upstream stage's outputs are
// still to be produced).
func (v *Values) Known() bool {
	for _, val := range v.vals {
		if !val.IsWhollyKnown() {
			return false
		}
	}
	return true
}

// Decode copies the values into the fields of target (a pointer to a struct whose fields carry
// `cty:"name"` tags), converting types as HCL does. An exported field without a tag is an
// error rather than silently left at its zero value (an embedded struct's fields are not
// decoded: decode into it separately).
func (v *Values) Decode(target any) error {
	if rt := reflect.TypeOf(target); rt != nil && rt.Kind() == reflect.Pointer && rt.Elem().Kind() == reflect.Struct {
		for i := 0; i < rt.Elem().NumField(); i++ {
			if f := rt.Elem().Field(i); f.IsExported() && f.Tag.Get("cty") == "" {
				return fmt.Errorf("decoding into %s: field %s has no cty tag, so no attribute would reach it", rt.Elem(), f.Name)
			}
		}
	}
	obj := map[string]cty.Value{}
	for n, val := range v.vals {
		obj[n] = val
	}
	ty, err := gocty.ImpliedType(target)
	if err != nil {
		return err
	}
	// Fill attributes the struct has but the schema did not produce with nulls.
	for name := range ty.AttributeTypes() {
		if _, ok := obj[name]; !ok {
			obj[name] = cty.NullVal(ty.AttributeType(name))
		}
	}
	for name := range obj {
		if !ty.HasAttribute(name) {
			delete(obj, name)
		}
	}
	return gocty.FromCtyValue(cty.ObjectVal(obj), target)
}

// canonical returns each attribute's value as canonical JSON (type-tagged, sorted keys), the
// form that goes into cache keys and is compared to explain reruns.
func (v *Values) canonical() map[string]string {
	out := map[string]string{}
	for n, val := range v.vals {
		out[n] = canonicalJSON(val)
	}
	return out
}

func canonicalJSON(val cty.Value) string {
	if !val.IsWhollyKnown() {
		return "(known after upstream runs)"
	}
	b, err := ctyjson.Marshal(val, val.Type())
	if err != nil {
		return fmt.Sprintf("(unencodable: %v)", err)
	}
	tb, _ := ctyjson.MarshalType(val.Type())
	return string(tb) + " " + string(b)
}

// NewValues builds a kind's Values from literal attribute values, applying defaults and type
// conversion as a pipeline file would (for testing and driving kinds directly).
func NewValues(k Kind, given map[string]cty.Value) (*Values, error) {
	v := &Values{schema: map[string]Attribute{}, vals: map[string]cty.Value{}, ranges: map[string]hcl.Range{}, refs: map[string][]string{}}
	for _, a := range k.Attributes() {
		v.schema[a.Name] = a
		val, ok := given[a.Name]
		switch {
		case ok:
		case a.Required:
			return nil, fmt.Errorf("attribute %q is required", a.Name)
		case a.Default != cty.NilVal:
			val = a.Default
		default:
			val = cty.NullVal(a.Type)
		}
		cv, err := convertTo(val, a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		v.vals[a.Name] = cv
	}
	for name := range given {
		if _, ok := v.schema[name]; !ok {
			return nil, fmt.Errorf("kind %s has no attribute %q", k.Name(), name)
		}
	}
	return v, nil
}
