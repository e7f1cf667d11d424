package pipeline

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Manifest lists the files of a tree (slash-separated relative paths) with their SHA-256
// digests; Digest identifies the whole tree.
type Manifest struct {
	Files  map[string]string `json:"files,omitempty"`
	Sizes  map[string]int64  `json:"sizes,omitempty"`
	Digest string            `json:"digest"`
}

// statKey identifies a file version without reading it. Touching a file changes mtime, so
// its content is hashed again, but an unchanged digest changes nothing downstream.
type statKey struct {
	Size    int64
	MtimeNs int64
	// CtimeNs is the inode change time, in the identity of source files: no tool a user runs
	// can set it back, so a file rewritten with its size and mtime restored (touch -d, cp -p,
	// tar or unzip with fixed times) is still read again. The store's files leave it out
	// (zero, see object): adding or removing a hard link changes it, and run folders and
	// augment link the store's files all the time, while the files themselves never change.
	CtimeNs int64
	Ino     uint64
	Dev     uint64
	// Perm is the read permission bits: a chmod changes nothing else, and a file made
	// unreadable (or readable again) must be looked at again, not taken from the cache. (Not
	// the write bits, which publishing clears on outputs already hashed.)
	Perm uint32
}

// object returns the identity without the change time, as the store's files are known by
// (see CtimeNs).
func (k statKey) object() statKey {
	k.CtimeNs = 0
	return k
}

// folderID returns the part of a folder's identity that names it (device and inode), for
// telling links that lead back into a walk.
func (k statKey) folderID() statKey {
	return statKey{Ino: k.Ino, Dev: k.Dev}
}

// racyMargin is how much older than the moment it was hashed a source file must be (both its
// mtime and its ctime) for its recorded digest to be trusted without reading it, as git
// treats "racily clean" entries: a file rewritten within the same timestamp tick as it was
// hashed keeps its stat identity, and some filesystems count time in whole seconds. Such a
// file is read again, and trusted once a later hash is far enough past its times.
const racyMargin = 2 * time.Second

// settled reports whether a digest recorded for a file of identity k at hashedNs (Unix
// nanoseconds) can be trusted by identity alone (see racyMargin).
func settled(k statKey, hashedNs int64) bool {
	limit := hashedNs - int64(racyMargin)
	return k.MtimeNs < limit && k.CtimeNs < limit
}

// StatCache remembers file digests by path and stat identity, so an unchanged tree of 50,000
// files costs 50,000 stat calls and no reads. It also remembers, per tree, a signature of
// every file's path and stat identity with the tree's manifest digest, so that a plan finding
// a tree unchanged needs neither the per-file digests nor a manifest (QuickManifest). It is
// safe for concurrent use.
//
// The saved entries are not decoded into memory: the file is mapped, its entries sorted by
// path, and a lookup is a binary search over their offsets (8 bytes an entry in memory).
// Only the entries recorded by this process are held in a map, so the memory a workspace's
// cache takes does not grow with the files of the workspace's earlier runs and outputs (a
// few hundred thousand entries, tens of megabytes). The store replaces the file by renaming
// a new one over it, so the mapped file does not change; but a file cut short in place (by a
// cp or rsync --inplace over the workspace's store) leaves pages of the mapping past its end,
// whose reading is a fault (SIGBUS) that would crash the process. Every read of the saved
// entries goes through readSaved, which turns that fault into the loss of the saved entries:
// the cache goes on as if the file had been unreadable, and files are hashed again. (Written
// over in place without being cut short, the mapping shows other bytes: reading them is
// bounded by raw, and an entry read from them is trusted only for a file of its identity.)
type StatCache struct {
	// Clock dates every digest as it is computed (time.Now when nil); tests set it ahead so
	// that source files they have just written count as old enough to trust (racyMargin).
	Clock func() time.Time

	mu   sync.Mutex
	path string
	// raw is the saved entries section (mapped from the file when the system allows, else
	// read), and at the offset in raw of each entry, in path order, once indexed (the first
	// per-file lookup: a plan that finds every tree unchanged needs none).
	raw     []byte
	at      []int
	indexed bool
	// mapped is the whole mapping that raw is part of (nil when the file was read into
	// memory, or its saved entries dropped): a fault reading it means that the file was cut
	// short (readSaved).
	mapped []byte
	// changed holds the entries recorded since the file was read, which take precedence over
	// raw's, and dropped marks raw's entries removed since (Prune), by their place in at (a
	// bit each, not a path: gc drops millions at a time). Save merges them.
	changed map[string]statEntry
	dropped bitset
	trees   map[string]treeRecord
	dirty   bool
	// spillRetry is the number of entries recorded at which a spill that failed (the file
	// could not be written, a full disk, a read-only store) is tried again: not at every
	// entry, each try writing them all.
	spillRetry int
	// unmap releases the file's mapping, or its contents read (nil when there are none).
	unmap *mapping
	// Hashed counts files read and hashed (not served from the cache or from a digest known
	// in this process), for tests and stats.
	Hashed int64
}

type statEntry struct {
	K      statKey
	Digest [sha256.Size]byte
	// HashedNs is when the walk that read the file began (Unix nanoseconds; see settled).
	HashedNs int64
}

// treeRecord is what a tree looked like when its manifest was last computed: the signature
// (treeSignature) of its files' paths and stat identities, and the manifest digest.
type treeRecord struct {
	Sig    [sha256.Size]byte
	Digest [sha256.Size]byte
	Files  int
	// HashedNs is when the walk that computed the digest began (Unix nanoseconds): a source
	// tree with a file not settled since then is not taken as unchanged from its signature.
	HashedNs int64
}

// now returns the cache's clock in Unix nanoseconds.
func (c *StatCache) now() int64 {
	if c.Clock != nil {
		return c.Clock().UnixNano()
	}
	return time.Now().UnixNano()
}

// StatCacheFile is the stat cache's file name in the store.
const StatCacheFile = "statcache"

// statCacheMagic starts the stat cache file; a file without it (or an older format) is
// ignored and rebuilt. Format 4 added the change time and when each digest was computed;
// since, entries are saved sorted by path (a file of format 4 whose entries are not is
// sorted when it is indexed, and saved sorted the next time).
const statCacheMagic = "pipeline statcache 4\n"

// OpenStatCache loads the cache stored at path (a missing, unreadable or malformed file
// starts empty: the cache only saves work, it is never trusted for more than stat identity).
// The per-file entries are indexed only when a lookup needs them, and never decoded whole.
func OpenStatCache(path string) *StatCache {
	c := &StatCache{path: path, trees: map[string]treeRecord{}, changed: map[string]statEntry{}}
	b, mapped, unmap := readMapped(path)
	if b == nil {
		c.indexed = true
		return c
	}
	var trees map[string]treeRecord
	var raw []byte
	ok := false
	if !readMapping(mapped, func() { trees, raw, ok = decodeTrees(b) }) || !ok {
		unmap()
		c.indexed = true
		return c
	}
	c.trees, c.raw, c.mapped = trees, raw, mapped
	// The mapping lives as long as the cache (or until a spill maps the file saved in its
	// place): every use of raw is a method of c holding c.mu (its deferred unlock keeps c
	// reachable), and what leaves those methods is copied.
	c.unmap = &mapping{release: unmap}
	runtime.AddCleanup(c, func(m *mapping) { m.release() }, c.unmap)
	return c
}

