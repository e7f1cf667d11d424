package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"pipeline/stages"
)

// On a terminal as in a log, without --verbose, the console shows a training's epoch
// summaries, warnings and resumes, and not a stage's other lines.
func TestConsoleShowsEpochLinesOnATerminalToo(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var buf bytes.Buffer
		r := &reporter{w: &buf, tty: tty, nums: map[string]int{}}
		r.Log("train.model[cnn]", "epoch 1/2: train loss 1.2 f1 0.5 | val loss 1.1 f1 0.6 top1 0.6 top5 0.9 | lr 0.001 | 900 img/s")
		r.Log("train.model[cnn]", "resuming after epoch 1 of 2")
		r.Log("split.main", "warning: 1 file rejected")
		r.Log("split.main", "reused the previous split's stored images of 2450 photos")
		out := buf.String()
		for _, want := range []string{"val loss 1.1 f1 0.6", "resuming after epoch 1", "warning: 1 file rejected"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty %v: the console lacks %q:\n%s", tty, want, out)
			}
		}
		if strings.Contains(out, "reused") {
			t.Errorf("tty %v: the console shows a stage's detail line:\n%s", tty, out)
		}
	}
}

// Without --verbose, a warning of damaged photos another stage has given in the same words is
// not shown again (the run log has each); with it, every one is.
func TestConsoleShowsARepeatedWarningOnce(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		r := &reporter{w: &buf, verbose: verbose, nums: map[string]int{}}
		w := `warning: 2 JPEGs of the train and val sets have ` + stages.DamagedWarning + ` (…), e.g. "a.jpg": Corrupt JPEG data: bad Huffman code (all in run.log)`
		for _, addr := range []string{"train.model[cnn]", "train.model[vgg19]", "train.model[vit]"} {
			r.Log(addr, w)
		}
		r.Log("evaluate.test[cnn]", "warning: 1 JPEG of the test set has damaged data that libjpeg-turbo decoded past")
		// Warnings about each stage's own work are each shown, even in the same words.
		const own = "warning: val_loss never improved; kept the last epoch, 10"
		r.Log("train.model[cnn]", own)
		r.Log("train.model[vit]", own)
		out := buf.String()
		n := 1
		if verbose {
			n = 3
		}
		if got := strings.Count(out, w); got != n || !strings.Contains(out, "train.model[cnn]: "+w) || !strings.Contains(out, "evaluate.test[cnn]: warning: 1 JPEG") ||
			strings.Count(out, own) != 2 {
			t.Errorf("verbose %v: the warning shown %d times, want %d:\n%s", verbose, got, n, out)
		}
	}
}

// In a log, a phase long enough to show its progress also says when it is done (its last
// stretch, up to 15 s, looked like another, silent phase); a short phase stays silent.
func TestPlainProgressSaysWhenALongPhaseIsDone(t *testing.T) {
	var buf bytes.Buffer
	r := &reporter{w: &buf, nums: map[string]int{}}
	p := r.Started("split.main", []string{"new"}).(*stageProgress)
	buf.Reset()
	p.Start("images", 10)
	p.Add(1) // the phase's clock starts
	p.last = p.last.Add(-16 * time.Second)
	p.Add(4)
	p.Add(4)
	p.Add(1)
	p.Add(0)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		_, rest, _ := strings.Cut(line, " ")
		got = append(got, rest)
	}
	if want := []string{"split.main: images 50%", "split.main: images 100%"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	buf.Reset()
	p.Start("copies", 3)
	p.Add(3)
	if buf.Len() != 0 {
		t.Fatalf("a short phase printed %q", buf.String())
	}
}
