package testwait

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestUntilReturnsOnceTheCheckPasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		Until(t, time.Minute, func() error {
			calls++
			if calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if calls != 3 {
			t.Errorf("check called %d times, want 3", calls)
		}
	})
}

func TestUntilFailsWithTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{TB: t}
		calls := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { _ = recover() }()
			Until(rec, time.Second, func() error {
				calls++
				return fmt.Errorf("seen %d", calls)
			})
		}()
		<-done
		if want := fmt.Sprintf("after 1s: seen %d", calls); rec.failure != want {
			t.Errorf("failure = %q, want %q", rec.failure, want)
		}
	})
}

func TestForNamesWhatItWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { _ = recover() }()
			For(rec, time.Second, "the moon", func() bool { return false })
		}()
		<-done
		if !strings.Contains(rec.failure, "still waiting for the moon") {
			t.Errorf("failure = %q, want it to name what it waited for", rec.failure)
		}
	})
}

func TestReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		ch <- 7
		if got := Receive(t, ch, time.Second, "a number"); got != 7 {
			t.Errorf("Receive = %d, want 7", got)
		}
		rec := &recorder{TB: t}
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			defer func() { _ = recover() }()
			Receive(rec, ch, time.Second, "another number")
		}()
		<-done
		if want := "after 1s: still waiting for another number"; rec.failure != want {
			t.Errorf("failure = %q, want %q", rec.failure, want)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("Receive gave up after %v, want 1s", waited)
		}
	})
}

// recorder is a testing.TB whose Fatalf records the failure and stops the
// goroutine, so that a test can check how Until fails.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	panic("recorder: Fatalf")
}
