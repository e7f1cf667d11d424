package graphs

import (
	"io"
	"runtime"

	tf "github.com/wamuir/graft/tensorflow"
)

// graft's Tensor.Value and Tensor.WriteContentsTo copy out of the tensor's C buffer after
// their last use of the tensor itself. Unless the caller still holds the tensor, the garbage
// collector may run its finalizer, which frees the buffer, in the middle of that copy: the
// copy then reads freed memory (the C allocator's free-list pointers turned up as pixels at
// the top of decoded images). Every tensor this project reads goes through the two functions
// below, which keep it alive until the copy is done.

// TensorValue returns t's contents as Go values (tf.Tensor.Value), keeping t alive until
// they are copied.
func TensorValue(t *tf.Tensor) any {
	v := t.Value()
	runtime.KeepAlive(t)
	return v
}

// WriteTensor writes t's raw contents to w (tf.Tensor.WriteContentsTo), keeping t alive until
// they are written.
func WriteTensor(w io.Writer, t *tf.Tensor) (int64, error) {
	n, err := t.WriteContentsTo(w)
	runtime.KeepAlive(t)
	return n, err
}
