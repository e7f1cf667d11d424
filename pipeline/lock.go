package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrLocked is returned (wrapped, with the holder named) when another process holds the
// workspace lock.
var ErrLocked = errors.New("workspace is in use")

// Lock is the one-run-per-workspace lock: an flock on data/intermediate/lock, which the kernel
// releases when the holder dies, so a crashed run never blocks the next one. The file names
// the holder, for the message a second run prints, and its run folder, for LockHolder.
type Lock struct {
	f     *os.File
	path  string
	owner LockOwner
}

// LockOwner is what the lock file says of its holder.
type LockOwner struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	// Run is the folder of the run the holder is making, once it has made it.
	Run string `json:"run,omitempty"`
	// PIDNamespace names the holder's process-ID namespace (Linux: /proc/self/ns/pid's
	// link), so that a process of another container of the same host name, whose PID means
	// nothing here, is not looked for among this one's.
	PIDNamespace string `json:"pid_ns,omitempty"`
}

// pidNamespace names this process's process-ID namespace ("" where it cannot be told).
func pidNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}

// describe names the holder for a message: "bin/pipeline run pipeline.hcl" (pid 1798 on vm,
// since 2026-12-07 07:10:00).
func (o LockOwner) describe() string {
	return fmt.Sprintf("%q (pid %d on %s, since %s)", o.Command, o.PID, o.Host, o.Started.Local().Format(time.DateTime))
}

// AcquireLock takes the workspace lock or fails at once with ErrLocked. stale reports the
// previous holder when it had died without releasing (for a log line); empty otherwise.
func AcquireLock(workspace string) (l *Lock, stale string, err error) {
	path := filepath.Join(workspace, StoreDir, "lock")
	l, prev, havePrev, err := tryLock(path)
	if err != nil {
		return nil, "", err
	}
	if l == nil {
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
	return l, stale, nil
}

// tryLock takes the flock on the lock file at path (made if missing) without waiting, and
// writes this process into it as the owner. prev is the owner the file named before (havePrev
// false when it named none); l is nil, with no error, when another process holds the lock.
func tryLock(path string) (l *Lock, prev LockOwner, havePrev bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, prev, false, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, prev, false, err
	}
	b, _ := os.ReadFile(path)
	havePrev = json.Unmarshal(b, &prev) == nil && prev.PID != 0
	beforeFlock()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		// Held. Read before the lock was tried, the file may have been empty (released), or
		// named a holder since gone, and then taken by a process that writes itself into it
		// right after: read it again, waiting a little for that.
		for i := 0; i < 20; i++ {
			if i > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			var now LockOwner
			b, _ := os.ReadFile(path)
			if json.Unmarshal(b, &now) == nil && now.PID != 0 {
				return nil, now, true, nil
			}
		}
		return nil, prev, havePrev, nil
	}
	host, _ := os.Hostname()
	l = &Lock{f: f, path: path, owner: LockOwner{PID: os.Getpid(), Host: host, Command: strings.Join(os.Args, " "), Started: time.Now(),
		PIDNamespace: pidNamespace()}}
	l.write()
	return l, prev, havePrev, nil
}

// beforeFlock runs between tryLock's first reading of the lock file and its try of the lock
// (tests take the lock there, as another process may).
var beforeFlock = func() {}

// write puts the owner into the lock file, over the previous content and then cutting what
// is left of it, so that the file never looks empty (released) to LockHolder.
func (l *Lock) write() {
	me, _ := json.Marshal(l.owner)
	l.f.WriteAt(me, 0)
	l.f.Truncate(int64(len(me)))
}

// noteRun records in the lock file the run folder the holder is making, for LockHolder.
func (l *Lock) noteRun(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	l.owner.Run = dir
	l.write()
}

// LockHolder returns the live process holding the workspace lock, nil when there is none: the
// lock file is empty (released), or names a process of this machine that is gone (killed
// without releasing it). It only reads the lock file, so it never gets in a run's way; a
// holder on another machine (a shared file system), or in another container's process
// namespace, is taken to be alive.
func LockHolder(workspace string) (*LockOwner, error) {
	return holderOf(filepath.Join(workspace, StoreDir, "lock"))
}

// SchedulerHolder returns the live process holding the workspace's scheduler lock (a
// `pipeline schedule` running in the foreground), nil when there is none, as LockHolder
// tells: for a command that fires schedules itself (schedule --once, an OS cron line) to warn
// that the scheduler fires them too.
func SchedulerHolder(workspace string) (*LockOwner, error) {
	return holderOf(filepath.Join(workspace, StoreDir, "scheduler.lock"))
}

// holderOf is LockHolder for the lock file at path.
func holderOf(path string) (*LockOwner, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(b) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o LockOwner
	// The first JSON value: a holder rewriting the file may not have cut the old tail yet.
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&o); err != nil || o.PID <= 0 {
		return nil, fmt.Errorf("%s: unreadable lock owner %q", path, b)
	}
	if host, _ := os.Hostname(); o.Host == host && (o.PIDNamespace == "" || o.PIDNamespace == pidNamespace()) {
		if err := syscall.Kill(o.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
			return nil, nil
		}
		// A live process of that number may be another one (a container restarted, a
		// reboot): it holds the lock only if it has the lock file open.
		if open, known := hasOpen(o.PID, path); known && !open {
			return nil, nil
		}
	}
	return &o, nil
}

// hasOpen reports whether process pid has the file at path open, from its descriptors in
// /proc (Linux); known is false when that cannot be told (no /proc, another user's process).
// Pipeline processes open the lock file only to take its flock, and keep it open while they
// hold it.
func hasOpen(pid int, path string) (open, known bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, false
	}
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fds)
	if err != nil {
		return false, false
	}
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(fds, e.Name())); err == nil && os.SameFile(st, fi) {
			return true, true
		}
	}
	return false, true
}

// SchedulerLock notes that this process schedules the workspace: an flock on
// data/intermediate/scheduler.lock, which the kernel releases when the process dies. It never
// refuses: when another live process holds it, other names that scheduler (so the caller can
// warn that both fire their triggers), and this process takes the lock over once that one
// lets go of it (it looks every schedulerLockPoll), so that a scheduler started after the
// first has stopped is still told of this one; release stops looking and frees the lock if
// taken.
func SchedulerLock(workspace string) (other *LockOwner, release func(), err error) {
	path := filepath.Join(workspace, StoreDir, "scheduler.lock")
	l, prev, havePrev, err := tryLock(path)
	if err != nil {
		return nil, nil, err
	}
	if l != nil {
		return nil, func() { l.Release() }, nil
	}
	if !havePrev {
		prev = LockOwner{Command: "another pipeline schedule"}
	}
	var mu sync.Mutex
	var taken *Lock
	done := make(chan struct{})
	poll, started := schedulerLockPoll, time.Now()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(poll):
			}
			mu.Lock()
			select {
			case <-done:
				mu.Unlock()
				return
			default:
			}
			if l, _, _, err := tryLock(path); err == nil && l != nil {
				l.owner.Started = started // when this scheduler started, as the warning says
				l.write()
				taken = l
				mu.Unlock()
				return
			}
			mu.Unlock()
		}
	}()
	var once sync.Once
	return &prev, func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			close(done)
			taken.Release()
		})
	}, nil
}

// schedulerLockPoll is how often a scheduler that found another holding the scheduler lock
// looks whether it can take it over. Tests shorten it.
var schedulerLockPoll = 30 * time.Second

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
