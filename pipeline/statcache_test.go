package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
			d := hexSHA(fmt.Sprint(step))
			c.remember(p, fi, d)
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
			c.Prune()
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
