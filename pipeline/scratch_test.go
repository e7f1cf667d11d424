package pipeline

import (
	"cmp"
	"os"
	"slices"
	"testing"
)

// MergeSorted gives the runs' values in order, equal ones in the order of their runs, an empty
// run nothing, and stops when asked.
func TestMergeSortedKeepsRunOrderForEqualValues(t *testing.T) {
	type v struct{ k, run int }
	runOf := func(vs ...v) func() (v, bool) {
		i := 0
		return func() (v, bool) {
			if i == len(vs) {
				return v{}, false
			}
			i++
			return vs[i-1], true
		}
	}
	byKey := func(a, b v) int { return cmp.Compare(a.k, b.k) }
	runs := func() []func() (v, bool) {
		return []func() (v, bool){runOf(v{1, 0}, v{3, 0}, v{3, 0}, v{7, 0}), runOf(), runOf(v{0, 2}, v{3, 2}, v{9, 2}), runOf(v{3, 3})}
	}
	got := slices.Collect(MergeSorted(runs(), byKey))
	want := []v{{0, 2}, {1, 0}, {3, 0}, {3, 0}, {3, 2}, {3, 3}, {7, 0}, {9, 2}}
	if !slices.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	var first []v
	for x := range MergeSorted(runs(), byKey) {
		if first = append(first, x); len(first) == 3 {
			break
		}
	}
	if !slices.Equal(first, want[:3]) {
		t.Errorf("stopped after %v, want %v", first, want[:3])
	}
	if got := slices.Collect(MergeSorted(nil, byKey)); len(got) != 0 {
		t.Errorf("no runs gave %v", got)
	}
}

// A scratch file has no name once made: nothing is left in its folder, even while it is open.
func TestCreateScratchLeavesNoName(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateScratch(dir, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("records"); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("names left: %v", left)
	}
	b := make([]byte, 7)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "records" {
		t.Errorf("read back %q, %v", b, err)
	}
}
