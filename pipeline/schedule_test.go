package pipeline

import (
	"context"
	"fmt"
	"slices"
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
	afters  int // calls of After: the loop waiting on the clock again
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
	c.afters++
	return ch
}

// advanceTo sets the time and wakes the waiters that are due, returning how many it woke.
func (c *fakeClock) advanceTo(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	var keep []fakeWaiter
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			keep = append(keep, w)
		}
	}
	woke := len(c.waiters) - len(keep)
	c.waiters = keep
	return woke
}

// settle moves the clock to at and, when that wakes s's loop, waits until the loop has
// handled the wake-up (it waits on the clock again: what was due has been started, or
// skipped) and every run it started has ended. Waiting for the runs alone could return before
// the loop started the one due, which would then still be running at the next time.
func (c *fakeClock) settle(t *testing.T, s *Scheduler, at time.Time) {
	t.Helper()
	c.mu.Lock()
	n := c.afters
	c.mu.Unlock()
	if c.advanceTo(at) > 0 {
		for i := 0; ; i++ {
			c.mu.Lock()
			again := c.afters > n
			c.mu.Unlock()
			if again {
				break
			}
			if i == 10000 {
				t.Fatalf("the loop did not wait on the clock again after %s", at)
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.Wait()
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
	stop, done := startLoop(s)
	for _, at := range []time.Time{
		time.Date(2026, 1, 5, 1, 30, 0, 0, time.UTC), time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 6, 1, 30, 0, 0, time.UTC), time.Date(2026, 1, 6, 3, 0, 0, 0, time.UTC),
	} {
		clock.waitForWaiter(t)
		clock.settle(t, s, at)
	}
	clock.waitForWaiter(t)
	endLoop(t, stop, done)
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
		stop, done := startLoop(s)
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 0, 10, 0, 0, time.UTC))
		<-f.started // the first run is going and blocks
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 0, 20, 0, 0, time.UTC)) // fires while the first runs
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 0, 30, 0, 0, time.UTC)) // and again: merged with the queued one
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
		} else if len(f.got) != 2 || !strings.Contains(joined, "queued behind the run in progress") || !strings.Contains(joined, "merged with the trigger") {
			t.Fatalf("queue: fired %v; log:\n%s", f.got, joined)
		}
	}
}

func TestSchedulerShutdownWaitsForTheRunningTrigger(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	f := &firings{release: make(chan struct{}), started: make(chan string, 1)}
	s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(string, ...any) {},
		Schedules: []*Schedule{{Name: "a", Cron: "@hourly", Timezone: "UTC", Overlap: "skip"}}}
	stop, done := startLoop(s)
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

