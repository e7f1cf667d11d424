package pipeline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestStatCacheAgreesWithAMapThroughRecordsPrunesAndSaves checks the saved entries, found in
// the file by binary search, with those recorded and dropped since, against a plain map over
// random sequences of records, prunes, saves and reopenings; every saved file lists its
// entries in path order, once each. Once more with a cache that writes its recorded entries
// into its file every few records (spillAt), holding no more than that many in memory, and
// with one that spills while its entries are many next to the file's (spillMin, spillBytes).
func TestStatCacheAgreesWithAMapThroughRecordsPrunesAndSaves(t *testing.T) {
	for _, c := range []struct{ at, min, bytes int }{{spillAt, spillMin, spillBytes}, {3, 3, 0}, {1 << 20, 2, 60}} {
		t.Run(fmt.Sprintf("spill at %d, from %d at %d bytes", c.at, c.min, c.bytes), func(t *testing.T) {
			defer func(at, min, bytes int) { spillAt, spillMin, spillBytes = at, min, bytes }(spillAt, spillMin, spillBytes)
			spillAt, spillMin, spillBytes = c.at, c.min, c.bytes
			checkStatCacheAgainstAMap(t)
		})
	}
}

func checkStatCacheAgainstAMap(t *testing.T) {
	dir := t.TempDir()
	cachePath := filepath.Join(dir, "statcache")
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]statEntry{}
	c := OpenStatCache(cachePath)
	check := func(step int) {
		t.Helper()
		for i := 0; i < 60; i++ {
			p := filepath.Join(files, fmt.Sprintf("f%02d", i))
			want, wantOK := model[p]
			c.mu.Lock()
			got, ok := c.lookup(p)
			c.mu.Unlock()
			if ok != wantOK || got != want {
				t.Fatalf("step %d: %s: got %v %v, want %v %v", step, p, got, ok, want, wantOK)
			}
		}
		paths := c.Paths()
		want := slices.Sorted(func(yield func(string) bool) {
			for p := range model {
				if !yield(p) {
					return
				}
			}
		})
		if !slices.Equal(paths, want) {
			t.Fatalf("step %d: paths %v, want %v", step, paths, want)
		}
	}
	for step := 0; step < 400; step++ {
		i := rng.IntN(60)
		p := filepath.Join(files, fmt.Sprintf("f%02d", i))
		switch op := rng.IntN(10); {
		case op < 5: // a file written (again) and recorded
			if err := os.WriteFile(p, []byte(fmt.Sprint(step)), 0o644); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			c.remember(p, fi, sha256.Sum256([]byte(fmt.Sprint(step))))
			c.mu.Lock()
			model[p], _ = c.lookup(p)
			if len(c.changed) >= spillAt {
				t.Fatalf("step %d: %d entries held, spilled at %d", step, len(c.changed), spillAt)
			}
			c.mu.Unlock()
			if model[p].Digest != sha256.Sum256([]byte(fmt.Sprint(step))) {
				t.Fatalf("step %d: %s not recorded", step, p)
			}
		case op < 7: // a file removed, then the cache pruned
			os.Remove(p)
			want := 0
			if _, ok := model[p]; ok {
				want = 1
			}
			if n := c.Prune(); n != want {
				t.Fatalf("step %d: %d entries pruned, want %d", step, n, want)
			}
			delete(model, p)
		case op < 9:
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
		default: // a new process
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
			c = OpenStatCache(cachePath)
		}
		check(step)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	// The file lists its entries in path order, each once.
	b, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	_, raw, ok := decodeTrees(b)
	if !ok {
		t.Fatal("the saved cache does not decode")
	}
	var saved []string
	if !eachRawEntry(raw, func(p []byte, _ statEntry, _ []byte) { saved = append(saved, string(p)) }) {
		t.Fatal("the saved entries do not decode")
	}
	if !slices.IsSorted(saved) || len(slices.Compact(slices.Clone(saved))) != len(saved) || len(saved) != len(model) {
		t.Fatalf("saved entries %v: not in path order once each, or not the %d expected", saved, len(model))
	}
}

