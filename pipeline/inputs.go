package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// A stage's key holds the content digest of every file and folder of the workspace it reads
// besides the outputs of other stages: its Source attributes' paths ("source" lines), and the
// paths written as strings in attributes that take stage outputs ("path" lines). The plan
// hashes them; once the stage has run, and before its output is published, a walk of stats
// checks that none changed meanwhile (Decision.checkInputs): an output made while a file
// changed would otherwise be published under the key of the file's old content.

// CleanPath is the form of a path written in the pipeline file that keys use (filepath.Clean,
// still relative to the pipeline file's folder): "./raw/" and "raw" are one folder, and so one
// key; a kind that records such a path in its output records it in this form too.
func CleanPath(p string) string {
	return filepath.Clean(p)
}

// pathInput is a path written as a string where a stage output is expected (an attribute
// with Accepts, such as evaluate's data = "mysplit/test"): the stage reads it as it would an
// output, so its content is in the key like a source's.
type pathInput struct {
	attr, path, abs string
}

// pathLabel names a path input among a decision's inputs and in its key's "path" line: the
// attribute and the quoted path. A Source attribute's input is named by the attribute alone.
func pathLabel(attr, path string) string {
	return attr + " " + strconv.Quote(path)
}

// cutPathLabel splits a path input's label into attribute and path; ok is false for a
// Source attribute's label.
func cutPathLabel(label string) (attr, path string, ok bool) {
	attr, quoted, found := strings.Cut(label, " ")
	if !found {
		return "", "", false
	}
	path, err := strconv.Unquote(quoted)
	return attr, path, err == nil
}

// pathInputs returns the strings in the attributes of v that take stage outputs (directly or
// inside a map or object) and name an existing file or folder, relative to workspace or
// absolute (literalPaths).
func pathInputs(k Kind, v *Values, workspace string) []pathInput {
	var out []pathInput
	seen := map[string]bool{}
	for _, a := range k.Attributes() {
		if len(a.Accepts) == 0 || a.Role == Source {
			continue
		}
		for _, p := range literalPaths(a, v, workspace) {
			if seen[pathLabel(a.Name, p.path)] {
				continue
			}
			if _, err := os.Stat(p.abs); err != nil {
				continue // keyed by the string alone; the stage reports it
			}
			seen[pathLabel(a.Name, p.path)] = true
			out = append(out, p)
		}
	}
	return out
}

// literalPaths returns the strings in attribute a of v (directly or inside a map or object)
// as paths, cleaned: those written in the pipeline file where a stage output is expected.
// The outputs handed to the stage are paths in the store, keyed by their digests, and are
// left out, as is a folder that holds the store.
func literalPaths(a Attribute, v *Values, workspace string) []pathInput {
	store := filepath.Join(workspace, StoreDir)
	var out []pathInput
	cty.Walk(v.Get(a.Name), func(_ cty.Path, val cty.Value) (bool, error) {
		if !val.IsKnown() || val.IsNull() || val.Type() != cty.String || val.AsString() == "" {
			return true, nil
		}
		p := CleanPath(val.AsString())
		if abs := InWorkspace(workspace, p); !Inside(abs, store) && !Inside(store, abs) {
			out = append(out, pathInput{attr: a.Name, path: p, abs: abs})
		}
		return true, nil
	})
	return out
}

// hashInput hashes the file or folder abs, one of the decision's inputs, under label: with
// rehash (a forced stage), every file is read again, whatever the stat cache holds.
func (d *Decision) hashInput(label, abs string, rehash bool) error {
	m, st, err := d.stats.hashTree(abs, treeMode{source: true, remember: true, quick: !rehash, rehash: rehash})
	if err != nil {
		return err
	}
	d.sources[label], d.roots[label], d.trees[label] = m, abs, st
	return nil
}

// inputName is how messages name one of the decision's inputs: the attribute and its path.
func (d *Decision) inputName(label string) string {
	if attr, path, ok := cutPathLabel(label); ok {
		return fmt.Sprintf("%s %q", attr, path)
	}
	return fmt.Sprintf("%s %q", label, CleanPath(d.values.String(label)))
}

// maxChangesNamed is how many changed files an error names before counting the rest.
const maxChangesNamed = 5

