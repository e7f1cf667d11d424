package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// advanceTo sets the time and wakes the waiters that are due.
func (c *fakeClock) advanceTo(t time.Time) {
	c.mu.Lock()
	c.now = t
	var keep []fakeWaiter
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
	c.mu.Unlock()
}

// waitForWaiter blocks until the loop is waiting on the clock.
func (c *fakeClock) waitForWaiter(t *testing.T) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the scheduler never waited on the clock")
}

type firings struct {
	mu      sync.Mutex
	got     []string
	release chan struct{} // when set, a firing blocks until released
	started chan string
}

func (f *firings) fire(ctx context.Context, t Trigger) {
	f.mu.Lock()
	f.got = append(f.got, fmt.Sprintf("%s@%s", t.Schedule, t.Due.UTC().Format("01-02T15:04")))
	f.mu.Unlock()
	if f.started != nil {
		f.started <- t.Schedule
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
		}
	}
}

func TestSchedulerFiresAtCronTimesInTheirTimeZone(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)} // a Monday
	f := &firings{}
	var logs []string
	var lmu sync.Mutex
	s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(format string, a ...any) {
		lmu.Lock()
		logs = append(logs, fmt.Sprintf(format, a...))
		lmu.Unlock()
	}, Schedules: []*Schedule{
		{Name: "nightly", Cron: "0 3 * * *", Timezone: "UTC", Overlap: "skip"},
		{Name: "cph", Cron: "30 2 * * 1-5", Timezone: "Europe/Copenhagen", Overlap: "skip"}, // 01:30 UTC in winter
	}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Loop(ctx, context.Background()) }()
	for _, at := range []time.Time{
		time.Date(2026, 1, 5, 1, 30, 0, 0, time.UTC), time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 6, 1, 30, 0, 0, time.UTC), time.Date(2026, 1, 6, 3, 0, 0, 0, time.UTC),
	} {
		clock.waitForWaiter(t)
		clock.advanceTo(at)
		s.Wait()
		time.Sleep(5 * time.Millisecond)
		s.Wait()
	}
	clock.waitForWaiter(t)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "cph@01-05T01:30 nightly@01-05T03:00 cph@01-06T01:30 nightly@01-06T03:00" // 02:30 in Copenhagen
	if got := strings.Join(f.got, " "); got != want {
		t.Fatalf("fired %s\nwant  %s", got, want)
	}
	// The log gives due times in each schedule's zone.
	lmu.Lock()
	joined := strings.Join(logs, "\n")
	lmu.Unlock()
	for _, due := range []string{`schedule "cph" due 2026-01-06T02:30:00+01:00`, `schedule "nightly" due 2026-01-06T03:00:00Z`} {
		if !strings.Contains(joined, due) {
			t.Errorf("the log lacks %s:\n%s", due, joined)
		}
	}
}

func TestSchedulerNeverOverlapsSkipAndQueue(t *testing.T) {
	for _, overlap := range []string{"skip", "queue"} {
		clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
		f := &firings{release: make(chan struct{}), started: make(chan string, 10)}
		var logs []string
		var lmu sync.Mutex
		s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(format string, a ...any) {
			lmu.Lock()
			logs = append(logs, fmt.Sprintf(format, a...))
			lmu.Unlock()
		}, Schedules: []*Schedule{{Name: "often", Cron: "*/10 * * * *", Timezone: "UTC", Overlap: overlap}}}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Loop(ctx, context.Background()) }()
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 0, 10, 0, 0, time.UTC))
		<-f.started // the first run is going and blocks
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 0, 20, 0, 0, time.UTC)) // fires while the first runs
		clock.waitForWaiter(t)
		close(f.release)
		s.Wait()
		stop()
		<-done
		lmu.Lock()
		joined := strings.Join(logs, "\n")
		lmu.Unlock()
		if overlap == "skip" {
			if len(f.got) != 1 || !strings.Contains(joined, "skipped, a run is in progress") {
				t.Fatalf("skip: fired %v; log:\n%s", f.got, joined)
			}
		} else if len(f.got) != 2 || !strings.Contains(joined, "queued behind the run in progress") {
			t.Fatalf("queue: fired %v; log:\n%s", f.got, joined)
		}
	}
}

func TestSchedulerShutdownWaitsForTheRunningTrigger(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	f := &firings{release: make(chan struct{}), started: make(chan string, 1)}
	s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(string, ...any) {},
		Schedules: []*Schedule{{Name: "a", Cron: "@hourly", Timezone: "UTC", Overlap: "skip"}}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Loop(ctx, context.Background()) }()
	clock.waitForWaiter(t)
	clock.advanceTo(time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC))
	<-f.started
	stop()
	select {
	case <-done:
		t.Fatal("the loop returned while a run was still going")
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A stop (Ctrl-C, SIGTERM) lets the run in progress finish but starts nothing after it: a
// trigger queued behind that run (overlap = "queue") is dropped, even though the run's own
// context (runCtx) was not cancelled.
func TestSchedulerStopDropsQueuedTriggers(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	f := &firings{release: make(chan struct{}), started: make(chan string, 10)}
	var logs []string
	var lmu sync.Mutex
	s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(format string, a ...any) {
		lmu.Lock()
		logs = append(logs, fmt.Sprintf(format, a...))
		lmu.Unlock()
	}, Schedules: []*Schedule{{Name: "often", Cron: "*/10 * * * *", Timezone: "UTC", Overlap: "queue"}}}
	stop, stopLoop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Loop(stop, context.Background()) }()
	clock.waitForWaiter(t)
	clock.advanceTo(time.Date(2026, 1, 5, 0, 10, 0, 0, time.UTC))
	<-f.started // the first run is going and blocks
	clock.waitForWaiter(t)
	clock.advanceTo(time.Date(2026, 1, 5, 0, 20, 0, 0, time.UTC)) // queued behind it
	clock.waitForWaiter(t)
	stopLoop()
	close(f.release) // the run in progress finishes after the stop
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not return after the stop")
	}
	lmu.Lock()
	joined := strings.Join(logs, "\n")
	lmu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 1 || !strings.Contains(joined, "queued behind the run in progress") ||
		!strings.Contains(joined, `schedule "often" due 2026-01-05T00:20:00Z: dropped, the scheduler is stopping`) {
		t.Fatalf("fired %v, want only the first trigger and the queued one dropped; log:\n%s", f.got, joined)
	}
}
