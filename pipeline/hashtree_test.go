package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// The manifest digest is a published format (every cache key depends on it): each line is
// fmt's "%q %s\n" of a file's name and digest, in name order.
func TestManifestDigestIsTheDocumentedFormat(t *testing.T) {
	files := map[string]string{
		"a/plain.png":              "d1",
		"Amanita muscaria/ü 1.jpg": "d2",
		`odd/"quoted"\name`:        "d3",
		"tab\tand\nnewline":        "d4",
		"z/\xff-invalid-utf8":      "d5",
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%q %s\n", n, files[n])
	}
	if got, want := manifestDigest(files), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("manifestDigest = %s, want %s", got, want)
	}
}

func TestHashTreeServesUnchangedFilesFromTheStatCache(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 300; i++ { // more than one block of the workers
		p := filepath.Join(dir, fmt.Sprintf("c%d", i%3), fmt.Sprintf("f%03d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644)
	}
	c := settledCache(filepath.Join(t.TempDir(), "cache.gob"))
	m1, err := c.HashTree(dir)
	if err != nil || len(m1.Files) != 303 || c.Hashed != 300 {
		t.Fatalf("first walk: %d entries (300 files and 3 folders), %d hashed, %v", len(m1.Files), c.Hashed, err)
	}
	m2, err := c.HashTree(dir)
	if err != nil || m2.Digest != m1.Digest || c.Hashed != 300 {
		t.Fatalf("second walk: digest equal %v, %d hashed in total, %v", m2.Digest == m1.Digest, c.Hashed, err)
	}
	if got := m1.Files["c1/f007"]; got != hexSHA("7") {
		t.Fatalf("c1/f007 digest %s", got)
	}
}

// settledCache opens a stat cache whose clock is a minute ahead, so that the files a test has
// just written count as settled (racyMargin) and are served from the cache.
func settledCache(path string) *StatCache {
	c := OpenStatCache(path)
	c.Clock = func() time.Time { return time.Now().Add(time.Minute) }
	return c
}

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// writeTree writes files (relative path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuickManifestSkipsTheManifestOfAnUnchangedTreeOnly(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a/1": "one", "a/2": "two", "b/3": "three"})
	cachePath := filepath.Join(t.TempDir(), "statcache")
	c := settledCache(cachePath)
	first, err := c.QuickManifest(dir)       // never seen: complete
	if err != nil || len(first.Files) != 5 { // three files in two folders
		t.Fatalf("first: %v files, %v", first.Files, err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	// A fresh process: the tree record is on disk, the per-file entries are not even decoded.
	c = settledCache(cachePath)
	m, err := c.QuickManifest(dir)
	if err != nil || m.Files != nil || m.Digest != first.Digest {
		t.Fatalf("unchanged tree: files %v, digest equal %v, %v", m.Files, m.Digest == first.Digest, err)
	}
	if c.indexed {
		t.Error("the per-file entries were indexed for an unchanged tree")
	}

	check := func(what string, change func()) {
		t.Helper()
		change()
		m, err := c.QuickManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		full, err := OpenStatCache("").HashTree(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m.Files == nil || m.Digest != full.Digest {
			t.Fatalf("%s: quick manifest complete %v, digest %s, want %s", what, m.Files != nil, m.Digest, full.Digest)
		}
		// And the next look at the same tree is quick again.
		if again, _ := c.QuickManifest(dir); again.Files != nil || again.Digest != full.Digest {
			t.Fatalf("%s: the tree record was not updated", what)
		}
	}
	check("content changed", func() { writeTree(t, dir, map[string]string{"a/1": "ONE"}) })
	check("file added", func() { writeTree(t, dir, map[string]string{"b/4": "four"}) })
	check("file removed", func() { os.Remove(filepath.Join(dir, "a", "2")) })
	check("touched", func() {
		earlier := time.Now().Add(-time.Hour)
		os.Chtimes(filepath.Join(dir, "b", "3"), earlier, earlier)
	})
	check("renamed", func() { os.Rename(filepath.Join(dir, "b", "3"), filepath.Join(dir, "b", "3b")) })
	check("empty folder added", func() { os.Mkdir(filepath.Join(dir, "c"), 0o755) })
	check("empty folder removed", func() { os.Remove(filepath.Join(dir, "c")) })
}

func TestStatCacheSurvivesSaveAndRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"x": "1", "y/z": "2"})
	cachePath := filepath.Join(t.TempDir(), "statcache")
	c := settledCache(cachePath)
	want, err := c.HashTree(dir)
	if err != nil || c.Hashed != 2 {
		t.Fatalf("%v, %d hashed", err, c.Hashed)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = settledCache(cachePath)
	got, err := c.HashTree(dir)
	if err != nil || got.Digest != want.Digest || c.Hashed != 0 {
		t.Fatalf("after reopening: digest equal %v, %d hashed, %v", got.Digest == want.Digest, c.Hashed, err)
	}
	if p := c.Paths(); len(p) != 2 {
		t.Fatalf("paths %v", p)
	}
	// Saving without decoding the entries keeps them.
	c = OpenStatCache(cachePath)
	writeTree(t, dir, map[string]string{"w": "3"})
	c.mu.Lock()
	c.trees["/elsewhere\x00all"] = treeRecord{Files: 1}
	c.dirty = true
	c.mu.Unlock()
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if c = OpenStatCache(cachePath); len(c.Paths()) != 2 {
		t.Fatalf("entries lost by a save that did not decode them: %v", c.Paths())
	}

	// Every truncation of the file, and garbage, open as an empty or partial cache, never a
	// wrong digest.
	b, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(b); cut += max(1, len(b)/97) {
		os.WriteFile(cachePath, b[:cut], 0o644)
		c := OpenStatCache(cachePath)
		m, err := c.HashTree(dir)
		full, _ := OpenStatCache("").HashTree(dir)
		if err != nil || m.Digest != full.Digest {
			t.Fatalf("cache cut at %d of %d bytes: %v", cut, len(b), err)
		}
	}
	os.WriteFile(cachePath, []byte("pipeline statcache 2\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), 0o644)
	if m, err := OpenStatCache(cachePath).HashTree(dir); err != nil || m.Digest == "" {
		t.Fatalf("garbage cache: %v", err)
	}
}

func TestHashTreeFollowsLinksAndMarksLoopsAndBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	files := map[string]string{".hidden": "h", "a/.also-hidden": "h", "a/deep/er/x": "x"}
	for i := 0; i < 150; i++ { // a large folder: its stats are split between workers
		files[fmt.Sprintf("big/%03d", i)] = fmt.Sprint(i)
	}
	writeTree(t, dir, files)
	writeTree(t, other, map[string]string{"target": "T", "linked/inside": "I"})
	os.Symlink(filepath.Join(other, "target"), filepath.Join(dir, "a", "file-link"))
	os.Symlink(filepath.Join(other, "linked"), filepath.Join(dir, "dir-link"))
	os.Symlink(dir, filepath.Join(dir, "a", "loop"))
	os.Symlink(filepath.Join(other, "gone"), filepath.Join(dir, "broken"))
	os.Symlink("..", filepath.Join(dir, "up"))                            // above the root
	os.Symlink("self", filepath.Join(dir, "a", "self"))                   // a link to itself
	os.Symlink(filepath.Dir(dir), filepath.Join(dir, "a", "deep", "top")) // the root's parent

	m, err := OpenStatCache("").HashTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a/deep/er/x": hexSHA("x"), "a/file-link": hexSHA("T"), "dir-link/inside": hexSHA("I"),
		"a/loop": "symlink-loop", "broken": "broken-symlink",
		"up": "symlink-loop", "a/self": "symlink-loop", "a/deep/top": "symlink-loop",
		"a/": folderMark, "a/deep/": folderMark, "a/deep/er/": folderMark, "big/": folderMark, "dir-link/": folderMark,
	}
	for i := 0; i < 150; i++ {
		want[fmt.Sprintf("big/%03d", i)] = hexSHA(fmt.Sprint(i))
	}
	if len(m.Files) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(m.Files), len(want), m.Files)
	}
	for rel, d := range want {
		if m.Files[rel] != d {
			t.Errorf("%s: %q, want %q", rel, m.Files[rel], d)
		}
	}
	if m.Sizes["a/file-link"] != 1 || m.Sizes["big/149"] != 3 {
		t.Errorf("sizes: link %d, big/149 %d", m.Sizes["a/file-link"], m.Sizes["big/149"])
	}
	// The same tree walked again (in another order of goroutines) has the same signature.
	c := OpenStatCache("")
	_, w1, err1 := c.hashTree(dir, treeMode{source: true, remember: true})
	_, w2, err2 := c.hashTree(dir, treeMode{source: true, remember: true})
	if err1 != nil || err2 != nil || w1.sig != w2.sig {
		t.Fatalf("signatures differ between two walks of an unchanged tree (%v, %v)", err1, err2)
	}
	// A file that cannot be read is an error, not a silently missing entry.
	os.Chmod(filepath.Join(dir, "a", "deep"), 0o000)
	defer os.Chmod(filepath.Join(dir, "a", "deep"), 0o755)
	if os.Getuid() != 0 {
		if _, err := OpenStatCache("").HashTree(dir); err == nil {
			t.Error("an unreadable folder did not fail the walk")
		}
	}
}

