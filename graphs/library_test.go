package graphs

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
)

// lazyHelperVar makes the test binary report, first thing in TestMain, whether libtensorflow
// was loaded before main, then call TensorFlow and report again.
const lazyHelperVar = "GRAPHS_TEST_LAZY_HELPER"

func lazyHelper() {
	before := TensorFlowLoaded()
	v := tf.Version() // any TensorFlow call
	os.Stdout.WriteString(strings.Join([]string{boolWord(before), boolWord(TensorFlowLoaded()), v, TensorFlowVersion()}, " ") + "\n")
}

func boolWord(b bool) string {
	if b {
		return "loaded"
	}
	return "unloaded"
}

// TestTensorFlowLoadsOnFirstUse checks the lazy shim that tools/install-libtensorflow.sh
// builds on x86-64: a process that never calls TensorFlow does not load it, the first call
// loads it and reaches the real function, and the version recorded in the shim is the one the
// library reports.
func TestTensorFlowLoadsOnFirstUse(t *testing.T) {
	if !lazyShim() {
		t.Skip("libtensorflow is linked directly (no lazy shim on this machine)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), lazyHelperVar+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 4 {
		t.Fatalf("helper printed %q", out)
	}
	if f[0] != "unloaded" || f[1] != "loaded" {
		t.Errorf("libtensorflow before main / after the first call: %s / %s, want unloaded / loaded", f[0], f[1])
	}
	if f[2] != f[3] || !strings.HasPrefix(f[2], "2.") {
		t.Errorf("TF_Version() = %q, the shim recorded %q", f[2], f[3])
	}
}

// TestGoPanicsStillRecoverAfterLoading: libtensorflow now loads after the Go runtime has
// installed its signal handlers; a nil dereference must still be a recoverable Go panic (a
// library replacing the SIGSEGV handler would turn it into a crash).
func TestGoPanicsStillRecoverAfterLoading(t *testing.T) {
	if err := LoadTensorFlow(); err != nil {
		t.Fatal(err)
	}
	_ = tf.Version()
	recovered := func() (r any) {
		defer func() { r = recover() }()
		var p *Trainer
		_ = p.cfg.Seed // nil dereference: SIGSEGV turned into a runtime panic
		return nil
	}()
	if recovered == nil {
		t.Fatal("the nil dereference did not panic")
	}
}
