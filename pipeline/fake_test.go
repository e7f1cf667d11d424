package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Fake stage kinds for engine tests: they read and write small text files, count their runs,
// and can be told to fail or block.

// genKind concatenates the files of a source folder (sorted; not those in its subfolders,
// which its key covers all the same) into out, times `repeat`.
type genKind struct {
	runs  atomic.Int64
	probe func(*Job) // when set, called at the start of Run
}

func (k *genKind) Name() string      { return "gen" }
func (k *genKind) Version() int      { return 1 }
func (k *genKind) Outputs() []string { return []string{"out", "count"} }
func (k *genKind) Attributes() []Attribute {
	return []Attribute{
		{Name: "source", Type: cty.String, Required: true, Role: Source, Doc: "folder to read"},
		{Name: "repeat", Type: cty.Number, Default: cty.NumberIntVal(1), Doc: "copies"},
		{Name: "label", Type: cty.String, KeyedWhenSet: true, Doc: "a name in the key when given"},
	}
}
func (k *genKind) Validate(v *Values) hcl.Diagnostics {
	r := v.Get("repeat")
	if r.IsKnown() && !r.IsNull() {
		if n, _ := r.AsBigFloat().Int64(); n < 1 {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid repeat", Detail: "repeat must be at least 1.", Subject: v.Range("repeat")}}
		}
	}
	return nil
}
func (k *genKind) Run(ctx context.Context, j *Job) error {
	k.runs.Add(1)
	if k.probe != nil {
		k.probe(j)
	}
	var cfg struct {
		Source string `cty:"source"`
		Repeat int    `cty:"repeat"`
	}
	if err := j.Values.Decode(&cfg); err != nil {
		return err
	}
	entries, err := os.ReadDir(j.Path(cfg.Source))
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && !e.IsDir() { // hidden files are not data, by convention
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for i := 0; i < cfg.Repeat; i++ {
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join(j.Path(cfg.Source), n))
			if err != nil {
				return err
			}
			b.Write(data)
		}
	}
	if err := os.WriteFile(filepath.Join(j.Out, "out"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(j.Out, "count"), []byte(fmt.Sprint(len(names))), 0o644)
}

// xformKind reads input (a file path) and writes it upper-cased with a suffix; it can fail
// or block on request.
type xformKind struct {
	runs        atomic.Int64
	block       chan struct{} // when set, Run waits for it (or the context)
	beforeBlock func(*Job)    // called before waiting
}

