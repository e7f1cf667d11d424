package graphs

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

// The shim built by tools/libtensorflow-shim.sh loads libtensorflow on first use and exports
// these; without it (libtensorflow linked directly) they are absent and libtensorflow is
// loaded before main.
static int shim_load(char *err, size_t n) {
	int (*f)(char *, size_t) = (int (*)(char *, size_t))dlsym(RTLD_DEFAULT, "pipeline_tf_load");
	return f == NULL ? -1 : f(err, n);
}
static int shim_loaded(void) {
	int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "pipeline_tf_loaded");
	return f == NULL ? -1 : f();
}
static const char *shim_version(void) {
	const char *(*f)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "pipeline_tf_version");
	return f == NULL ? NULL : f();
}
*/
import "C"

import (
	"errors"

	tf "github.com/wamuir/graft/tensorflow"
)

// LoadTensorFlow loads libtensorflow now, so that a missing or mismatched library is reported
// as an error at a chosen moment instead of ending the process at the first TensorFlow call.
// Binaries linked through the lazy shim (tools/libtensorflow-shim.sh, the default on x86-64)
// load the library on first use; otherwise it was loaded before main and this does nothing.
func LoadTensorFlow() error {
	var buf [1024]C.char
	if C.shim_load(&buf[0], C.size_t(len(buf))) > 0 {
		return errors.New("libtensorflow: " + C.GoString(&buf[0]))
	}
	return nil
}

// lazyShim reports whether libtensorflow is linked through the lazy shim.
func lazyShim() bool { return C.shim_loaded() >= 0 }

// TensorFlowLoaded reports whether libtensorflow is loaded in this process.
func TensorFlowLoaded() bool { return C.shim_loaded() != 0 }

// TensorFlowVersion returns libtensorflow's version (TF_Version) without loading the library
// when the lazy shim recorded it; loading checks that the library still reports it.
func TensorFlowVersion() string {
	if v := C.shim_version(); v != nil {
		return C.GoString(v)
	}
	return tf.Version()
}
