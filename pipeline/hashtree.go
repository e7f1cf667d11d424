package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"
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
	Ino     uint64
	Dev     uint64
}

// StatCache remembers file digests by path and stat identity, so an unchanged tree of 50,000
// files costs 50,000 stat calls and no reads. It is safe for concurrent use.
type StatCache struct {
	mu      sync.Mutex
	path    string
	entries map[string]statEntry
	dirty   bool
	// Hashed counts files read and hashed (not served from the cache), for tests and stats.
	Hashed int64
}

type statEntry struct {
	K      statKey
	Digest string
}

// OpenStatCache loads the cache stored at path (a missing or unreadable file starts empty:
// the cache only saves work, it is never trusted for more than stat identity).
func OpenStatCache(path string) *StatCache {
	c := &StatCache{path: path, entries: map[string]statEntry{}}
	f, err := os.Open(path)
	if err != nil {
		return c
	}
	defer f.Close()
	if err := gob.NewDecoder(f).Decode(&c.entries); err != nil {
		c.entries = map[string]statEntry{}
	}
	return c
}

// Save writes the cache atomically if it changed.
func (c *StatCache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty || c.path == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c.entries); err != nil {
		return err
	}
	if err := writeFileAtomic(c.path, buf.Bytes()); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

func keyOf(fi os.FileInfo) statKey {
	k := statKey{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Ino, k.Dev = st.Ino, uint64(st.Dev)
	}
	return k
}

// FileDigest returns the SHA-256 of the file at path, from the cache when its stat identity
// is unchanged.
func (c *StatCache) FileDigest(path string, fi os.FileInfo) (string, error) {
	abs := absPath(path)
	k := keyOf(fi)
	c.mu.Lock()
	e, ok := c.entries[abs]
	c.mu.Unlock()
	if ok && e.K == k {
		return e.Digest, nil
	}
	d, err := hashFile(path)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.entries[abs] = statEntry{K: k, Digest: d}
	c.dirty = true
	c.Hashed++
	c.mu.Unlock()
	return d, nil
}

// Prune drops entries for files that no longer exist (gc calls it; plans do not, since it
// costs a stat per entry).
func (c *StatCache) Prune() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for p := range c.entries {
		if _, err := os.Lstat(p); err != nil {
			delete(c.entries, p)
			n++
		}
	}
	if n > 0 {
		c.dirty = true
	}
	return n
}

// remember records a digest computed elsewhere (e.g. while publishing) for path.
func (c *StatCache) remember(path string, fi os.FileInfo, digest string) {
	abs := absPath(path)
	c.mu.Lock()
	c.entries[abs] = statEntry{K: keyOf(fi), Digest: digest}
	c.dirty = true
	c.mu.Unlock()
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

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashTree returns the manifest of root, a file or a folder. Hidden files and folders (name
// starting with ".") are left out: no stage reads them. Symbolic links are followed; a broken
// link or one leading back into a folder being walked is listed with a marker instead of a
// digest (stages reject such entries; the key still notices them). Files whose stat
// identity changed are hashed in parallel.
func (c *StatCache) HashTree(root string) (Manifest, error) {
	return c.hashTree(root, true, true)
}

// hashTree hashes root; with remember false (temporary folders) digests are computed but not
// kept, so the cache does not fill with paths that are about to disappear.
func (c *StatCache) hashTree(root string, skipHidden, remember bool) (Manifest, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return Manifest{}, err
	}
	type item struct {
		rel string
		abs string
		fi  os.FileInfo // nil: a regular file whose stat is taken in the parallel phase
	}
	var items []item
	marks := map[string]string{} // entries with no content: broken links, link loops
	if !fi.IsDir() {
		items = append(items, item{rel: filepath.Base(root), abs: root, fi: fi})
	} else {
		var walk func(dir, rel string, ancestors map[statKey]bool) error
		walk = func(dir, rel string, ancestors map[statKey]bool) error {
			entries, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if skipHidden && strings.HasPrefix(e.Name(), ".") {
					continue
				}
				abs := filepath.Join(dir, e.Name())
				r := e.Name()
				if rel != "" {
					r = rel + "/" + e.Name()
				}
				if e.Type().IsRegular() {
					items = append(items, item{rel: r, abs: abs})
					continue
				}
				efi, err := os.Stat(abs) // follows links
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) && e.Type()&fs.ModeSymlink != 0 {
						// Stages report broken links; the key only needs to notice them.
						marks[r] = "broken-symlink"
						continue
					}
					return err
				}
				if efi.IsDir() {
					k := keyOf(efi)
					k.Size, k.MtimeNs = 0, 0
					if ancestors[k] {
						marks[r] = "symlink-loop"
						continue
					}
					ancestors[k] = true
					if err := walk(abs, r, ancestors); err != nil {
						return err
					}
					delete(ancestors, k)
					continue
				}
				if efi.Mode().IsRegular() {
					items = append(items, item{rel: r, abs: abs, fi: efi})
				}
			}
			return nil
		}
		k := keyOf(fi)
		k.Size, k.MtimeNs = 0, 0
		if err := walk(root, "", map[statKey]bool{k: true}); err != nil {
			return Manifest{}, err
		}
	}
	m := Manifest{Files: make(map[string]string, len(items)), Sizes: make(map[string]int64, len(items))}
	digests := make([]string, len(items))
	// Stat and look up every file in one worker per core taking blocks of files (a goroutine
	// per file costs more than the lookup); read and hash only files whose identity changed.
	const block = 64
	var next atomic.Int64
	var g errgroup.Group
	for w := 0; w < min(runtime.NumCPU(), (len(items)+block-1)/block); w++ {
		g.Go(func() error {
			for {
				lo := int(next.Add(block)) - block
				if lo >= len(items) {
					return nil
				}
				for i := lo; i < min(lo+block, len(items)); i++ {
					it := &items[i]
					if it.fi == nil {
						fi, err := os.Stat(it.abs)
						if err != nil {
							return err
						}
						it.fi = fi
					}
					var d string
					var err error
					if remember {
						d, err = c.FileDigest(it.abs, it.fi)
					} else {
						d, err = hashFile(it.abs)
					}
					if err != nil {
						return err
					}
					digests[i] = d
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return Manifest{}, err
	}
	for i, it := range items {
		m.Files[it.rel] = digests[i]
		m.Sizes[it.rel] = it.fi.Size()
	}
	for rel, mark := range marks {
		m.Files[rel] = mark
	}
	m.Digest = manifestDigest(m.Files)
	return m, nil
}

func manifestDigest(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	// Each line is fmt's "%q %s\n" of name and digest, written without fmt.
	h := sha256.New()
	var line []byte
	for _, n := range names {
		line = strconv.AppendQuote(line[:0], n)
		line = append(line, ' ')
		line = append(line, files[n]...)
		line = append(line, '\n')
		h.Write(line)
	}
	return hex.EncodeToString(h.Sum(nil))
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
