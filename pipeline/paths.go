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
