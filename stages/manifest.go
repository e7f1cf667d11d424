package stages

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pipeline/pipeline"
)

// ManifestFile is the name of the manifest inside a data output folder.
const ManifestFile = "manifest.json"

// Manifest lists the images of one data output (a split or an augmented training set): the
// class names in label order, the stored image size, and one entry per image.
type Manifest struct {
	Format   int      `json:"format"`
	Split    string   `json:"split"`
	Classes  []string `json:"classes"`
	Size     int      `json:"image_size"`
	Channels int      `json:"channels"`
	Resize   string   `json:"resize"` // how the originals were fitted to Size
	// SourceDir, SourcePrefix and FittedWith are set when the split stored no images
	// (store_images = false). SourceDir is the folder, as configured (relative to the
	// workspace), holding the originals of the entries without a Path: each is its Source
	// there, less SourcePrefix ("test:" for the test set of a split with test_source, whose
	// Sources all begin so). Readers fit each to Size as the split would have stored it, as
	// FittedWith says (storedWith: the fit's settings and code); it is part of the manifest,
	// so a new fit makes a new output, and a reader of another build refuses it
	// (checkFitted).
	SourceDir    string `json:"source_dir,omitempty"`
	SourcePrefix string `json:"source_prefix,omitempty"`
	FittedWith   string `json:"fitted_with,omitempty"`
	// ReadWith is set when the stored images are JPEGs: the decoder that reads them back
	// (storedJPEGReader), as predict and serve read a JPEG. It is part of the manifest, so
	// that sets read with another decoder are other inputs to a training.
	ReadWith string  `json:"read_with,omitempty"`
	Images   []Entry `json:"images"`
}

// Entry is one image of a manifest.
type Entry struct {
	// Path is relative to the folder holding the manifest (it may lead into a sibling or,
	// for augmented sets, into the upstream split's output); it is empty for an image the
	// split did not store, which is read from its Source (Manifest.Original).
	Path   string `json:"path,omitempty"`
	Label  int    `json:"label"`
	Digest string `json:"digest"`           // SHA-256 of the original file
	Source string `json:"source,omitempty"` // original file, relative to the source folder
	// Copy is set on augmented copies: which copy of the original and the operation used.
	Copy *Copy `json:"copy,omitempty"`
}

// Copy describes an augmented image.
type Copy struct {
	Index int    `json:"index"` // 1-based, per original
	Op    string `json:"op"`
}