// logRecorder collects the scheduler's log lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waiterAt returns the time the loop waits for, once it waits.
func (c *fakeClock) waiterAt(t *testing.T) time.Time {
	t.Helper()
	c.waitForWaiter(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiters[len(c.waiters)-1].at
}

// A cron expression no date matches (30 February) has no next time: robfig/cron's Next returns
// the zero time. The loop logs that once and leaves the schedule out, instead of finding it
// due at once, again and again (a busy loop of "due 0001-01-01" triggers); Next leaves it out
// too, for --once.
func TestSchedulerLeavesOutAScheduleThatNeverFires(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	never := &Schedule{Name: "never", Cron: "0 0 30 2 *", Timezone: "UTC", Overlap: "queue"}
	hourly := &Schedule{Name: "hourly", Cron: "@hourly", Timezone: "UTC", Overlap: "skip"}

	s := &Scheduler{Clock: &fakeClock{now: start}, Schedules: []*Schedule{never, hourly}}
	next, err := s.Next(start)
	if err != nil || len(next) != 1 || next[0].Schedule != "hourly" {
		t.Fatalf("Next: %v, %v; want only the hourly trigger", next, err)
	}
	s.Schedules = []*Schedule{never}
	if next, err := s.Next(start); err == nil {
		t.Fatalf("Next of a schedule that never fires: %v, want an error", next)
	}

	clock := &fakeClock{now: start}
	f := &firings{}
	var log logRecorder
	s = &Scheduler{Clock: clock, Fire: f.fire, Logf: log.logf, Schedules: []*Schedule{never, hourly}}
	stop, done := startLoop(s)
	for h := 1; h <= 3; h++ {
		at := start.Add(time.Duration(h) * time.Hour)
		if w := clock.waiterAt(t); !w.Equal(at) {
			t.Fatalf("the loop waits until %s, want %s", w, at)
		}
		clock.settle(t, s, at)
	}
	clock.waitForWaiter(t)
	endLoop(t, stop, done)
	if got := strings.Join(f.got, " "); got != "hourly@01-05T01:00 hourly@01-05T02:00 hourly@01-05T03:00" {
		t.Fatalf("fired %s", got)
	}
	if n := strings.Count(log.String(), `schedule "never": no time after`); n != 1 {
		t.Fatalf("the schedule that never fires is logged %d times, want once:\n%s", n, log.String())
	}

	// Alone, and with no file to reload, it ends the loop with an error at once.
	s = &Scheduler{Clock: &fakeClock{now: start}, Fire: f.fire, Logf: log.logf, Schedules: []*Schedule{never}}
	alone := make(chan error, 1)
	go func() { alone <- s.Loop(context.Background(), context.Background()) }()
	select {
	case err := <-alone:
		if err == nil || !strings.Contains(err.Error(), "no schedule has a time left") {
			t.Fatalf("Loop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not end")
	}
}

// TestSchedulerReloadsTheSchedules checks that edits to the schedule blocks apply while the
// scheduler runs: a changed cron moves the next trigger (logged with its new time), an added
// schedule fires, a removed one no longer does, and a file that cannot be read keeps the
// schedules as they were, logged once.
func TestSchedulerReloadsTheSchedules(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	f := &firings{}
	var log logRecorder
	s, edit, stop, done := reloadingScheduler(clock, f, &log, []*Schedule{{Name: "nightly", Cron: "0 3 * * *", Timezone: "UTC", Overlap: "skip"}})
	// tick moves the clock to the loop's next wake-up and returns it.
	tick := func() time.Time {
		at := clock.waiterAt(t)
		clock.settle(t, s, at)
		return at
	}
	if at := tick(); !at.Equal(start.Add(ReloadEvery)) {
		t.Fatalf("the loop woke at %s, want %s to look at the file", at, start.Add(ReloadEvery))
	}
	edit([]*Schedule{
		{Name: "nightly", Cron: "5 0 * * *", Timezone: "Europe/Copenhagen", Overlap: "queue"},
		{Name: "added", Cron: "3 0 * * *", Timezone: "UTC", Overlap: "skip"},
	}, nil)
	for i := 0; i < 8; i++ {
		tick()
	}
	edit(nil, fmt.Errorf("pipeline.hcl:3: Invalid cron expression"))
	for i := 0; i < 3; i++ {
		tick()
	}
	edit([]*Schedule{{Name: "added", Cron: "3 0 * * *", Timezone: "UTC", Overlap: "skip"}}, nil)
	tick()
	// A wake-up later than the trigger (a suspended machine) still fires it.
	clock.waitForWaiter(t)
	clock.advanceTo(time.Date(2026, 1, 6, 0, 4, 0, 0, time.UTC))
	s.Wait()
	clock.waitForWaiter(t)
	endLoop(t, stop, done)
	if got, want := strings.Join(f.got, " "), "added@01-05T00:03 added@01-06T00:03"; got != want {
		t.Fatalf("fired %s\nwant  %s\nlog:\n%s", got, want, log.String())
	}
	logged := log.String()
	for _, want := range []string{
		`schedule "nightly": cron changed from "0 3 * * *" to "5 0 * * *", timezone changed from "UTC" to "Europe/Copenhagen", overlap changed from "skip" to "queue"; next due 2026-01-06T00:05:00+01:00`,
		`schedule "added": added (cron "3 0 * * *", timezone "UTC", overlap "skip"); next due 2026-01-05T00:03:00Z`,
		`schedule "nightly": removed from the pipeline file; it fires no more`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log lacks %s:\n%s", want, logged)
		}
	}
	if n := strings.Count(logged, "the schedules stay as they were: pipeline.hcl:3: Invalid cron expression"); n != 1 {
		t.Errorf("the reload error is logged %d times, want once:\n%s", n, logged)
	}
}

// TestSchedulerReadsTheFileBeforeATriggerFires checks that a schedule edited after the last
// reading of the file but before its trigger fires by its new times: a trigger they no longer
// include does not fire, one they still include does.
func TestSchedulerReadsTheFileBeforeATriggerFires(t *testing.T) {
	for _, c := range []struct {
		cron, want string
	}{
		{"*/5 * * * *", ""},                        // 00:01 is no longer a time of it
		{"1-59/2 * * * *", "minutely@01-05T00:01"}, // still is
	} {
		clock := &fakeClock{now: time.Date(2026, 1, 5, 0, 0, 30, 0, time.UTC)}
		f := &firings{}
		var log logRecorder
		s, edit, stop, done := reloadingScheduler(clock, f, &log, []*Schedule{{Name: "minutely", Cron: "* * * * *", Timezone: "UTC", Overlap: "skip"}})
		at := clock.waiterAt(t) // the trigger at 00:01, read from the file at 00:00:30
		edit([]*Schedule{{Name: "minutely", Cron: c.cron, Timezone: "UTC", Overlap: "skip"}}, nil)
		clock.advanceTo(at)
		s.Wait()
		clock.waitForWaiter(t)
		endLoop(t, stop, done)
		if got := strings.Join(f.got, " "); got != c.want {
			t.Errorf("cron edited to %q at %s: fired %q, want %q\nlog:\n%s", c.cron, at.Format(time.TimeOnly), got, c.want, log.String())
		}
	}
}

// reloadingScheduler starts the loop of a scheduler of the schedules file whose Reload reads
// them again as edit last set them (with an error, as of a file that does not load); stop
// ends the loop, which then sends what it returned on done.
func reloadingScheduler(clock *fakeClock, f *firings, log *logRecorder, file []*Schedule) (s *Scheduler, edit func([]*Schedule, error), stop func(), done chan error) {
	var mu sync.Mutex
	var fileErr error
	edit = func(scheds []*Schedule, err error) {
		mu.Lock()
		defer mu.Unlock()
		file, fileErr = scheds, err
	}
	s = &Scheduler{Clock: clock, Fire: f.fire, Logf: log.logf, Schedules: file, Reload: func() ([]*Schedule, error) {
		mu.Lock()
		defer mu.Unlock()
		return file, fileErr
	}}
	ctx, stop := context.WithCancel(context.Background())
	done = make(chan error)
	go func() { done <- s.Loop(ctx, context.Background()) }()
	return s, edit, stop, done
}

// TestCronErrorsNameTheField checks that a cron expression the parser refuses is explained by
// the field at fault and the values it takes, not by the parser's words alone.
func TestCronErrorsNameTheField(t *testing.T) {
	now := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for expr, want := range map[string]string{
		"0 25 * * *":      `The hour field (the second of five) is "25", out of range: it takes 0 to 23, or ranges (1-5), lists (1,15) and steps (*/2) of those.`,
		"0 3-25 * * *":    `The hour field (the second of five) is "3-25", out of range: it takes 0 to 23,`,
		"60 3 * * *":      `The minute field (the first of five) is "60", out of range: it takes 0 to 59,`,
		"0 3 0 * *":       `The day-of-month field (the third of five) is "0", out of range: it takes 1 to 31,`,
		"0 3 * * mon-fry": `The day-of-week field (the fifth of five) is "mon-fry", not readable (failed to parse int from fry): it takes 0 to 6 (Sunday is 0), or sun to sat,`,
		"0 3 * *":         `"0 3 * *" has 4 fields. Use five fields (minute hour day-of-month month day-of-week)`,
		"@every 1 m":      `"1 m" is not a duration @every reads: write it without spaces, in h, m and s, such as "@every 30m"`,
	} {
		sum, detail := cronProblem(expr, now)
		if sum != "Invalid cron expression" || !strings.HasPrefix(detail, want) {
			t.Errorf("%s: %s: %s\nwant the detail to start with %s", expr, sum, detail, want)
		}
	}
}

// A stage named twice in targets runs once (and --print-crontab names it once).
func TestScheduleTargetsNameEachStageOnce(t *testing.T) {
	src := chainHCL + `
schedule "twice" {
  cron    = "@daily"
  targets = [stage.xform.final, stage.xform.final, stage.gen.src]
}
`
	w := newWorkspace(t, src, chainFiles()).engine(nil).Workflow
	if got := w.ScheduleTargets(w.Config.Schedules[0]); !slices.Equal(got, []string{"gen.src", "xform.final"}) {
		t.Fatalf("targets %v", got)
	}
}

// Two schedules due at the same moment (a nightly and a weekly both at 03:00) both run, one
// after the other, whatever their overlap: the second did not come during the run the first
// started, and skipping it would keep the weekly from ever running.
func TestSchedulerRunsSchedulesDueAtOnceOneAfterTheOther(t *testing.T) {
	for _, overlap := range []string{"skip", "queue"} {
		clock := &fakeClock{now: time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)} // a Monday
		f := &firings{release: make(chan struct{}), started: make(chan string, 10)}
		var log logRecorder
		s := &Scheduler{Clock: clock, Fire: f.fire, Logf: log.logf, Schedules: []*Schedule{
			{Name: "nightly", Cron: "0 3 * * *", Timezone: "UTC", Overlap: overlap},
			{Name: "weekly", Cron: "0 3 * * 1", Timezone: "UTC", Overlap: overlap},
		}}
		stop, done := startLoop(s)
		clock.waitForWaiter(t)
		clock.advanceTo(time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC))
		<-f.started // nightly runs and blocks
		clock.waitForWaiter(t)
		close(f.release)
		s.Wait()
		endLoop(t, stop, done)
		f.mu.Lock()
		got := strings.Join(f.got, " ")
		f.mu.Unlock()
		if got != "nightly@01-05T03:00 weekly@01-05T03:00" {
			t.Errorf("overlap %s: fired %s, want nightly then weekly; log:\n%s", overlap, got, log.String())
		}
		if !strings.Contains(log.String(), `schedule "weekly" due 2026-01-05T03:00:00Z: due at the same time as the run just started; queued behind it`) {
			t.Errorf("overlap %s: the log does not say why weekly waits:\n%s", overlap, log.String())
		}
	}
}

