package graphs

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// OneDNNVar is the environment variable libtensorflow reads, once while it loads, to choose
// between its oneDNN kernels and the Eigen ones on CPU.
//
// TensorFlow 2.18 turns oneDNN on by default only on CPUs with AVX512-VNNI, AVX512-BF16,
// AVX-VNNI or AMX. On an AVX2 machine it stays off, although training the networks of this
// package is then 1.4–1.7× faster with it on (BENCHMARKS.md), so pipeline turns it on unless
// the user has set the variable (EnableOneDNN).
const OneDNNVar = "TF_ENABLE_ONEDNN_OPTS"

// OneDNNSetting returns the oneDNN setting a training process of pipeline runs with, for
// cache keys: "on" or "off" when OneDNNVar is set to a boolean TensorFlow accepts, "on" when
// it is unset (EnableOneDNN sets it), and "default" for any other value (TensorFlow then
// warns and keeps its default) or when EnableOneDNN failed.
func OneDNNSetting() string {
	if oneDNNFailed {
		return "default"
	}
	switch on, set, valid := envBool(OneDNNVar); {
	case !set || on:
		return "on"
	case valid:
		return "off"
	}
	return "default"
}

// envBool reads a boolean environment variable as TensorFlow does: "1" or "true" is on, "0"
// or "false" off, in any case; valid is false for anything else.
func envBool(name string) (on, set, valid bool) {
	v, set := os.LookupEnv(name)
	switch strings.ToLower(v) {
	case "1", "true":
		return true, set, true
	case "0", "false":
		return false, set, true
	}
	return false, set, false
}

// EnableOneDNN makes the process run TensorFlow's oneDNN kernels unless the user chose
// otherwise: when OneDNNVar is unset it sets it to 1. libtensorflow reads the variable once,
// while it loads; through the lazy shim (the default on x86-64) that is at the first
// TensorFlow call, so setting it is enough when EnableOneDNN runs first. When the library is
// already loaded (linked directly), the process replaces itself with a fresh copy of the same
// executable, arguments and environment. An explicit value, 0 or 1, is left alone. It returns
// an error only when that re-exec failed (the caller can go on with TensorFlow's default).
func EnableOneDNN() error {
	if _, set := os.LookupEnv(OneDNNVar); set {
		return nil
	}
	if err := os.Setenv(OneDNNVar, "1"); err != nil {
		return fmt.Errorf("enabling oneDNN: %w", err)
	}
	if !TensorFlowLoaded() {
		return nil
	}
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, os.Environ())
		err = fmt.Errorf("re-executing %s: %w", exe, err)
	}
	// Only reached when the exec failed: the process runs with TensorFlow's default, which
	// cache keys must say (OneDNNSetting).
	os.Unsetenv(OneDNNVar)
	oneDNNFailed = true
	return fmt.Errorf("enabling oneDNN: %w", err)
}

// oneDNNFailed is set when EnableOneDNN could not take effect.
var oneDNNFailed bool
