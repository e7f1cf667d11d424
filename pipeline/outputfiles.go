package pipeline

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// FileDigests is the list of a published output's files: for each path (slash-separated,
// relative to the output's folder), the file's SHA-256 as hex, or the mark of an entry without
// content (see HashTree).
type FileDigests interface {
	// Digest returns the entry of rel.
	Digest(rel string) (string, bool)
	// All yields every entry, in path order.
	All() iter.Seq2[string, string]
}

// ManifestFiles is a Manifest's Files as FileDigests.
type ManifestFiles map[string]string

// Digest implements FileDigests.
func (m ManifestFiles) Digest(rel string) (string, bool) {
	d, ok := m[rel]
	return d, ok
}

// All implements FileDigests.
func (m ManifestFiles) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, rel := range sortedKeys(m) {
			if !yield(rel, m[rel]) {
				return
			}
		}
	}
}

// outputFiles is the manifest of an output being published, held compactly: fixed records
// (the path's string, the SHA-256 as bytes, the size) sorted by path, where a Manifest's two
// maps and hex digests take about three times as much for every file of an augmented set.
// Entries without content (broken links, files that cannot be read) are in marks. A list
// made to publish an output (hashOutput) keeps only its last chunk in memory, the others in a
// scratch file read back a chunk at a time: it is read in path order (its digest, the
// manifest file, the named outputs' digests), and a stage looks many paths up in their order
// (a set's content digest, a batch at a time): lookups in no order read a chunk back each.
type outputFiles struct {
	// chunks hold the files in path order, each chunk but the last chunkLen of them: a list
	// that grows by chunks is never copied whole, as a slice is when it grows. A chunk written
	// to spill is nil here.
	chunks   [][]outputFile
	chunkLen int
	n        int
	// firsts are the path of each chunk's first file.
	firsts []string
	// marks are the entries with a mark for digest by path: files that cannot be read
	// (which are in the chunks too, for their size) and links that lead nowhere.
	marks map[string]string
	// spillDir, when set, is where a chunk is written once another follows it; spill is
	// that file (unlinked: it goes when closed), spilled the place of each chunk written.
	spillDir string
	spill    *os.File
	spillEnd int64
	spilled  []spilledChunk
	// mu guards loaded, the chunks last read back from spill, most recent first.
	mu     sync.Mutex
	loaded [2]loadedChunk
}

// outputFile is a file of an output.
type outputFile struct {
	rel  string
	sum  [sha256.Size]byte
	size int64
}

// spilledChunk is where a chunk of an outputFiles is in its spill file.
type spilledChunk struct{ off, len int64 }

// loadedChunk is a chunk read back from an outputFiles' spill file.
type loadedChunk struct {
	i     int
	files []outputFile
}

