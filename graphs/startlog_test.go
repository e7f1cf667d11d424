package graphs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// startLogHelperVar makes the test binary load TensorFlow as the command does, run a graph,
// and write two lines of its own to stderr around that.
const startLogHelperVar = "GRAPHS_TEST_STARTLOG_HELPER"

func startLogHelper() {
	if err := LoadTensorFlow(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	startupGraph = func() {
		fmt.Fprintln(os.Stderr, "written while filtering") // forwarded, not lost
		runTrivialGraph()
	}
	QuietStartupLines()
	fmt.Fprintln(os.Stderr, "loaded")
	runTrivialGraph()
	// Descriptors opened afterwards stay open through collections (the filter closed only
	// what it opened, once).
	dir, err := os.Open(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // finalizers run after the collection
	}
	if _, err := dir.ReadDir(1); err != nil {
		fmt.Fprintln(os.Stderr, "a descriptor opened after QuietStartupLines broke:", err)
	}
	fmt.Fprintln(os.Stderr, "ran a graph")
}

func runStartLogHelper(t *testing.T, level string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{startLogHelperVar + "=1", "TF_CPP_MIN_LOG_LEVEL=" + level}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	return stderr.String()
}

func TestTensorFlowStartUpLinesStayOffStderr(t *testing.T) {
	got := runStartLogHelper(t, "1")
	if got != "written while filtering\nloaded\nran a graph\n" {
		t.Errorf("stderr with TF_CPP_MIN_LOG_LEVEL=1:\n%s\nwant only the helper's three lines", got)
	}
	// Asked for every message, the user gets them (and the test sees that the lines exist).
	all := runStartLogHelper(t, "0")
	if !strings.Contains(all, "MLIR V1 optimization pass is not enabled") || !strings.Contains(all, "ran a graph") {
		t.Errorf("stderr with TF_CPP_MIN_LOG_LEVEL=0:\n%s\nwant TensorFlow's start-up lines", all)
	}
	if OneDNNSetting() == "on" && !strings.Contains(all, "oneDNN supports DT_INT32 only on platforms with AVX-512") {
		t.Errorf("stderr with TF_CPP_MIN_LOG_LEVEL=0 and oneDNN on:\n%s\nwant oneDNN's int32 line", all)
	}
}

func TestStartUpFilterForwardsEverythingElse(t *testing.T) {
	in := "progress 10%\n" +
		"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n" +
		"I0000 00:00:1795968471.755259    6269 mlir_graph_optimization_pass.cc:401] MLIR V1 optimization pass is not enabled\n" +
		"I0000 00:00:1795968471.755259    6269 other.cc:1] something else\n" +
		"a last line without newline"
	var out strings.Builder
	forwardExceptStartupNoise(strings.NewReader(in), &out)
	want := "progress 10%\nI0000 00:00:1795968471.755259    6269 other.cc:1] something else\na last line without newline"
	if out.String() != want {
		t.Fatalf("forwarded %q, want %q", out.String(), want)
	}
}
