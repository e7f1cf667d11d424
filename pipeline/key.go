package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
)

// The cache key of a stage instance is the SHA-256 of labelled lines:
//
//	kind NAME VERSION
//	attr NAME TYPE VALUE      every attribute, canonical JSON (upstream outputs appear as
//	                          store paths, which carry the output's content digest)
//	source NAME PATH DIGEST   content digest of each Source attribute's file or folder
//	seed N
//	env LINE                  whatever the kind declares outside the workspace
//
// Rule: anything that can change a stage's output goes into its key, and nothing else does.
// A new influence on a kind's output must appear here (or bump the kind's Version).

// keyLines builds the labelled lines of an instance's key.
func keyLines(k Kind, v *Values, sources map[string]Manifest, seed int64) []string {
	lines := []string{fmt.Sprintf("kind %s %d", k.Name(), k.Version())}
	canon := v.canonical()
	for _, name := range sortedKeys(canon) {
		lines = append(lines, fmt.Sprintf("attr %s %s", name, canon[name]))
	}
	for _, name := range sortedKeys(sources) {
		lines = append(lines, fmt.Sprintf("source %s %q %s", name, v.String(name), sources[name].Digest))
	}
	lines = append(lines, fmt.Sprintf("seed %d", seed))
	if e, ok := k.(Environmental); ok {
		env := append([]string{}, e.Environment()...)
		sort.Strings(env)
		for _, l := range env {
			lines = append(lines, "env "+l)
		}
	}
	return lines
}

// keyOfLines hashes key lines. With PIPELINE_DEBUG_KEYS set, the lines are printed to stderr
// so a surprising rerun can be traced to the line that changed.
func keyOfLines(addr string, lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	key := hex.EncodeToString(h.Sum(nil))
	if os.Getenv("PIPELINE_DEBUG_KEYS") != "" {
		fmt.Fprintf(os.Stderr, "key %s %s\n  %s\n", addr, key, strings.Join(lines, "\n  "))
	}
	return key
}
