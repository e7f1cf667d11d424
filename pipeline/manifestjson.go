package pipeline

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
)

// Manifests of large trees (an augmented set of 100,000 images) are written entry by entry
// into the file, as json.MarshalIndent(v, "", "  ") would write them, rather than marshalled
// into one buffer: MarshalIndent holds the compact text, the indented text and the buffers
// they grew through at once, several times the file's size.

// writeManifestJSON writes m to path atomically, as writeJSON would.
func writeManifestJSON(path string, m Manifest) error {
	return writeFileAtomicStream(path, func(w *bufio.Writer) error {
		if err := encodeManifest(w, m, ""); err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
}

// writeSourcesJSON writes the source manifests by label to path atomically, as writeJSON
// would.
func writeSourcesJSON(path string, sources map[string]Manifest) error {
	return writeFileAtomicStream(path, func(w *bufio.Writer) error {
		if sources == nil {
			w.WriteString("null\n")
			return nil
		}
		err := encodeObject(w, "", sortedKeys(sources), func(name, in string) error {
			return encodeManifest(w, sources[name], in)
		})
		if err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
}

// encodeManifest writes m as MarshalIndent with indent "  " writes it at the nesting whose
// indentation is in.
func encodeManifest(w *bufio.Writer, m Manifest, in string) error {
	var fields []string
	if len(m.Files) > 0 {
		fields = append(fields, "files")
	}
	if len(m.Sizes) > 0 {
		fields = append(fields, "sizes")
	}
	fields = append(fields, "digest")
	var num []byte
	return encodeObject(w, in, fields, func(field, in string) error {
		switch field {
		case "files":
			return encodeObject(w, in, sortedKeys(m.Files), func(rel, _ string) error {
				return encodeString(w, m.Files[rel])
			})
		case "sizes":
			return encodeObject(w, in, sortedKeys(m.Sizes), func(rel, _ string) error {
				num = strconv.AppendInt(num[:0], m.Sizes[rel], 10)
				_, err := w.Write(num)
				return err
			})
		}
		return encodeString(w, m.Digest)
	})
}

// encodeObject writes an object of the keys (in that order) whose values value writes, given
// the indentation of their nesting.
func encodeObject(w *bufio.Writer, in string, keys []string, value func(key, in string) error) error {
	return encodeObjectSeq(w, in, func(entry func(key string, value func(in string) error) error) error {
		for _, k := range keys {
			if err := entry(k, func(in string) error { return value(k, in) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// encodeObjectSeq is encodeObject for keys given one at a time: entries calls entry for each
// key, in order, with what writes its value.
func encodeObjectSeq(w *bufio.Writer, in string, entries func(entry func(key string, value func(in string) error) error) error) error {
	inner := in + "  "
	n := 0
	err := entries(func(key string, value func(in string) error) error {
		if n == 0 {
			w.WriteByte('{')
		} else {
			w.WriteByte(',')
		}
		n++
		w.WriteByte('\n')
		w.WriteString(inner)
		if err := encodeString(w, key); err != nil {
			return err
		}
		w.WriteString(": ")
		return value(inner)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		_, err := w.WriteString("{}")
		return err
	}
	w.WriteByte('\n')
	w.WriteString(in)
	return w.WriteByte('}')
}

// encodeString writes s quoted as encoding/json quotes it.
func encodeString(w *bufio.Writer, s string) error {
	if plainJSON(s) {
		w.WriteByte('"')
		w.WriteString(s)
		return w.WriteByte('"')
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// plainJSON reports whether encoding/json writes s as it is between quotes: printable ASCII
// with nothing it escapes (quote, backslash, and <, > and & as HTML-safe output escapes them).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// writeFileAtomicStream is WriteFileAtomic for content that write streams into the file.
func writeFileAtomicStream(path string, write func(w *bufio.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