// chunk returns chunk i, read back from the spill file when it was written there. A chunk
// that cannot be read back (the disk failing under the process's own scratch file, written
// moments before) panics with a spillError, which the list's users turn back into an error
// (catchSpill): the lookups and walks in between have no error to return.
func (o *outputFiles) chunk(i int) []outputFile {
	if c := o.chunks[i]; c != nil {
		return c
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for j, l := range o.loaded {
		if l.files != nil && l.i == i {
			if j > 0 {
				o.loaded[0], o.loaded[j] = o.loaded[j], o.loaded[0]
			}
			return l.files
		}
	}
	files, err := o.readChunk(i)
	if err != nil {
		panic(&spillError{file: o.spill.Name(), err: err})
	}
	copy(o.loaded[1:], o.loaded[:])
	o.loaded[0] = loadedChunk{i, files}
	return files
}

// spillError is a chunk of an output's file list that could not be read back from its
// scratch file.
type spillError struct {
	file string // the scratch file's name when made (unlinked since)
	err  error
}

func (e *spillError) Error() string {
	return fmt.Sprintf("reading back an output's file list from its scratch file %s: %v", e.file, e.err)
}

func (e *spillError) Unwrap() error { return e.err }

// catchSpill, deferred, makes the spillError a function's use of a file list panicked with
// its error (*err); any other panic goes on.
func catchSpill(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(*spillError); ok {
		*err = e
		return
	}
	panic(r)
}

// at returns file i.
func (o *outputFiles) at(i int) *outputFile { return &o.chunk(i / o.chunkLen)[i%o.chunkLen] }

// find returns the file of path rel.
func (o *outputFiles) find(rel string) (*outputFile, bool) {
	ci := sort.Search(len(o.firsts), func(i int) bool { return o.firsts[i] > rel }) - 1
	if ci < 0 {
		return nil, false
	}
	c := o.chunk(ci)
	i := sort.Search(len(c), func(i int) bool { return c[i].rel >= rel })
	if i == len(c) || c[i].rel != rel {
		return nil, false
	}
	return &c[i], true
}

// add appends files, which must follow the files already there in path order.
func (o *outputFiles) add(files []outputFile) error {
	for i := range files {
		if (i == 0 && o.n > 0 && o.at(o.n-1).rel >= files[0].rel) || (i > 0 && files[i-1].rel >= files[i].rel) {
			return fmt.Errorf("files listed out of order at %s", files[i].rel) // cannot happen: see walkEach
		}
	}
	if len(files) == 0 {
		return nil
	}
	if o.chunkLen == 0 {
		o.chunkLen = len(files)
	}
	if len(files) > o.chunkLen || (len(o.chunks) > 0 && len(o.chunks[len(o.chunks)-1]) < o.chunkLen) {
		return errors.New("files added in chunks of another size") // cannot happen: all batches but the last are full
	}
	if len(o.chunks) > 0 && o.spillDir != "" {
		o.spillChunk(len(o.chunks) - 1)
	}
	o.chunks = append(o.chunks, files)
	o.firsts = append(o.firsts, files[0].rel)
	o.n += len(files)
	return nil
}

// spillChunk writes chunk i to the spill file and drops it from memory; where the file cannot
// be made or written, the list stays in memory.
func (o *outputFiles) spillChunk(i int) {
	if o.spill == nil {
		f, err := CreateScratch(o.spillDir, "files-*")
		if err != nil {
			o.spillDir = ""
			return
		}
		o.spill = f
	}
	var buf []byte
	for _, f := range o.chunks[i] {
		buf = binary.AppendUvarint(buf, uint64(len(f.rel)))
		buf = append(buf, f.rel...)
		buf = append(buf, f.sum[:]...)
		buf = binary.AppendUvarint(buf, uint64(f.size))
	}
	if _, err := o.spill.WriteAt(buf, o.spillEnd); err != nil {
		o.spillDir = ""
		return
	}
	o.spilled = append(o.spilled, spilledChunk{o.spillEnd, int64(len(buf))})
	o.spillEnd += int64(len(buf))
	o.chunks[i] = nil
}

// readChunk reads chunk i back from the spill file: its paths are parts of one string.
func (o *outputFiles) readChunk(i int) ([]outputFile, error) {
	sc := o.spilled[i]
	buf := make([]byte, sc.len)
	if _, err := o.spill.ReadAt(buf, sc.off); err != nil {
		return nil, err
	}
	all := string(buf)
	files := make([]outputFile, o.chunkLen) // full: the last chunk, which may not be, stays in memory
	at := 0
	for j := range files {
		l, k := binary.Uvarint(buf[at:])
		if k <= 0 || uint64(len(buf)-at-k) < l+sha256.Size {
			return nil, errors.New("record cut short")
		}
		at += k
		files[j].rel = all[at : at+int(l)]
		at += int(l)
		copy(files[j].sum[:], buf[at:])
		at += sha256.Size
		size, k := binary.Uvarint(buf[at:])
		if k <= 0 {
			return nil, errors.New("record cut short")
		}
		at += k
		files[j].size = int64(size)
	}
	return files, nil
}

// close drops the spill file.
func (o *outputFiles) close() {
	if o.spill != nil {
		o.spill.Close()
		o.spill = nil
	}
}

// Digest implements FileDigests.
func (o *outputFiles) Digest(rel string) (string, bool) {
	if m, ok := o.marks[rel]; ok {
		return m, true
	}
	f, ok := o.find(rel)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(f.sum[:]), true
}

// All implements FileDigests.
func (o *outputFiles) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		var buf [2 * sha256.Size]byte
		o.each(func(rel string, f *outputFile, mark string) bool {
			if f == nil || mark != "" {
				return yield(rel, mark)
			}
			hex.Encode(buf[:], f.sum[:])
			return yield(rel, string(buf[:]))
		})
	}
}

// len returns the number of entries.
func (o *outputFiles) len() int {
	n := o.n
	for rel := range o.marks {
		if !o.isFile(rel) {
			n++
		}
	}
	return n
}

// isFile reports whether rel is one of the files.
func (o *outputFiles) isFile(rel string) bool {
	_, ok := o.find(rel)
	return ok
}

