package pipeline

import (
	"container/heap"
	"iter"
	"os"
)

// CreateScratch creates a file in dir, named after pattern as os.CreateTemp names it, and
// removes its name at once: the file is the caller's until it is closed, and gone then,
// whatever becomes of the process (a crash leaves nothing to clean up).
func CreateScratch(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// MergeSorted yields the values of runs, each yielding its values in the order of cmp, as one
// sequence in that order; of values equal by cmp, those of earlier runs come first. A run gives
// its next value through its function, which reports false at the run's end.
func MergeSorted[T any](runs []func() (T, bool), cmp func(a, b T) int) iter.Seq[T] {
	return func(yield func(T) bool) {
		h := &mergeHeap[T]{cmp: cmp}
		for i, next := range runs {
			if v, ok := next(); ok {
				h.heads = append(h.heads, mergeHead[T]{v, i})
			}
		}
		heap.Init(h)
		for len(h.heads) > 0 {
			if !yield(h.heads[0].v) {
				return
			}
			if v, ok := runs[h.heads[0].run](); ok {
				h.heads[0].v = v
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
		}
	}
}

// mergeHead is the next value of a run of MergeSorted.
type mergeHead[T any] struct {
	v   T
	run int
}

// mergeHeap orders MergeSorted's runs by their next values, then by run.
type mergeHeap[T any] struct {
	heads []mergeHead[T]
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int { return len(h.heads) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	c := h.cmp(h.heads[i].v, h.heads[j].v)
	return c < 0 || c == 0 && h.heads[i].run < h.heads[j].run
}
func (h *mergeHeap[T]) Swap(i, j int) { h.heads[i], h.heads[j] = h.heads[j], h.heads[i] }
func (h *mergeHeap[T]) Push(x any)    { h.heads = append(h.heads, x.(mergeHead[T])) }
func (h *mergeHeap[T]) Pop() any {
	x := h.heads[len(h.heads)-1]
	h.heads = h.heads[:len(h.heads)-1]
	return x
}
