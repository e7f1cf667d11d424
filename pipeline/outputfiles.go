package pipeline

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io/fs"
	"iter"
	"slices"
	"strconv"
	"strings"
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

// outputFiles is the manifest of an output being published, held compactly: a sorted slice
// of fixed records (the path's string, the SHA-256 as bytes, the size), where a Manifest's
// two maps and hex digests take about three times as much for every file of an augmented
// set. Entries without content (broken links, files that cannot be read) are in marks.
type outputFiles struct {
	files []outputFile
	// marks are the entries with a mark for digest by path: files that cannot be read
	// (which are in files too, for their size) and links that lead nowhere.
	marks map[string]string
}

// outputFile is a file of an output.
type outputFile struct {
	rel  string
	sum  [sha256.Size]byte
	size int64
}

// Digest implements FileDigests.
func (o *outputFiles) Digest(rel string) (string, bool) {
	if m, ok := o.marks[rel]; ok {
		return m, true
	}
	i, ok := slices.BinarySearchFunc(o.files, rel, func(f outputFile, rel string) int { return strings.Compare(f.rel, rel) })
	if !ok {
		return "", false
	}
	return hex.EncodeToString(o.files[i].sum[:]), true
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
	n := len(o.files)
	for rel := range o.marks {
		if !o.isFile(rel) {
			n++
		}
	}
	return n
}

// isFile reports whether rel is one of the files.
func (o *outputFiles) isFile(rel string) bool {
	_, ok := slices.BinarySearchFunc(o.files, rel, func(f outputFile, rel string) int { return strings.Compare(f.rel, rel) })
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
	for i < len(o.files) || j < len(only) {
		if j == len(only) || (i < len(o.files) && o.files[i].rel < only[j]) {
			file := &o.files[i]
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

// hashOutput lists the files of the output folder walked as st with their digests: hint's
// where it has one, else read (and counted in Hashed). Nothing is recorded in the cache.
func (c *StatCache) hashOutput(st *treeState, hint func(abs string, it treeItem) ([sha256.Size]byte, bool)) (*outputFiles, error) {
	items := st.items
	o := &outputFiles{files: make([]outputFile, len(items)), marks: make(map[string]string, len(st.marks))}
	for rel, m := range st.marks {
		o.marks[rel] = m
	}
	var mu sync.Mutex
	err := parallelBlocks(len(items), func(i int) error {
		it := &items[i]
		f := &o.files[i]
		f.rel, f.size = it.rel, it.k.Size
		if hint != nil {
			var ok bool
			if f.sum, ok = hint(st.absOf(*it), *it); ok {
				return nil
			}
		}
		sum, err := hashFileSum(st.absOf(*it))
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
	if err != nil {
		return nil, err
	}
	if !slices.IsSortedFunc(o.files, compareOutputFiles) {
		slices.SortFunc(o.files, compareOutputFiles)
	}
	return o, nil
}

func compareOutputFiles(a, b outputFile) int { return strings.Compare(a.rel, b.rel) }

// hashFileSum is hashFile with the digest as bytes.
func hashFileSum(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	d, err := hashFile(path)
	if err == nil {
		hex.Decode(sum[:], []byte(d))
	}
	return sum, err
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
		if len(o.files) > 0 {
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
					for i := range o.files {
						f := &o.files[i]
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
