package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Clock is the scheduler's time source; tests drive a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the system clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Trigger is one firing of a schedule.
type Trigger struct {
	Schedule string
	Due      time.Time
	// Once marks a trigger fired at once by `schedule --once` (Due is then when it fired).
	Once bool
}

// String names the trigger in the scheduler's log and in the trigger field of run.json, with
// the due time in the schedule's time zone (its offset from UTC included).
func (t Trigger) String() string {
	if t.Once {
		return fmt.Sprintf("schedule %q fired by --once at %s", t.Schedule, t.Due.Format(time.RFC3339))
	}
	return fmt.Sprintf("schedule %q due %s", t.Schedule, t.Due.Format(time.RFC3339))
}

// Scheduler fires the schedule blocks of a pipeline file. Fire does the work of a trigger
// (plan, then run); the scheduler guarantees it is never running
// twice at once, and applies each schedule's overlap policy to triggers that come while it
// is: skip drops them (logged), queue runs them once the current run ends (unless the
// scheduler is stopping by then: see Loop), one run per schedule however many of its
// triggers came meanwhile.
type Scheduler struct {
	Schedules []*Schedule
	Clock     Clock
	Fire      func(ctx context.Context, t Trigger)
	Logf      func(format string, args ...any)
	// Reload, when set, returns the schedule blocks as the pipeline file declares them now.
	// Loop calls it whenever it wakes, and at least every ReloadEvery, and applies what
	// changed (cron, timezone, overlap; schedules added or removed), logging each change.
	// When it fails, Loop logs the error (once, until it changes) and keeps the schedules it
	// has.
	Reload func() ([]*Schedule, error)

	mu      sync.Mutex
	running bool
	queued  []Trigger
	wg      sync.WaitGroup
}

// ReloadEvery is the longest Loop waits between two calls of Scheduler.Reload.
const ReloadEvery = time.Minute

// parsedSchedule is a schedule ready to compute its times. due is its next time, kept from
// when it was computed until the schedule fires (zero: not computed yet), as an @every
// schedule's counts from then. dead marks one found to have no time left (see
// Scheduler.upcoming): it stays, so that a reload sees it unchanged, but fires no more.
type parsedSchedule struct {
	s    *Schedule
	c    cron.Schedule
	loc  *time.Location
	due  time.Time
	dead bool
	// fixed marks a schedule at fixed times of day (neither its minute nor its hour field a
	// wildcard: "30 2 * * *", @daily), which next keeps to once a day across daylight-saving
	// changes, as cron does.
	fixed bool
}