// A schedule at a fixed time of day fires once a day across daylight-saving changes, as cron
// does: the night the clocks go back it fires at the first 02:30 only (robfig/cron alone fires
// at both), and the night they go forward past 02:30 it fires as they jump, at 03:00 summer
// time (robfig/cron alone skips that day). A schedule with a wildcard hour fires by the clock,
// both 02:00s included.
func TestSchedulerKeepsFixedTimesOnceADayAcrossDaylightSaving(t *testing.T) {
	cph, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		t.Skip(err)
	}
	times := func(cron, zone string, from time.Time, n int) string {
		return fireTimes(t, cron, zone, from, n, "01-02 15:04 MST")
	}
	for _, tc := range []struct {
		cron string
		from time.Time
		n    int
		want string
	}{
		{"30 2 * * *", time.Date(2026, 10, 24, 12, 0, 0, 0, cph), 3, "10-25 02:30 CEST, 10-26 02:30 CET, 10-27 02:30 CET"},
		{"30 2 * * *", time.Date(2026, 3, 28, 12, 0, 0, 0, cph), 3, "03-29 03:00 CEST, 03-30 02:30 CEST, 03-31 02:30 CEST"},
		{"0 2 * * 0", time.Date(2026, 3, 25, 12, 0, 0, 0, cph), 2, "03-29 03:00 CEST, 04-05 02:00 CEST"}, // a Sunday
		{"0 3 * * *", time.Date(2026, 10, 24, 12, 0, 0, 0, cph), 2, "10-25 03:00 CET, 10-26 03:00 CET"},
		{"@daily", time.Date(2026, 3, 28, 12, 0, 0, 0, cph), 2, "03-29 00:00 CET, 03-30 00:00 CEST"},
		{"0 * * * *", time.Date(2026, 10, 25, 0, 30, 0, 0, cph), 4, "10-25 01:00 CEST, 10-25 02:00 CEST, 10-25 02:00 CET, 10-25 03:00 CET"},
		{"0 * * * *", time.Date(2026, 3, 29, 0, 30, 0, 0, cph), 3, "03-29 01:00 CET, 03-29 03:00 CEST, 03-29 04:00 CEST"},
		// New York's clocks change at 02:00 (back to 01:00); Lord Howe's by half an hour.
		{"America/New_York 30 1 * * *", time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC), 2, "11-01 01:30 EDT, 11-02 01:30 EST"},
		{"America/New_York 30 2 * * *", time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC), 2, "03-08 03:00 EDT, 03-09 02:30 EDT"},
		{"Australia/Lord_Howe 45 1 * * *", time.Date(2026, 4, 4, 12, 0, 0, 0, time.UTC), 2, "04-05 01:45 +11, 04-06 01:45 +1030"},
		{"Australia/Lord_Howe 15 2 * * *", time.Date(2026, 10, 3, 12, 0, 0, 0, time.UTC), 2, "10-04 02:30 +11, 10-05 02:15 +11"},
	} {
		zone := "Europe/Copenhagen"
		if f := strings.Fields(tc.cron); len(f) == 6 {
			zone, tc.cron = f[0], strings.Join(f[1:], " ")
		}
		if got := times(tc.cron, zone, tc.from, tc.n); got != tc.want {
			t.Errorf("%q from %s: %s\nwant %s", tc.cron, tc.from.Format("01-02 15:04 MST"), got, tc.want)
		}
	}

	// The loop fires the nightly once the night the clocks go back.
	clock := &fakeClock{now: time.Date(2026, 10, 24, 23, 0, 0, 0, cph)}
	f := &firings{}
	s := &Scheduler{Clock: clock, Fire: f.fire, Logf: func(string, ...any) {},
		Schedules: []*Schedule{{Name: "nightly", Cron: "30 2 * * *", Timezone: "Europe/Copenhagen", Overlap: "skip"}}}
	stop, done := startLoop(s)
	for at := clock.now; at.Before(time.Date(2026, 10, 25, 6, 0, 0, 0, cph)); {
		at = at.Add(15 * time.Minute)
		clock.waitForWaiter(t)
		clock.settle(t, s, at)
	}
	clock.waitForWaiter(t)
	endLoop(t, stop, done)
	if got := strings.Join(f.got, " "); got != "nightly@10-25T00:30" { // 02:30 CEST
		t.Fatalf("fired %s, want once at 02:30 summer time", got)
	}
}

