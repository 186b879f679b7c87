// Package testwait lets a test wait for something that happens by itself
// (a message delivered, a server back up) by looking again until it holds,
// never by sleeping a fixed time and hoping: a loaded machine only makes
// such a test slower, never wrong.
package testwait

import (
	"errors"
	"testing"
	"time"
)

// poll is how often For and Until look again.
const poll = 20 * time.Millisecond

// For checks cond until it holds and fails the test, naming what it waited
// for, when it still does not after timeout. Keep timeouts generous: they
// only bound how long a broken test hangs.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New("still waiting for " + what)
	})
}

// Until calls check until it returns nil and fails the test with the last
// error check returned when it still has not after timeout, so that the
// failure says what the test last saw. check may itself fail the test (on
// a process that exited early, say).
func Until(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// Receive returns the next value from ch and fails the test, naming what it
// waited for, when none comes within timeout: a result from a goroutine, a
// process that should stop.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case v := <-ch:
		return v
	case <-deadline.C:
		t.Fatalf("after %v: still waiting for %s", timeout, what)
		var zero T
		return zero
	}
}
