package graphs

/*
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// While a thread captures (pl_capturing), what C code on it writes to the C library's stderr
// is kept in pl_said instead of written, except TensorFlow's and Abseil's log lines. Every
// other write goes to file descriptor 2 at once, as an unbuffered stderr would.
static __thread int pl_capturing;
static __thread char pl_said[1024];
static __thread size_t pl_said_len;

// pl_is_log_line: TensorFlow's log lines start with a date ("2026-12-07 06:40:00.123456: E
// ..."), Abseil's with a severity letter and four digits ("E0000 00:00:..."), and before its
// first line Abseil warns "WARNING: All log messages before absl::InitializeLog() ...".
static int pl_is_log_line(const char *b, size_t n) {
	if (n >= 9 && memcmp(b, "WARNING: ", 9) == 0) return 1;
	if (n >= 5 && b[0] >= '0' && b[0] <= '9' && b[4] == '-') return 1;
	if (n >= 5 && strchr("IWEF", b[0]) != NULL && b[1] >= '0' && b[1] <= '9' &&
	    b[2] >= '0' && b[2] <= '9' && b[3] >= '0' && b[3] <= '9' && b[4] >= '0' && b[4] <= '9') return 1;
	return 0;
}

static ssize_t pl_write(void *cookie, const char *b, size_t n) {
	(void)cookie;
	if (pl_capturing && !pl_is_log_line(b, n)) {
		size_t room = sizeof pl_said - pl_said_len;
		size_t k = n < room ? n : room;
		memcpy(pl_said + pl_said_len, b, k);
		pl_said_len += k;
		return (ssize_t)n;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(2, b + done, n - done);
		if (w < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN) {
				struct pollfd p = {2, POLLOUT, 0};
				poll(&p, 1, -1);
				continue;
			}
			return (ssize_t)done; // 0 for an error: a cookie's write must not return a negative value
		}
		done += (size_t)w;
	}
	return (ssize_t)n;
}

// pl_hook_stderr makes the C library's stderr an unbuffered stream written by pl_write.
static int pl_hook_stderr(void) {
	cookie_io_functions_t io = {NULL, pl_write, NULL, NULL};
	FILE *f = fopencookie(NULL, "w", io);
	if (f == NULL) return -1;
	if (setvbuf(f, NULL, _IONBF, 0) != 0) {
		fclose(f);
		return -1;
	}
	fflush(stderr);
	stderr = f;
	return 0;
}

static void pl_capture_begin(void) {
	pl_said_len = 0;
	pl_capturing = 1;
}

// pl_capture_end stops capturing and returns what was kept, *n bytes of this thread's buffer,
// valid until the thread captures again.
static const char *pl_capture_end(size_t *n) {
	pl_capturing = 0;
	*n = pl_said_len;
	pl_said_len = 0;
	return pl_said;
}
*/
import "C"

import (
	"runtime"
	"strings"
	"sync"
)

// libjpeg-turbo, compiled into libtensorflow, writes its warnings and errors to the C
// library's stderr itself ("Corrupt JPEG data: 2 extraneous bytes before marker 0xd9"),
// naming no file, in the middle of the progress display. The process's C stderr is made a
// stream that writes straight through to file descriptor 2, except on a thread that captures:
// there, what C code writes during the call (other than TensorFlow's and Abseil's log lines,
// which still go out at once, so that a crash's last words are not held back) is kept for the
// caller, who knows which file it was decoding. Go's own writes to os.Stderr never pass
// through it.

var stderrHooked = sync.OnceValue(func() bool { return C.pl_hook_stderr() == 0 })

// CaptureCallerStderr runs call on the calling goroutine's thread and returns what C code
// wrote to stderr on that thread meanwhile, trimmed (at most a kilobyte), with call's error.
// It is meant for a TensorFlow session made with CallerThreadOptions, whose kernels run on
// the caller's thread: what libjpeg-turbo says while decoding a file is then returned to the
// code that decodes it, and printed nowhere. If the C stderr could not be hooked, call's
// output goes to stderr as usual and the result is "".
func CaptureCallerStderr(call func() error) (string, error) {
	if !stderrHooked() {
		return "", call()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	said := ""
	err := func() error {
		C.pl_capture_begin()
		// Ended whatever happens, a panic included: a thread left capturing would hide what
		// later calls on it write. Copied only when something was said (still on the thread
		// whose buffer it is): a clean decode allocates nothing.
		defer func() {
			var n C.size_t
			if p := C.pl_capture_end(&n); n > 0 {
				said = strings.TrimSpace(C.GoStringN(p, C.int(n)))
			}
		}()
		return call()
	}()
	return said, err
}
