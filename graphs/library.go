package graphs

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

// The shim built by tools/libtensorflow-shim.sh loads libtensorflow on first use and exports
// these; without it (libtensorflow linked directly) they are absent and libtensorflow is
// loaded before main. They are looked up once, at start-up: dlsym takes the dynamic loader's
// lock, which a load of libtensorflow in another thread holds for a quarter of a second.
static int (*shim_load_fn)(char *, size_t);
static int (*shim_loaded_fn)(void);
static const char *(*shim_version_fn)(void);
static void shim_init(void) {
	shim_load_fn = (int (*)(char *, size_t))dlsym(RTLD_DEFAULT, "pipeline_tf_load");
	shim_loaded_fn = (int (*)(void))dlsym(RTLD_DEFAULT, "pipeline_tf_loaded");
	shim_version_fn = (const char *(*)(void))dlsym(RTLD_DEFAULT, "pipeline_tf_version");
}
static int shim_load(char *err, size_t n) {
	return shim_load_fn == NULL ? -1 : shim_load_fn(err, n);
}
static int shim_loaded(void) {
	return shim_loaded_fn == NULL ? -1 : shim_loaded_fn();
}
static const char *shim_version(void) {
	return shim_version_fn == NULL ? NULL : shim_version_fn();
}
*/
import "C"

import (
	"errors"

	tf "github.com/wamuir/graft/tensorflow"
)

func init() { C.shim_init() }

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
