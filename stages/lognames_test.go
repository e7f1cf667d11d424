package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file or class name with a newline in it does not break a log line in two: the line of a
// rejected file in a class folder named "new\nline" shows the newline escaped, as the
// summary line's quoted name does.
func TestNamesDoNotBreakLogLines(t *testing.T) {
	w := newWS(t, splitHCL)
	for i := range 4 {
		w.write(fmt.Sprintf("raw/a/%d.png", i), randomPNG(21, uint64(i), 6, 6))
		w.write(fmt.Sprintf("raw/new\nline/%d.png", i), randomPNG(22, uint64(i), 6, 6))
	}
	w.write("raw/new\nline/x.jpg", []byte("not a picture"))
	w.write("raw/a/tab\there.jpg", []byte("not a picture"))
	rec, _ := w.run(false)
	log, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`rejected raw/new\nline/x.jpg: not an image`, `rejected raw/a/tab\there.jpg: not an image`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("run.log lacks %q:\n%s", want, log)
		}
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "\t") || strings.Contains(line, "x.jpg") && !strings.Contains(line, `new\nline/x.jpg`) {
			t.Errorf("a name broke a line of run.log: %q", line)
		}
	}
}

// logName escapes what would break or disguise a log line, and nothing else.
func TestLogName(t *testing.T) {
	for in, want := range map[string]string{
		"Ceps é/1.png":   "Ceps é/1.png",
		"new\nline":      `new\nline`,
		"a\tb\r":         `a\tb\r`,
		"evil\u202egpj":  `evil\u202egpj`,
		"bad\xffbyte":    `bad\xffbyte`,
		"non\u00a0break": "non\u00a0break",
		"family \U0001F468\u200d\U0001F469\u200d\U0001F467": "family \U0001F468\u200d\U0001F469\u200d\U0001F467", // joined emoji
	} {
		if got := logName(in); got != want {
			t.Errorf("logName(%q) = %q, want %q", in, got, want)
		}
	}
}
