package graphs

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Network is an architecture: it maps normalised NHWC images to logits [N, classes].
type Network interface {
	// Logits builds the forward pass under c.
	Logits(c Ctx, x tf.Output, classes int64) tf.Output
	// Validate reports options that cannot build a network for h×w×ch input.
	Validate(h, w, ch int64) error
}

// Spec names an architecture and carries its options; exactly one option block is used, the
// one matching Architecture (nil means that architecture's defaults). It is what a model
// folder records so the same network can be rebuilt.
type Spec struct {
	Architecture string `json:"architecture"`
	CNN          *CNN   `json:"cnn,omitempty"`
	VGG19        *VGG19 `json:"vgg19,omitempty"`
	ViT          *ViT   `json:"vit,omitempty"`
}

// Architectures lists the architecture names Spec accepts.
func Architectures() []string { return []string{"cnn", "vgg19", "vit"} }

// Network returns the configured network, filling in defaults for a missing option block.
func (sp *Spec) Network() (Network, error) {
	switch sp.Architecture {
	case "cnn":
		if sp.CNN == nil {
			d := DefaultCNN()
			sp.CNN = &d
		}
		return sp.CNN, nil
	case "vgg19":
		if sp.VGG19 == nil {
			d := DefaultVGG19()
			sp.VGG19 = &d
		}
		return sp.VGG19, nil
	case "vit":
		if sp.ViT == nil {
			d := DefaultViT()
			sp.ViT = &d
		}
		return sp.ViT, nil
	}
	return nil, fmt.Errorf("unknown architecture %q (known: %s)", sp.Architecture, strings.Join(Architectures(), ", "))
}

// CheckOptions reports options that cannot build a network whatever the input size; the
// checks that depend on the size (a ViT's patches must tile the image) run when it is known.
func (sp *Spec) CheckOptions() error {
	net, err := sp.Network()
	if err != nil {
		return err
	}
	side := int64(224)
	if v, ok := net.(*ViT); ok && v.Patch > 0 {
		side = v.Patch
	}
	return net.Validate(side, side, 3)
}

// Input describes the images a classifier takes and how it normalises them. Images arrive as
// float32 in 0–255; the graph subtracts Mean and divides by Std per channel.
type Input struct {
	Height   int64     `json:"height"`
	Width    int64     `json:"width"`
	Channels int64     `json:"channels"`
	Mean     []float32 `json:"mean"`
	Std      []float32 `json:"std"`
}

// Validate checks that the input description is complete and consistent.
func (in Input) Validate() error {
	if in.Height <= 0 || in.Width <= 0 {
		return fmt.Errorf("image size %dx%d: both sides must be positive", in.Height, in.Width)
	}
	if in.Channels != 1 && in.Channels != 3 {
		return fmt.Errorf("channels = %d: must be 1 (grey) or 3 (RGB)", in.Channels)
	}
	if len(in.Mean) != int(in.Channels) || len(in.Std) != int(in.Channels) {
		return fmt.Errorf("mean and std need %d values each, got %d and %d", in.Channels, len(in.Mean), len(in.Std))
	}
	for i, s := range in.Std {
		if !(s > 0) {
			return fmt.Errorf("std[%d] = %g: must be positive", i, s)
		}
	}
	return nil
}

// Classifier is a network plus its input contract and class count: everything needed to build
// the same forward pass in a training graph and in an exported inference graph.
type Classifier struct {
	Spec    Spec
	Input   Input
	Classes int64
}

// Validate checks the classifier can be built.
func (m Classifier) Validate() error {
	if err := m.Input.Validate(); err != nil {
		return err
	}
	if m.Classes < 2 {
		if m.Classes == 1 {
			return fmt.Errorf("1 class: a classifier needs at least 2")
		}
		return fmt.Errorf("%d classes: a classifier needs at least 2", m.Classes)
	}
	net, err := m.Spec.Network()
	if err != nil {
		return err
	}
	return net.Validate(m.Input.Height, m.Input.Width, m.Input.Channels)
}

// Logits normalises images (float32 0–255, NHWC) and returns the network's logits.
func (m Classifier) Logits(c Ctx, images tf.Output) tf.Output {
	net, err := m.Spec.Network()
	if err != nil {
		c.S.UpdateErr("Classifier", err)
		return images
	}
	s := c.S.SubScope("normalize")
	mean := cnst(s, m.Input.Mean)
	inv := make([]float32, len(m.Input.Std))
	for i, v := range m.Input.Std {
		inv[i] = 1 / v
	}
	x := op.Mul(s.SubScope("mul"), op.Sub(s.SubScope("sub"), images, mean), cnst(s, inv))
	return net.Logits(c, x, m.Classes)
}

// OptionErrors are the problems found in an architecture's options, one per problem, each
// naming its option; Error joins them with "; ".
type OptionErrors []error

func (e OptionErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e OptionErrors) Unwrap() []error { return e }

// optionProblems collects what is wrong with an architecture's options, so that every
// problem is reported at once rather than the first alone.
type optionProblems struct {
	arch string
	errs OptionErrors
}

// add records a problem; the message is prefixed with the architecture.
func (p *optionProblems) add(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.arch, fmt.Sprintf(format, args...)))
}

// positive records option name as a problem unless v > 0.
func positive[T int64 | float64](p *optionProblems, name string, v T) {
	if !(v > 0) {
		p.add("%s %v must be positive", name, v)
	}
}

// rate records dropout-like option name as a problem unless it is in [0, 1).
func (p *optionProblems) rate(name string, r float32) {
	if !(r >= 0 && r < 1) {
		p.add("%s %g must be in [0, 1)", name, r)
	}
}

// err is nil without problems, the problem alone with one, OptionErrors with several.
func (p *optionProblems) err() error {
	switch len(p.errs) {
	case 0:
		return nil
	case 1:
		return p.errs[0]
	}
	return p.errs
}

// intList writes a list of whole numbers as the pipeline file does: [32, -1].
func intList(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
