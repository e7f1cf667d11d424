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
// middle of the progress display. With oneDNN on, the first graph with an int32 Transpose
// (the ViT's gradients have one) logs, as an error, once per process, that oneDNN leaves
// int32 to Eigen (on any CPU, whatever the line says): expected, and nothing to act on; the
// trivial graph has such a Transpose so that the line comes while filtered. startupNoise are
// their beginnings and ends.
var startupNoise = []struct{ prefix, suffix string }{
	{"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", ""},
	{"I0000 ", "MLIR V1 optimization pass is not enabled"},
	{"", "] oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back to the default Eigen-based implementation if present."},
}

var absorbOnce sync.Once

// QuietStartupLines runs a trivial graph once, so that TensorFlow prints its once-per-process
// start-up lines now, with stderr (file descriptor 2) passing through a filter that drops
// exactly those lines and forwards everything else that other goroutines write meanwhile. It
// does nothing when TF_CPP_MIN_LOG_LEVEL is 0, which asks for every message, and nothing after
// its first call. Call it after LoadTensorFlow, at a moment when the process cannot end in the
// few milliseconds it takes (output written then would be lost, as would TensorFlow's last
// words if that first graph run crashed the process), nothing asks whether stderr is a
// terminal, and no child process starts (it would inherit the pipe and hold the filter open).
func QuietStartupLines() {
	absorbOnce.Do(func() {
		if level, err := strconv.Atoi(os.Getenv("TF_CPP_MIN_LOG_LEVEL")); err != nil || level < 1 {
			return
		}
		saved, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer func() {
			if saved >= 0 {
				syscall.Close(saved)
			}
		}()
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
		out := fdWriter(saved)
		go func() {
			defer close(done)
			forwardExceptStartupNoise(r, out)
		}()
		startupGraph()
		if err := syscall.Dup3(saved, 2, 0); err != nil {
			// stderr stays the pipe: the filter goes on forwarding for the process's life.
			saved = -1
			return
		}
		w.Close() // the pipe's last writer: the filter sees the end
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
		if err == syscall.EAGAIN { // a non-blocking stderr (the parent's choice): wait for room
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1)
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

// startupGraph is what QuietStartupLines runs while it filters (tests add writes of their own).
var startupGraph = runTrivialGraph

// runTrivialGraph runs a graph of one int32 Transpose, of a fed tensor so that it is not
// folded away, in a new session.
func runTrivialGraph() {
	s := op.NewScope()
	x := op.Placeholder(s.SubScope("x"), tf.Int32)
	y := op.Transpose(s, x, op.Const(s.SubScope("perm"), []int32{0}))
	g, err := s.Finalize()
	if err != nil {
		return
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		return
	}
	defer sess.Close()
	t, err := tf.NewTensor([]int32{1})
	if err != nil {
		return
	}
	sess.Run(map[tf.Output]*tf.Tensor{x: t}, []tf.Output{y}, nil)
}