// An edit of a schedule's overlap alone keeps the time it waits for: an @every schedule's next
// time was computed again from the moment of the edit, putting it off by up to a whole
// interval ("@every 6h" due in a minute, edited, then due in six hours).
func TestSchedulerKeepsTheNextTimeWhenOnlyOverlapChanges(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	f := &firings{}
	var log logRecorder
	s, edit, stop, done := reloadingScheduler(clock, f, &log, []*Schedule{{Name: "sixhourly", Cron: "@every 6h", Timezone: "UTC", Overlap: "skip"}})
	for at := start.Add(time.Minute); !at.After(start.Add(5 * time.Hour)); at = at.Add(time.Hour) {
		clock.waitForWaiter(t)
		clock.settle(t, s, at)
	}
	edit([]*Schedule{{Name: "sixhourly", Cron: "@every 6h", Timezone: "UTC", Overlap: "queue"}}, nil)
	for at := start.Add(5*time.Hour + 2*time.Minute); !at.After(start.Add(7 * time.Hour)); at = at.Add(time.Minute) {
		clock.waitForWaiter(t)
		clock.settle(t, s, at)
	}
	clock.waitForWaiter(t)
	endLoop(t, stop, done)
	if got := strings.Join(f.got, " "); got != "sixhourly@01-05T06:00" {
		t.Fatalf("fired %s, want at 06:00 as before the edit\nlog:\n%s", got, log.String())
	}
	if want := `schedule "sixhourly": overlap changed from "skip" to "queue"; next due 2026-01-05T06:00:00Z`; !strings.Contains(log.String(), want) {
		t.Errorf("the log lacks %s:\n%s", want, log.String())
	}
}