// TestAStatCacheSavedInAnotherOrderIsReadAndSavedSorted reads a cache file whose entries are
// not in path order, as a cache saved before entries were sorted is, with a path twice: every
// entry is found (the later of the two, as a map filled in file order kept), and the next
// save writes them sorted even though nothing else changed.
func TestAStatCacheSavedInAnotherOrderIsReadAndSavedSorted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "statcache")
	entry := func(n int) statEntry {
		return statEntry{K: statKey{Size: int64(n), Ino: uint64(n)}, Digest: [32]byte{byte(n)}, HashedNs: int64(n)}
	}
	order := []string{"/w/c", "/w/a", "/w/d", "/w/a", "/w/b"}
	var buf bytes.Buffer
	buf.WriteString(statCacheMagic)
	buf.Write(binary.AppendUvarint(nil, 0)) // no tree records
	buf.Write(binary.AppendUvarint(nil, uint64(len(order))))
	for i, p := range order {
		buf.Write(encodeEntry(nil, p, entry(i)))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := OpenStatCache(path)
	want := map[string]statEntry{"/w/c": entry(0), "/w/a": entry(3), "/w/d": entry(2), "/w/b": entry(4)}
	for p, e := range want {
		c.mu.Lock()
		got, ok := c.lookup(p)
		c.mu.Unlock()
		if !ok || got != e {
			t.Errorf("%s: got %v %v, want %v", p, got, ok, e)
		}
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	_, raw, _ := decodeTrees(b)
	var saved []string
	eachRawEntry(raw, func(p []byte, _ statEntry, _ []byte) { saved = append(saved, string(p)) })
	if !slices.Equal(saved, []string{"/w/a", "/w/b", "/w/c", "/w/d"}) {
		t.Fatalf("saved again as %v, want sorted, once each", saved)
	}
}

// TestAStatCacheFileCutShortInPlaceIsTreatedAsUnreadable cuts the saved cache short in place
// (as cp or rsync --inplace over the workspace's store do) while a cache has it mapped, then
// uses the cache first in each way that reads the saved entries (a walk's lookups, before the
// entries are indexed and after, a save, a prune, a listing, a search for hard links): none
// faults, the saved entries count as unreadable, every file is hashed again with its right
// digest, and the cache saved afterwards is whole. Overwritten in place at the same size
// instead, after its entries were indexed, the cache does not fail either.
func TestAStatCacheFileCutShortInPlaceIsTreatedAsUnreadable(t *testing.T) {
	name := strings.Repeat("long-name-", 8) // several pages of entries
	for _, first := range []string{"walk", "walk indexed before the cut", "save", "prune", "list", "links", "overwritten"} {
		t.Run(first, func(t *testing.T) {
			dir := t.TempDir()
			want := map[string]string{}
			for i := 0; i < 600; i++ { // several blocks of the workers
				want[fmt.Sprintf("c%d/%s-%03d", i%4, name, i)] = fmt.Sprint(i)
			}
			writeTree(t, dir, want)
			store := t.TempDir()
			cachePath := filepath.Join(store, "statcache")
			before := settledCache(cachePath)
			m, err := before.HashTree(dir)
			if err != nil || before.Hashed != 600 {
				t.Fatalf("first walk: %d hashed, %v", before.Hashed, err)
			}
			if err := before.Save(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(cachePath); err != nil || fi.Size() < 3*4096 {
				t.Fatalf("the cache file takes too few pages to cut any off (%v)", err)
			}

			c := settledCache(cachePath)
			file0 := filepath.Join(dir, "c0", name+"-000")
			switch first {
			case "walk indexed before the cut", "overwritten":
				if d, err := c.FileDigest(file0, mustStat(t, file0)); err != nil || d != hexSHA("0") || c.Hashed != 0 {
					t.Fatalf("before the cut: %s, %d hashed, %v", d, c.Hashed, err)
				}
			case "save":
				c.remember(filepath.Join(store, "published"), mustStat(t, cachePath), sha256.Sum256([]byte("published")))
			}
			if first == "overwritten" {
				// Other bytes at the same offsets: varints of sizes far past the file's end.
				junk := bytes.Repeat([]byte{0xff, 0xff, 0xff, 0x0f}, int(mustStat(t, cachePath).Size()/4))
				f, err := os.OpenFile(cachePath, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(junk, 4096); err != nil {
					t.Fatal(err)
				}
				f.Close()
			} else if err := os.Truncate(cachePath, 4096); err != nil {
				// Cut to its first page: the entries past it are beyond the end of the file.
				t.Fatal(err)
			}
			switch first {
			case "save":
				if err := c.Save(); err != nil {
					t.Fatal(err)
				}
			case "prune":
				if n := c.Prune(); n != 0 {
					t.Errorf("pruned %d entries, of files that all exist", n)
				}
			case "list":
				if p := c.Paths(); len(p) != 0 {
					t.Errorf("%d entries listed from the file cut short", len(p))
				}
			case "links":
				k := keyOf(mustStat(t, file0)).object()
				if l := c.linkedFiles(map[statKey]statKey{k.folderID(): k}); len(l) != 0 {
					t.Errorf("links found in the file cut short: %v", l)
				}
			}
			got, err := c.HashTree(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != m.Digest {
				t.Errorf("digest %s after the cut, %s before", got.Digest, m.Digest)
			}
			for rel, content := range want {
				if got.Files[rel] != hexSHA(content) {
					t.Fatalf("%s: digest %s, want %s", rel, got.Files[rel], hexSHA(content))
				}
			}
			if c.Hashed < 590 && first != "overwritten" {
				t.Errorf("%d files hashed again after the cut, want nearly all of 600", c.Hashed)
			}
			// Walked again, the cache answers from what it hashed since; saved, it is whole.
			hashed := c.Hashed
			if _, err := c.HashTree(dir); err != nil || c.Hashed != hashed {
				t.Errorf("a second walk hashed %d files again (%v)", c.Hashed-hashed, err)
			}
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
			again := settledCache(cachePath)
			if first == "overwritten" {
				// Saved with entries read from the other bytes, the file may not hold together:
				// it is then dropped when read, as any malformed cache file is, and saved whole.
				if m, err := again.HashTree(dir); err != nil || m.Digest != got.Digest {
					t.Fatalf("reopened: digest equal %v, %v", m.Digest == got.Digest, err)
				}
				if err := again.Save(); err != nil {
					t.Fatal(err)
				}
				again = settledCache(cachePath)
			}
			if m, err := again.HashTree(dir); err != nil || m.Digest != got.Digest || again.Hashed != 0 {
				t.Errorf("reopened: digest equal %v, %d hashed, %v", m.Digest == got.Digest, again.Hashed, err)
			}
			if n := len(again.Paths()); n < 600 {
				t.Errorf("%d entries saved, want the 600 files'", n)
			}
			if left, _ := filepath.Glob(filepath.Join(store, ".statcache.tmp-*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// BenchmarkStatCacheLookup looks up the saved entries of a cache of 50,000 files, one a
// lookup, as a plan of an unchanged tree does.
func BenchmarkStatCacheLookup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "statcache")
	const n = 50000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/workspace/data/raw/class_%02d/image_%05d.png", i%50, i)
	}
	slices.Sort(paths)
	e := statEntry{K: statKey{Size: 100, MtimeNs: 1, CtimeNs: 1, Perm: 0o444}, HashedNs: 1 << 62}
	buf := append([]byte(statCacheMagic), 0) // no tree records
	buf = binary.AppendUvarint(buf, n)
	for i, p := range paths {
		e.K.Ino = uint64(i)
		buf = encodeEntry(buf, p, e)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	c := OpenStatCache(path)
	k := e.K
	k.Ino = 0
	if _, ok := c.cachedDigest(paths[0], k, true); !ok {
		b.Fatal("the first entry is not found")
	}
	i := 0
	for b.Loop() {
		k.Ino = uint64(i)
		if _, ok := c.cachedDigest(paths[i], k, true); !ok {
			b.Fatalf("%s is not found", paths[i])
		}
		i = (i + 1) % n
	}
}

// TestAStatCacheThatCannotWriteItsFileDoesNotRewriteItAtEveryEntry records entries in a
// cache whose file cannot be written (its folder is a regular file, as in a store on a
// read-only or full disk): a spill that fails is not tried again at the very next entry (each
// try walks every entry held, and writes them all where the folder can be written but the
// disk is full), but once as many more entries are held; once the file can be written again,
// that spill writes every entry, none lost.
func TestAStatCacheThatCannotWriteItsFileDoesNotRewriteItAtEveryEntry(t *testing.T) {
	defer func(at, min, bytes int) { spillAt, spillMin, spillBytes = at, min, bytes }(spillAt, spillMin, spillBytes)
	spillAt, spillMin, spillBytes = 1<<20, 8, 400
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.WriteFile(store, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cachePath := filepath.Join(store, "statcache")
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	c := OpenStatCache(cachePath)
	record := func(i int) {
		p := filepath.Join(files, fmt.Sprint(i))
		if err := os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.remember(p, mustStat(t, p), sha256.Sum256([]byte(fmt.Sprint(i))))
	}
	for i := range spillMin {
		record(i)
	}
	if _, err := os.Stat(cachePath); err == nil {
		t.Fatal("the cache file was written in a folder that is a file")
	}
	// The folder can be written again: the next entry does not try the spill again at once.
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	record(spillMin)
	if _, err := os.Stat(cachePath); err == nil {
		t.Fatalf("the cache tried to write its file again at the next entry after it failed at %d", spillMin)
	}
	for i := spillMin + 1; i < 2*spillMin; i++ {
		record(i)
	}
	c.mu.Lock()
	held := len(c.changed)
	c.mu.Unlock()
	if _, err := os.Stat(cachePath); err != nil || held != 0 {
		t.Fatalf("at %d entries the cache did not spill again (%d held, %v)", 2*spillMin, held, err)
	}
	if p := OpenStatCache(cachePath).Paths(); len(p) != 2*spillMin {
		t.Fatalf("%d entries in the file spilled, want %d", len(p), 2*spillMin)
	}
}

// A scan of the mapped cache file gives back the pages it has passed: the process does not
// keep the whole file resident, and what it reads again is still the file's content.
func TestScanReleaseGivesBackPassedPages(t *testing.T) {
	const size = 40 << 20
	path := filepath.Join(t.TempDir(), "big")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, mapped, unmap := readMapped(path)
	if mapped == nil {
		t.Skip("no mapping on this system")
	}
	defer unmap()
	scan := scanRelease{m: mapped}
	most := int64(0)
	var sum, want byte
	for off := 0; off < size; off += 4096 {
		sum += b[off] // read: the page is mapped in
		want += data[off]
		scan.passed(b[off:])
		if off%(1<<20) == 0 {
			most = max(most, mappedRSS(t, mapped))
		}
	}
	if sum != want {
		t.Fatalf("the mapping read %d, the file holds %d", sum, want)
	}
	if most > 2*releaseEvery {
		t.Errorf("%d bytes of the mapping resident during the scan, want at most about %d", most, releaseEvery)
	}
	scan.all()
	if got := mappedRSS(t, mapped); got > 1<<20 {
		t.Errorf("%d bytes resident once the scan is done", got)
	}
	for _, off := range []int{0, 4095, size / 2, size - 1} {
		if b[off] != data[off] {
			t.Fatalf("byte %d read again: %d, want %d", off, b[off], data[off])
		}
	}
}

// mappedRSS returns the resident bytes of the mapping m, from /proc/self/smaps.
func mappedRSS(t *testing.T, m []byte) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(m))))
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's first line: its address range
			in = strings.HasPrefix(fields[0], start)
			continue
		}
		if in && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("the mapping is not in /proc/self/smaps")
	return 0
}

// BenchmarkPruneGone prunes a saved cache of 200,000 entries whose files are gone, as gc does
// after removing outputs, and reports the memory the cache holds for them until it is saved
// (held-B/entry: live heap after Prune less before).
func BenchmarkPruneGone(b *testing.B) {
	const entries = 200_000
	dir := b.TempDir()
	real := filepath.Join(dir, "real")
	os.WriteFile(real, []byte("x"), 0o644)
	fi, err := os.Stat(real)
	if err != nil {
		b.Fatal(err)
	}
	cachePath := filepath.Join(dir, "cache")
	c := OpenStatCache(cachePath)
	for i := range entries {
		c.remember(filepath.Join(dir, "objects", fmt.Sprintf("%02x", i%256), fmt.Sprintf("image-%07d.png", i)), fi, sha256.Sum256([]byte(fmt.Sprint(i))))
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	saved, err := os.ReadFile(cachePath)
	if err != nil {
		b.Fatal(err)
	}
	var held float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.WriteFile(cachePath, saved, 0o644)
		c := OpenStatCache(cachePath)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		if n := c.Prune(); n != entries {
			b.Fatalf("%d pruned, want %d", n, entries)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / entries
		b.StartTimer()
		if err := c.Save(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(held, "held-B/entry")
}