func parseSchedule(sc *Schedule) (parsedSchedule, error) {
	c, err := parseCron(sc.Cron)
	if err != nil {
		return parsedSchedule{}, fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	loc, err := time.LoadLocation(sc.Timezone)
	if err != nil {
		return parsedSchedule{}, fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	return parsedSchedule{s: sc, c: c, loc: loc, fixed: fixedTime(sc.Cron)}, nil
}

// parseCron parses a cron expression (five fields or a descriptor) to fire when cron(8) would.
// robfig/cron matches a day that is in the day-of-month field or in the day-of-week field
// unless one of them is "*" or "?", when both must match; cron (Vixie's and cronie) wants both
// as soon as either field starts with "*": "0 3 */2 * 1" is 03:00 on a Monday with an odd
// date there, where robfig/cron alone fires on every odd date and every Monday. The crontab
// lines --print-crontab writes must fire at the scheduler's times.
func parseCron(expr string) (cron.Schedule, error) {
	c, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, err
	}
	spec, ok := c.(*cron.SpecSchedule)
	f := strings.Fields(expr)
	if !ok || len(f) != 5 {
		return c, nil
	}
	plain := func(field string) bool { return field == "*" || field == "?" }
	if plain(f[2]) || plain(f[4]) || !(strings.HasPrefix(f[2], "*") || strings.HasPrefix(f[4], "*")) {
		return c, nil // robfig/cron reads it as cron does
	}
	return bothDays{spec}, nil
}

// bothDays is a schedule whose days must match both its day-of-month and its day-of-week
// fields (see parseCron).
type bothDays struct{ *cron.SpecSchedule }

// Next returns the first time after t that robfig/cron gives whose day matches both fields,
// or the zero time when none does in the five years after t (robfig/cron's own horizon).
func (s bothDays) Next(t time.Time) time.Time {
	limit := t.AddDate(5, 0, 0)
	for n := s.SpecSchedule.Next(t); !n.IsZero() && !n.After(limit); {
		if 1<<uint(n.Day())&s.Dom != 0 && 1<<uint(n.Weekday())&s.Dow != 0 {
			return n
		}
		// Not this day: on from its last second, not match by match (every minute of it).
		n = s.SpecSchedule.Next(time.Date(n.Year(), n.Month(), n.Day(), 23, 59, 59, 0, n.Location()))
	}
	return time.Time{}
}

// fixedTime reports whether cron expression expr fires at fixed times of day: neither its
// minute nor its hour field starts with a wildcard (cron's own test), or a descriptor of a
// day or longer.
func fixedTime(expr string) bool {
	switch expr {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight":
		return true
	}
	f := strings.Fields(expr)
	return len(f) == 5 && !strings.HasPrefix(f[0], "*") && !strings.HasPrefix(f[1], "*")
}

func parseSchedules(scheds []*Schedule) ([]parsedSchedule, error) {
	var out []parsedSchedule
	for _, sc := range scheds {
		p, err := parseSchedule(sc)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// next returns p's first time after t, in its time zone, and whether it has one: robfig/cron
// returns the zero time for an expression no time in five years matches (30 February).
//
// A schedule at fixed times of day fires once for each time of day it names across a
// daylight-saving change, as cron does (robfig/cron alone fires a nightly "30 2 * * *" twice
// the night the clocks go back and not at all the night they go forward): a time the clock
// shows twice fires the first time only, and one the clock skips fires as the clock jumps
// (03:00 summer time for 02:30).
func (p parsedSchedule) next(t time.Time) (time.Time, bool) {
	due := p.c.Next(t.In(p.loc))
	for p.fixed && !due.IsZero() && repeatedWallTime(due) {
		due = p.c.Next(due)
	}
	if p.fixed && !due.IsZero() {
		if jump, ok := p.skippedBefore(t, due); ok {
			due = jump
		}
	}
	return due, !due.IsZero() && due.After(t)
}

// repeatedWallTime reports whether the clock of t's zone showed t's time of day earlier, within
// the hours before t: t comes in the hour repeated after the clocks went back.
func repeatedWallTime(t time.Time) bool {
	_, off := t.Zone()
	_, before := t.Add(-3 * time.Hour).Zone()
	if before <= off {
		return false
	}
	e := t.Add(-time.Duration(before-off) * time.Second)
	_, eoff := e.Zone()
	return eoff == before && e.Hour() == t.Hour() && e.Minute() == t.Minute()
}

// skippedBefore returns the moment the clock jumped forward between t and due, in p's zone,
// when the times of day it skipped include one of p's (02:30 in a jump from 02:00 to 03:00),
// and whether there is one.
func (p parsedSchedule) skippedBefore(t, due time.Time) (time.Time, bool) {
	lo, hi := t.In(p.loc), due
	_, offLo := lo.Zone()
	_, offHi := hi.Zone()
	if offHi <= offLo {
		return time.Time{}, false
	}
	for hi.Sub(lo) > time.Second { // the first moment of the later offset
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, off := mid.Zone(); off == offLo {
			lo = mid
		} else {
			hi = mid
		}
	}
	jump := hi.Truncate(time.Second)
	if !jump.After(t) {
		return time.Time{}, false
	}
	// The times of day skipped, from the old clock's reading at the jump to the new one's,
	// as times without a zone (UTC), in which robfig/cron computes the schedule.
	wall := func(x time.Time, off int) time.Time { return x.Add(time.Duration(off) * time.Second).UTC() }
	from, to := wall(jump, offLo), wall(jump, offHi)
	if m := p.c.Next(from.Add(-time.Second)); !m.IsZero() && m.Before(to) {
		return jump.In(p.loc), true
	}
	return time.Time{}, false
}

// Next returns the next trigger of every schedule after t, earliest first. A schedule with no
// time after t (a cron expression no date matches, which validation refuses) has none; when
// no schedule has one, Next returns an error.
func (s *Scheduler) Next(t time.Time) ([]Trigger, error) {
	ps, err := parseSchedules(s.Schedules)
	if err != nil {
		return nil, err
	}
	var out []Trigger
	for _, p := range ps {
		if due, ok := p.next(t); ok {
			out = append(out, Trigger{Schedule: p.s.Name, Due: due})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no schedule has a time to fire after %s", t.Format(time.RFC3339))
	}
	sortTriggers(out)
	return out, nil
}

func sortTriggers(ts []Trigger) {
	sort.Slice(ts, func(i, j int) bool {
		if !ts[i].Due.Equal(ts[j].Due) {
			return ts[i].Due.Before(ts[j].Due)
		}
		return ts[i].Schedule < ts[j].Schedule
	})
}

// upcoming returns the next trigger of each schedule of ps, earliest first, computing those
// not known yet as the first after now. A schedule without one is logged and marked dead,
// once: Loop would otherwise find it due at once, again and again.
func (s *Scheduler) upcoming(ps []parsedSchedule, now time.Time) []Trigger {
	var out []Trigger
	for i := range ps {
		if ps[i].dead {
			continue
		}
		if ps[i].due.IsZero() {
			due, ok := ps[i].next(now)
			if !ok {
				ps[i].dead = true
				s.Logf("schedule %q: no time after %s matches cron %q; it will not fire (correct it in the pipeline file)",
					ps[i].s.Name, now.In(ps[i].loc).Format(time.RFC3339), ps[i].s.Cron)
				continue
			}
			ps[i].due = due
		}
		out = append(out, Trigger{Schedule: ps[i].s.Name, Due: ps[i].due})
	}
	sortTriggers(out)
	return out
}

// Loop fires triggers until stop ends. From then on it starts nothing: no new trigger, and
// none of those queued behind the run in progress (they are dropped, logged). It waits for
// that run to finish and returns; Fire gets runCtx, which the caller cancels to cut the run
// short. Without Reload, Loop returns an error once no schedule has a time left to fire.
func (s *Scheduler) Loop(stop, runCtx context.Context) error {
	if len(s.Schedules) == 0 {
		return fmt.Errorf("the pipeline file declares no schedule blocks")
	}
	ps, err := parseSchedules(s.Schedules)
	if err != nil {
		return err
	}
	var logged, reloadErr string // the next triggers and the reload error last logged
	for {
		now := s.Clock.Now()
		if s.Reload != nil {
			ps, reloadErr = s.reload(ps, now, reloadErr)
		}
		next := s.upcoming(ps, now)
		wait := ReloadEvery
		switch {
		case len(next) > 0 && (s.Reload == nil || next[0].Due.Sub(now) < wait):
			wait = next[0].Due.Sub(now)
		case len(next) == 0 && s.Reload == nil:
			s.wg.Wait()
			return fmt.Errorf("no schedule has a time left to fire")
		}
		var lines []string
		for _, t := range next {
			if t.Due.Equal(next[0].Due) {
				lines = append(lines, fmt.Sprintf("next: %s", t))
			}
		}
		if len(next) == 0 {
			lines = append(lines, "no schedule has a time to fire; waiting for the pipeline file to change")
		}
		if l := strings.Join(lines, "\n"); l != logged {
			for _, line := range lines {
				s.Logf("%s", line)
			}
			logged = l
		}
		select {
		case <-stop.Done():
		case <-s.Clock.After(wait):
		}
		// Checked again, as select picks either when the time comes with the stop.
		if stop.Err() != nil {
			if s.Busy() {
				s.Logf("stopping: no new triggers; waiting for the run in progress")
			} else {
				s.Logf("stopping")
			}
			s.wg.Wait()
			return nil
		}
		// The wait may have ended for a reload only, or early, if the wall clock was set back.
		now = s.Clock.Now()
		// The file is read again before a trigger fires: one whose times were edited since
		// the last read (even a second before) fires by the new times.
		if s.Reload != nil {
			ps, reloadErr = s.reload(ps, now, reloadErr)
		}
		// Schedules due at once (a nightly and a weekly both at 03:00) run one after the
		// other: the later ones did not come during the run the first started, and skipping
		// them would keep a schedule that shares its times with another from ever running.
		startedNow := false
		for i := range ps {
			if !ps[i].dead && !ps[i].due.IsZero() && !ps[i].due.After(now) {
				if s.trigger(stop, runCtx, Trigger{Schedule: ps[i].s.Name, Due: ps[i].due}, ps[i].s.Overlap, startedNow) {
					startedNow = true
				}
				ps[i].due = time.Time{} // the next is computed from now
			}
		}
	}
}

// Busy reports whether a run the scheduler started is going.
func (s *Scheduler) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// trigger starts t now, or applies its overlap policy if a run is going, and reports whether
// it started t. sameTime says the run going was started by a trigger due at the same moment
// as t: t then queues behind it whatever its overlap (it did not come during that run).
func (s *Scheduler) trigger(stop, runCtx context.Context, t Trigger, overlap string, sameTime bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop.Err() != nil { // the stop came after the loop's check: Busy told it no run is going
		return false
	}
	if s.running {
		switch {
		case sameTime:
			s.queued = append(s.queued, t)
			s.Logf("%s: due at the same time as the run just started; queued behind it", t)
		case overlap == "queue" && slices.ContainsFunc(s.queued, func(q Trigger) bool { return q.Schedule == t.Schedule }):
			// One run after the current one serves every trigger of the schedule that came
			// during it: a run brings the targets up to date as of when it starts.
			s.Logf("%s: merged with the trigger of schedule %q already queued behind the run in progress", t, t.Schedule)
		case overlap == "queue":
			s.queued = append(s.queued, t)
			s.Logf("%s: queued behind the run in progress", t)
		default:
			s.Logf("%s: skipped, a run is in progress (overlap = \"skip\")", t)
		}
		return false
	}
	s.running = true
	s.wg.Add(1)
	go s.runChain(stop, runCtx, t)
	return true
}

// runChain fires t, then whatever was queued meanwhile, one at a time, until the queue is
// empty or the scheduler is stopping (stop ended): a stop drops what is queued.
func (s *Scheduler) runChain(stop, runCtx context.Context, t Trigger) {
	defer s.wg.Done()
	for {
		s.Fire(runCtx, t)
		s.mu.Lock()
		if len(s.queued) == 0 || stop.Err() != nil {
			for _, q := range s.queued {
				s.Logf("%s: dropped, the scheduler is stopping", q)
			}
			s.running = false
			s.queued = nil
			s.mu.Unlock()
			return
		}
		t = s.queued[0]
		s.queued = s.queued[1:]
		s.mu.Unlock()
	}
}

// Wait blocks until no trigger is running.
func (s *Scheduler) Wait() { s.wg.Wait() }
