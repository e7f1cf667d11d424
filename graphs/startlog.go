package graphs

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Abseil, compiled into libtensorflow_cc with its symbols hidden, writes every message to
// stderr until initialised, whatever TF_CPP_MIN_LOG_LEVEL says; TensorFlow's first graph run
// in a process then prints two lines that tell a pipeline user nothing to act on, into the
// middle of the progress display. startupNoise are their beginnings and ends.
var startupNoise = []struct{ prefix, suffix string }{
	{"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", ""},
	{"I0000 ", "MLIR V1 optimization pass is not enabled"},
}

var absorbOnce sync.Once

// absorbStartupLines runs a trivial graph once, so that TensorFlow prints its once-per-process
// start-up lines now, with stderr passing through a filter that drops exactly those lines
// and forwards everything else (other goroutines may write meanwhile). It does nothing when
// TF_CPP_MIN_LOG_LEVEL is 0, which asks for every message.
func absorbStartupLines() {
	absorbOnce.Do(func() {
		if level, err := strconv.Atoi(os.Getenv("TF_CPP_MIN_LOG_LEVEL")); err != nil || level < 1 {
			return
		}
		saved, err := syscall.Dup(2)
		if err != nil {
			return
		}
		defer syscall.Close(saved)
		r, w, err := os.Pipe()
		if err != nil {
			return
		}
		if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
			r.Close()
			w.Close()
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			forwardExceptStartupNoise(r, os.NewFile(uintptr(saved), "stderr"))
		}()
		runTrivialGraph()
		syscall.Dup3(saved, 2, 0) // stderr is itself again
		w.Close()                 // the pipe's last writer: the filter sees the end
		<-done
		r.Close()
	})
}

// forwardExceptStartupNoise copies lines from r to w, leaving out the start-up lines.
func forwardExceptStartupNoise(r io.Reader, w io.Writer) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" && !isStartupNoise(strings.TrimRight(line, "\n")) {
			io.WriteString(w, line)
		}
		if err != nil {
			return
		}
	}
}

func isStartupNoise(line string) bool {
	for _, n := range startupNoise {
		if strings.HasPrefix(line, n.prefix) && strings.HasSuffix(line, n.suffix) {
			return true
		}
	}
	return false
}

// runTrivialGraph runs a graph of one constant in a new session.
func runTrivialGraph() {
	s := op.NewScope()
	c := op.Const(s, int32(1))
	g, err := s.Finalize()
	if err != nil {
		return
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		return
	}
	defer sess.Close()
	sess.Run(nil, []tf.Output{c}, nil)
}
