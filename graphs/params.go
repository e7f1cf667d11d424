package graphs

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Init names how a variable's initial value is drawn.
type Init int

// The initialisers, matching the Keras defaults of the layers that use them.
const (
	Zeros Init = iota
	Ones
	GlorotUniform // uniform in ±sqrt(6/(fan_in+fan_out)), Keras' default for kernels
	TruncNormal02 // normal(0, 0.02) truncated at 2σ, the usual ViT embedding initialiser
)

// Var is one model variable: a resource variable in the graph plus how to initialise it.
type Var struct {
	Name      string // unique, "/"-separated path, also the checkpoint key
	Shape     []int64
	Init      Init
	FanIn     int64 // for GlorotUniform
	FanOut    int64
	Trainable bool
	Handle    tf.Output // VarHandleOp
	Read      tf.Output // the value as read by the forward pass
}

// Params is the variable store of one graph. The first request for a name creates the variable;
// later requests for the same name (a second forward pass in another mode) reuse it.
type Params struct {
	s     *op.Scope
	vars  map[string]*Var
	order []string
}

// NewParams returns an empty store whose variables are created in the root of scope s.
func NewParams(s *op.Scope) *Params {
	return &Params{s: s.SubScope("vars"), vars: map[string]*Var{}}
}

// Get returns the variable called name, creating it with the given shape and initialiser on
// first use. A request that disagrees with the first one about the shape is a programming error
// and is recorded in the scope.
func (p *Params) Get(name string, shape []int64, init Init, fanIn, fanOut int64, trainable bool) *Var {
	if v, ok := p.vars[name]; ok {
		if fmt.Sprint(v.Shape) != fmt.Sprint(shape) {
			p.s.UpdateErr("Params.Get", fmt.Errorf("variable %s requested with shape %v, created with %v", name, shape, v.Shape))
		}
		return v
	}
	s := p.s.SubScope(sanitize(name))
	h := op.VarHandleOp(s, tf.Float, tf.MakeShape(shape...), op.VarHandleOpSharedName(name))
	v := &Var{Name: name, Shape: shape, Init: init, FanIn: fanIn, FanOut: fanOut, Trainable: trainable,
		Handle: h, Read: op.ReadVariableOp(s, h, tf.Float)}
	p.vars[name] = v
	p.order = append(p.order, name)
	return v
}

// Vars returns every variable in creation order.
func (p *Params) Vars() []*Var {
	out := make([]*Var, len(p.order))
	for i, n := range p.order {
		out[i] = p.vars[n]
	}
	return out
}

// Trainable returns the trainable variables in creation order.
func (p *Params) Trainable() []*Var {
	var out []*Var
	for _, v := range p.Vars() {
		if v.Trainable {
			out = append(out, v)
		}
	}
	return out
}

// Count returns the number of trainable scalars.
func (p *Params) Count() int64 {
	var n int64
	for _, v := range p.Trainable() {
		n += numElements(v.Shape)
	}
	return n
}

// InitialValue draws v's initial value. It depends only on the seed and the variable's name, so
// the same network built in any order starts from the same weights.
func (v *Var) InitialValue(seed uint64) []float32 {
	n := numElements(v.Shape)
	out := make([]float32, n)
	switch v.Init {
	case Zeros:
	case Ones:
		for i := range out {
			out[i] = 1
		}
	case GlorotUniform:
		limit := math.Sqrt(6 / float64(v.FanIn+v.FanOut))
		r := varRand(seed, v.Name)
		for i := range out {
			out[i] = float32((r.Float64()*2 - 1) * limit)
		}
	case TruncNormal02:
		r := varRand(seed, v.Name)
		for i := range out {
			x := r.NormFloat64()
			for math.Abs(x) > 2 {
				x = r.NormFloat64()
			}
			out[i] = float32(0.02 * x)
		}
	}
	return out
}

func varRand(seed uint64, name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// sanitize turns a variable path into a valid op-name component.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c == '_' || c == '.' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