func (k *xformKind) Name() string      { return "xform" }
func (k *xformKind) Version() int      { return 1 }
func (k *xformKind) Outputs() []string { return []string{"out"} }
func (k *xformKind) Attributes() []Attribute {
	return []Attribute{
		{Name: "input", Type: cty.String, Required: true, Doc: "file to transform"},
		{Name: "suffix", Type: cty.String, Default: cty.StringVal(""), Doc: "text appended"},
		{Name: "fail", Type: cty.Bool, Default: cty.False, Doc: "fail instead"},
		{Name: "epochs", Type: cty.Number, Default: cty.NumberIntVal(10), Doc: "unused knob"},
		{Name: "heavy", Type: cty.Bool, Default: cty.False, Doc: "take a heavy token"},
	}
}
func (k *xformKind) Heavy(v *Values) bool { return v.Get("heavy").True() }
func (k *xformKind) Run(ctx context.Context, j *Job) error {
	k.runs.Add(1)
	if j.Values.Get("fail").True() {
		return errors.New("asked to fail") // at once, blocked or not
	}
	if k.block != nil {
		if k.beforeBlock != nil {
			k.beforeBlock(j)
		}
		select {
		case <-k.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	data, err := os.ReadFile(j.Path(j.Values.String("input")))
	if err != nil {
		return err
	}
	out := strings.ToUpper(string(data)) + j.Values.String("suffix")
	return os.WriteFile(filepath.Join(j.Out, "out"), []byte(out), 0o644)
}

// joinKind joins a map of upstream outputs (e.g. stage.xform.each) into one file.
type joinKind struct{ runs atomic.Int64 }

func (k *joinKind) Name() string      { return "join" }
func (k *joinKind) Version() int      { return 1 }
func (k *joinKind) Outputs() []string { return []string{"out"} }
func (k *joinKind) Attributes() []Attribute {
	return []Attribute{{Name: "inputs", Type: cty.Map(cty.String), Required: true, Doc: "files to join"}}
}
func (k *joinKind) Run(ctx context.Context, j *Job) error {
	k.runs.Add(1)
	var parts []string
	m := j.Values.Get("inputs").AsValueMap()
	for _, key := range sortedKeys(m) {
		data, err := os.ReadFile(j.Path(m[key].AsString()))
		if err != nil {
			return err
		}
		parts = append(parts, key+"="+string(data))
	}
	return os.WriteFile(filepath.Join(j.Out, "out"), []byte(strings.Join(parts, "\n")), 0o644)
}

// bulkKind writes `files` small files under images/<i mod 2>/ and a report; its images
// folder is bulk (Bulky).
type bulkKind struct{}

func (bulkKind) Name() string      { return "bulk" }
func (bulkKind) Version() int      { return 1 }
func (bulkKind) Outputs() []string { return []string{"images", "report"} }
func (bulkKind) Attributes() []Attribute {
	return []Attribute{
		{Name: "files", Type: cty.Number, Required: true, Doc: "how many"},
		{Name: "text", Type: cty.String, Default: cty.StringVal("x"), Doc: "file content prefix"},
	}
}
func (bulkKind) BulkDirs(*Values) []string { return []string{"images"} }
func (bulkKind) Run(ctx context.Context, j *Job) error {
	var cfg struct {
		Files int    `cty:"files"`
		Text  string `cty:"text"`
	}
	if err := j.Values.Decode(&cfg); err != nil {
		return err
	}
	for i := 0; i < cfg.Files; i++ {
		p := filepath.Join(j.Out, "images", fmt.Sprint(i%2), fmt.Sprintf("%d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%s%d", cfg.Text, i)), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(j.Out, "report"), []byte(fmt.Sprint(cfg.Files)), 0o644)
}

// typedKind is a fake kind under another name whose outputs have types (OutputTyper) and
// whose attributes accept given output types.
type typedKind struct {
	Kind
	name    string
	types   map[string]string
	accepts map[string][]string
}

func (k typedKind) Name() string                   { return k.name }
func (k typedKind) OutputTypes() map[string]string { return k.types }
func (k typedKind) Attributes() []Attribute {
	attrs := k.Kind.Attributes()
	for i := range attrs {
		attrs[i].Accepts = k.accepts[attrs[i].Name]
	}
	return attrs
}

// collectKind takes anything (a map of outputs, whole stages) in from and writes it as JSON.
type collectKind struct{}

func (collectKind) Name() string      { return "collect" }
func (collectKind) Version() int      { return 1 }
func (collectKind) Outputs() []string { return []string{"out"} }
func (collectKind) Attributes() []Attribute {
	return []Attribute{{Name: "from", Type: cty.DynamicPseudoType, Required: true, Accepts: []string{"text file"}, Doc: "text files"}}
}
func (collectKind) Run(ctx context.Context, j *Job) error {
	b, err := ctyjson.Marshal(j.Values.Get("from"), cty.DynamicPseudoType)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(j.Out, "out"), b, 0o644)
}

type fakeKinds struct {
	gen   *genKind
	xform *xformKind
	join  *joinKind
	reg   *Registry
}

func newFakeKinds() *fakeKinds {
	f := &fakeKinds{gen: &genKind{}, xform: &xformKind{}, join: &joinKind{}}
	// make is gen with typed outputs; use is xform whose input takes only a make's out.
	mk := typedKind{Kind: &genKind{}, name: "make", types: map[string]string{"out": "text file", "count": "tally"}}
	use := typedKind{Kind: &xformKind{}, name: "use", accepts: map[string][]string{"input": {"text file"}}}
	f.reg, _ = NewRegistry(f.gen, f.xform, f.join, bulkKind{}, mk, use, collectKind{})
	return f
}

var _ = time.Second