// mapping holds the function that releases the saved file's mapping, which a spill replaces.
type mapping struct{ release func() }

// spillAt is the number of entries recorded since the file was read at which the cache writes
// them into its file and maps that (spill): a run hashing or publishing a few hundred
// thousand files holds at most this many in memory, not one per file. From spillMin entries
// on it spills already once they take more memory than the file's size (spillBytes each,
// about what an entry held costs: its path, its record and the map's share): rewriting a
// small file costs little, and the file grows by a good part of itself at each spill, so
// the rewrites cost a few times the entries' own bytes in all. Variables for tests.
var (
	spillAt    = 1 << 15
	spillMin   = 1 << 12
	spillBytes = 400
)

// shouldSpill reports whether the entries recorded are many enough to spill. Called with
// c.mu held.
func (c *StatCache) shouldSpill() bool {
	n := len(c.changed)
	return c.path != "" && n >= c.spillRetry && (n >= spillAt || (n >= spillMin && n*spillBytes >= len(c.raw)))
}

// spill saves the cache and maps the file saved in place of the one read, so that the entries
// recorded since are found there and leave memory. If either fails, the entries stay in
// memory for Save to try again, and the next spill waits for as many more. Called with c.mu
// held.
func (c *StatCache) spill() {
	c.spillRetry = 2 * len(c.changed) // unless it works
	if c.saveLocked() != nil {
		return
	}
	b, mapped, unmap := readMapped(c.path)
	if b == nil {
		return
	}
	var raw []byte
	ok := false
	if !readMapping(mapped, func() { _, raw, ok = decodeTrees(b) }) || !ok {
		unmap()
		return
	}
	c.spillRetry = 0
	// The file just saved holds every entry this cache held and its trees (or, should
	// another process have saved over it since, that process's: a cache only saves work).
	if c.unmap != nil {
		c.unmap.release()
		c.unmap.release = unmap
	} else {
		c.unmap = &mapping{release: unmap}
		runtime.AddCleanup(c, func(m *mapping) { m.release() }, c.unmap)
	}
	c.mapped = mapped
	c.raw, c.at, c.indexed = raw, nil, false
	c.changed, c.dropped = map[string]statEntry{}, bitset{}
}

// readMapped returns the contents of the file at path, mapped read-only when the system
// allows (the page cache's copy, not the process's), else read, with the mapping (nil when
// read) and the function that releases them; nil for a missing, unreadable or empty file.
// Reading the mapping faults where the file was cut short in place since: read it through
// readMapping.
func readMapped(path string) (b, mapped []byte, unmap func()) {
	if path == "" {
		return nil, nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || !fi.Mode().IsRegular() {
		return nil, nil, nil
	}
	if int64(int(fi.Size())) == fi.Size() {
		if b, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			return b, b, func() { unix.Munmap(b) }
		}
	}
	b, err = io.ReadAll(f)
	if err != nil || len(b) == 0 {
		return nil, nil, nil
	}
	return b, nil, func() {}
}

// readMapping runs f, which reads the mapping m (nil for contents read into memory, which
// cannot fault), and reports whether it completed: false when reading m faulted, the file
// having been cut short since it was mapped. The fault is a panic of f's goroutine alone
// (debug.SetPanicOnFault), recovered here; any other panic goes on. Checking the file's size
// first would not do: it can be cut short between the check and the read.
func readMapping(m []byte, f func()) (ok bool) {
	if m == nil {
		f()
		return true
	}
	defer func(was bool) {
		debug.SetPanicOnFault(was)
		if ok {
			return
		}
		r := recover()
		if r == nil {
			return // runtime.Goexit, not a panic
		}
		if fault, isFault := r.(interface{ Addr() uintptr }); !isFault || !inside(fault.Addr(), m) {
			panic(r)
		}
	}(debug.SetPanicOnFault(true))
	f()
	return true
}

// scanRelease gives back the pages of a mapping m that a scan of it in file order has passed,
// a few megabytes at a time (releaseEvery), and the rest once it is done: they stay in the
// page cache, from which a page read again is mapped again, but a scan of a large stat cache
// (hundreds of megabytes in a workspace with a long history) no longer leaves all of it in
// the process's resident memory. Nothing for contents read into memory (m nil).
type scanRelease struct {
	m    []byte
	done int // bytes of m given back, from its start (a multiple of the page size)
}

// releaseEvery is how far a scan goes between two releases.
const releaseEvery = 8 << 20

// passed notes that the scan has read up to the start of b, a view of m.
func (r *scanRelease) passed(b []byte) {
	if r.m == nil {
		return
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(r.m))))
	if off < r.done+releaseEvery || off > len(r.m) {
		return
	}
	end := off &^ (os.Getpagesize() - 1)
	unix.Madvise(r.m[r.done:end], unix.MADV_DONTNEED)
	r.done = end
}

// all gives back the rest of m, the scan done.
func (r *scanRelease) all() {
	if r.m != nil && r.done < len(r.m) {
		unix.Madvise(r.m[r.done:], unix.MADV_DONTNEED)
		r.done = len(r.m)
	}
}

// inside reports whether addr is the address of a byte of m.
func inside(addr uintptr, m []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	return addr >= start && addr-start < uintptr(len(m))
}

// readSaved runs f, which reads the saved entries (raw), with c.mu held, and reports whether
// it completed. When the mapping faults (the file was cut short in place, see StatCache),
// the saved entries are dropped for good, as if the file had been unreadable, and it returns
// false: f may have seen some of them and is to be run again, when it sees none.
func (c *StatCache) readSaved(f func()) bool {
	if readMapping(c.mapped, f) {
		return true
	}
	// The mapping itself is released by OpenStatCache's cleanup.
	c.raw, c.at, c.indexed, c.mapped = nil, nil, true, nil
	c.dropped = bitset{} // entries of raw only
	return false
}

// decodeTrees parses the header and tree records of a saved cache and returns the rest (the
// entries) undecoded.
func decodeTrees(b []byte) (map[string]treeRecord, []byte, bool) {
	if !bytes.HasPrefix(b, []byte(statCacheMagic)) {
		return nil, nil, false
	}
	r := binReader{b: b[len(statCacheMagic):], ok: true}
	n := r.uvarint()
	// A record takes at least 67 bytes: never size the map beyond what the file can hold.
	trees := make(map[string]treeRecord, min(n, uint64(len(r.b)/67)))
	for i := uint64(0); i < n && r.ok; i++ {
		root := r.str()
		var t treeRecord
		r.bytes(t.Sig[:])
		r.bytes(t.Digest[:])
		t.Files = int(r.uvarint())
		t.HashedNs = r.varint()
		trees[root] = t
	}
	if !r.ok {
		return nil, nil, false
	}
	return trees, r.b, true
}

