package graphs

import (
	"errors"
	"testing"
)

// A full disk while checkpointing is said as such, without TensorFlow's node names and its
// advice on out-of-memory reports.
func TestSessionMessageDropsNodesAndHints(t *testing.T) {
	err := errors.New("RESOURCE_EXHAUSTED: ckpt/x.data-00000-of-00001.tempstate123; No space left on device\n\t [[{{node save/SaveV2}}]]\nHint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info. This isn't available when running in Eager mode.\n")
	want := "RESOURCE_EXHAUSTED: ckpt/x.data-00000-of-00001.tempstate123; No space left on device"
	if got := sessionMessage(err); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}
