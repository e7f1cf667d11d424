package stages

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	Images   []Entry  `json:"images"`
}

// Entry is one image of a manifest.
type Entry struct {
	// Path is relative to the folder holding the manifest (it may lead into a sibling or,
	// for augmented sets, into the upstream split's output).
	Path   string `json:"path"`
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
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("%s: manifest format %d, this build reads 1", path, m.Format)
	}
	for i, e := range m.Images {
		if e.Label < 0 || e.Label >= len(m.Classes) {
			return nil, fmt.Errorf("%s: image %d (%s) has label %d of %d classes", path, i, e.Path, e.Label, len(m.Classes))
		}
	}
	return &m, nil
}

// Write writes the manifest into dir.
func (m *Manifest) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.Format = 1
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644)
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
