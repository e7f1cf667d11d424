package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
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
	c := OpenStatCache(filepath.Join(t.TempDir(), "cache.gob"))
	m1, err := c.HashTree(dir)
	if err != nil || len(m1.Files) != 300 || c.Hashed != 300 {
		t.Fatalf("first walk: %d files, %d hashed, %v", len(m1.Files), c.Hashed, err)
	}
	m2, err := c.HashTree(dir)
	if err != nil || m2.Digest != m1.Digest || c.Hashed != 300 {
		t.Fatalf("second walk: digest equal %v, %d hashed in total, %v", m2.Digest == m1.Digest, c.Hashed, err)
	}
	if got := m1.Files["c1/f007"]; got != hexSHA("7") {
		t.Fatalf("c1/f007 digest %s", got)
	}
}

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
