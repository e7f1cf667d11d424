package pipeline

import (
	"fmt"
	"strings"
	"time"
)

// reload applies the schedules Reload returns to ps and returns the result, logging every
// change: a schedule added or removed, and one whose cron, timezone or overlap changed, with
// its next time. A schedule that did not change is kept as it is (one found dead stays dead,
// and is not logged again). When Reload fails, or returns a schedule that cannot be parsed,
// ps stays as it is and the error is logged, unless it is lastErr, the one logged last; the
// error to remember ("" when none) is returned with the schedules.
func (s *Scheduler) reload(ps []parsedSchedule, now time.Time, lastErr string) ([]parsedSchedule, string) {
	scheds, err := s.Reload()
	var out []parsedSchedule
	if err == nil {
		out, err = s.applyReload(ps, scheds, now)
	}
	if err != nil {
		if msg := err.Error(); msg != lastErr {
			s.Logf("the schedules stay as they were: %s", msg)
			return ps, msg
		}
		return ps, lastErr
	}
	return out, ""
}

// applyReload returns the schedules scheds, parsed, taking those that did not change from ps,
// and logs what changed. It logs nothing and returns an error if one of scheds cannot be
// parsed.
func (s *Scheduler) applyReload(ps []parsedSchedule, scheds []*Schedule, now time.Time) ([]parsedSchedule, error) {
	old := map[string]parsedSchedule{}
	for _, p := range ps {
		old[p.s.Name] = p
	}
	var out []parsedSchedule
	var logs []string
	seen := map[string]bool{}
	for _, sc := range scheds {
		seen[sc.Name] = true
		prev, had := old[sc.Name]
		if had && prev.s.Cron == sc.Cron && prev.s.Timezone == sc.Timezone && prev.s.Overlap == sc.Overlap {
			prev.s = sc // the same times; targets are read from the file at each trigger anyway
			out = append(out, prev)
			continue
		}
		p, err := parseSchedule(sc)
		if err != nil {
			return nil, err
		}
		var what string
		if !had {
			what = fmt.Sprintf("added (cron %q, timezone %s, overlap %q)", sc.Cron, zoneLabel(sc.Timezone), sc.Overlap)
		} else {
			var changes []string
			if prev.s.Cron != sc.Cron {
				changes = append(changes, fmt.Sprintf("cron changed from %q to %q", prev.s.Cron, sc.Cron))
			}
			if prev.s.Timezone != sc.Timezone {
				changes = append(changes, fmt.Sprintf("timezone changed from %s to %s", zoneLabel(prev.s.Timezone), zoneLabel(sc.Timezone)))
			}
			if prev.s.Overlap != sc.Overlap {
				changes = append(changes, fmt.Sprintf("overlap changed from %q to %q", prev.s.Overlap, sc.Overlap))
			}
			what = strings.Join(changes, ", ")
		}
		// A schedule that was due (the file read as the scheduler woke for it) fires now only
		// if its new times include that moment.
		from := now
		if had && !prev.due.IsZero() && !prev.due.After(now) {
			from = prev.due.Add(-time.Nanosecond)
		}
		if had && prev.s.Cron == sc.Cron && prev.s.Timezone == sc.Timezone && !prev.dead {
			// Its times did not change (only its overlap): the time it waits for stays, where
			// computing it again from now would put an @every schedule's off by a whole
			// interval.
			p.due = prev.due
			if !p.due.IsZero() {
				logs = append(logs, fmt.Sprintf("schedule %q: %s; next due %s", sc.Name, what, p.due.Format(time.RFC3339)))
			} else {
				logs = append(logs, fmt.Sprintf("schedule %q: %s", sc.Name, what))
			}
			out = append(out, p)
			continue
		}
		if due, ok := p.next(from); ok {
			p.due = due
			logs = append(logs, fmt.Sprintf("schedule %q: %s; next due %s", sc.Name, what, due.Format(time.RFC3339)))
		} else {
			logs = append(logs, fmt.Sprintf("schedule %q: %s", sc.Name, what)) // upcoming says it never fires
		}
		out = append(out, p)
	}
	for _, p := range ps {
		if !seen[p.s.Name] {
			logs = append(logs, fmt.Sprintf("schedule %q: removed from the pipeline file; it fires no more", p.s.Name))
		}
	}
	for _, l := range logs {
		s.Logf("%s", l)
	}
	return out, nil
}

// zoneLabel names a schedule's timezone attribute in the log: "Local" is the attribute left
// out.
func zoneLabel(tz string) string {
	if tz == "Local" {
		return "none (the machine's zone)"
	}
	return fmt.Sprintf("%q", tz)
}