// checkInputs checks, with stats alone, that every file and folder the key was built from is
// still as it was when it was hashed (see StatCache.changes); otherwise it returns an error
// naming what changed.
func (d *Decision) checkInputs() error {
	name, changes, err := d.changedInput()
	if err != nil || name == "" {
		return err
	}
	return fmt.Errorf("%s changed while the stage ran (%s): its output, which may hold some of the old content and some of the new, was not kept; run again", name, changes)
}

// explainFailure returns the error of a stage that failed while one of its inputs changed
// (a photo deleted before the stage reached it, say), which is the likelier cause and what to
// act on; otherwise runErr itself.
func (d *Decision) explainFailure(runErr error) error {
	name, changes, err := d.changedInput()
	if err != nil || name == "" {
		return runErr
	}
	return fmt.Errorf("%s changed while the stage ran (%s), and the stage failed: %w; run again", name, changes, runErr)
}

// changedInput returns the first of the decision's inputs that is no longer as it was when it
// was hashed (see StatCache.changes), named, with what changed; "" when none did.
func (d *Decision) changedInput() (name, changes string, err error) {
	for _, label := range sortedKeys(d.trees) {
		cs, err := d.stats.changes(d.trees[label], d.sources[label].Files)
		if err != nil {
			return "", "", fmt.Errorf("checking %s after the stage ran: %w", d.inputName(label), err)
		}
		if len(cs) == 0 {
			continue
		}
		if len(cs) > maxChangesNamed {
			cs = append(cs[:maxChangesNamed:maxChangesNamed], fmt.Sprintf("%d more", len(cs)-maxChangesNamed))
		}
		return d.inputName(label), strings.Join(cs, ", "), nil
	}
	return "", "", nil
}

// changes walks the tree st saw again, statting only, and lists what differs, relative to its
// root: "PATH changed", "PATH added", "PATH removed" (folders with a trailing slash), or
// "removed as a whole". A file whose identity is unchanged but which was modified so shortly
// before st's walk that its identity cannot tell a rewrite (racyMargin) is read again and
// compared with its digest in files (the manifest made from that walk; nil for one found
// unchanged, whose files were all settled), and so is one whose change time alone moved.
func (c *StatCache) changes(st *treeState, files map[string]string) ([]string, error) {
	now, err := c.walk(st.root, st.source)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"removed as a whole"}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	was := make(map[string]statKey, len(st.items))
	for _, it := range st.items {
		was[it.rel] = it.k
	}
	for _, it := range now.items {
		k, ok := was[it.rel]
		delete(was, it.rel)
		switch {
		case !ok:
			out = append(out, it.rel+" added")
		case k != it.k && !sameButCtime(k, it.k):
			out = append(out, it.rel+" changed")
		case k != it.k:
			// Only the change time moved: a hard link added or removed (a stage that links
			// the files it is given, as augment does) or a rewrite that restored the times.
			// The content tells.
			want, ok := files[it.rel]
			if !ok {
				want, ok = c.cachedDigest(now.absOf(it), k, false)
			}
			if d, err := hashFile(now.absOf(it)); !ok || err != nil || d != want {
				out = append(out, it.rel+" changed")
			}
		case files != nil && !settled(k, st.at):
			d, err := hashFile(now.absOf(it))
			if errors.Is(err, fs.ErrPermission) {
				d, err = unreadableMark, nil
			}
			if err != nil || d != files[it.rel] {
				out = append(out, it.rel+" changed")
			}
		}
	}
	for _, rel := range sortedKeys(was) {
		out = append(out, rel+" removed")
	}
	dirs := map[string]bool{}
	for _, rel := range st.dirs {
		dirs[rel] = true
	}
	for _, rel := range now.dirs {
		if !dirs[rel] {
			out = append(out, rel+"/ added")
		}
		delete(dirs, rel)
	}
	for _, rel := range sortedKeys(dirs) {
		out = append(out, rel+"/ removed")
	}
	for _, rel := range unionKeys(st.marks, now.marks) {
		if st.marks[rel] != now.marks[rel] {
			out = append(out, rel+" changed")
		}
	}
	return out, nil
}

// sameButCtime reports whether two stat identities differ in their change time alone.
func sameButCtime(a, b statKey) bool {
	a.CtimeNs, b.CtimeNs = 0, 0
	return a == b
}
