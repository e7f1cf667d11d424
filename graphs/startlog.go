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
	"golang.org/x/sys/unix"
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

// QuietStartupLines runs a trivial graph once, so that TensorFlow prints its once-per-process
// start-up lines now, with stderr (file descriptor 2) passing through a filter that drops
// exactly those lines and forwards everything else that other goroutines write meanwhile. It
// does nothing when TF_CPP_MIN_LOG_LEVEL is 0, which asks for every message, and nothing after
// its first call. Call it after LoadTensorFlow, at a moment when the process cannot end in the
// few milliseconds it takes (output written then would be lost) and nothing asks whether
// stderr is a terminal.
func QuietStartupLines() {
	absorbOnce.Do(func() {
		if level, err := strconv.Atoi(os.Getenv("TF_CPP_MIN_LOG_LEVEL")); err != nil || level < 1 {
			return
		}
		saved, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 0)
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
			forwardExceptStartupNoise(r, fdWriter(saved))
		}()
		runTrivialGraph()
		syscall.Dup3(saved, 2, 0) // stderr is itself again
		w.Close()                 // the pipe's last writer: the filter sees the end
		<-done
		r.Close()
	})
}

// fdWriter writes to a file descriptor it does not own. (Not os.NewFile: the *os.File's
// finalizer would close the descriptor a second time, after its number had been reused.)
type fdWriter int

func (fd fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(int(fd), p[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
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
