package bus_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestBacklogFillsAndDrains fills a small backlog: its state says it is
// full, publishes are refused, the metrics show it; once events are
// delivered they leave it and it has room again.
func TestBacklogFillsAndDrains(t *testing.T) {
	const maxBytes = 16 << 10
	c := bustest.New(t, func(cfg *bus.Config) { cfg.MaxBytes = maxBytes })
	reg := prometheus.NewRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	const size = 1024
	if s := backlogState(t, c); s.Full(size) {
		t.Fatalf("an empty backlog has no room: %+v", s)
	}
	body := strings.Repeat("x", 900)
	accepted := 0
	for i := range 100 {
		err := c.Publish(t.Context(), received("inst", "E", fmt.Sprintf(`{"n":%d,"pad":%q}`, i, body)))
		if err != nil {
			break
		}
		accepted++
	}
	if accepted == 0 || accepted == 100 {
		t.Fatalf("%d of 100 events accepted into a %d-byte backlog, want it to fill", accepted, maxBytes)
	}
	if s := backlogState(t, c); !s.Full(size) {
		t.Errorf("the backlog that refused an event has room: %+v", s)
	}
	want := fmt.Sprintf(`
# HELP jackalope_stream_messages Messages a stream holds; for JAMF_EVENTS, the events waiting for delivery.
# TYPE jackalope_stream_messages gauge
jackalope_stream_messages{stream="JAMF_CONTROL"} 0
jackalope_stream_messages{stream="JAMF_DEAD"} 0
jackalope_stream_messages{stream="JAMF_EVENTS"} %d
`, accepted)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "jackalope_stream_messages"); err != nil {
		t.Errorf("stream messages: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "jackalope_backlog_oldest_seconds", "jackalope_stream_limit_ratio"); err != nil || n != 4 {
		t.Errorf("oldest age and fill gauges: %d series, %v; want 1 + 3", n, err)
	}

	// Delivered events leave the backlog.
	tk := newTaken()
	consumer(t, c, tk.take)
	for range accepted {
		tk.next(t).Settle(nil)
	}
	testwait.For(t, 10*time.Second, "the backlog to drain and have room", func() bool {
		s := backlogState(t, c)
		return !s.Full(size) && s.Msgs == 0
	})
	if err := c.Publish(t.Context(), received("inst", "E", `{"after":1}`)); err != nil {
		t.Errorf("publish after the backlog drained: %v", err)
	}
}

// TestHistoryResend delivers events, reads them back from the history
// since a time, and resends a window of them.
func TestHistoryResend(t *testing.T) {
	c := bustest.New(t, func(cfg *bus.Config) { cfg.HistoryMaxAge = time.Hour })
	tk := newTaken()
	consumer(t, c, tk.take)
	deliver := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			publish(t, c, received("inst", "ComputerAdded", fmt.Sprintf(`{"n":%d}`, i)))
			tk.next(t).Settle(nil)
		}
		testwait.For(t, 10*time.Second, "the history to hold them", func() bool {
			h, err := c.History(t.Context(), "inst", time.Time{}, time.Time{})
			return err == nil && len(h) == to
		})
	}
	deliver(0, 3)
	mark := time.Now()
	deliver(3, 5)
	end := time.Now()
	deliver(5, 6)

	h, err := c.History(t.Context(), "inst", mark, end)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	var bodies []string
	for _, d := range h {
		bodies = append(bodies, string(d.Body))
		if d.Event != "ComputerAdded" || d.At.Before(mark) {
			t.Errorf("history entry %+v: want ComputerAdded delivered after %v", d, mark)
		}
	}
	if got := strings.Join(bodies, " "); got != `{"n":3} {"n":4}` {
		t.Errorf("history from the mark to the end = %s, want the two events delivered between", got)
	}
	if h, _ := c.History(t.Context(), "inst", end, time.Time{}); len(h) != 1 || string(h[0].Body) != `{"n":5}` {
		t.Errorf("history since the end = %+v, want the last event", h)
	}
	if h, _ := c.History(t.Context(), "other", time.Time{}, time.Time{}); len(h) != 0 {
		t.Errorf("another installation's history = %d entries, want 0", len(h))
	}

	n, err := c.ResendHistory(t.Context(), "inst", mark, end)
	if err != nil || n != 2 {
		t.Fatalf("ResendHistory = %d, %v; want 2", n, err)
	}
	for _, want := range []string{`{"n":3}`, `{"n":4}`} {
		d := tk.next(t)
		if got := string(d.Event().Body); got != want {
			t.Errorf("resent %s, want %s", got, want)
		}
		d.Settle(nil)
	}
	// Resent again within the dedup window, the two events, which the
	// history now holds twice each, are stored once more not at all: of the
	// five entries since the mark only the one never resent is stored.
	// The acks go out within a moment of Settle: wait for the backlog too.
	testwait.For(t, 10*time.Second, "the history to hold the resent events, and their acks", func() bool {
		h, err := c.History(t.Context(), "inst", mark, time.Time{})
		return err == nil && len(h) == 5 && backlog(t, c) == 0
	})
	if n, err := c.ResendHistory(t.Context(), "inst", mark, time.Time{}); err != nil || n != 5 {
		t.Fatalf("second ResendHistory = %d, %v; want the 5 entries read", n, err)
	}
	if b := backlog(t, c); b != 1 {
		t.Errorf("a repeated resend stored %d events, want 1 (the others folded by dedup)", b)
	}
	if got := string(tk.next(t).Event().Body); got != `{"n":5}` {
		t.Errorf("the repeated resend stored %s, want only {\"n\":5}", got)
	}
}

func TestHistoryOff(t *testing.T) {
	c := bustest.New(t)
	if _, err := c.History(t.Context(), "inst", time.Time{}, time.Time{}); !errors.Is(err, bus.ErrNoHistory) {
		t.Errorf("History without a history = %v, want ErrNoHistory", err)
	}
}
