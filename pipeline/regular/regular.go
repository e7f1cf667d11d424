// Package regular opens and reads files only when they are regular files: a named pipe with
// no writer would be waited on for ever, and a device such as /dev/zero never ends. Model
// folders and stage outputs are anyone's to put files in, so what reads them goes through it.
package regular

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Error is Open's error for a path that is not a regular file after links: a
// named pipe, a device, a socket or a folder.
type Error struct {
	Path string
	Kind fs.FileMode // its type bits (fs.ModeNamedPipe, ...)
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s is not a regular file: it is %s", e.Path, Kind(e.Kind))
}

// Kind says in words what a file of kind (type bits, after links) that is not a regular
// file is: "a named pipe", "a device file", and so on.
func Kind(kind fs.FileMode) string {
	switch {
	case kind&fs.ModeDir != 0:
		return "a folder"
	case kind&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case kind&fs.ModeSocket != 0:
		return "a socket"
	case kind&fs.ModeDevice != 0:
		return "a device file"
	}
	return "a file of another kind"
}

// Open opens the file at path for reading, with what it is once open, when it is a
// regular file after links; otherwise its error is a *Error. A model folder is
// anyone's to put files in, and reading a named pipe with no writer waits for ever (a device
// such as /dev/zero never ends, and opening some acts on them), so such a file is not even
// opened; a regular one is opened without waiting (O_NONBLOCK) and checked again once open,
// so that one replaced by a named pipe meanwhile is not read either. Other errors are the
// stat's or the open's, as they are (fs.ErrNotExist for a file that is not there).
func Open(path string) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, &Error{Path: path, Kind: fi.Mode().Type()}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &Error{Path: path, Kind: fi.Mode().Type()}
	}
	return f, fi, nil
}

// Read reads the whole file at path, as os.ReadFile does, when it is a regular file
// (Open): a named pipe, a device or a folder is not read, and is a *Error.
func Read(path string) ([]byte, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Check reports, without opening it, a file at path that is there but is not a regular
// file after links (a *Error), for files another library reads (TensorFlow's loader
// reads saved_model.pb and variables/ itself); nil when it is regular or not there.
func Check(path string) error {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		return &Error{Path: path, Kind: fi.Mode().Type()}
	}
	return nil
}
