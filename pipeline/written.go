package pipeline

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// writtenFiles are the digests of the files a stage wrote with Job.WriteFile (or linked with
// Job.LinkFile), by path, with the stat identity each file had once written: a file changed
// since, or another file at its path, is not taken for it. Publishing looks them up in the
// order it walks the output, which is the order of their paths, so they are kept as sorted
// runs: the records of the last writtenRun files in memory, the runs before in a scratch file
// (when the files have a folder for it), merged as they are looked up. What publishing an
// augmented set of a million copies holds of them is a run and a small reader per run, not a
// record per copy.
type writtenFiles struct {
	// dir is the folder of the scratch file ("" keeps every record in memory).
	dir string
	// root, when set, is the absolute path of the folder the files are written in (the
	// stage's Out): the records name the files in it by their path relative to it.
	root string

	mu    sync.Mutex
	files []writtenFile // the records not yet in a run on disk, in the order written
	seq   uint64        // records added so far: a path written twice counts its last
	spill *os.File      // unlinked: it goes when closed
	end   int64
	runs  []int64 // where each run on disk ends
}

// writtenRun is how many records writtenFiles holds before it writes them to its scratch file
// as a sorted run (a variable for tests).
var writtenRun = 4096

// writtenFile is what writtenFiles holds of a file: its key (recordKey), the order it was
// recorded in, its identity (a store file's, without the change time: statKey.object)
// and its SHA-256.
type writtenFile struct {
	path          string
	seq           uint64
	dev, ino      uint64
	size, mtimeNs int64
	perm          uint32
	digest        [sha256.Size]byte
}

// compareWritten orders records by path, then by the order they were recorded in.
func compareWritten(a, b *writtenFile) int {
	return cmp.Or(strings.Compare(a.path, b.path), cmp.Compare(a.seq, b.seq))
}

// recordKey is the key of the file at abs in records of files written in root: its path
// relative to root, cleaned (its cleaned absolute path outside root, or without a root).
func recordKey(root, abs string) string {
	abs = filepath.Clean(absPath(abs))
	if root != "" && len(abs) > len(root) && abs[len(root)] == filepath.Separator && strings.HasPrefix(abs, root) {
		return abs[len(root)+1:]
	}
	return abs
}

// add records a file written at abs with identity k (statKey.object) and digest.
func (w *writtenFiles) add(abs string, k statKey, digest [sha256.Size]byte) {
	f := writtenFile{path: recordKey(w.root, abs), dev: k.Dev, ino: k.Ino, size: k.Size, mtimeNs: k.MtimeNs, perm: k.Perm, digest: digest}
	w.mu.Lock()
	defer w.mu.Unlock()
	f.seq = w.seq
	w.seq++
	w.files = append(w.files, f)
	if len(w.files) >= writtenRun && w.dir != "" {
		w.writeRun()
	}
}

// writeRun writes the records in memory to the scratch file as a run sorted by path; where
// the file cannot be made or written, they stay in memory, as do all that follow.
func (w *writtenFiles) writeRun() {
	if w.spill == nil {
		f, err := CreateScratch(w.dir, "written-*")
		if err != nil {
			w.dir = ""
			return
		}
		w.spill = f
	}
	slices.SortFunc(w.files, func(a, b writtenFile) int { return compareWritten(&a, &b) })
	var buf []byte
	for i := range w.files {
		buf = appendWritten(buf, &w.files[i])
	}
	if _, err := w.spill.WriteAt(buf, w.end); err != nil {
		w.dir = ""
		return
	}
	w.end += int64(len(buf))
	w.runs = append(w.runs, w.end)
	w.files = w.files[:0]
}

// appendWritten appends record f to buf.
func appendWritten(buf []byte, f *writtenFile) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(f.path)))
	buf = append(buf, f.path...)
	for _, v := range []uint64{f.seq, f.dev, f.ino, uint64(f.size), uint64(f.mtimeNs), uint64(f.perm)} {
		buf = binary.AppendUvarint(buf, v)
	}
	return append(buf, f.digest[:]...)
}

// readWritten reads a record written by appendWritten from r.
func readWritten(r *bufio.Reader, f *writtenFile) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err // io.EOF at the end of the run
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return io.ErrUnexpectedEOF
	}
	f.path = string(p)
	var v [6]uint64
	for i := range v {
		if v[i], err = binary.ReadUvarint(r); err != nil {
			return io.ErrUnexpectedEOF
		}
	}
	f.seq, f.dev, f.ino, f.size, f.mtimeNs, f.perm = v[0], v[1], v[2], int64(v[3]), int64(v[4]), uint32(v[5])
	if _, err := io.ReadFull(r, f.digest[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// forget drops the recorded digests (once the output is hashed).
func (w *writtenFiles) forget() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files, w.runs, w.end = nil, nil, 0
	if w.spill != nil {
		w.spill.Close()
		w.spill = nil
	}
}

// writtenCursor looks up the records of a writtenFiles in path order: its runs merged.
type writtenCursor struct {
	root string
	next func() (writtenFile, bool)
	stop func()
	head writtenFile // the next record, while more
	more bool
	err  bool // a run could not be read: nothing more is found
	last string
}

// cursor returns a cursor over w's records (nil w has none). The records in memory are sorted
// into a run of their own; w must not be added to while the cursor is in use.
func (w *writtenFiles) cursor() *writtenCursor {
	c := &writtenCursor{}
	var runs []func() (writtenFile, bool)
	if w != nil {
		c.root = w.root
		w.mu.Lock()
		defer w.mu.Unlock()
		slices.SortFunc(w.files, func(a, b writtenFile) int { return compareWritten(&a, &b) })
		mem, i := w.files, 0
		runs = append(runs, func() (writtenFile, bool) {
			if i == len(mem) {
				return writtenFile{}, false
			}
			i++
			return mem[i-1], true
		})
		start := int64(0)
		for _, end := range w.runs {
			r := bufio.NewReaderSize(io.NewSectionReader(w.spill, start, end-start), 4<<10)
			start = end
			runs = append(runs, func() (writtenFile, bool) {
				var f writtenFile
				err := readWritten(r, &f)
				if err != nil && !errors.Is(err, io.EOF) {
					c.err = true
				}
				return f, err == nil
			})
		}
	}
	c.next, c.stop = iter.Pull(MergeSorted(runs, func(a, b writtenFile) int { return compareWritten(&a, &b) }))
	c.head, c.more = c.next()
	return c
}

// digest returns the recorded digest of the file at abs, of identity k, if it was written
// there with that identity (the last record of a path written twice), for paths asked in the
// order of their keys (recordKey: a walk of root, or of a folder in it, asks in that order):
// a path whose key sorts before the one asked last finds nothing (its file is read).
func (c *writtenCursor) digest(abs string, k statKey) ([sha256.Size]byte, bool) {
	key := recordKey(c.root, abs)
	if key < c.last {
		return [sha256.Size]byte{}, false
	}
	c.last = key
	var f writtenFile
	found := false
	for c.more && !c.err && c.head.path <= key {
		if c.head.path == key {
			f, found = c.head, true // the last one recorded wins: records of a path come in order
		}
		c.head, c.more = c.next()
	}
	if !found || c.err || f.dev != k.Dev || f.ino != k.Ino || f.size != k.Size || f.mtimeNs != k.MtimeNs || f.perm != k.Perm || k.CtimeNs != 0 {
		return [sha256.Size]byte{}, false
	}
	return f.digest, true
}

// close ends the cursor.
func (c *writtenCursor) close() { c.stop() }
