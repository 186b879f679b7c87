// Package retry classifies failures so that the one place that acts on them
// (the bus consume loop) can decide between retrying later and giving up,
// and computes and waits out the delays between tries. It is a leaf
// package.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that no retry will fix. A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type afterError struct {
	err error
	d   time.Duration
}

func (e *afterError) Error() string { return e.err.Error() }
func (e *afterError) Unwrap() error { return e.err }

// After marks err as worth retrying, but not before d has passed (a 429's
// Retry-After, say). A nil err stays nil.
func After(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &afterError{err: err, d: d}
}

// Delay returns the wait that After attached to err, if any.
func Delay(err error) (time.Duration, bool) {
	var a *afterError
	if errors.As(err, &a) {
		return a.d, true
	}
	return 0, false
}

// Backoff returns the wait before retry number attempt (1 for the first
// retry): exponential from base, capped at max, with full jitter, so a crowd
// of failures does not come back at the same instant.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	ceil := Ceiling(attempt, base, max)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// Ceiling returns the largest wait Backoff may return for attempt:
// base * 2^(attempt-1), capped at max.
func Ceiling(attempt int, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := base
	for i := 1; i < attempt; i++ {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	if d > max {
		return max
	}
	return d
}

// Sleep waits d, or less when ctx ends first, which it reports as false.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
