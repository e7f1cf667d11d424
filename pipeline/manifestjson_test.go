package pipeline

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The streamed manifests are byte for byte what writeJSON writes.
func TestManifestJSONIsWriteJSON(t *testing.T) {
	m := Manifest{
		Files:  map[string]string{"b/x.png": "ab12", "a/Rød <&> \"q\"\\\u2028.png": "cd34", "a/": folderMark, "\x01odd": "ef"},
		Sizes:  map[string]int64{"b/x.png": 12, "a/Rød <&> \"q\"\\\u2028.png": 0, "\x01odd": -1},
		Digest: "0123",
	}
	cases := map[string]any{
		"full":   m,
		"empty":  Manifest{Digest: "d"},
		"sizes":  Manifest{Files: map[string]string{"f": "d"}, Digest: "d"},
		"blank":  Manifest{Files: map[string]string{}, Sizes: map[string]int64{}},
		"bad":    Manifest{Files: map[string]string{"x\xffy": "d"}, Digest: "d"},
		"srcs":   map[string]Manifest{"source": m, "test_source": {Digest: "e"}, "é": {}},
		"nosrc":  map[string]Manifest{},
		"nilsrc": map[string]Manifest(nil),
	}
	dir := t.TempDir()
	for name, v := range cases {
		want, got := filepath.Join(dir, name+".want"), filepath.Join(dir, name+".got")
		if err := writeJSON(want, v); err != nil {
			t.Fatal(err)
		}
		var err error
		switch v := v.(type) {
		case Manifest:
			err = writeManifestJSON(got, v)
		case map[string]Manifest:
			err = writeSourcesJSON(got, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(want)
		b, _ := os.ReadFile(got)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: streamed\n%s\nwriteJSON\n%s", name, b, a)
		}
		if !json.Valid(b) {
			t.Errorf("%s: not JSON", name)
		}
	}
}
