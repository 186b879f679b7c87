package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestClasses(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		permanent bool
		delay     time.Duration
		hasDelay  bool
	}{
		{name: "plain", err: base},
		{name: "permanent", err: Permanent(base), permanent: true},
		{name: "wrapped permanent", err: fmt.Errorf("post: %w", Permanent(base)), permanent: true},
		{name: "after", err: After(3*time.Second, base), delay: 3 * time.Second, hasDelay: true},
		{name: "wrapped after", err: fmt.Errorf("x: %w", After(time.Second, base)), delay: time.Second, hasDelay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tt.permanent)
			}
			d, ok := Delay(tt.err)
			if d != tt.delay || ok != tt.hasDelay {
				t.Errorf("Delay = %v, %v; want %v, %v", d, ok, tt.delay, tt.hasDelay)
			}
			if !errors.Is(tt.err, base) {
				t.Errorf("errors.Is(err, base) = false; the cause must stay reachable")
			}
		})
	}
	if Permanent(nil) != nil || After(time.Second, nil) != nil {
		t.Error("marking a nil error must give nil")
	}
}

func TestBackoff(t *testing.T) {
	base, max := time.Second, 5*time.Minute
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{9, 256 * time.Second}, {10, max}, {1000, max},
	}
	for _, tt := range tests {
		if got := Ceiling(tt.attempt, base, max); got != tt.ceil {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.attempt, got, tt.ceil)
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Backoff(tt.attempt, base, max)
			if d < 0 || d > tt.ceil {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", tt.attempt, d, tt.ceil)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("Backoff(%d) gave only %d distinct values in 200 draws; want jitter", tt.attempt, len(seen))
		}
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(t.Context(), time.Minute) || time.Since(start) != time.Minute {
			t.Errorf("Sleep(1m) returned false, or after %v", time.Since(start))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		if Sleep(ctx, time.Hour) || time.Since(start) != time.Second {
			t.Errorf("Sleep(1h) under a context ending in 1s returned true, or after %v", time.Since(start))
		}
	})
}
