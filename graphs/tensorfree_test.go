package graphs

import (
	"runtime"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
)

// TestFreeTensorFreesAtOnce checks that FreeTensor knows graft's layout (else it would leave
// every tensor to its finalizer, silently) and frees: the tensor no longer holds a C buffer,
// has no finalizer left to free it twice, and a second call is harmless.
func TestFreeTensorFreesAtOnce(t *testing.T) {
	if !tensorLayoutOK() {
		t.Fatal("graft's Tensor is not laid out as FreeTensor expects: it would free nothing")
	}
	x, err := tf.NewTensor([][]float32{{1, 2, 3}, {4, 5, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if *tensorPtr(x) == nil {
		t.Fatal("a new tensor holds no C tensor where FreeTensor looks")
	}
	FreeTensor(x, nil)
	if *tensorPtr(x) != nil {
		t.Fatal("FreeTensor left the C tensor in place")
	}
	FreeTensor(x)
	runtime.GC() // a finalizer left in place would free the buffer again, and crash
	runtime.GC()
}
