// Command writecost measures what writing new files costs on this machine: it writes -files
// files of -size bytes into a new folder under -dir with -workers goroutines and prints the
// wall time and the process's kernel CPU time. With -warm N it first touches and frees N GiB
// of memory, so that the page cache is built from pages the host has backed recently. The
// half-minute pauses let the guest report its free memory to the host again.
//
// On a VM whose balloon device reports free pages to the host, the first write to every new
// page faults in the host; the data stages write about 650 MB per run of the data benchmark.
// The folders are left in place: on ext4 without a journal, files created within a minute of
// deleting thousands are slower to create (see tools/bench/data/run.sh), so delete them after
// the last measurement.
//
//	go build -o /tmp/writecost ./tools/bench/data/writecost
//	for i in 1 2 3; do sleep 30; /tmp/writecost -dir tools/bench/data/work; sleep 30; /tmp/writecost -dir tools/bench/data/work -warm 3; done
//	rm -rf tools/bench/data/work/writecost-*
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "where to make the folder of files (left there: see below)")
	files := flag.Int("files", 4300, "files to write")
	size := flag.Int("size", 150_600, "bytes per file (a 224x224 RGB image stored as uncompressed PNG)")
	workers := flag.Int("workers", 2, "goroutines writing")
	warm := flag.Int("warm", 0, "GiB of memory to touch and free first")
	flag.Parse()

	if *warm > 0 {
		b, err := syscall.Mmap(-1, 0, *warm<<30, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			log.Fatal(err)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		if err := syscall.Munmap(b); err != nil { // back to the kernel's free pages
			log.Fatal(err)
		}
	}
	out, err := os.MkdirTemp(*dir, "writecost-")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, *size)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			for i := w; i < *files; i += *workers {
				if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("%d.png", i)), buf, 0o644); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	sys := time.Duration(after.Stime.Nano() - before.Stime.Nano())
	mb := float64(*files) * float64(*size) / 1e6
	fmt.Printf("wrote %.0f MB in %d files: %.2f s wall, %.2f s kernel CPU (%.0f MB per kernel-second)\n",
		mb, *files, wall.Seconds(), sys.Seconds(), mb/sys.Seconds())
}
