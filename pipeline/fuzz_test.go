package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary text to the loader and the evaluator: any input must give
// diagnostics or a workflow, never a panic. Seeds are the test fixtures.
func FuzzLoadConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/config/*/*.hcl")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(chainHCL))
	f.Fuzz(func(t *testing.T, src []byte) {
		kinds := newFakeKinds()
		cfg, diags := LoadSource("fuzz.hcl", src, kinds.reg)
		if cfg == nil || cfg.Files == nil || len(cfg.Stages) == 0 {
			return
		}
		wf, d := Build(cfg, kinds.reg, map[string]string{})
		diags = append(diags, d...)
		if !diags.HasErrors() && wf != nil {
			// A valid workflow must be orderable and evaluable with nothing produced yet.
			for _, inst := range wf.Instances {
				wf.Evaluate(inst, nil)
			}
		}
	})
}
