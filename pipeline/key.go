package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// The cache key of a stage instance is the SHA-256 of labelled lines:
//
//	kind NAME VERSION
//	attr NAME TYPE VALUE      every attribute, canonical JSON (as KeyNormalizer gives it),
//	                          but those KeyedWhenSet while they are null;
//	                          an upstream output appears as
//	                          "output DIGEST", the digest of what that output consists of
//	                          (OutputDigests), so a change elsewhere in the upstream stage's
//	                          output, such as its report, does not rerun this stage (outputs
//	                          published before these digests were recorded appear as store
//	                          paths, which carry the digest of the whole upstream output);
//	                          in an attribute keyed ByContent, as "content DIGEST", the
//	                          digest of what it holds, where its kind gives one
//	                          (ContentDigester), so that renamed files do not rerun it
//	source NAME PATH DIGEST   content digest of each Source attribute's file or folder (its
//	                          path cleaned, here and in its attr line: "./raw/" is "raw")
//	path NAME "PATH" DIGEST   content digest of each existing file or folder named by a string
//	                          in an attribute that takes stage outputs (see pathInputs)
//	seed N                    the pipeline's seed, or the stage's own (SeedOwner)
//	env LINE                  whatever the kind declares outside the workspace
//
// Rule: anything that can change a stage's output goes into its key, and nothing else does.
// A new influence on a kind's output must appear here (or bump the kind's Version).

// keyLines builds the labelled lines of an instance's key. sources are the manifests of its
// inputs by label (Decision.sources).
func keyLines(k Kind, v *Values, sources map[string]Manifest, seed int64, outDigest func(path string, byContent bool) (string, bool)) ([]string, error) {
	lines := []string{fmt.Sprintf("kind %s %d", k.Name(), k.Version())}
	canon := v.canonical()
	byContent := map[string]bool{}
	for _, a := range k.Attributes() {
		byContent[a.Name] = a.ByContent
		if a.KeyedWhenSet && v.Get(a.Name).IsNull() {
			delete(canon, a.Name)
			continue
		}
		if val := v.Get(a.Name); a.Role == Source && val.IsKnown() && !val.IsNull() && val.Type() == cty.String {
			canon[a.Name] = canonicalJSON(cty.StringVal(CleanPath(val.AsString())))
		}
	}
	if n, ok := k.(KeyNormalizer); ok {
		for name, val := range n.KeyValues(v) {
			if _, ok := canon[name]; ok {
				canon[name] = canonicalJSON(val)
			}
		}
	}
	for _, name := range sortedKeys(canon) {
		c := canon[name]
		// each.value.out gives a path too, though it is no ref
		c = objectPathJSON.ReplaceAllStringFunc(c, func(q string) string {
			if d, ok := outDigest(q[1:len(q)-1], byContent[name]); ok {
				return `"` + d + `"`
			}
			return q
		})
		lines = append(lines, fmt.Sprintf("attr %s %s", name, c))
	}
	var paths []string
	for _, name := range sortedKeys(sources) {
		if _, _, ok := cutPathLabel(name); ok {
			paths = append(paths, name)
			continue
		}
		lines = append(lines, fmt.Sprintf("source %s %q %s", name, CleanPath(v.String(name)), sources[name].Digest))
	}
	for _, label := range paths {
		lines = append(lines, fmt.Sprintf("path %s %s", label, sources[label].Digest))
	}
	if so, ok := k.(SeedOwner); ok {
		seed = so.KeySeed(v, seed)
	}
	lines = append(lines, fmt.Sprintf("seed %d", seed))
	if e, ok := k.(Environmental); ok {
		env, err := e.Environment(v)
		if err != nil {
			return nil, err
		}
		env = slices.Sorted(slices.Values(env))
		for _, l := range env {
			lines = append(lines, "env "+l)
		}
	}
	return lines, nil
}

// objectPathJSON matches a JSON string that is the path of an output in the store, as
// upstream outputs are given to a stage (see Engine.outputPaths).
var objectPathJSON = regexp.MustCompile(`"` + regexp.QuoteMeta(StoreDir) + `/objects/[0-9a-f]{64}/[^"\\]+"`)

// OutputDigests gives each of a stage's named outputs the digest of what it consists of: its
// own files and the files of the output object's other top-level entries that are not
// named outputs (shared parts an output may refer to, such as the images the split's sets
// list), but not the other named outputs. files is the whole object's manifest.
// An output that refs names (OutputReferrer) covers its own files and the files refs lists
// for it instead of the shared parts.
func OutputDigests(files FileDigests, outputs []string, refs map[string][]string) map[string]string {
	named := map[string]bool{}
	for _, o := range outputs {
		named[o] = true
	}
	// One pass over the files, which come in path order, for every output at once.
	hashers := make([]manifestHasher, len(outputs))
	used := make([]map[string]bool, len(outputs))
	listed := make([]bool, len(outputs))
	for i, o := range outputs {
		var rels []string
		rels, listed[i] = refs[o]
		used[i] = make(map[string]bool, len(rels))
		for _, rel := range rels {
			used[i][rel] = true
		}
	}
	for rel, d := range files.All() {
		top, _, _ := strings.Cut(rel, "/")
		for i, o := range outputs {
			if top == o || (!listed[i] && !named[top]) || used[i][rel] {
				hashers[i].add(rel, d)
			}
		}
	}
	out := map[string]string{}
	for i, o := range outputs {
		out[o] = hashers[i].sum()
	}
	return out
}

// keyOfLines hashes key lines. With PIPELINE_DEBUG_KEYS set (not to 0), the lines are
// printed to stderr so a surprising rerun can be traced to the line that changed.
func keyOfLines(addr string, lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	key := hex.EncodeToString(h.Sum(nil))
	if v := os.Getenv("PIPELINE_DEBUG_KEYS"); v != "" && v != "0" {
		fmt.Fprintf(os.Stderr, "key %s %s\n  %s\n", addr, key, strings.Join(lines, "\n  "))
	}
	return key
}
