package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

type report struct{ id, reason string }

// TestDeadChannelRoundTrip reports dead channels before any installer
// runs; the installer gets them once it starts, a failed handling is
// retried, and an acknowledged report is gone from the work queue.
func TestDeadChannelRoundTrip(t *testing.T) {
	c := bustest.New(t)
	reports := []report{{"a", "channel_not_found"}, {"b", "no_service"}, {"a", "channel_not_found"}}
	for _, r := range reports {
		if err := c.ReportDeadChannel(t.Context(), r.id, r.reason); err != nil {
			t.Fatalf("ReportDeadChannel: %v", err)
		}
	}
	if err := c.ReportDeadChannel(t.Context(), "x.y", "r"); !errors.Is(err, bus.ErrInvalidInstallationID) {
		t.Errorf("ReportDeadChannel(x.y) = %v, want ErrInvalidInstallationID", err)
	}

	var mu sync.Mutex
	var got []report
	failed := false
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.ConsumeDeadChannels(ctx, func(_ context.Context, id, reason string) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, report{id, reason})
			if id == "b" && !failed {
				failed = true
				return errors.New("database down")
			}
			return nil
		})
	}()
	testwait.For(t, 5*time.Second, "the reports", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	testwait.For(t, 5*time.Second, "the work queue to empty", func() bool { return streamMsgs(t, c, bus.StreamControl) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ConsumeDeadChannels: %v", err)
	}

	// The repeated report of "a" within the dedup window is stored once;
	// "b" comes twice because the first handling failed.
	want := []report{{"a", "channel_not_found"}, {"b", "no_service"}, {"b", "no_service"}}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(report{})); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}