// ReadManifest reads dir/manifest.json and checks it is consistent.
func ReadManifest(dir string) (*Manifest, error) {
	var images []Entry
	m, err := EachManifestEntry(dir, func(e Entry) error {
		images = append(images, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.Images = images
	if m.Images == nil {
		m.Images = []Entry{}
	}
	return m, nil
}

// imageSetProblem says why the folder dir, given where an image set is expected (augment's
// input, a training's train or val, an evaluation's data), is none: it is a file, or holds no
// manifest (a folder of photos, or a split's output folder rather than one of its sets); ""
// when it has a manifest, or cannot be looked in.
func imageSetProblem(dir string) string {
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return ""
	case !st.IsDir():
		return "it is a file, not an image set: " + imageSetAdvice
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("it holds no image set (no %s): %s", ManifestFile, imageSetAdvice)
	}
	return ""
}

// imageSetAdvice says which folders are image sets.
const imageSetAdvice = "give a split's train, val or test folder, or an augment's output folder"

// EachManifestEntry reads dir/manifest.json entry by entry, calling each with every image in
// the order listed, and returns the manifest without its images, checked as ReadManifest
// checks it: for readers that need each entry once, without holding the file or a list of
// entries as long as the set.
func EachManifestEntry(dir string, each func(Entry) error) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	f, err := os.Open(path)
	if err != nil {
		if why := imageSetProblem(dir); why != "" {
			return nil, fmt.Errorf("%s: %s", dir, why)
		}
		return nil, err
	}
	defer f.Close()
	var m Manifest
	var entries []Entry // those met before the classes, to check once they are known
	check := func(i int, e Entry) error {
		if e.Label < 0 || e.Label >= len(m.Classes) {
			return fmt.Errorf("%s: image %d (%s) has label %d of %d classes", path, i, e.Path, e.Label, len(m.Classes))
		}
		if e.Path == "" && (e.Source == "" || m.SourceDir == "" || !strings.HasPrefix(e.Source, m.SourcePrefix)) {
			return fmt.Errorf("%s: image %d (%s) has neither a stored image nor a source folder to read it from", path, i, e.Source)
		}
		return each(e)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	bad := func(err error) error { return fmt.Errorf("%s: %w", path, err) }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad(cmp.Or(err, errors.New("not a JSON object")))
	}
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		if t != "images" {
			// one header field at a time, into m as json.Unmarshal would set it
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, bad(err)
			}
			key, _ := json.Marshal(t)
			if err := json.Unmarshal([]byte("{"+string(key)+":"+string(raw)+"}"), &m); err != nil {
				return nil, bad(err)
			}
			continue
		}
		if t, err := dec.Token(); err != nil || (t != json.Delim('[') && t != nil) {
			return nil, bad(cmp.Or(err, errors.New("images is not a list")))
		} else if t == nil {
			continue
		}
		// The writer puts the header first (Write), so entries are checked as they come;
		// entries before the header's fields are kept until the end.
		for dec.More() {
			var e Entry
			if err := dec.Decode(&e); err != nil {
				return nil, bad(err)
			}
			if m.Format != 1 || m.Classes == nil {
				entries = append(entries, e)
			} else if err := check(n, e); err != nil {
				return nil, err
			}
			n++
		}
		if _, err := dec.Token(); err != nil {
			return nil, bad(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(cmp.Or(err, errors.New("more after the manifest's end")))
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("%s: manifest format %d, this build reads 1", path, m.Format)
	}
	for i, e := range entries {
		if err := check(i, e); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// testPrefix begins the Source of an image from a split's test_source.
const testPrefix = "test:"

// Original is the file an entry without a stored image (Path "") is read from, in
// workspace: its Source, less the manifest's SourcePrefix, in SourceDir.
func (m *Manifest) Original(e Entry, workspace string) string {
	return pipeline.InWorkspace(workspace, m.shownOriginal(e))
}

// shownOriginal is Original as the split's reports name it: relative to the workspace (unless
// its source folder is given as an absolute path).
func (m *Manifest) shownOriginal(e Entry) string {
	rel := strings.TrimPrefix(e.Source, m.SourcePrefix)
	return filepath.Join(m.SourceDir, filepath.FromSlash(rel))
}

// Write writes the manifest into dir, as json.MarshalIndent(m, "", " ") and a newline, one
// entry at a time: marshalled whole, a manifest of 100,000 images is tens of megabytes held
// several times over (the compact text, the indented text, the buffers they grew through).
func (m *Manifest) Write(dir string) error {
	return m.WriteEntries(dir, len(m.Images), slices.Values(m.Images))
}

// WriteEntries is Write for a manifest whose n images are not in m.Images but yielded by
// images, in order, for a writer that makes them as it goes rather than holding them all;
// m.Images is ignored.
func (m *Manifest) WriteEntries(dir string, n int, images iter.Seq[Entry]) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.Format = 1
	head := *m
	head.Images = []Entry{} // the entries are written after it; an empty set's are [], not null
	b, err := json.MarshalIndent(&head, "", " ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, ManifestFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = writeImages(w, b, n, images)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeImages writes head, a manifest marshalled with an empty (or null) image list, with the
// n images yielded by images in that list.
func writeImages(w *bufio.Writer, head []byte, n int, images iter.Seq[Entry]) error {
	const empty = "[]\n}"
	if n == 0 || !bytes.HasSuffix(head, []byte(empty)) {
		w.Write(head)
		return w.WriteByte('\n')
	}
	w.Write(head[:len(head)-len(empty)])
	w.WriteByte('[')
	i := 0
	var err error
	for e := range images {
		if i > 0 {
			w.WriteByte(',')
		}
		i++
		w.WriteString("\n  ")
		var b []byte
		if b, err = json.MarshalIndent(&e, "  ", " "); err != nil {
			break
		}
		w.Write(b)
	}
	if err != nil {
		return err
	}
	if i != n {
		return fmt.Errorf("manifest: %d images written of %d", i, n)
	}
	_, err = w.WriteString("\n ]\n}\n")
	return err
}

// Counts returns the number of images per label.
func (m *Manifest) Counts() []int {
	c := make([]int, len(m.Classes))
	for _, e := range m.Images {
		c[e.Label]++
	}
	return c
}

// writeJSON writes v indented into path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
