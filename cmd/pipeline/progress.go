package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"pipeline/pipeline"
	"pipeline/stages"
)

// reporter draws a run: on a terminal, an overall count and a progress bar for the running
// stage; otherwise plain timestamped lines (progress at most every 15 s), fit for logs and CI.
//
// The count [k/N] before a stage's lines is the stage's own number: the stage was the k-th
// of the run's N stages to be reported (by starting to run or, for a cache hit or a skipped
// stage, by its outcome). A stage keeps its number from its "running" line to its "done" or
// "FAILED" line, so stages that run side by side can be told apart; the outcomes of parallel
// stages may therefore come out of number order.
type reporter struct {
	w       io.Writer
	tty     bool
	quiet   bool
	verbose bool

	mu    sync.Mutex
	total int
	nums  map[string]int // each reported stage's number, by address
	bar   *progressbar.ProgressBar
	// warned holds the warnings of damaged photos shown: the same one from another stage (the
	// three trainings of one dataset) is shown once, without --verbose. (Others that read
	// alike, "val_loss never improved" of two models, are about each stage's own work.)
	warned map[string]bool
}

func newReporter(w io.Writer, quiet, verbose bool) *reporter {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &reporter{w: w, tty: tty, quiet: quiet, verbose: verbose, nums: map[string]int{}}
}

// num returns the number of the stage at addr, giving it the next one when it is reported
// for the first time. r.mu is held.
func (r *reporter) num(addr string) int {
	n, ok := r.nums[addr]
	if !ok {
		n = len(r.nums) + 1
		r.nums[addr] = n
	}
	return n
}

// printf prints a line. A failed write is let be: the run goes on when no one reads its
// output any more (ignoreBrokenPipes).
func (r *reporter) printf(format string, args ...any) {
	if r.bar != nil {
		r.bar.Clear()
	}
	if r.tty {
		fmt.Fprintf(r.w, format+"\n", args...)
	} else {
		fmt.Fprintf(r.w, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

func (r *reporter) Planned(stages []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = len(stages)
}

func (r *reporter) Started(addr string, reasons []string) pipeline.Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.quiet {
		r.printf("[%d/%d] %s: running (%s)", r.num(addr), r.total, addr, strings.Join(reasons, "; "))
	} else {
		r.num(addr)
	}
	return &stageProgress{r: r, addr: addr}
}

func (r *reporter) Finished(res *pipeline.StageResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.num(res.Addr)
	if r.bar != nil {
		r.bar.Finish()
		r.bar = nil
	}
	switch {
	case res.Status == pipeline.StatusFailed:
		r.printf("[%d/%d] %s: FAILED: %s", k, r.total, res.Addr, res.Error)
	case r.quiet:
	case res.Status == pipeline.StatusRan:
		r.printf("[%d/%d] %s: done in %s", k, r.total, res.Addr, time.Duration(res.Duration*float64(time.Second)).Round(10*time.Millisecond))
	default:
		r.printf("[%d/%d] %s: %s%s", k, r.total, res.Addr, res.Status, reasonSuffix(res.Reasons))
	}
	if res.Effect != "" && !r.quiet {
		r.printf("%s: %s", res.Addr, res.Effect)
	}
}

func reasonSuffix(reasons []string) string {
	if len(reasons) == 0 {
		return ""
	}
	return " (" + strings.Join(reasons, "; ") + ")"
}

func (r *reporter) Log(addr, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.verbose && (r.quiet || addr != "" && !isWarning(line) && !isResume(line) && !isEpochLine(line)):
	case !r.verbose && addr != "" && r.warned[line]:
	case addr == "": // the run's own lines, such as taking over a stale lock
		r.printf("%s", line)
	default:
		if isWarning(line) && strings.Contains(line, stages.DamagedWarning) {
			if r.warned == nil {
				r.warned = map[string]bool{}
			}
			r.warned[line] = true
		}
		r.printf("%s: %s", addr, line)
	}
}

func (r *reporter) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Finish()
		r.bar = nil
	}
}

// stageProgress is one stage's view of the reporter.
type stageProgress struct {
	r     *reporter
	addr  string
	label string
	total int64
	n     int64
	last  time.Time // last plain progress line
	shown bool      // a plain progress line was printed for this phase
}

func (p *stageProgress) Start(label string, total int64) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	p.label, p.total, p.n, p.shown = label, total, 0, false
	if r.quiet || !r.tty {
		return
	}
	if r.bar != nil {
		r.bar.Finish()
	}
	r.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%s %s", p.addr, label)),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *stageProgress) Add(n int64) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	p.n += n
	if r.quiet {
		return
	}
	if r.tty {
		if r.bar != nil {
			r.bar.Add64(n)
		}
		return
	}
	// In logs, a progress line at most every 15 s per stage: long phases show they are
	// alive, short ones stay silent. A phase that showed progress also says when it is
	// done, or its last stretch (up to 15 s) would look like something else.
	if p.total <= 0 {
		return
	}
	if done := p.n >= p.total; done && p.shown || time.Since(p.last) >= 15*time.Second {
		if !p.last.IsZero() {
			r.printf("%s: %s %d%%", p.addr, p.label, 100*p.n/p.total)
			p.shown = !done
		}
		p.last = time.Now()
	}
}

func (p *stageProgress) Status(s string) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quiet {
		return
	}
	if r.tty && r.bar != nil {
		r.bar.Describe(fmt.Sprintf("%s %s %s", p.addr, p.label, s))
		return
	}
	if !r.tty && r.verbose {
		r.printf("%s: %s", p.addr, s)
	}
}

// isWarning keeps a stage's warnings (rejected files, label conflicts, missing test classes)
// on the console without --verbose.
func isWarning(line string) bool { return strings.HasPrefix(line, "warning: ") }

// isResume keeps a training's "resuming after epoch N of M" on the console without
// --verbose: the run goes on from a checkpoint rather than from the start, which explains
// its epoch count and its time; so is what a forced stage says it does from scratch ("forced:
// starting over" without the checkpoints of an interrupted run, a split or augment making
// every image again).
func isResume(line string) bool {
	return strings.HasPrefix(line, "resuming after epoch ") || strings.HasPrefix(line, "forced: ")
}

// isEpochLine keeps per-epoch summaries (validation loss, F1, top-k) on the console without
// --verbose, on a terminal too, above the bar: they are how one watches a training.
func isEpochLine(line string) bool { return strings.HasPrefix(line, "epoch ") }