// index finds the offset of every saved entry in raw and sorts them by path (a malformed
// section leaves the cache without saved entries). Called with c.mu held, in readSaved.
func (c *StatCache) index() {
	if c.indexed {
		return
	}
	c.indexed = true
	n, off := binary.Uvarint(c.raw)
	// As many as the section says, but never beyond what it can hold (39 bytes an entry).
	at := make([]int, 0, min(n, uint64(len(c.raw)/39)))
	sorted := true
	var prev []byte
	scan := scanRelease{m: c.mapped}
	defer scan.all()
	if !eachRawEntry(c.raw, func(p []byte, _ statEntry, enc []byte) {
		at = append(at, off)
		off += len(enc)
		sorted = sorted && (prev == nil || bytes.Compare(prev, p) < 0)
		prev = p
		scan.passed(enc)
	}) {
		c.raw, c.at = nil, nil
		c.dirty = true // saved again without them
		return
	}
	c.at = at
	if sorted {
		return
	}
	// Saved in another order (or, never written so, with a path twice): sorted, the last
	// of a path's entries kept, as a map filled in file order would, and saved so next time.
	slices.SortStableFunc(c.at, func(a, b int) int { return bytes.Compare(c.rawPath(a), c.rawPath(b)) })
	kept := c.at[:0]
	for i, off := range c.at {
		if i+1 < len(c.at) && bytes.Equal(c.rawPath(off), c.rawPath(c.at[i+1])) {
			continue
		}
		kept = append(kept, off)
	}
	c.at = kept
	c.dirty = true
}

// rawPath returns the path of the saved entry at offset off of raw (a view of raw: copy it
// to keep it); none where raw no longer holds one, the file having been written over in place
// since it was indexed (whose other entries, read from wherever they were, match no file's
// identity and are not trusted; see StatCache).
func (c *StatCache) rawPath(off int) []byte {
	n, w := binary.Uvarint(c.raw[off:])
	if w <= 0 || n > uint64(len(c.raw)-off-w) {
		return nil
	}
	return c.raw[off+w : off+w+int(n)]
}

// pathAt returns the path of the i-th saved entry in path order.
func (c *StatCache) pathAt(i int) []byte { return c.rawPath(c.at[i]) }

// entryAt decodes the i-th saved entry in path order, with its encoding (a view of raw).
func (c *StatCache) entryAt(i int) (statEntry, []byte) {
	b := c.raw[c.at[i]:]
	_, e, size, _ := decodeEntry(b) // index decoded every entry once already
	return e, b[:size]
}

// savedIndex returns the position of path's saved entry in path order, if raw has one.
// Called with c.mu held, after index, in readSaved.
func (c *StatCache) savedIndex(path string) (int, bool) {
	return sort.Find(len(c.at), func(i int) int { return compareStringBytes(path, c.pathAt(i)) })
}

// compareStringBytes is strings.Compare of s and string(b), without copying b.
func compareStringBytes(s string, b []byte) int {
	return strings.Compare(s, unsafe.String(unsafe.SliceData(b), len(b)))
}

// lookup returns the entry of path: recorded since opening, else saved and not dropped.
// Called with c.mu held.
func (c *StatCache) lookup(path string) (statEntry, bool) {
	if e, ok := c.changed[path]; ok {
		return e, true
	}
	var e statEntry
	found := false
	if !c.readSaved(func() {
		c.index()
		var i int
		if i, found = c.savedIndex(path); found && !c.dropped.has(i) {
			e, _ = c.entryAt(i)
		} else {
			found = false
		}
	}) {
		return statEntry{}, false
	}
	return e, found
}

// each calls f with every entry in path order: the saved ones (but those dropped or
// recorded again since) merged with those recorded since. enc is a saved entry's encoding
// (encodeEntry's), nil for one recorded since; p is a view of raw for a saved entry (copy it
// to keep it). Called with c.mu held, in readSaved.
func (c *StatCache) each(f func(p []byte, e statEntry, enc []byte)) {
	c.index()
	recent := sortedKeys(c.changed)
	j := 0
	scan := scanRelease{m: c.mapped} // the entries are in file order unless saved otherwise
	defer scan.all()
	for i := range c.at {
		p := c.pathAt(i)
		for j < len(recent) && compareStringBytes(recent[j], p) < 0 {
			f([]byte(recent[j]), c.changed[recent[j]], nil)
			j++
		}
		if _, over := c.changed[string(p)]; over || c.dropped.has(i) {
			continue
		}
		e, enc := c.entryAt(i)
		f(p, e, enc)
		scan.passed(enc)
	}
	for ; j < len(recent); j++ {
		f([]byte(recent[j]), c.changed[recent[j]], nil)
	}
}

// eachRawEntry calls f with every entry of raw, the saved entries section, in order: its path,
// the entry, and its encoding (encodeEntry's); false when raw is malformed (f may have been
// called for the entries before the fault). path and enc are views of raw.
func eachRawEntry(raw []byte, f func(path []byte, e statEntry, enc []byte)) bool {
	n, w := binary.Uvarint(raw)
	if w <= 0 {
		return false
	}
	b := raw[w:]
	for i := uint64(0); i < n; i++ {
		p, e, size, ok := decodeEntry(b)
		if !ok {
			return false
		}
		f(p, e, b[:size])
		b = b[size:]
	}
	return len(b) == 0
}

// decodeEntry decodes the entry that starts b (encodeEntry's form): its path (a view of b),
// the entry, and its size in bytes; false when b does not start with one.
func decodeEntry(b []byte) (path []byte, e statEntry, size int, ok bool) {
	r := binReader{b: b, ok: true}
	pn := r.uvarint()
	if !r.ok || uint64(len(r.b)) < pn {
		return nil, statEntry{}, 0, false
	}
	path = r.b[:pn]
	r.b = r.b[pn:]
	e.K.Size = int64(r.uvarint())
	e.K.MtimeNs = r.varint()
	e.K.CtimeNs = r.varint()
	e.K.Ino = r.uvarint()
	e.K.Dev = r.uvarint()
	e.K.Perm = uint32(r.uvarint())
	r.bytes(e.Digest[:])
	e.HashedNs = r.varint()
	if !r.ok {
		return nil, statEntry{}, 0, false
	}
	return path, e, len(b) - len(r.b), true
}

// encodeEntry appends the saved form of the entry of path p to buf.
func encodeEntry(buf []byte, p string, e statEntry) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(p)))
	buf = append(buf, p...)
	buf = binary.AppendUvarint(buf, uint64(e.K.Size))
	buf = binary.AppendVarint(buf, e.K.MtimeNs)
	buf = binary.AppendVarint(buf, e.K.CtimeNs)
	buf = binary.AppendUvarint(buf, e.K.Ino)
	buf = binary.AppendUvarint(buf, e.K.Dev)
	buf = binary.AppendUvarint(buf, uint64(e.K.Perm))
	buf = append(buf, e.Digest[:]...)
	return binary.AppendVarint(buf, e.HashedNs)
}

// Save writes the cache atomically if it changed, streaming it into the file in path order:
// the saved entries (copied as they are) merged with those recorded since.
func (c *StatCache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveLocked()
}

