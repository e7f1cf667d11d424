package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is returned (wrapped, with the holder named) when another process holds the
// workspace lock.
var ErrLocked = errors.New("workspace is in use")

// Lock is the one-run-per-workspace lock: an flock on data/intermediate/lock, which the kernel
// releases when the holder dies, so a crashed run never blocks the next one. The file names
// the holder for the message a second run prints.
type Lock struct {
	f    *os.File
	path string
}

type lockOwner struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

// AcquireLock takes the workspace lock or fails at once with ErrLocked. stale reports the
// previous holder when it had died without releasing (for a log line); empty otherwise.
func AcquireLock(workspace string) (l *Lock, stale string, err error) {
	path := filepath.Join(workspace, StoreDir, "lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, "", err
	}
	var prev lockOwner
	b, _ := os.ReadFile(path)
	havePrev := json.Unmarshal(b, &prev) == nil && prev.PID != 0
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if havePrev {
			return nil, "", fmt.Errorf("%w: %q (pid %d on %s) has held it since %s; wait for it to finish or stop it",
				ErrLocked, prev.Command, prev.PID, prev.Host, prev.Started.Local().Format(time.DateTime))
		}
		return nil, "", fmt.Errorf("%w: another pipeline process holds %s", ErrLocked, path)
	}
	if havePrev {
		stale = fmt.Sprintf("pid %d (%q, started %s) ended without releasing the workspace lock; taking it over",
			prev.PID, prev.Command, prev.Started.Local().Format(time.DateTime))
	}
	host, _ := os.Hostname()
	me, _ := json.Marshal(lockOwner{PID: os.Getpid(), Host: host, Command: strings.Join(os.Args, " "), Started: time.Now()})
	f.Truncate(0)
	f.WriteAt(me, 0)
	return &Lock{f: f, path: path}, stale, nil
}

// Release frees the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