// A day-of-month and a day-of-week field both restricted, one starting with "*", fire when
// both match, as cron(8) reads them (and so as the lines --print-crontab writes fire), not
// when either does, as robfig/cron alone reads them; with a plain "*" in either, or neither
// starting with "*", robfig/cron's reading is cron's. An expression whose two day fields
// never agree never fires, which validation says.
func TestCronDayFieldsAreReadAsCronReadsThem(t *testing.T) {
	times := func(expr string, from time.Time, n int) string {
		return fireTimes(t, expr, "UTC", from, n, "Mon 01-02 15:04")
	}
	from := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a Tuesday
	for _, tc := range []struct{ expr, want string }{
		// Mondays with an odd date: 7 and 21 December, 11 January.
		{"0 3 */2 * 1", "Mon 12-07 03:00, Mon 12-21 03:00, Mon 01-11 03:00"},
		{"0 3 1,15 * */3", "Sat 05-01 03:00, Sat 05-15 03:00, Sun 08-01 03:00"}, // a Sunday, Wednesday or Saturday on the 1st or 15th
		// Neither field starts with "*": either day.
		{"0 3 9 * 1", "Mon 12-07 03:00, Wed 12-09 03:00, Mon 12-14 03:00"},
		// A plain "*": the other field alone.
		{"0 3 * * 1", "Mon 12-07 03:00, Mon 12-14 03:00, Mon 12-21 03:00"},
	} {
		if got := times(tc.expr, from, 3); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.expr, got, tc.want)
		}
	}
	if summary, _ := cronProblem("0 3 31 2 */2", from); summary != "Cron expression never fires" {
		t.Errorf("31 February on some weekday: %q", summary)
	}
	if summary, _ := cronProblem("* * 31 2 */2", from); summary != "Cron expression never fires" {
		t.Errorf("every minute of 31 February on some weekday: %q", summary)
	}
}

// fireTimes returns the first n times after from that a schedule with cron expression expr in
// zone fires, in layout, joined by commas.
func fireTimes(t *testing.T, expr, zone string, from time.Time, n int, layout string) string {
	t.Helper()
	s := &Scheduler{Schedules: []*Schedule{{Name: "s", Cron: expr, Timezone: zone, Overlap: "skip"}}}
	var out []string
	for i := 0; i < n; i++ {
		next, err := s.Next(from)
		if err != nil {
			t.Fatal(err)
		}
		from = next[0].Due
		out = append(out, from.Format(layout))
	}
	return strings.Join(out, ", ")
}

// startLoop runs s.Loop in the background until stop is called; done gives what it returned.
func startLoop(s *Scheduler) (stop func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Loop(ctx, context.Background()) }()
	return cancel, ch
}

// endLoop stops a loop started with startLoop and fails the test if it returned an error.
func endLoop(t *testing.T, stop func(), done <-chan error) {
	t.Helper()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
