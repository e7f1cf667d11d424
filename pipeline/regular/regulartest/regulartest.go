// Package regulartest helps tests of code that must not read named pipes.
package regulartest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Within runs f and returns its error, failing the test if f has not returned within 30
// seconds (it blocks reading a named pipe); each of pipes is then opened for writing, which
// lets a read blocked on one return.
func Within(t testing.TB, what string, f func() error, pipes ...string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		for _, p := range pipes {
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
		<-done
		t.Fatalf("%s blocks reading a named pipe", what)
		return nil
	}
}
