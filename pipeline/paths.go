package pipeline

import (
	"path/filepath"
	"strings"
)

// Inside reports whether path is dir or below it. Both must be clean and absolute (or both
// relative to the same folder); symbolic links are not resolved, so resolve them first where
// a link could lead into or out of dir.
func Inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// RealPath is p (absolute) with the symbolic links of its longest existing part followed:
// the folder p names, or would name once made, whatever links lead to it.
func RealPath(p string) string {
	rest := ""
	for q := filepath.Clean(p); ; q = filepath.Dir(q) {
		if real, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(real, rest)
		}
		if q == filepath.Dir(q) {
			return filepath.Clean(p)
		}
		rest = filepath.Join(filepath.Base(q), rest)
	}
}

// WorkspaceRel is an absolute path p inside workspace made relative to it, as keys and
// records take a source path: inside as written, or once the links of both are followed (a
// workspace reached through a link). Any other path is returned as given.
func WorkspaceRel(workspace, p string) string {
	if !filepath.IsAbs(p) || workspace == "" {
		return p
	}
	ws, err := filepath.Abs(workspace)
	if err != nil {
		return p
	}
	for _, c := range [][2]string{{ws, filepath.Clean(p)}, {RealPath(ws), RealPath(p)}} {
		if Inside(c[1], c[0]) {
			if rel, err := filepath.Rel(c[0], c[1]); err == nil {
				return rel
			}
		}
	}
	return p
}
