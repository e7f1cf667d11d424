package graphs

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// reexecHelperVar makes the test binary act as a program that calls EnableOneDNN first thing,
// as cmd/pipeline does, then loads TensorFlow, and prints what it sees.
const reexecHelperVar = "GRAPHS_TEST_REEXEC_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(lazyHelperVar) == "1" {
		lazyHelper()
		os.Exit(0)
	}
	if os.Getenv(startLogHelperVar) == "1" {
		startLogHelper()
		os.Exit(0)
	}
	if os.Getenv(stderrHelperVar) == "1" {
		stderrHelper()
		os.Exit(0)
	}
	if os.Getenv(buildHelperVar) == "1" {
		fmt.Println(LibraryBuild())
		os.Exit(0)
	}
	if mode := os.Getenv(threadsHelperVar); mode != "" {
		threadsHelper(mode)
		os.Exit(0)
	}
	if os.Getenv(reexecHelperVar) == "1" {
		if err := EnableOneDNN(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := LoadTensorFlow(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("%s=%s\n", OneDNNVar, os.Getenv(OneDNNVar))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runReexecHelper runs the test binary as the helper program with the given value of
// OneDNNVar (unset when value is nil) and returns its stdout and stderr.
func runReexecHelper(t *testing.T, value *string) (string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	env := []string{reexecHelperVar + "=1", "TF_CPP_MIN_LOG_LEVEL=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, OneDNNVar+"=") && !strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") {
			env = append(env, kv)
		}
	}
	if value != nil {
		env = append(env, OneDNNVar+"="+*value)
	}
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// TensorFlow logs this line while it loads when its oneDNN kernels are on.
const oneDNNOnLog = "oneDNN custom operations are on"

func TestEnableOneDNNTurnsItOnWhenUnset(t *testing.T) {
	stdout, stderr := runReexecHelper(t, nil)
	want(t, stdout, stderr, "1", true)
}

// want checks the helper's output: the variable's value after EnableOneDNN and whether
// TensorFlow loaded with oneDNN on.
func want(t *testing.T, stdout, stderr, value string, on bool) {
	t.Helper()
	if stdout != OneDNNVar+"="+value+"\n" {
		t.Errorf("helper printed %q, want %s=%s", stdout, OneDNNVar, value)
	}
	if got := strings.Contains(stderr, oneDNNOnLog); got != on {
		t.Errorf("TensorFlow loaded with oneDNN on: %v, want %v; stderr:\n%s", got, on, stderr)
	}
}

func TestEnableOneDNNRespectsAnExplicitChoice(t *testing.T) {
	off := "0"
	stdout, stderr := runReexecHelper(t, &off)
	want(t, stdout, stderr, "0", false)

	on := "1"
	stdout, stderr = runReexecHelper(t, &on)
	want(t, stdout, stderr, "1", true)
}

func TestOneDNNSetting(t *testing.T) {
	for _, c := range []struct {
		value *string
		want  string
	}{
		{nil, "on"}, {ptr("1"), "on"}, {ptr("true"), "on"}, {ptr("TRUE"), "on"},
		{ptr("0"), "off"}, {ptr("false"), "off"}, {ptr("yes"), "default"}, {ptr(""), "default"},
	} {
		t.Setenv(OneDNNVar, "") // restored after the test
		name := "unset"
		if c.value == nil {
			os.Unsetenv(OneDNNVar)
		} else {
			os.Setenv(OneDNNVar, *c.value)
			name = fmt.Sprintf("%q", *c.value)
		}
		if got := OneDNNSetting(); got != c.want {
			t.Errorf("%s %s: OneDNNSetting() = %q, want %q", OneDNNVar, name, got, c.want)
		}
	}
}

func ptr(s string) *string { return &s }
