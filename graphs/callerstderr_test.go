package graphs

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// stderrHelperVar makes the test binary decode a JPEG with stray bytes before its end
// marker, on which libjpeg-turbo warns, once as any code would and once capturing.
const stderrHelperVar = "GRAPHS_TEST_STDERR_HELPER"

func stderrHelper() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if err := LoadTensorFlow(); err != nil {
		fail(err)
	}
	QuietStartupLines()
	img := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		fail(err)
	}
	data := buf.Bytes()
	data = append(append(append([]byte{}, data[:len(data)-2]...), bytes.Repeat([]byte{0x11}, 50)...), 0xff, 0xd9)
	s := op.NewScope()
	in := op.Placeholder(s, tf.String)
	out := op.DecodeJpeg(s, in)
	g, err := s.Finalize()
	if err != nil {
		fail(err)
	}
	sess, err := tf.NewSession(g, CallerThreadOptions())
	if err != nil {
		fail(err)
	}
	t, err := tf.NewTensor(string(data))
	if err != nil {
		fail(err)
	}
	decode := func() error {
		_, err := sess.Run(map[tf.Output]*tf.Tensor{in: t}, []tf.Output{out}, nil)
		return err
	}
	if _, err := CaptureCallerStderr(decode); err != nil { // hooks the C library's stderr
		fail(err)
	}
	if err := decode(); err != nil { // not capturing: libjpeg-turbo's line goes to stderr
		fail(err)
	}
	said, err := CaptureCallerStderr(decode)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "captured %q\n", said)
}

// libjpeg-turbo's messages, written by C code to the C library's stderr, go to the process's
// stderr as before, except during CaptureCallerStderr on the thread that called it, which
// gets them instead.
func TestCaptureCallerStderrTakesOnlyTheCallersMessages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), stderrHelperVar+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	const warning = " extraneous bytes before marker 0xd9"
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "Corrupt JPEG data: ") || !strings.HasSuffix(lines[0], warning) ||
		lines[1] != fmt.Sprintf("captured %q", lines[0]) {
		t.Errorf("stderr:\n%s\nwant libjpeg-turbo's warning once, as written, then captured", stderr.String())
	}
}