func TestHashTreeMarksLinksAboveTheRealRoot(t *testing.T) {
	// The root is reached through a link (ws/data/train → datasets/set/train); a link inside
	// it to the real parent (datasets/set) would pull the test images in.
	base := t.TempDir()
	writeTree(t, base, map[string]string{"datasets/set/train/cat/1": "c", "datasets/set/test/dog/2": "d"})
	os.MkdirAll(filepath.Join(base, "ws", "data"), 0o755)
	os.Symlink(filepath.Join(base, "datasets", "set", "train"), filepath.Join(base, "ws", "data", "train"))
	os.Symlink("../..", filepath.Join(base, "datasets", "set", "train", "cat", "up"))
	m, err := OpenStatCache("").HashTree(filepath.Join(base, "ws", "data", "train"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cat/": folderMark, "cat/1": hexSHA("c"), "cat/up": "symlink-loop"}
	if len(m.Files) != len(want) || m.Files["cat/1"] != want["cat/1"] || m.Files["cat/up"] != want["cat/up"] || m.Files["cat/"] != folderMark {
		t.Fatalf("files %v, want %v", m.Files, want)
	}
}

// A stage's output is published without reading again the files the stage wrote with
// Job.WriteFile or hard-linked from a published output, also in a later process; anything
// else is read: a file changed after WriteFile, another file at the written file's place, a
// link to a file the cache does not know. The manifest is always the one a full read gives.
func TestPublishReadsOnlyFilesWhoseDigestIsUnknown(t *testing.T) {
	for _, c := range []struct{ batch, run int }{{outputBatch, writtenRun}, {2, writtenRun}, {2, 1}} {
		t.Run(fmt.Sprintf("batch %d, run %d", c.batch, c.run), func(t *testing.T) {
			defer func(n, m int) { outputBatch, writtenRun = n, m }(outputBatch, writtenRun)
			outputBatch, writtenRun = c.batch, c.run
			testPublishReadsOnlyFilesWhoseDigestIsUnknown(t)
		})
	}
}

func testPublishReadsOnlyFilesWhoseDigestIsUnknown(t *testing.T) {
	ws := t.TempDir()
	st, err := OpenStore(ws)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(st *Store, key string, fill func(tmp string, job *Job)) (*Entry, int64) {
		t.Helper()
		tmp, err := os.MkdirTemp(filepath.Join(st.Root, "tmp"), "out")
		if err != nil {
			t.Fatal(err)
		}
		job := &Job{Out: tmp, written: &writtenFiles{dir: st.Stats.spillDir(), root: tmp}}
		fill(tmp, job)
		before := st.Stats.Hashed
		e, err := st.Publish(tmp, key, "stage.x", nil, nil, time.Second, job.written)
		if err != nil {
			t.Fatal(err)
		}
		full, err := OpenStatCache("").HashTree(filepath.Join(st.Workspace, ObjectRel(e.Output.Digest)))
		if err != nil || full.Digest != e.Output.Digest {
			t.Fatalf("published digest %s, a full read gives %s (%v)", e.Output.Digest, full.Digest, err)
		}
		return e, st.Stats.Hashed - before
	}
	write := func(p string, data string) {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(c string) string { return c + strings.Repeat("0", 63) }
	first, read := publish(st, key("1"), func(tmp string, _ *Job) { write(filepath.Join(tmp, "x"), "input") })
	if read != 1 {
		t.Fatalf("first output: %d files read, want 1", read)
	}
	firstX := filepath.Join(st.Workspace, ObjectRel(first.Output.Digest), "x")
	unknown := filepath.Join(t.TempDir(), "unknown")
	write(unknown, "not in the cache")
	_, read = publish(st, key("2"), func(tmp string, job *Job) {
		if d, err := job.WriteFile(filepath.Join(tmp, "written"), []byte("pixels")); err != nil || d != fmt.Sprintf("%x", sha256.Sum256([]byte("pixels"))) {
			t.Fatalf("WriteFile: %s, %v", d, err)
		}
		if err := LinkFile(firstX, filepath.Join(tmp, "linked")); err != nil {
			t.Fatal(err)
		}
		if err := LinkFile(unknown, filepath.Join(tmp, "linked-unknown")); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(tmp, "plain"), "report")
		job.WriteFile(filepath.Join(tmp, "changed"), []byte("first"))
		write(filepath.Join(tmp, "changed"), "second, longer")
		// Deleted, and a file of the same size written elsewhere (it may get the inode).
		job.WriteFile(filepath.Join(tmp, "gone"), []byte("aaaa"))
		os.Remove(filepath.Join(tmp, "gone"))
		write(filepath.Join(tmp, "other"), "bbbb")
		// The same, with the deleted file's modification time too (a file system with
		// coarse timestamps): the other file is read, not taken for the deleted one.
		job.WriteFile(filepath.Join(tmp, "gone2"), []byte("cccc"))
		fi, _ := os.Stat(filepath.Join(tmp, "gone2"))
		os.Remove(filepath.Join(tmp, "gone2"))
		write(filepath.Join(tmp, "other2"), "dddd")
		os.Chtimes(filepath.Join(tmp, "other2"), fi.ModTime(), fi.ModTime())
	})
	if read != 5 {
		t.Fatalf("second output: %d files read, want 5 (linked-unknown, plain, changed, other, other2)", read)
	}
	// A later process knows the first output from the saved cache.
	if err := st.Stats.Save(); err != nil {
		t.Fatal(err)
	}
	later, err := OpenStore(ws)
	if err != nil {
		t.Fatal(err)
	}
	_, read = publish(later, key("3"), func(tmp string, _ *Job) {
		if err := LinkFile(firstX, filepath.Join(tmp, "linked")); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(tmp, "plain"), "report 3")
	})
	if read != 1 {
		t.Fatalf("third output, new process: %d files read, want 1 (plain)", read)
	}
}

// Job.LinkFile records the digest of a link to a store file the cache knows, as WriteFile
// records its own, so that publishing needs no search for what the link leads to; a link to
// a file the cache does not know, or one changed since it was hashed, is not recorded.
func TestJobLinkFileRecordsKnownDigests(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	known, unknown, changed := filepath.Join(dir, "known"), filepath.Join(dir, "unknown"), filepath.Join(dir, "changed")
	for _, p := range []string{known, unknown, changed} {
		if err := os.WriteFile(p, []byte(filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{known, changed} {
		fi, _ := os.Stat(p)
		st.Stats.remember(p, fi, sha256.Sum256([]byte(filepath.Base(p))))
	}
	if err := os.WriteFile(changed, []byte("changed since"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := &Job{written: &writtenFiles{}, stats: st.Stats}
	out := t.TempDir()
	for _, p := range []string{known, unknown, changed} {
		if err := job.LinkFile(p, filepath.Join(out, "sub", filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	recorded := func(name string) ([sha256.Size]byte, bool) {
		p := filepath.Join(out, "sub", name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return job.written.digest(p, keyOf(fi).object())
	}
	if d, ok := recorded("known"); !ok || d != sha256.Sum256([]byte("known")) {
		t.Errorf("link to a known store file: recorded %x, %v", d, ok)
	}
	for _, name := range []string{"unknown", "changed"} {
		if d, ok := recorded(name); ok {
			t.Errorf("link to the %s file: recorded %x", name, d)
		}
	}
}

// An entry answers for a hard link only while its path still holds a file of that identity:
// one left by a deleted file (whose inode a new file may get) does not.
func TestLinkedDigestNeedsTheEntrysFileStillThere(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := OpenStatCache("")
	if _, _, err := c.hashTree(dir, treeMode{remember: true}); err != nil { // as the store's files are
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	k := keyOf(fi).object()
	links := c.linkedFiles(map[statKey]statKey{k.folderID(): k})
	if d, ok := linkedDigest(links, k); !ok || d != sha256.Sum256([]byte("content")) {
		t.Fatalf("a known file: %x %v", d, ok)
	}
	os.Remove(p)
	if d, ok := linkedDigest(links, k); ok {
		t.Fatalf("a deleted file's entry answered %x", d)
	}
}

// Publishing records its files, and finds the digests of files it links, without decoding the
// saved entries; the cache saved afterwards holds the saved entries and the new ones, with an
// entry recorded again for a saved path replacing it.
func TestEntriesRecordedBeforeDecodingAreSavedWithTheOthers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a", "one"), write("b", "two")
	path := filepath.Join(t.TempDir(), "cache")
	c := OpenStatCache(path)
	for _, p := range []string{a, b} {
		fi, _ := os.Stat(p)
		c.remember(p, fi, sha256.Sum256([]byte(map[string]string{a: "one", b: "two"}[p])))
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = OpenStatCache(path)
	if c.indexed {
		t.Fatal("opening indexed the entries")
	}
	// b rewritten, and a new file; the entries stay undecoded.
	os.Remove(b)
	b = write("b", "two, again")
	n := write("n", "new")
	for p, content := range map[string]string{b: "two, again", n: "new"} {
		fi, _ := os.Stat(p)
		c.remember(p, fi, sha256.Sum256([]byte(content)))
	}
	fi, _ := os.Stat(a)
	k := keyOf(fi).object()
	if d, ok := linkedDigest(c.linkedFiles(map[statKey]statKey{k.folderID(): k}), k); !ok || d != sha256.Sum256([]byte("one")) {
		t.Fatalf("a saved entry for a link: %q %v", d, ok)
	}
	fi, _ = os.Stat(n)
	kn := keyOf(fi).object()
	if _, ok := linkedDigest(c.linkedFiles(map[statKey]statKey{kn.folderID(): kn}), kn); !ok {
		t.Fatal("an entry recorded since opening is not found for a link")
	}
	if c.indexed {
		t.Fatal("recording and finding links indexed the entries")
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = OpenStatCache(path)
	paths := c.Paths()
	if len(paths) != 3 || paths[0] != a || paths[1] != b || paths[2] != n {
		t.Fatalf("saved entries %v, want a, b, n", paths)
	}
	for p, content := range map[string]string{a: "one", b: "two, again", n: "new"} {
		fi, _ := os.Stat(p)
		if d, ok := c.cachedDigest(p, keyOf(fi).object(), false); !ok || d != fmt.Sprintf("%x", sha256.Sum256([]byte(content))) {
			t.Errorf("%s: %q %v after saving", filepath.Base(p), d, ok)
		}
	}
}

// A file or folder that cannot be read for lack of permission is marked in the manifest
// instead of failing the hash, and a tree with one is never taken as unchanged from its
// signature: once readable, its content counts.
func TestUnreadableEntriesAreMarkedAndRetried(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"a/1.txt": "one", "a/2.txt": "two", "b/3.txt": "three"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	denied := map[string]bool{filepath.Join(dir, "a/2.txt"): true, filepath.Join(dir, "b"): true}
	openFile = func(name string) (*os.File, error) {
		if denied[name] {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openFile = os.Open }()
	c := OpenStatCache(filepath.Join(t.TempDir(), "cache"))
	m, err := c.QuickManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = c.HashTree(dir); err != nil || m.Files["a/2.txt"] != unreadableMark || m.Files["b"] != unreadableMark || len(m.Files) != 4 {
		t.Fatalf("manifest %v, %v", m.Files, err)
	}
	// The folder readable again changes what is listed; the file, only what it holds.
	delete(denied, filepath.Join(dir, "b"))
	m, err = c.QuickManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	delete(denied, filepath.Join(dir, "a/2.txt"))
	again, err := c.QuickManifest(dir)
	if err != nil || again.Digest == m.Digest {
		t.Fatalf("readable again: digest %s (was %s), %v", again.Digest, m.Digest, err)
	}
}

// A link the walk may not follow is marked alone: the rest of its folder still counts, so a
// changed file beside it changes the digest.
func TestAForbiddenLinkHidesNothingElse(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "cats"), 0o755)
	os.WriteFile(filepath.Join(dir, "cats", "1.jpg"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(dir, "elsewhere"), []byte("x"), 0o644)
	link := filepath.Join(dir, "cats", "link.jpg")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	statFile = func(name string) (os.FileInfo, error) {
		if name == link {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrPermission}
		}
		return os.Stat(name)
	}
	defer func() { statFile = os.Stat }()
	c := OpenStatCache(filepath.Join(t.TempDir(), "cache"))
	m, err := c.HashTree(filepath.Join(dir, "cats"))
	if err != nil || m.Files["link.jpg"] != unreadableMark || m.Files["1.jpg"] == "" {
		t.Fatalf("manifest %v, %v", m.Files, err)
	}
	os.WriteFile(filepath.Join(dir, "cats", "1.jpg"), []byte("changed"), 0o644)
	if again, err := c.HashTree(filepath.Join(dir, "cats")); err != nil || again.Digest == m.Digest {
		t.Fatalf("a changed file beside the link: digest %s, was %s (%v)", again.Digest, m.Digest, err)
	}
}

// A file made unreadable keeps its size, mtime and inode: its read permission is part of its
// identity, so it is looked at again (and marked, when reading fails) instead of keeping the
// digest cached for it. In the store, the write bits, which publishing clears, are not, nor
// is the change time, which the chmod moves.
func TestReadPermissionIsPartOfAFilesIdentity(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.txt")
	os.WriteFile(f, []byte("a"), 0o644)
	c := settledCache(filepath.Join(t.TempDir(), "cache"))
	store := treeMode{remember: true, quick: true}
	m, _, err := c.hashTree(dir, store)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(f, 0o444)
	if again, _, err := c.hashTree(dir, store); err != nil || again.Digest != m.Digest || c.Hashed != 1 {
		t.Fatalf("write bits cleared: digest %s (was %s), hashed %d times, %v", again.Digest, m.Digest, c.Hashed, err)
	}
	m, err = c.QuickManifest(dir) // as a source
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(f, 0o000)
	openFile = func(name string) (*os.File, error) { // root reads it anyway
		if name == f {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openFile = os.Open }()
	if again, err := c.QuickManifest(dir); err != nil || again.Digest == m.Digest {
		t.Fatalf("made unreadable: digest %s (was %s), %v", again.Digest, m.Digest, err)
	}
}

// A file rewritten in place with other bytes of the same size and its modification time set
// back (touch -d, cp -p, an archive with fixed times) keeps size, mtime and inode: its change
// time, which nothing sets back, makes it read again, file by file and in the tree's
// signature.
func TestARewriteThatRestoresTheTimesIsReadAgain(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"cls/a.txt": "aaaa", "cls/b.txt": "bb"})
	f := filepath.Join(dir, "cls", "a.txt")
	c := settledCache("")
	first, err := c.QuickManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(f)
	time.Sleep(20 * time.Millisecond) // past the file system's timestamp tick
	if err := os.WriteFile(f, []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(f)
	if k1, k2 := keyOf(before), keyOf(after); k1.Size != k2.Size || k1.MtimeNs != k2.MtimeNs || k1.Ino != k2.Ino {
		t.Fatalf("the rewrite did not keep size, mtime and inode: %+v, %+v", k1, k2)
	}
	m, err := c.QuickManifest(dir)
	if err != nil || m.Digest == first.Digest || m.Files["cls/a.txt"] != hexSHA("bbbb") {
		t.Fatalf("after the rewrite: digest changed %v, a.txt %s, %v", m.Digest != first.Digest, m.Files["cls/a.txt"], err)
	}
}

// The store's files are known without their change time, which every hard link added or
// removed moves (run folders and augment link them): an object linked elsewhere is still
// verified from its signature, without reading a file.
func TestStoreFilesAreNotReadAgainWhenLinked(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"images/1.png": "one", "report": "r"})
	c := OpenStatCache("")
	store := treeMode{remember: true, quick: true}
	first, _, err := c.hashTree(dir, store)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	link := filepath.Join(t.TempDir(), "linked.png")
	if err := os.Link(filepath.Join(dir, "images", "1.png"), link); err != nil {
		t.Fatal(err)
	}
	m, _, err := c.hashTree(dir, store)
	if err != nil || m.Files != nil || m.Digest != first.Digest || c.Hashed != 2 {
		t.Fatalf("after linking: complete manifest %v, digest equal %v, %d files read in all, %v", m.Files != nil, m.Digest == first.Digest, c.Hashed, err)
	}
	os.Remove(link)
	if m, _, err = c.hashTree(dir, store); err != nil || m.Files != nil || c.Hashed != 2 {
		t.Fatalf("after unlinking: complete manifest %v, %d files read in all, %v", m.Files != nil, c.Hashed, err)
	}
}

// A digest computed less than racyMargin after the file's modification or change time is not
// trusted, as a rewrite within the same timestamp tick would keep the file's identity: the
// file is read at every look, until a look comes late enough after its times; from then on its
// digest (and its tree's) is served from the cache.
func TestRacyDigestsAreReadAgainUntilSettled(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a"})
	c := OpenStatCache(filepath.Join(t.TempDir(), "cache"))
	for i := 1; i <= 2; i++ {
		m, err := c.QuickManifest(dir)
		if err != nil || m.Files == nil || c.Hashed != int64(i) {
			t.Fatalf("look %d, just after writing: complete %v, %d reads, %v", i, m.Files != nil, c.Hashed, err)
		}
	}
	// Reopened a minute later, as a later plan: the entry was recorded racy, so the file is
	// read once more, and then trusted.
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = OpenStatCache(c.path)
	c.Clock = func() time.Time { return time.Now().Add(time.Minute) }
	if m, err := c.QuickManifest(dir); err != nil || m.Files == nil || c.Hashed != 1 {
		t.Fatalf("a minute later: complete %v, %d reads, %v", m.Files != nil, c.Hashed, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "a.txt"))
	if d, ok := c.cachedDigest(filepath.Join(dir, "a.txt"), keyOf(fi), true); !ok || d != hexSHA("a") {
		t.Fatalf("the digest is not trusted once settled: %q %v", d, ok)
	}
	if m, err := c.QuickManifest(dir); err != nil || m.Files != nil || c.Hashed != 1 {
		t.Fatalf("settled: complete %v, %d reads, %v", m.Files != nil, c.Hashed, err)
	}
}

// A stat cache of an older format is discarded, not misread: it may hold digests for
// identities without a change time, which would be trusted for files rewritten since.
func TestAnOlderStatCacheIsDiscarded(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "new"})
	f := filepath.Join(dir, "a.txt")
	fi, _ := os.Stat(f)
	k := keyOf(fi)
	// Format 3: no trees, one entry for a.txt's present identity with another file's digest.
	b := []byte("pipeline statcache 3\n")
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, uint64(len(f)))
	b = append(b, f...)
	b = binary.AppendUvarint(b, uint64(k.Size))
	b = binary.AppendVarint(b, k.MtimeNs)
	b = binary.AppendUvarint(b, k.Ino)
	b = binary.AppendUvarint(b, k.Dev)
	b = binary.AppendUvarint(b, uint64(k.Perm))
	old := sha256.Sum256([]byte("old"))
	b = append(b, old[:]...)
	cachePath := filepath.Join(t.TempDir(), "statcache")
	if err := os.WriteFile(cachePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := OpenStatCache(cachePath)
	c.Clock = func() time.Time { return time.Now().Add(time.Minute) }
	m, err := c.HashTree(dir)
	if err != nil || m.Files["a.txt"] != hexSHA("new") || c.Hashed != 1 || len(c.Paths()) != 1 {
		t.Fatalf("a.txt %s, %d read, entries %v, %v", m.Files["a.txt"], c.Hashed, c.Paths(), err)
	}
}

// digest returns the recorded digest of the file at abs, of identity k, as a cursor finds it:
// one lookup reads the records from the start.
func (w *writtenFiles) digest(abs string, k statKey) ([sha256.Size]byte, bool) {
	c := w.cursor()
	defer c.close()
	return c.digest(abs, k)
}

// writtenFiles finds each of many files by its path and identity, in memory and in the
// sorted runs of its scratch file, takes the last record of a path written twice, finds
// nothing for an identity or a path it was not written with, and leaves no scratch file.
func TestWrittenFilesLookup(t *testing.T) {
	defer func(n int) { writtenRun = n }(writtenRun)
	for i, run := range []int{16384, 64, 1} {
		writtenRun = run
		dir := t.TempDir()
		w := writtenFiles{dir: dir}
		if i%2 == 1 {
			w.root = "/ws/out" // keys relative to it
		}
		sum := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte(fmt.Sprint(i))) }
		key := func(i int) statKey {
			return statKey{Size: int64(100 + i), MtimeNs: int64(i) * 1e9, Ino: uint64(1000 - i), Dev: uint64(i % 3), Perm: 0o444}
		}
		path := func(i int) string { return fmt.Sprintf("/ws/out/images/%d.png", i) }
		for _, i := range rand.New(rand.NewPCG(1, uint64(run))).Perm(500) { // written in any order
			w.add(path(i), key(i), sum(i))
		}
		// file 7's path written again, with another identity: the last record counts
		again := key(7)
		again.Size = 5
		w.add(path(7), again, sum(9999))
		if d, ok := w.digest(path(7), again); !ok || d != sum(9999) {
			t.Fatalf("run %d: a path written again: %x %v", run, d, ok)
		}
		if _, ok := w.digest(path(7), key(7)); ok {
			t.Errorf("run %d: the first file of a path written twice is still found", run)
		}
		if run < 500 && len(w.runs) == 0 {
			t.Errorf("run %d: no run written to the scratch file", run)
		}
		// in path order, as publishing looks them up, through one cursor
		paths := make([]int, 500)
		for i := range paths {
			paths[i] = i
		}
		slices.SortFunc(paths, func(a, b int) int { return strings.Compare(path(a), path(b)) })
		c := w.cursor()
		for _, i := range paths {
			want, k := sum(i), key(i)
			if i == 7 {
				want, k = sum(9999), again
			}
			if d, ok := c.digest(path(i)+"/.", k); !ok || d != want { // the path as given, cleaned
				t.Fatalf("run %d: file %d: %x %v", run, i, d, ok)
			}
		}
		if _, ok := c.digest(path(paths[0]), key(paths[0])); ok {
			t.Errorf("run %d: a path before the last asked found", run)
		}
		c.close()
		changed := key(3)
		changed.MtimeNs++
		withCtime := key(3)
		withCtime.CtimeNs = 1
		for _, c := range []struct {
			name string
			path string
			k    statKey
		}{{"another path", path(4), key(3)}, {"another mtime", path(3), changed}, {"a change time", path(3), withCtime}, {"an unknown inode", path(3), statKey{Ino: 1, Dev: 9}}, {"a path not written", "/ws/out/x", key(3)},
			{"the path relative to the root", "images/3.png", key(3)}, {"the path in another root", "/ws/other/images/3.png", key(3)}} {
			if _, ok := w.digest(c.path, c.k); ok {
				t.Errorf("run %d: %s: found", run, c.name)
			}
		}
		w.forget()
		if _, ok := w.digest(path(3), key(3)); ok {
			t.Errorf("run %d: found after forget", run)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("run %d: scratch files left: %v", run, left)
		}
	}
}