// each calls f for every entry in path order, with the file (nil for an entry that is only a
// mark) and the entry's mark ("" for a file read), until f returns false.
func (o *outputFiles) each(f func(rel string, file *outputFile, mark string) bool) {
	var only []string // marks that are not files, sorted
	for rel := range o.marks {
		if !o.isFile(rel) {
			only = append(only, rel)
		}
	}
	slices.Sort(only)
	i, j := 0, 0
	for i < o.n || j < len(only) {
		if j == len(only) || (i < o.n && o.at(i).rel < only[j]) {
			file := o.at(i)
			i++
			if !f(file.rel, file, o.marks[file.rel]) {
				return
			}
			continue
		}
		rel := only[j]
		j++
		if !f(rel, nil, o.marks[rel]) {
			return
		}
	}
}

// digest returns the manifest digest of the entries (as manifestDigest of a Manifest's Files).
func (o *outputFiles) digest() string {
	var h manifestHasher
	o.each(func(rel string, f *outputFile, mark string) bool {
		if f == nil || mark != "" {
			h.add(rel, mark)
		} else {
			h.addSum(rel, &f.sum)
		}
		return true
	})
	return h.sum()
}

// outputBatch is how many files hashOutput looks up or reads at a time (a variable for
// tests).
var outputBatch = 16384

