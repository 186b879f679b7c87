// Package testwait lets a test wait for something that happens by itself
// (a message delivered, a server back up) by looking again until it holds,
// never by sleeping a fixed time and hoping: a loaded machine only makes
// such a test slower, never wrong.
package testwait

import (
	"testing"
	"time"
)

// poll is how often For looks again.
const poll = 20 * time.Millisecond

// For checks cond until it holds and fails the test, naming what it waited
// for, when it still does not after timeout. Keep timeouts generous: they
// only bound how long a broken test hangs.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("after %v still waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
