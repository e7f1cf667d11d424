package graphs

import (
	"errors"
	"testing"
)

// TestTFMessage checks what is kept of TensorFlow's errors as the checkpoints (Save, Restore),
// the loading of a model (BrokenModelError) and the reading of a model's weights to start from
// (LoadWeights) get them, and of the errors of other origin they get too.
func TestTFMessage(t *testing.T) {
	const hint = "Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info. This isn't available when running in Eager mode.\n"
	for _, c := range []struct{ name, err, want string }{
		// Checkpoints.
		{"full disk: node and hint left out",
			"RESOURCE_EXHAUSTED: ckpt/x.data-00000-of-00001.tempstate123; No space left on device\n\t [[{{node save/SaveV2}}]]\n" + hint,
			"RESOURCE_EXHAUSTED: ckpt/x.data-00000-of-00001.tempstate123; No space left on device"},
		{"saved into a file",
			"/w/file/ckpt.data-00000-of-00001.tempstate2557198469202438207; Not a directory\n\t [[{{node checkpoint/save_v2/SaveV2}}]]",
			"/w/file/ckpt.data-00000-of-00001.tempstate2557198469202438207; Not a directory"},
		{"restored from nothing",
			"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for /w/ckpt-3\n\t [[{{node checkpoint/restore_v2/RestoreV2}}]]",
			"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for /w/ckpt-3"},
		{"restored from a file cut short",
			"Read less bytes than requested\n\t [[{{node checkpoint/restore_v2/RestoreV2}}]]",
			"Read less bytes than requested"},
		// Models loaded.
		{"weights deleted",
			"/m/variables/variables.data-00000-of-00001; No such file or directory\n\t [[{{node save/restore_v2/RestoreV2}}]]",
			"/m/variables/variables.data-00000-of-00001; No such file or directory"},
		{"weights' index overwritten",
			"not an sstable (bad magic number)\n\t [[{{node save/restore_v2/RestoreV2}}]]",
			"not an sstable (bad magic number)"},
		{"graph overwritten", "Can't parse /m/saved_model.pb as binary proto", "Can't parse /m/saved_model.pb as binary proto"},
		{"failing on the blank image",
			"predict: output depth must be evenly divisible by number of groups: 4 vs 3\n\t [[{{node model/block1/relu/Relu}}]]",
			"predict: output depth must be evenly divisible by number of groups: 4 vs 3"},
		{"out of memory",
			"OOM when allocating tensor with shape[64,512,28,28] and type float on /job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu\n\t [[{{node model/block4_conv1/Conv2D}}]]\n" + hint,
			"OOM when allocating tensor with shape[64,512,28,28] and type float on /job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu"},
		{"model.json unreadable (not TensorFlow's)", "open /m/model.json: permission denied", "open /m/model.json: permission denied"},
		{"model.json not JSON (not TensorFlow's)", "invalid character 'x' looking for beginning of value", "invalid character 'x' looking for beginning of value"},
		// Weights read to start from.
		{"weight not in the checkpoint",
			"Key model/head/kernel not found in checkpoint\n\t [[{{node RestoreV2}}]]",
			"Key model/head/kernel not found in checkpoint"},
		{"weights cut short", "Read less bytes than requested\n\t [[{{node RestoreV2}}]]", "Read less bytes than requested"},
		// Any of them.
		{"a message of two lines", "Could not restore a variable.\nIts shape differs from the checkpoint's.\n\t [[{{node RestoreV2}}]]",
			"Could not restore a variable. Its shape differs from the checkpoint's."},
		{"several ops failed alike: said once, without the counts",
			"2 root error(s) found.\n  (0) NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory\n\t [[{{node save/RestoreV2}}]]\n\t [[save/RestoreV2/_1]]\n  (1) NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory\n\t [[{{node save/RestoreV2}}]]\n0 successful operations.\n0 derived errors ignored.",
			"NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory"},
		{"several ops failed otherwise",
			"2 root error(s) found.\n  (0) OUT_OF_RANGE: Read less bytes than requested\n\t [[{{node RestoreV2}}]]\n  (1) NOT_FOUND: Key model/head/kernel not found in checkpoint\n\t [[{{node RestoreV2_1}}]]\n1 successful operations.\n0 derived errors ignored.",
			"OUT_OF_RANGE: Read less bytes than requested (also NOT_FOUND: Key model/head/kernel not found in checkpoint)"},
		{"the logs appended left out",
			"Read less bytes than requested\n\t [[{{node RestoreV2}}]]\nRecent warning and error logs:\n  OP_REQUIRES failed at save_restore_v2_ops.cc:233 : OUT_OF_RANGE: Read less bytes than requested",
			"Read less bytes than requested"},
		{"nothing but a node", "\n\t [[{{node RestoreV2}}]]\n", "[[{{node RestoreV2}}]]"},
	} {
		if got := tfMessage(errors.New(c.err)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// TestBrokenModelErrorSaysTensorFlowsError checks that a broken model is said with what
// TensorFlow's error says (tfMessage), not its first line, which for several failed ops is
// only their count.
func TestBrokenModelErrorSaysTensorFlowsError(t *testing.T) {
	err := &BrokenModelError{Dir: "/m", Problem: "TensorFlow cannot load it", Err: errors.New(
		"2 root error(s) found.\n  (0) NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory\n\t [[{{node save/RestoreV2}}]]\n  (1) NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory\n\t [[{{node save/RestoreV2}}]]\n0 successful operations.\n0 derived errors ignored.")}
	want := "model /m is broken: TensorFlow cannot load it: NOT_FOUND: /m/variables/variables.data-00000-of-00001; No such file or directory"
	if got := err.Error(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got, want := (&BrokenModelError{Dir: "/m", Problem: "it fails on a blank image", Err: errors.New("")}).Error(), "model /m is broken: it fails on a blank image"; got != want {
		t.Errorf("an empty error: got %q, want %q", got, want)
	}
}
