package pipeline

import (
	"context"
	"fmt"
	"sort"
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
}

// String names the trigger in the scheduler's log and in the trigger field of run.json, with
// the due time in the schedule's time zone (its offset from UTC included).
func (t Trigger) String() string {
	return fmt.Sprintf("schedule %q due %s", t.Schedule, t.Due.Format(time.RFC3339))
}

// Scheduler fires the schedule blocks of a pipeline file. Fire does the work of a trigger
// (plan, then run if anything is out of date); the scheduler guarantees it is never running
// twice at once, and applies each schedule's overlap policy to triggers that come while it
// is: skip drops them (logged), queue runs them once the current run ends (unless the
// scheduler is stopping by then: see Loop).
type Scheduler struct {
	Schedules []*Schedule
	Clock     Clock
	Fire      func(ctx context.Context, t Trigger)
	Logf      func(format string, args ...any)

	mu      sync.Mutex
	running bool
	queued  []Trigger
	wg      sync.WaitGroup
}

type parsedSchedule struct {
	s   *Schedule
	c   cron.Schedule
	loc *time.Location
}

func (s *Scheduler) parse() ([]parsedSchedule, error) {
	var out []parsedSchedule
	for _, sc := range s.Schedules {
		c, err := cron.ParseStandard(sc.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
		loc, err := time.LoadLocation(sc.Timezone)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
		out = append(out, parsedSchedule{s: sc, c: c, loc: loc})
	}
	return out, nil
}

// Next returns the next trigger of every schedule after t, earliest first.
func (s *Scheduler) Next(t time.Time) ([]Trigger, error) {
	ps, err := s.parse()
	if err != nil {
		return nil, err
	}
	var out []Trigger
	for _, p := range ps {
		out = append(out, Trigger{Schedule: p.s.Name, Due: p.c.Next(t.In(p.loc))})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Due.Equal(out[j].Due) {
			return out[i].Due.Before(out[j].Due)
		}
		return out[i].Schedule < out[j].Schedule
	})
	return out, nil
}

// Loop fires triggers until stop ends. From then on it starts nothing: no new trigger, and
// none of those queued behind the run in progress (they are dropped, logged). It waits for
// that run to finish and returns; Fire gets runCtx, which the caller cancels to cut the run
// short.
func (s *Scheduler) Loop(stop, runCtx context.Context) error {
	if len(s.Schedules) == 0 {
		return fmt.Errorf("the pipeline file declares no schedule blocks")
	}
	policy := map[string]string{}
	for _, sc := range s.Schedules {
		policy[sc.Name] = sc.Overlap
	}
	for {
		now := s.Clock.Now()
		next, err := s.Next(now)
		if err != nil {
			return err
		}
		due := next[0].Due
		for _, t := range next {
			if t.Due.Equal(due) {
				s.Logf("next: %s", t)
			}
		}
		select {
		case <-stop.Done():
		case <-s.Clock.After(due.Sub(now)):
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
		for _, t := range next {
			if t.Due.Equal(due) {
				s.trigger(stop, runCtx, t, policy[t.Schedule])
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

// trigger starts t now, or applies its overlap policy if a run is going.
func (s *Scheduler) trigger(stop, runCtx context.Context, t Trigger, overlap string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop.Err() != nil { // the stop came after the loop's check: Busy told it no run is going
		return
	}
	if s.running {
		if overlap == "queue" {
			s.queued = append(s.queued, t)
			s.Logf("%s: queued behind the run in progress", t)
		} else {
			s.Logf("%s: skipped, a run is in progress (overlap = \"skip\")", t)
		}
		return
	}
	s.running = true
	s.wg.Add(1)
	go s.runChain(stop, runCtx, t)
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
