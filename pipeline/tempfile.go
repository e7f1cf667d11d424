package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MkdirTemp is os.MkdirTemp with the permissions of os.Mkdir(name, 0o755), 0755 less the
// umask, instead of 0700: a temporary folder renamed into place as an artifact (a promoted
// model, an exported SavedModel) is then readable by other users as a run folder is. The
// folder is named pattern with a random string in place of its last "*", or appended.
func MkdirTemp(dir, pattern string) (string, error) {
	var name string
	err := tempName(dir, pattern, func(n string) error {
		name = n
		return os.Mkdir(n, 0o755)
	})
	return name, err
}

// CreateTemp is os.CreateTemp with the permissions of os.Create, 0644 less the umask here,
// instead of 0600, for a file renamed into place as an artifact (run.json).
func CreateTemp(dir, pattern string) (*os.File, error) {
	var f *os.File
	err := tempName(dir, pattern, func(n string) (err error) {
		f, err = os.OpenFile(n, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		return err
	})
	return f, err
}

// tempName calls create with random names made from pattern until one is new.
func tempName(dir, pattern string, create func(name string) error) error {
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		b := make([]byte, 6)
		rand.Read(b)
		err := create(filepath.Join(dir, prefix+hex.EncodeToString(b)+suffix))
		if err == nil || !errors.Is(err, fs.ErrExist) || try == 100 {
			return err
		}
	}
}
