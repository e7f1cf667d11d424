package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkPublish publishes an output like an augmentation's: 20,000 files in 40 class
// folders, written with Job.WriteFile, half of them links to a published output's files
// (Job.LinkFile). Writing the files is not timed; hashing, renaming and recording the output
// is. Run with -benchmem for its allocations; the peak it holds is in the data stages'
// memory measurements (BENCHMARKS.md).
func BenchmarkPublish(b *testing.B) {
	const classes, perClass = 40, 500
	st, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	// The published input the links lead to.
	in, err := os.MkdirTemp(filepath.Join(st.Root, "tmp"), "in")
	if err != nil {
		b.Fatal(err)
	}
	inJob := &Job{Out: in, written: &writtenFiles{}, stats: st.Stats}
	for c := range classes {
		os.MkdirAll(filepath.Join(in, fmt.Sprint(c)), 0o755)
		for i := range perClass / 2 {
			if _, err := inJob.WriteFile(filepath.Join(in, fmt.Sprint(c), fmt.Sprintf("%04d.png", i)), []byte(fmt.Sprint(c, i, strings.Repeat("x", 1000)))); err != nil {
				b.Fatal(err)
			}
		}
	}
	inEntry, err := st.Publish(in, strings.Repeat("1", 64), "stage.in", nil, nil, time.Second, inJob.written)
	if err != nil {
		b.Fatal(err)
	}
	inObj := filepath.Join(st.Workspace, ObjectRel(inEntry.Output.Digest))
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		tmp, err := os.MkdirTemp(filepath.Join(st.Root, "tmp"), "out")
		if err != nil {
			b.Fatal(err)
		}
		job := &Job{Out: tmp, written: &writtenFiles{dir: st.Stats.spillDir(), root: tmp}, stats: st.Stats}
		for c := range classes {
			dir := filepath.Join(tmp, "images", fmt.Sprint(c))
			os.MkdirAll(dir, 0o755)
			for i := range perClass / 2 {
				if err := job.LinkFile(filepath.Join(inObj, fmt.Sprint(c), fmt.Sprintf("%04d.png", i)), filepath.Join(dir, fmt.Sprintf("%04d.png", i))); err != nil {
					b.Fatal(err)
				}
				if _, err := job.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d_aug.png", i)), []byte(fmt.Sprint(n, c, i))); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		if _, err := st.Publish(tmp, fmt.Sprintf("%064d", n), "stage.out", nil, nil, time.Second, job.written); err != nil {
			b.Fatal(err)
		}
	}
}
