package graphs

/*
#cgo LDFLAGS: -ltensorflow
#include "tensorflow/c/c_api.h"
*/
import "C"

import (
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"
)

// graft frees a tensor's C buffer only in its finalizer, which runs after a garbage
// collection finds the Go object unreachable; nothing else frees it (tensorflow/tensorflow
// #57356). The Go heap sees only the small Go object, so the collector is not paced by the C
// buffers: between two collections, every tensor made meanwhile stays allocated. The split
// makes two a photo (the file's bytes and the resized image, 200 KB); with a live heap of 60
// MB the collector runs every few hundred photos, and the resident memory grew by about 3 KB
// for every photo of the dataset (100 MB at 32,000 photos) where it should stay flat.
// FreeTensor frees a tensor at once.

// tensorLayoutOK reports whether graft's Tensor is laid out as FreeTensor expects: its first
// field a *C.TF_Tensor (graft v0.10.0: struct{ c *C.TF_Tensor; shape []int64 }). Should a
// later graft change that, FreeTensor leaves tensors to their finalizers.
var tensorLayoutOK = sync.OnceValue(func() bool {
	typ := reflect.TypeOf(tf.Tensor{})
	if typ.NumField() == 0 {
		return false
	}
	f := typ.Field(0)
	return f.Name == "c" && f.Offset == 0 && f.Type.Kind() == reflect.Pointer && f.Type.Elem().Name() == "_Ctype_struct_TF_Tensor"
})

// tensorPtr returns where t keeps its C tensor (see tensorLayoutOK).
func tensorPtr(t *tf.Tensor) **C.TF_Tensor {
	return (**C.TF_Tensor)(unsafe.Pointer(t))
}

// FreeTensor frees the C buffers of tensors now, rather than when a garbage collection gets
// to their finalizers. A freed tensor must not be used again (nil ones are skipped).
func FreeTensor(tensors ...*tf.Tensor) {
	if !tensorLayoutOK() {
		return
	}
	for _, t := range tensors {
		if t == nil {
			continue
		}
		p := tensorPtr(t)
		c := *p
		if c == nil {
			continue
		}
		runtime.SetFinalizer(t, nil)
		*p = nil
		C.TF_DeleteTensor(c)
	}
}

// freeFeeds frees a Run's input tensors (FreeTensor).
func freeFeeds(feeds map[tf.Output]*tf.Tensor) {
	for _, t := range feeds {
		FreeTensor(t)
	}
}
