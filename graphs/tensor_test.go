package graphs

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
)

// collectingWriter runs the garbage collector and lets finalizers run before it copies what
// it is given, as a collection in the middle of a copy would.
type collectingWriter struct{ bytes.Buffer }

func (w *collectingWriter) Write(p []byte) (int, error) {
	runtime.GC()
	runtime.GC()
	time.Sleep(2 * time.Millisecond)
	return w.Buffer.Write(p)
}

// A tensor nobody else holds is still intact when a collection runs in the middle of
// copying it out (without the KeepAlive its buffer is freed first, and the copy starts with
// the allocator's free-list pointers).
func TestTensorContentsSurviveACollectionDuringTheCopy(t *testing.T) {
	want := bytes.Repeat([]byte{0x5a}, 256)
	for i := 0; i < 20; i++ {
		ten, err := tf.NewTensor(append([]byte(nil), want...))
		if err != nil {
			t.Fatal(err)
		}
		var got collectingWriter
		if _, err := WriteTensor(&got, ten); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("copy %d: the tensor's bytes changed during the copy: % x", i, got.Bytes()[:32])
		}
	}
}
