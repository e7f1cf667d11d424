package main

import (
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// heapProfileVar names a file to which the command writes a heap profile of its largest live
// heap (as of each garbage collection), for measuring what grows with a dataset's size:
// `go tool pprof -sample_index=inuse_space -top pipeline FILE`. The peak is printed to
// stderr when the command ends, with the most memory the Go runtime held from the system at
// once (heap, stacks and its own structures, less what it returned): the rest of the
// process's resident memory is libtensorflow's and the C libraries'.
const heapProfileVar = "PIPELINE_HEAP_PROFILE"

// startHeapProfile watches the live heap when heapProfileVar is set and returns a function
// that writes the last profile and reports the peak; without the variable it does nothing.
func startHeapProfile(stderr io.Writer) (stop func()) {
	path := os.Getenv(heapProfileVar)
	if path == "" {
		return func() {}
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	var peak, peakHeld uint64
	var peakAt time.Duration
	start := time.Now()
	write := func() {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "pipeline: %s: %v\n", heapProfileVar, err)
		}
	}
	check := func() {
		metrics.Read(sample)
		peakHeld = max(peakHeld, sample[1].Value.Uint64()-sample[2].Value.Uint64())
		if live := sample[0].Value.Uint64(); live > peak+peak/20 {
			peak, peakAt = live, time.Since(start)
			write()
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				check()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		check()
		fmt.Fprintf(stderr, "pipeline: peak live heap %.1f MB after %.1f s, profile in %s; the Go runtime held at most %.1f MB\n",
			float64(peak)/1e6, peakAt.Seconds(), path, float64(peakHeld)/1e6)
	}
}
