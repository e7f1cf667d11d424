package pipeline

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLockHolderNamesTheRunInProgress checks that during a run the lock file names the run
// folder, and that LockHolder reports a live holder only: none once the lock is released or
// when the process it names is gone.
func TestLockHolderNamesTheRunInProgress(t *testing.T) {
	ws := newWorkspace(t, chainHCL, chainFiles())
	var during *LockOwner
	var duringErr error
	ws.kinds.gen.probe = func(j *Job) { during, duringErr = LockHolder(j.Workspace) }
	_, rec, err := ws.run(RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(rec.Dir())
	if duringErr != nil || during == nil || during.PID != os.Getpid() || during.Run != abs {
		t.Fatalf("holder during the run: %+v %v, want pid %d and run %s", during, duringErr, os.Getpid(), abs)
	}
	if h, err := LockHolder(ws.dir); h != nil || err != nil {
		t.Fatalf("holder after the run: %+v %v", h, err)
	}
	// A holder killed without releasing the lock.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("cannot start a process to take the pid of:", err)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(LockOwner{PID: dead.Process.Pid, Host: host, Command: "pipeline run", Started: time.Now(), Run: abs})
	os.WriteFile(filepath.Join(ws.dir, StoreDir, "lock"), b, 0o644)
	if h, err := LockHolder(ws.dir); h != nil || err != nil {
		t.Fatalf("holder that is gone: %+v %v", h, err)
	}
	// A holder killed without releasing the lock whose number another live process has
	// since (this one: a restarted container's first process, say): nobody holds the flock.
	if _, known := hasOpen(os.Getpid(), filepath.Join(ws.dir, StoreDir, "lock")); !known {
		t.Skip("/proc cannot tell the files a process has open here")
	}
	b, _ = json.Marshal(LockOwner{PID: os.Getpid(), Host: host, Command: "pipeline run", Started: time.Now(), Run: abs})
	os.WriteFile(filepath.Join(ws.dir, StoreDir, "lock"), b, 0o644)
	if h, err := LockHolder(ws.dir); h != nil || err != nil {
		t.Fatalf("a holder whose pid was taken again: %+v %v", h, err)
	}
	// A holder in another container of the same host name: its pid means nothing here.
	b, _ = json.Marshal(LockOwner{PID: os.Getpid(), Host: host, Command: "pipeline run", Started: time.Now(), Run: abs, PIDNamespace: "pid:[1]"})
	os.WriteFile(filepath.Join(ws.dir, StoreDir, "lock"), b, 0o644)
	if h, err := LockHolder(ws.dir); h == nil || err != nil {
		t.Fatalf("a holder in another process namespace: %+v %v, want it taken as alive", h, err)
	}
	l, _, err := AcquireLock(ws.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if h, err := LockHolder(ws.dir); h == nil || err != nil {
		t.Fatalf("a holder of the flock: %+v %v", h, err)
	}
}

// A second scheduler of a workspace is told of the first, which holds the scheduler lock
// until it releases it.
func TestSchedulerLockNamesTheOtherScheduler(t *testing.T) {
	dir := t.TempDir()
	other, release, err := SchedulerLock(dir)
	if err != nil || other != nil {
		t.Fatalf("first scheduler: %v, %v", other, err)
	}
	second, release2, err := SchedulerLock(dir)
	if err != nil || second == nil || second.PID != os.Getpid() {
		t.Fatalf("second scheduler: %+v, %v; want the first named", second, err)
	}
	release2() // does nothing: the first still holds it
	again, releaseAgain, _ := SchedulerLock(dir)
	if again == nil {
		t.Fatal("the second scheduler's release freed the first's lock")
	}
	releaseAgain()
	release()
	third, release3, err := SchedulerLock(dir)
	if err != nil || third != nil {
		t.Fatalf("after the first stopped: %+v, %v", third, err)
	}
	release3()
}

// A scheduler started while another held the scheduler lock takes it over when that one
// stops: a third scheduler, started then, is told of the second, which still fires its
// triggers (a service restarted while a forgotten scheduler in a terminal goes on).
func TestSchedulerLockIsTakenOverWhenTheFirstStops(t *testing.T) {
	defer func(d time.Duration) { schedulerLockPoll = d }(schedulerLockPoll)
	schedulerLockPoll = 5 * time.Millisecond
	dir := t.TempDir()
	_, release, err := SchedulerLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	secondStarted := time.Now()
	second, release2, err := SchedulerLock(dir)
	if err != nil || second == nil {
		t.Fatalf("second scheduler: %+v, %v; want the first named", second, err)
	}
	defer release2()
	time.Sleep(20 * time.Millisecond)
	release() // the first stops; the second goes on
	var third *LockOwner
	for i := 0; i < 400 && third == nil; i++ {
		time.Sleep(5 * time.Millisecond)
		var release3 func()
		third, release3, err = SchedulerLock(dir)
		if err != nil {
			t.Fatal(err)
		}
		release3()
	}
	if third == nil {
		t.Fatal("a scheduler started after the first stopped is not told of the second, which still runs")
	}
	if d := third.Started.Sub(secondStarted); d < 0 || d > 10*time.Millisecond {
		t.Errorf("the second scheduler is said to have started at %s, %s after it did", third.Started, d)
	}
	release2()
	if fourth, release4, err := SchedulerLock(dir); err != nil || fourth != nil {
		t.Fatalf("after the second stopped too: %+v, %v", fourth, err)
	} else {
		release4()
	}
}

// A lock taken by another process between the reading of the lock file and the try of the
// lock names that process, not the one the file named before (gone, or released).
func TestAHeldLockNamesItsHolderNotTheOneBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	stale, _ := json.Marshal(LockOwner{PID: 999999, Command: "pipeline run (killed)"})
	if err := os.WriteFile(path, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	var holder *os.File
	defer func() { beforeFlock = func() {} }()
	beforeFlock = func() {
		beforeFlock = func() {}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		now, _ := json.Marshal(LockOwner{PID: os.Getpid(), Command: "pipeline run (now)"})
		f.WriteAt(now, 0)
		f.Truncate(int64(len(now)))
		holder = f
	}
	l, prev, ok, err := tryLock(path)
	if holder != nil {
		defer holder.Close()
	}
	if err != nil || l != nil {
		t.Fatalf("lock taken (%v, %v) while another held it", l, err)
	}
	if !ok || prev.Command != "pipeline run (now)" {
		t.Errorf("holder named %+v (%v), want the one holding it now", prev, ok)
	}
}