// saveLocked is Save, called with c.mu held.
func (c *StatCache) saveLocked() error {
	if !c.dirty || c.path == "" {
		return nil
	}
	err := c.write()
	if errors.Is(err, errSavedCutShort) {
		err = c.write() // without the saved entries, which are dropped now (readSaved)
	}
	if err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// errSavedCutShort is write's error when the saved entries were dropped as it read them,
// the file having been cut short in place (readSaved); nothing was written.
var errSavedCutShort = errors.New("the stat cache's file was cut short while it was read")

// write is Save's writing, with c.mu held.
func (c *StatCache) write() error {
	// Entries: the saved ones less those recorded again or dropped, plus those recorded.
	n := 0
	if !c.readSaved(func() {
		c.index()
		n = len(c.at) - c.dropped.count() + len(c.changed)
		for p := range c.changed {
			if i, saved := c.savedIndex(p); saved && !c.dropped.has(i) {
				n-- // recorded again: saved once, from changed
			}
		}
	}) {
		return errSavedCutShort
	}
	return writeFileAtomicStream(c.path, func(w *bufio.Writer) error {
		var buf []byte
		buf = append(buf, statCacheMagic...)
		buf = binary.AppendUvarint(buf, uint64(len(c.trees)))
		for _, root := range sortedKeys(c.trees) {
			t := c.trees[root]
			buf = binary.AppendUvarint(buf, uint64(len(root)))
			buf = append(buf, root...)
			buf = append(buf, t.Sig[:]...)
			buf = append(buf, t.Digest[:]...)
			buf = binary.AppendUvarint(buf, uint64(t.Files))
			buf = binary.AppendVarint(buf, t.HashedNs)
			w.Write(buf)
			buf = buf[:0]
		}
		buf = binary.AppendUvarint(buf, uint64(n))
		if _, err := w.Write(buf); err != nil {
			return err
		}
		// A write error is the writer's, returned at its flush; a fault reading the saved
		// entries leaves the file unwritten.
		if !c.readSaved(func() {
			c.each(func(p []byte, e statEntry, enc []byte) {
				if enc == nil {
					enc = encodeEntry(buf[:0], string(p), e)
					buf = enc
				}
				w.Write(enc)
			})
		}) {
			return errSavedCutShort
		}
		return nil
	})
}

// binReader reads the stat cache's binary fields; ok turns false at the first short or
// malformed field, after which every read returns zero values.
type binReader struct {
	b  []byte
	ok bool
}

func (r *binReader) fail() {
	r.ok, r.b = false, nil
}

func (r *binReader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *binReader) varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one field with decode (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](r *binReader, decode func([]byte) (T, int)) T {
	if !r.ok {
		return 0
	}
	v, n := decode(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) bytes(dst []byte) {
	if !r.ok || len(r.b) < len(dst) {
		r.fail()
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

func (r *binReader) str() string {
	n := r.uvarint()
	if !r.ok || uint64(len(r.b)) < n {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// keyOf returns the stat identity of a source file (change time included; see object for
// the store's files).
func keyOf(fi os.FileInfo) statKey {
	k := statKey{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano(), Perm: uint32(fi.Mode().Perm() & 0o444)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Ino, k.Dev, k.CtimeNs = st.Ino, uint64(st.Dev), st.Ctim.Nano()
	}
	return k
}

// FileDigest returns the SHA-256 of the file at path, a source file, from the cache when its
// stat identity is unchanged and its digest settled (racyMargin).
func (c *StatCache) FileDigest(path string, fi os.FileInfo) (string, error) {
	return c.fileDigest(absPath(path), keyOf(fi), true, false, c.now())
}

// cachedDigest returns the digest recorded for abs if it was recorded for identity k and, for
// a source file, is settled (racyMargin).
func (c *StatCache) cachedDigest(abs string, k statKey, source bool) (string, bool) {
	sum, ok := c.cachedSum(abs, k, source)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(sum[:]), true
}

// cachedSum is cachedDigest with the digest as bytes.
func (c *StatCache) cachedSum(abs string, k statKey, source bool) ([sha256.Size]byte, bool) {
	c.mu.Lock()
	e, ok := c.lookup(abs)
	c.mu.Unlock()
	if !ok || e.K != k || (source && !settled(k, e.HashedNs)) {
		return [sha256.Size]byte{}, false
	}
	return e.Digest, true
}

// fileDigest is FileDigest for an absolute path and its stat identity: source says whether
// the file is a source (see cachedDigest), rehash reads it whatever the cache holds, and at
// is when the walk that found it began, which the entry is dated with.
func (c *StatCache) fileDigest(abs string, k statKey, source, rehash bool, at int64) (string, error) {
	if !rehash {
		if d, ok := c.cachedDigest(abs, k, source); ok {
			return d, nil
		}
	}
	d, err := hashFile(abs)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.put(abs, k, d, at)
	c.Hashed++
	c.mu.Unlock()
	return d, nil
}

// put records a hex digest for abs, computed from a read that began after hashedNs; called
// with c.mu held.
func (c *StatCache) put(abs string, k statKey, digest string, hashedNs int64) {
	var sum [sha256.Size]byte
	if n, err := hex.Decode(sum[:], []byte(digest)); err != nil || n != len(sum) {
		return // not a SHA-256 (cannot happen for hashFile's digests): just not cached
	}
	c.putSum(abs, k, sum, hashedNs)
}

// putSum is put with the digest as bytes.
func (c *StatCache) putSum(abs string, k statKey, sum [sha256.Size]byte, hashedNs int64) {
	e := statEntry{K: k, Digest: sum, HashedNs: hashedNs}
	c.changed[abs] = e // over a saved entry, dropped or not
	c.dirty = true
	if c.shouldSpill() {
		c.spill()
	}
}

// linkedFile is an entry of the cache for a file that a hard link shares its inode with.
type linkedFile struct {
	path string
	e    statEntry
}

// linkedFiles returns the entries this cache has for the files of identities want (by
// device and inode: want maps each identity's folderID to the identity, without change time,
// see statKey.object), for hard links to them: a stage's output that links its input's files
// is not read again when it is published. It goes through the saved entries in the file,
// keeping only those wanted.
func (c *StatCache) linkedFiles(want map[statKey]statKey) map[statKey]linkedFile {
	out := map[statKey]linkedFile{}
	if len(want) == 0 {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// In file order (no index needed), then those recorded since, which take precedence.
	if !c.readSaved(func() {
		scan := scanRelease{m: c.mapped}
		defer scan.all()
		eachRawEntry(c.raw, func(p []byte, e statEntry, enc []byte) {
			scan.passed(enc)
			if id := e.K.folderID(); want[id] == e.K {
				if _, over := c.changed[string(p)]; !over && !c.droppedPath(p) {
					out[id] = linkedFile{string(p), e}
				}
			}
		})
	}) {
		clear(out) // read from a file cut short: none
	}
	for p, e := range c.changed {
		if id := e.K.folderID(); want[id] == e.K {
			out[id] = linkedFile{p, e}
		}
	}
	return out
}

// linkedDigest returns the digest of the file of identity k (without change time) from links
// (linkedFiles), for a hard link to it (same device, inode, size and modification time): the
// entry's path must still hold a file of that identity, so an entry left by a deleted file
// whose inode was reused never answers.
func linkedDigest(links map[statKey]linkedFile, k statKey) ([sha256.Size]byte, bool) {
	l, ok := links[k.folderID()]
	if !ok || l.e.K != k {
		return [sha256.Size]byte{}, false
	}
	if fi, err := os.Stat(l.path); err != nil || keyOf(fi).object() != k {
		return [sha256.Size]byte{}, false
	}
	return l.e.Digest, true
}

// Prune drops entries for files that no longer exist, and tree records of folders that no
// longer exist (gc calls it; plans do not, since it costs a stat per entry).
func (c *StatCache) Prune() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	goneChanged := map[string]bool{} // recorded since the file was read: a few
	for p := range c.changed {
		if _, err := os.Lstat(p); err != nil {
			goneChanged[p] = true
			delete(c.changed, p)
			n++
		}
	}
	c.readSaved(func() { // a fault drops the saved entries, and with them the marks
		c.index()
		scan := scanRelease{m: c.mapped}
		defer scan.all()
		for i := range c.at {
			if c.dropped.has(i) {
				continue
			}
			p := c.pathAt(i)
			scan.passed(p)
			if goneChanged[string(p)] {
				c.dropped.set(i) // counted above
			} else if _, err := os.Lstat(string(p)); err != nil {
				c.dropped.set(i)
				n++
			}
		}
	})
	for key := range c.trees {
		root, _, _ := strings.Cut(key, "\x00")
		if _, err := os.Lstat(root); err != nil {
			delete(c.trees, key)
			n++
		}
	}
	if n > 0 {
		c.dirty = true
	}
	return n
}

// droppedPath reports whether the saved entry of path p is dropped. Called in readSaved.
func (c *StatCache) droppedPath(p []byte) bool {
	if c.dropped.count() == 0 {
		return false
	}
	i, ok := c.savedIndex(string(p))
	return ok && c.dropped.has(i)
}

// bitset is a set of small non-negative integers.
type bitset struct {
	words []uint64
	n     int
}

func (b *bitset) has(i int) bool { return i/64 < len(b.words) && b.words[i/64]&(1<<(i%64)) != 0 }

func (b *bitset) set(i int) {
	if b.has(i) {
		return
	}
	for len(b.words) <= i/64 {
		b.words = append(b.words, 0)
	}
	b.words[i/64] |= 1 << (i % 64)
	b.n++
}

func (b *bitset) count() int { return b.n }

// Paths returns the paths of every per-file entry, in order, for diagnostics.
func (c *StatCache) Paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for !c.readSaved(func() {
		out = nil
		c.each(func(p []byte, _ statEntry, _ []byte) { out = append(out, string(p)) })
	}) {
		// The saved entries were dropped (readSaved): those recorded since, again.
	}
	return out
}

// remember records the SHA-256 sum computed elsewhere (while publishing) for path, a file of
// the store.
func (c *StatCache) remember(path string, fi os.FileInfo, sum [sha256.Size]byte) {
	abs := absPath(path)
	now := c.now()
	c.mu.Lock()
	c.putSum(abs, keyOf(fi).object(), sum, now)
	c.mu.Unlock()
}

// rememberTree records that the tree at root (walked with skipHidden, from hashedNs on) had
// signature sig and manifest digest.
func (c *StatCache) rememberTree(root string, skipHidden bool, sig [sha256.Size]byte, digest string, files int, hashedNs int64) {
	t := treeRecord{Sig: sig, Files: files, HashedNs: hashedNs}
	if n, err := hex.Decode(t.Digest[:], []byte(digest)); err != nil || n != len(t.Digest) {
		return
	}
	c.mu.Lock()
	c.trees[treeKey(root, skipHidden)] = t
	c.dirty = true
	c.mu.Unlock()
}

// treeKey names a tree record: the absolute root and whether hidden entries were skipped.
func treeKey(root string, skipHidden bool) string {
	if skipHidden {
		return absPath(root) + "\x00skip-hidden"
	}
	return absPath(root) + "\x00all"
}

// absPath is filepath.Abs without its Clean for paths already absolute (tree walks build
// clean absolute paths with filepath.Join; Clean costs more than the cache lookup).
func absPath(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	abs, _ := filepath.Abs(path)
	return abs
}

// HashFile returns the SHA-256 (hex) of the file at path, read in pieces.
func HashFile(path string) (string, error) { return hashFile(path) }

func hashFile(path string) (string, error) {
	sum, err := hashFileSum(path)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// hashFileSum is hashFile with the digest as bytes.
func hashFileSum(path string) ([sha256.Size]byte, error) {
	f, err := openFile(path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	defer f.Close()
	return hashReaderSum(f)
}

// HashReader returns the SHA-256 (hex) of what r holds, read in pieces.
func HashReader(r io.Reader) (string, error) {
	sum, err := hashReaderSum(r)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// hashReaderSum is HashReader with the digest as bytes.
func hashReaderSum(r io.Reader) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	buf := hashBuffers.Get().(*[]byte)
	defer hashBuffers.Put(buf)
	// Not io.Copy: a file's WriteTo takes a new 32 KB buffer for every file hashed.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{r}, *buf); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// hashBuffers are HashReader's read buffers.
var hashBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// HashTree returns the manifest of root, a source file or folder. Hidden files and folders
// (name starting with ".") are left out: no stage reads them. Every other folder below root
// is listed too, as its path with a trailing slash and folderMark for digest: an empty folder
// counts (to the split, it is a class without images). Symbolic links are followed; a broken
// link, one that loops on itself, or one leading back into a folder being walked, to root or
// above it is listed with a marker instead of a digest (stages reject such entries; the key
// still notices them). Files whose stat identity changed, or whose digest is not settled
// (racyMargin), are hashed in parallel.
func (c *StatCache) HashTree(root string) (Manifest, error) {
	m, _, err := c.hashTree(root, treeMode{source: true, remember: true})
	return m, err
}

// QuickManifest is HashTree for callers that may need only the digest: when no file or folder
// of root was added, removed or changed its stat identity since the tree's manifest was last
// computed here, and every file was settled then (racyMargin), it returns a Manifest with only
// Digest set (Files and Sizes nil), at the cost of the stats alone; otherwise the complete
// manifest.
func (c *StatCache) QuickManifest(root string) (Manifest, error) {
	m, _, err := c.hashTree(root, treeMode{source: true, remember: true, quick: true})
	return m, err
}

// folderMark stands for a folder in a source's manifest (see HashTree).
const folderMark = "folder"

// treeMode says how hashTree walks a tree and which recorded digests it trusts.
type treeMode struct {
	// source is set for a stage's source (or a path given where an output is expected):
	// hidden entries are left out, folders are listed (folderMark), each file's identity holds
	// its change time, and a digest is trusted only once settled (racyMargin). Without it, a
	// folder of the store: every entry is listed but folders, identities leave the change time
	// out (statKey.object) and what is recorded is trusted.
	source bool
	// remember keeps the digests computed; temporary folders do without, so that the cache
	// does not fill with paths that are about to disappear.
	remember bool
	// quick returns only the digest of a tree found unchanged (see QuickManifest).
	quick bool
	// rehash reads every file, trusting no recorded digest (run --force).
	rehash bool
}

// treeState is what a walk saw of a tree without reading any file: its files with their stat
// identities, its folders (of a source) and marked entries, and the signature of all that.
// Equal signatures mean that, as far as stats can tell, the tree did not change.
type treeState struct {
	root   string
	source bool
	file   bool // root is a file, its one item
	items  []treeItem
	dirs   []string          // slash-separated, relative to root, in walk order
	marks  map[string]string // entries with no content: broken links, link loops
	sig    [sha256.Size]byte
	at     int64 // the cache's clock when the walk began (Unix nanoseconds)
	newest int64 // the latest modification or change time of its files
}

// walk stats the tree at root (a file or a folder), as a source or a folder of the store.
func (c *StatCache) walk(root string, source bool) (*treeState, error) {
	st := &treeState{root: absPath(root), source: source, at: c.now()} // entries are keyed by absolute paths
	fi, err := os.Stat(st.root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		st.file = true
		st.items = []treeItem{{rel: filepath.Base(st.root), k: keyOf(fi), links: linksOf(fi)}}
		st.marks = map[string]string{}
	} else if st.items, st.dirs, st.marks, err = walkTree(st.root, source, folderKeys(st.root, fi)); err != nil {
		return nil, err
	}
	if !source {
		for i := range st.items {
			st.items[i].k = st.items[i].k.object()
		}
		st.dirs = nil
	}
	st.sign()
	return st, nil
}

// walkEach is walk for a folder of the store that holds no more than a folder's files at a
// time: each gets the files (identities without change time, statKey.object) of one folder
// after another, sorted by path across calls, with the state of the walk so far; the state
// returned has no items. Folders are listed one after the other, each folder's files statted
// in parallel.
func (c *StatCache) walkEach(root string, each func(st *treeState, items []treeItem) error) (*treeState, error) {
	st := &treeState{root: absPath(root), at: c.now(), marks: map[string]string{}}
	fi, err := os.Stat(st.root)
	if err != nil {
		return nil, err
	}
	var sg signer
	emit := func(items []treeItem) error {
		for i := range items {
			items[i].k = items[i].k.object()
			sg.file(items[i])
		}
		return each(st, items)
	}
	if !fi.IsDir() {
		st.file = true
		err = emit([]treeItem{{rel: filepath.Base(st.root), k: keyOf(fi), links: linksOf(fi)}})
	} else {
		var visit func(abs, rel string, ancestors []statKey) error
		visit = func(abs, rel string, ancestors []statKey) error {
			var d treeDir
			subs, err := d.scan(abs, rel, false, ancestors)
			if err != nil && rel != "" && errors.Is(err, fs.ErrPermission) {
				st.marks[rel] = unreadableMark // as walkTree marks it
				return nil
			}
			if err != nil {
				return err
			}
			for r, m := range d.marks {
				st.marks[r] = m
			}
			var failed error
			inPathOrder(d.files, subs, func(sub treeItem) string { return path.Base(sub.rel) }, func(files []treeItem) {
				if failed == nil {
					failed = emit(files)
				}
			}, func(sub treeItem) {
				if failed == nil {
					failed = visit(abs+string(filepath.Separator)+path.Base(sub.rel), sub.rel, append(ancestors[:len(ancestors):len(ancestors)], sub.k))
				}
			})
			return failed
		}
		err = visit(st.root, "", folderKeys(st.root, fi))
	}
	if err != nil {
		return nil, err
	}
	st.sig, st.newest = sg.finish(nil, st.marks)
	return st, nil
}

// quickStoreDigest returns the digest recorded for the folder of the store at dir when a walk
// finds it as it was recorded (its signature), as hashTree's quick mode does, but walking it
// a folder at a time (walkEach): a check of a large output that finds it unchanged does not
// hold a record of every file.
func (c *StatCache) quickStoreDigest(dir string) (string, bool) {
	c.mu.Lock()
	t, ok := c.trees[treeKey(dir, false)]
	c.mu.Unlock()
	if !ok {
		return "", false
	}
	st, err := c.walkEach(dir, func(*treeState, []treeItem) error { return nil })
	if err != nil || st.sig != t.Sig {
		return "", false
	}
	return hex.EncodeToString(t.Digest[:]), true
}

// absOf returns the absolute path of it, an item of the walk (made when asked: held per item,
// the paths of a walk of 100,000 files took more than the rest of their records).
func (st *treeState) absOf(it treeItem) string {
	if st.file {
		return st.root
	}
	return st.root + string(filepath.Separator) + filepath.FromSlash(it.rel)
}

// sign computes the signature: every file's path and stat identity, every folder and every
// marked entry, in path order (see walkTree).
func (st *treeState) sign() {
	var sg signer
	for _, it := range st.items {
		sg.file(it)
	}
	st.sig, st.newest = sg.finish(st.dirs, st.marks)
}

// signer computes a walk's signature (treeState.sign) from its files given in path order, one
// at a time.
type signer struct {
	h      hash.Hash
	line   []byte
	newest int64
}

// file adds a file.
func (sg *signer) file(it treeItem) {
	if sg.h == nil {
		sg.h = sha256.New()
	}
	k := it.k
	line := append(sg.line[:0], it.rel...)
	line = append(line, 0)
	line = binary.LittleEndian.AppendUint64(line, uint64(k.Size))
	line = binary.LittleEndian.AppendUint64(line, uint64(k.MtimeNs))
	line = binary.LittleEndian.AppendUint64(line, uint64(k.CtimeNs))
	line = binary.LittleEndian.AppendUint64(line, k.Ino)
	line = binary.LittleEndian.AppendUint64(line, k.Dev)
	line = binary.LittleEndian.AppendUint32(line, k.Perm)
	sg.h.Write(line)
	sg.line = line
	sg.newest = max(sg.newest, k.MtimeNs, k.CtimeNs)
}

// finish adds the folders and marked entries and returns the signature and the latest
// modification or change time of the files.
func (sg *signer) finish(dirs []string, marks map[string]string) ([sha256.Size]byte, int64) {
	if sg.h == nil {
		sg.h = sha256.New()
	}
	line := sg.line
	for _, rel := range dirs {
		sg.h.Write(append(append(line[:0], rel...), 2))
	}
	for _, rel := range sortedKeys(marks) {
		line = append(append(append(line[:0], rel...), 1), marks[rel]...)
		sg.h.Write(append(line, 0))
	}
	var sig [sha256.Size]byte
	sg.h.Sum(sig[:0])
	return sig, sg.newest
}

// hashTree hashes root as mode says and returns its manifest and what the walk saw.
func (c *StatCache) hashTree(root string, mode treeMode) (Manifest, *treeState, error) {
	st, err := c.walk(root, mode.source)
	if err != nil {
		return Manifest{}, nil, err
	}
	m, err := c.hashWalked(st, mode)
	return m, st, err
}

// hashWalked computes the manifest of a tree walked as st.
func (c *StatCache) hashWalked(st *treeState, mode treeMode) (Manifest, error) {
	if mode.quick && mode.remember && !mode.rehash {
		c.mu.Lock()
		t, ok := c.trees[treeKey(st.root, mode.source)]
		c.mu.Unlock()
		if ok && t.Sig == st.sig && (!mode.source || st.newest < t.HashedNs-int64(racyMargin)) {
			return Manifest{Digest: hex.EncodeToString(t.Digest[:])}, nil
		}
	}
	// Look up every file's digest; read and hash only files whose identity changed.
	items := st.items
	digests := make([]string, len(items))
	err := parallelBlocks(len(items), func(i int) error {
		var d string
		var err error
		if mode.remember {
			d, err = c.fileDigest(st.absOf(items[i]), items[i].k, mode.source, mode.rehash, st.at)
		} else {
			d, err = hashFile(st.absOf(items[i]))
			c.mu.Lock()
			c.Hashed++
			c.mu.Unlock()
		}
		if errors.Is(err, fs.ErrPermission) {
			d, err = unreadableMark, nil // the stage reports the file; see unreadableMark
		}
		digests[i] = d
		return err
	})
	if err != nil {
		return Manifest{}, err
	}
	unreadable := slices.Contains(digests, unreadableMark)
	m := Manifest{Files: make(map[string]string, len(items)+len(st.dirs)), Sizes: make(map[string]int64, len(items))}
	for i, it := range items {
		m.Files[it.rel] = digests[i]
		m.Sizes[it.rel] = it.k.Size
	}
	for _, rel := range st.dirs {
		m.Files[rel+"/"] = folderMark
	}
	for rel, mark := range st.marks {
		m.Files[rel] = mark
		unreadable = unreadable || mark == unreadableMark
	}
	m.Digest = manifestDigest(m.Files)
	// Made readable, such a file keeps its stat identity (a chmod changes none of it), so a
	// tree with one is never taken as unchanged from its signature: every plan tries again.
	if mode.remember && !unreadable {
		c.rememberTree(st.root, mode.source, st.sig, m.Digest, len(items), st.at)
	}
	return m, nil
}

// treeItem is a regular file found by walkTree.
type treeItem struct {
	rel   string  // slash-separated, relative to the root (treeState.absOf gives the path)
	k     statKey // the file's stat identity (of the target, for links)
	links uint64  // its number of hard links
	// denied is set by scan for a file it may not stat; it is then marked instead.
	denied bool
}

// linksOf returns a file's number of hard links (1 when the system does not say).
func linksOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// treeDir is one folder's share of a walk: its path (relative to the root, "" for the root
// and for a folder that could not be listed), its files and marked entries in name order, and
// its subfolders' shares, filled by their own goroutines.
type treeDir struct {
	rel   string
	name  string // the folder's name (its last path element; "" for the root)
	files []treeItem
	marks map[string]string
	subs  []*treeDir
}

// folderKeys returns the identities (device and inode) of the folder root, whose stat is fi,
// and of every folder above it, as written and, when the path goes through links, above the
// real folder: a link to any of them leads back into the walk.
func folderKeys(root string, fi os.FileInfo) []statKey {
	keys := []statKey{keyOf(fi).folderID()}
	paths := []string{root}
	if real, err := filepath.EvalSymlinks(root); err == nil && real != root {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			if pfi, err := os.Stat(dir); err == nil {
				keys = append(keys, keyOf(pfi).folderID())
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return keys
}

// walkTree lists the regular files under root and the folders it could list, following
// symbolic links (a broken link, a link that loops on itself, or one leading back into a
// folder being walked or above root is marked instead). rootKeys are root's and its parents'
// identities (folderKeys). Folders are read in parallel, one goroutine per folder with at
// most one per core working; files are statted relative to their open folder (fstatat), which
// spares the kernel the path prefix. Files and folders are listed in the order of their
// paths (inPathOrder), as manifests sort them.
func walkTree(root string, skipHidden bool, rootKeys []statKey) ([]treeItem, []string, map[string]string, error) {
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, runtime.NumCPU())
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	var visit func(d *treeDir, abs, rel string, ancestors []statKey)
	visit = func(d *treeDir, abs, rel string, ancestors []statKey) {
		defer wg.Done()
		sem <- struct{}{}
		subs, err := d.scan(abs, rel, skipHidden, ancestors)
		<-sem
		if err != nil && rel != "" && errors.Is(err, fs.ErrPermission) {
			// The folder itself cannot be opened or listed (scan marks single entries).
			d.files, subs = nil, nil
			d.mark(rel, unreadableMark) // a folder the stage reports; see unreadableMark
		} else if err != nil {
			fail(err)
			return
		} else {
			d.rel = rel
		}
		for _, sub := range subs {
			child := &treeDir{name: path.Base(sub.rel)}
			d.subs = append(d.subs, child)
			wg.Add(1)
			go visit(child, abs+string(filepath.Separator)+path.Base(sub.rel), sub.rel, append(ancestors[:len(ancestors):len(ancestors)], sub.k))
		}
	}
	top := &treeDir{}
	wg.Add(1)
	visit(top, root, "", rootKeys)
	wg.Wait()
	if firstErr != nil {
		return nil, nil, nil, firstErr
	}
	// One slice of the right size, each folder's files let go once copied: a walk of 100,000
	// files held them twice, and more while the slice grew.
	n := 0
	var count func(d *treeDir)
	count = func(d *treeDir) {
		n += len(d.files)
		for _, s := range d.subs {
			count(s)
		}
	}
	count(top)
	items := make([]treeItem, 0, n)
	var dirs []string
	marks := map[string]string{}
	var flatten func(d *treeDir)
	flatten = func(d *treeDir) {
		if d.rel != "" {
			dirs = append(dirs, d.rel)
		}
		for r, m := range d.marks {
			marks[r] = m
		}
		inPathOrder(d.files, d.subs, func(s *treeDir) string { return s.name }, func(files []treeItem) {
			items = append(items, files...)
		}, flatten)
		d.files, d.subs = nil, nil
	}
	flatten(top)
	return items, dirs, marks, nil
}

// inPathOrder goes through a folder's files and subfolders (each sorted as scan sorts them)
// in the order of their paths: files gets the runs of files between subfolders, sub each
// subfolder (named by name), as a file's path compares with the paths below a folder, whose
// name is followed by a slash. A walk in that order lists its files sorted by path (as
// manifests are), one folder at a time.
func inPathOrder[S any](files []treeItem, subs []S, name func(S) string, each func([]treeItem), sub func(S)) {
	i := 0
	for _, s := range subs {
		n := name(s)
		j := i
		for j < len(files) && compareEntryNames(path.Base(files[j].rel), false, n, true) < 0 {
			j++
		}
		if j > i {
			each(files[i:j])
		}
		i = j
		sub(s)
	}
	if i < len(files) {
		each(files[i:])
	}
}

// compareEntryNames compares two names of one folder's entries as their paths sort, a
// folder's name being followed by a slash ("a-b" sorts before "a/x", the files of folder a).
func compareEntryNames(a string, aDir bool, b string, bDir bool) int {
	for i := 0; ; i++ {
		ca, okA := entryNameByte(a, aDir, i)
		cb, okB := entryNameByte(b, bDir, i)
		switch {
		case !okA && !okB:
			return 0
		case !okA:
			return -1
		case !okB:
			return 1
		case ca != cb:
			return cmp.Compare(ca, cb)
		}
	}
}

// entryNameByte returns byte i of name, followed by a slash for a folder.
func entryNameByte(name string, dir bool, i int) (byte, bool) {
	if i < len(name) {
		return name[i], true
	}
	if dir && i == len(name) {
		return '/', true
	}
	return 0, false
}

// scan reads one folder: its regular files (statted) and marks go into d; its subfolders
// (real or linked, not already among the ancestors) are returned, in name order, for the
// caller to visit. A subfolder's key is its folderID.
func (d *treeDir) scan(abs, rel string, skipHidden bool, ancestors []statKey) ([]treeItem, error) {
	f, err := openFile(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var subs []treeItem
	for _, e := range entries {
		name := e.Name()
		if skipHidden && strings.HasPrefix(name, ".") {
			continue
		}
		it := treeItem{rel: name}
		if rel != "" {
			it.rel = rel + "/" + name
		}
		if e.Type().IsRegular() {
			d.files = append(d.files, it)
			continue
		}
		efi, err := statFile(abs + string(filepath.Separator) + name) // follows links
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && e.Type()&fs.ModeSymlink != 0 {
				// Stages report broken links; the key only needs to notice them.
				d.mark(it.rel, brokenLinkMark)
				continue
			}
			if errors.Is(err, syscall.ELOOP) && e.Type()&fs.ModeSymlink != 0 {
				d.mark(it.rel, linkLoopMark) // a link to itself, or links to each other
				continue
			}
			if errors.Is(err, fs.ErrPermission) {
				d.mark(it.rel, unreadableMark) // a link into a folder we may not enter
				continue
			}
			return nil, err
		}
		switch {
		case efi.IsDir():
			it.k = keyOf(efi).folderID()
			if slices.Contains(ancestors, it.k) {
				d.mark(it.rel, linkLoopMark)
				continue
			}
			subs = append(subs, it)
		case efi.Mode().IsRegular():
			it.k, it.links = keyOf(efi), linksOf(efi)
			d.files = append(d.files, it)
		}
	}
	// Stat the regular files relative to the folder, in parallel for large folders.
	var statErr error
	ctlErr := rc.Control(func(fd uintptr) {
		statErr = parallelBlocks(len(d.files), func(i int) error {
			it := &d.files[i]
			if it.k != (statKey{}) {
				return nil // a link, statted above
			}
			var st unix.Stat_t
			name := path.Base(it.rel)
			for {
				err := unix.Fstatat(int(fd), name, &st, 0)
				if err == unix.EINTR {
					continue
				}
				if err == unix.EACCES {
					it.denied = true // marked below, alone: the folder's other files count
					return nil
				}
				if err != nil {
					return &fs.PathError{Op: "stat", Path: abs + string(filepath.Separator) + name, Err: err}
				}
				break
			}
			it.k = statKey{Size: st.Size, MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(), Ino: st.Ino, Dev: uint64(st.Dev), Perm: st.Mode & 0o444}
			it.links = uint64(st.Nlink)
			return nil
		})
	})
	if ctlErr != nil {
		return nil, ctlErr
	}
	if statErr != nil {
		return nil, statErr
	}
	kept := d.files[:0]
	for _, it := range d.files {
		if it.denied {
			d.mark(it.rel, unreadableMark)
			continue
		}
		kept = append(kept, it)
	}
	d.files = kept
	// Subfolders in the order of the paths below them (inPathOrder).
	slices.SortFunc(subs, func(a, b treeItem) int {
		return compareEntryNames(path.Base(a.rel), true, path.Base(b.rel), true)
	})
	return subs, nil
}

// openFile opens files and folders to hash or list them, and statFile stats what a link
// leads to (tests make some unreadable, which permissions cannot do for root).
var openFile, statFile = os.Open, os.Stat

// unreadableMark stands for the digest of a file, or the content of a folder below the root,
// that cannot be read for lack of permission: such a file is the stage's to report (the
// split rejects it, naming it), not a reason to refuse planning the whole pipeline; the key
// changes when it becomes readable.
const unreadableMark = "unreadable"

// brokenLinkMark and linkLoopMark stand for the digest of a symbolic link that leads nowhere,
// and of one that loops (see HashTree).
const (
	brokenLinkMark = "broken-symlink"
	linkLoopMark   = "symlink-loop"
)

// HasContent reports whether digest, a file's in a Manifest, is the digest of its content,
// not a marker for an entry without any (a folder, a file or folder that cannot be read, a
// broken symbolic link or one that loops): two entries with one marker share no bytes.
func HasContent(digest string) bool {
	switch digest {
	case "", folderMark, unreadableMark, brokenLinkMark, linkLoopMark:
		return false
	}
	return true
}

// mark records an entry without content.
func (d *treeDir) mark(rel, what string) {
	if d.marks == nil {
		d.marks = map[string]string{}
	}
	d.marks[rel] = what
}

// parallelBlocks calls f for 0..n-1 in one worker per core taking blocks of indexes, and
// returns the first error.
func parallelBlocks(n int, f func(i int) error) error {
	const block = 64
	var next atomic.Int64
	var g errgroup.Group
	for w := 0; w < min(runtime.NumCPU(), (n+block-1)/block); w++ {
		g.Go(func() error {
			for {
				lo := int(next.Add(block)) - block
				if lo >= n {
					return nil
				}
				for i := lo; i < min(lo+block, n); i++ {
					if err := f(i); err != nil {
						return err
					}
				}
			}
		})
	}
	return g.Wait()
}

// manifestDigest is the digest of a manifest with files (see manifestHasher).
func manifestDigest(files map[string]string) string {
	var h manifestHasher
	for _, n := range sortedKeys(files) {
		h.add(n, files[n])
	}
	return h.sum()
}

// ManifestDiff summarises how a tree changed.
type ManifestDiff struct {
	Added, Changed, Removed []string
}

// Empty reports whether nothing changed.
func (d ManifestDiff) Empty() bool { return len(d.Added)+len(d.Changed)+len(d.Removed) == 0 }

// DiffManifests compares two manifests; the lists are sorted.
func DiffManifests(old, cur Manifest) ManifestDiff {
	var d ManifestDiff
	for n, dg := range cur.Files {
		if od, ok := old.Files[n]; !ok {
			d.Added = append(d.Added, n)
		} else if od != dg {
			d.Changed = append(d.Changed, n)
		}
	}
	for n := range old.Files {
		if _, ok := cur.Files[n]; !ok {
			d.Removed = append(d.Removed, n)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Changed)
	sort.Strings(d.Removed)
	return d
}
