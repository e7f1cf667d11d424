package graphs

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// threadsHelperVar makes the test binary train a small CNN for four steps with TensorFlow's
// default threads and print the bits of the losses; with the value "after-one", a one-thread
// session (like the split stage's JPEG decoder) is created first.
const threadsHelperVar = "GRAPHS_TEST_THREADS_HELPER"

func threadsHelper(mode string) {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := PerSessionThreadPools(); err != nil {
		fail(err)
	}
	if mode == "after-one" {
		s := op.NewScope()
		op.Const(s, float32(1))
		g, err := s.Finalize()
		if err != nil {
			fail(err)
		}
		if _, err := tf.NewSession(g, sessionOptions(1, false)); err != nil {
			fail(err)
		}
	}
	in := Input{Height: 32, Width: 32, Channels: 3, Mean: []float32{90, 90, 90}, Std: []float32{80, 80, 80}}
	tr, err := NewTrainer(TrainConfig{
		Model:     Classifier{Spec: Spec{Architecture: "cnn", CNN: &CNN{Channels: []int64{16, 32}, Pool: 2, Dense: 32}}, Input: in, Classes: 4},
		Optimizer: DefaultOptimizer(),
		Seed:      1,
	})
	if err != nil {
		fail(err)
	}
	data := Synthetic(64, 4, 32, 32, 3, 1)
	var bits []string
	for i := 0; i < 4; i++ {
		r, err := tr.Step(data.Slice(in, 16*i, 16*i+16), 1e-3)
		if err != nil {
			fail(err)
		}
		bits = append(bits, fmt.Sprintf("%08x", math.Float32bits(r.Loss)))
	}
	fmt.Println("losses=" + strings.Join(bits, ","))
}

// runThreadsHelper returns what the helper prints in mode, with ThreadPoolsVar as given
// (unset when value is nil).
func runThreadsHelper(t *testing.T, mode string, value *string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ThreadPoolsVar+"=") {
			env = append(env, kv)
		}
	}
	if value != nil {
		env = append(env, ThreadPoolsVar+"="+*value)
	}
	cmd.Env = append(env, threadsHelperVar+"="+mode)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "losses=") {
			return line
		}
	}
	t.Fatalf("helper %s: %v\n%s", mode, err, out)
	return ""
}

func TestSessionsKeepTheirOwnThreadsAfterAOneThreadSession(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one core: every session has one thread anyway")
	}
	// With per-session pools, training after a one-thread session computes what it computes
	// alone (same threads, same order of the partial sums in its reductions).
	alone := runThreadsHelper(t, "alone", nil)
	if after := runThreadsHelper(t, "after-one", nil); after != alone {
		t.Fatalf("after a one-thread session %s, alone %s: the session did not get its own threads", after, alone)
	}
	// The shared pool TensorFlow uses otherwise (an explicit 0 is the user's choice, kept) is
	// sized by the first session: one thread, other summation orders, other losses. This
	// shows that the check above can see the difference.
	zero := "0"
	if shared := runThreadsHelper(t, "after-one", &zero); shared == alone {
		t.Skipf("the losses do not depend on the thread count here (%s); the check above proves nothing", alone)
	}
}

func TestThreadPoolsSetting(t *testing.T) {
	for value, want := range map[string]string{"1": "per-session", "TRUE": "per-session", "0": "shared", "false": "shared", "maybe": "shared"} {
		t.Setenv(ThreadPoolsVar, value)
		if got := ThreadPoolsSetting(); got != want {
			t.Errorf("%s=%q: %q, want %q", ThreadPoolsVar, value, got, want)
		}
	}
}