// hashOutput walks the output folder at root (walkEach) and lists its files with their
// digests. With known, a file's digest is the one written records for it (Job.WriteFile,
// Job.LinkFile), or for a hard link, that of the file of its identity the cache knows;
// otherwise, and for every file without known, the file is read (and counted in Hashed).
// Files are looked up and read a batch at a time (outputBatch), with one search of the
// cache for what a batch's links lead to. Nothing is recorded in the cache.
func (c *StatCache) hashOutput(root string, written *writtenFiles, known bool) (*outputFiles, *treeState, error) {
	o := &outputFiles{marks: map[string]string{}, spillDir: c.spillDir()}
	var (
		pending []treeItem
		walked  *treeState
		mu      sync.Mutex
	)
	var cur *writtenCursor // the files written, looked up in the walk's order (path order)
	if known {
		cur = written.cursor()
		defer cur.close()
	}
	flush := func() error {
		var links map[statKey]linkedFile
		files := make([]outputFile, len(pending))
		have := make([]bool, len(pending)) // files[i].sum is the digest written records
		if known {
			want := map[statKey]statKey{}
			for i, it := range pending {
				if files[i].sum, have[i] = cur.digest(walked.absOf(it), it.k); !have[i] && it.links > 1 {
					want[it.k.folderID()] = it.k
				}
			}
			links = c.linkedFiles(want)
		}
		err := parallelBlocks(len(pending), func(i int) error {
			it := &pending[i]
			f := &files[i]
			f.rel, f.size = it.rel, it.k.Size
			abs := walked.absOf(*it)
			if have[i] {
				return nil
			}
			if known && it.links > 1 {
				var ok bool
				if f.sum, ok = linkedDigest(links, it.k); ok {
					return nil
				}
			}
			sum, err := hashFileSum(abs)
			mu.Lock()
			defer mu.Unlock()
			c.mu.Lock()
			c.Hashed++
			c.mu.Unlock()
			if errors.Is(err, fs.ErrPermission) {
				o.marks[it.rel] = unreadableMark // the stage reports the file; see unreadableMark
				return nil
			}
			f.sum = sum
			return err
		})
		clear(pending) // their paths live on in files
		pending = pending[:0]
		if err != nil {
			return err
		}
		return o.add(files)
	}
	st, err := c.walkEach(root, func(st *treeState, items []treeItem) error {
		walked = st
		for len(items) > 0 {
			n := min(len(items), outputBatch-len(pending))
			pending = append(pending, items[:n]...)
			items = items[n:]
			if len(pending) == outputBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && len(pending) > 0 {
		err = flush()
	}
	if err != nil {
		o.close()
		return nil, nil, err
	}
	for rel, m := range st.marks {
		o.marks[rel] = m
	}
	return o, st, nil
}

// spillDir is the folder for the scratch files of the file lists hashOutput makes: the
// store's tmp folder beside the cache's file ("" for a cache without one).
func (c *StatCache) spillDir() string {
	if c.path == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(c.path), "tmp")
}

// manifestHasher computes a manifest digest from its entries given in path order: each line
// is fmt's "%q %s\n" of path and digest, written without fmt.
type manifestHasher struct {
	h    hash.Hash
	line []byte
}

// add adds the entry of rel with digest (hex, or a mark).
func (m *manifestHasher) add(rel, digest string) {
	m.start(rel)
	m.line = append(m.line, digest...)
	m.end()
}

// addSum adds the entry of rel with the SHA-256 sum.
func (m *manifestHasher) addSum(rel string, sum *[sha256.Size]byte) {
	m.start(rel)
	m.line = hex.AppendEncode(m.line, sum[:])
	m.end()
}

func (m *manifestHasher) start(rel string) {
	if m.h == nil {
		m.h = sha256.New()
	}
	m.line = strconv.AppendQuote(m.line[:0], rel)
	m.line = append(m.line, ' ')
}

func (m *manifestHasher) end() {
	m.line = append(m.line, '\n')
	m.h.Write(m.line)
}

// sum returns the digest, as hex.
func (m *manifestHasher) sum() string {
	if m.h == nil {
		m.h = sha256.New()
	}
	return hex.EncodeToString(m.h.Sum(nil))
}

// writeOutputManifestJSON writes the manifest of o, whose digest is digest, to path atomically,
// as writeManifestJSON writes the Manifest with the same files.
func writeOutputManifestJSON(path string, o *outputFiles, digest string) error {
	return writeFileAtomicStream(path, func(w *bufio.Writer) error {
		var fields []string
		if o.len() > 0 {
			fields = append(fields, "files")
		}
		if o.n > 0 {
			fields = append(fields, "sizes")
		}
		fields = append(fields, "digest")
		var num []byte
		var hexSum [2 * sha256.Size]byte
		err := encodeObject(w, "", fields, func(field, in string) error {
			switch field {
			case "files":
				return encodeObjectSeq(w, in, func(entry func(key string, value func(in string) error) error) error {
					var err error
					o.each(func(rel string, f *outputFile, mark string) bool {
						err = entry(rel, func(string) error {
							if f == nil || mark != "" {
								return encodeString(w, mark)
							}
							hex.Encode(hexSum[:], f.sum[:])
							w.WriteByte('"')
							w.Write(hexSum[:])
							return w.WriteByte('"')
						})
						return err == nil
					})
					return err
				})
			case "sizes":
				return encodeObjectSeq(w, in, func(entry func(key string, value func(in string) error) error) error {
					for i := range o.n {
						f := o.at(i)
						err := entry(f.rel, func(string) error {
							num = strconv.AppendInt(num[:0], f.size, 10)
							_, err := w.Write(num)
							return err
						})
						if err != nil {
							return err
						}
					}
					return nil
				})
			}
			return encodeString(w, digest)
		})
		if err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
}

// readOutputFiles reads the manifest of a published output (as writeOutputManifestJSON or
// writeManifestJSON wrote it) entry by entry into a file list, without the sizes, and
// returns it with the manifest's digest: a list, not a map of a hundred thousand entries.
func readOutputFiles(path string) (*outputFiles, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	o := &outputFiles{marks: map[string]string{}}
	var digest string
	if err := expectDelim(dec, '{'); err != nil {
		return nil, "", err
	}
	for dec.More() {
		field, err := objectKey(dec)
		if err != nil {
			return nil, "", err
		}
		switch field {
		case "files":
			if err := expectDelim(dec, '{'); err != nil {
				return nil, "", err
			}
			batch := make([]outputFile, 0, outputBatch)
			for dec.More() {
				rel, err := objectKey(dec)
				if err != nil {
					return nil, "", err
				}
				var d string
				if err := dec.Decode(&d); err != nil {
					return nil, "", err
				}
				var sum [sha256.Size]byte
				// The length first: Decode panics on a longer value (a damaged record),
				// which is an entry without content like any other value not a SHA-256.
				if len(d) != hex.EncodedLen(len(sum)) {
					o.marks[rel] = d // an entry without content
					continue
				}
				if _, err := hex.Decode(sum[:], []byte(d)); err != nil {
					o.marks[rel] = d
					continue
				}
				batch = append(batch, outputFile{rel: rel, sum: sum})
				if len(batch) == outputBatch {
					if err := o.add(batch); err != nil {
						return nil, "", err
					}
					batch = make([]outputFile, 0, outputBatch)
				}
			}
			if len(batch) > 0 {
				if err := o.add(batch); err != nil {
					return nil, "", err
				}
			}
			if _, err := dec.Token(); err != nil { // the closing brace
				return nil, "", err
			}
		case "digest":
			if err := dec.Decode(&digest); err != nil {
				return nil, "", err
			}
		default: // the sizes
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, "", err
			}
		}
	}
	return o, digest, nil
}

// objectKey reads the next key of an object from dec.
func objectKey(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("%v where a key was expected", t)
	}
	return key, nil
}

// expectDelim reads the next token of dec, which must be delim.
func expectDelim(dec *json.Decoder, delim json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != delim {
		return fmt.Errorf("%v where %v was expected", t, delim)
	}
	return nil
}
