package main

import (
	"bytes"
	"strings"
	"testing"
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
		r.Log("split.main", "reused 2450 stored images of the previous split")
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
