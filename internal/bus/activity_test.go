package bus_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestActivity reads each channel's activity from the streams and the
// delivery state: what waits, the newest event received (waiting,
// delivered or parked), the newest delivery and the shared state.
func TestActivity(t *testing.T) {
	c := bustest.New(t, func(cfg *bus.Config) { cfg.HistoryMaxAge = time.Hour })
	at := func(minute int) time.Time { return time.Date(2026, 3, 4, 5, minute, 0, 0, time.UTC) }
	event := func(id, name string, minute int, body string) jamf.Received {
		return jamf.Received{InstallationID: id, Event: name, ReceivedAt: at(minute), Body: []byte(body)}
	}

	// a: one event delivered, then one waiting; paused by a 429.
	tk := newTaken()
	consumer(t, c, tk.take)
	before := time.Now()
	publish(t, c, event("a", "ComputerAdded", 1, `{"a":1}`))
	tk.next(t).Settle(nil)
	// The ack goes out within a moment of Settle: wait for the backlog too.
	testwait.For(t, 10*time.Second, "the delivered event in the history, and its ack", func() bool {
		h, err := c.History(t.Context(), "a", time.Time{}, time.Time{})
		got, aerr := c.Activity(t.Context(), []string{"a"})
		return err == nil && len(h) == 1 && aerr == nil && got["a"].Waiting == 0
	})
	publish(t, c, event("a", "ComputerCheckIn", 2, `{"a":2}`))
	waiting := tk.next(t) // taken, not settled: still in the backlog
	paused := registry.DeliveryState{PausedUntil: at(30), LastStatus: http.StatusTooManyRequests, LastBody: "rate_limited"}
	if _, ok, err := c.SetDeliveryState(t.Context(), "a", paused, 0); err != nil || !ok {
		t.Fatalf("SetDeliveryState = %t, %v", ok, err)
	}
	// b: only a dead letter, received later than anything of a.
	if err := c.DeadLetter(t.Context(), jamf.DeadLetter{Received: event("b", "ComputerPolicyFinished", 3, `{"b":1}`), Reason: "channel_dead"}); err != nil {
		t.Fatal(err)
	}

	all, err := c.Activity(t.Context(), []string{"a", "b", "c"})
	if err != nil {
		t.Fatalf("Activity: %v", err)
	}
	a := all["a"]
	if a.LastDelivered.Before(before) || a.LastDelivered.After(time.Now()) {
		t.Errorf("a's last delivery = %v, want when the history kept its event (since %v)", a.LastDelivered, before)
	}
	a.LastDelivered = time.Time{}
	want := map[string]bus.Activity{
		"a": {Waiting: 1, LastReceived: at(2), LastEvent: "ComputerCheckIn", State: paused},
		"b": {LastReceived: at(3), LastEvent: "ComputerPolicyFinished"},
		"c": {},
	}
	all["a"] = a
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("Activity (-want +got):\n%s", diff)
	}

	one, err := c.Activity(t.Context(), []string{"a"})
	if err != nil {
		t.Fatalf("Activity of one: %v", err)
	}
	if got := one["a"]; got.Waiting != 1 || got.LastEvent != "ComputerCheckIn" || got.LastDelivered.IsZero() {
		t.Errorf("Activity of a alone = %+v; want what it had among the others", got)
	}

	waiting.Settle(nil)
	testwait.For(t, 10*time.Second, "a's backlog to empty", func() bool {
		got, err := c.Activity(t.Context(), []string{"a"})
		return err == nil && got["a"].Waiting == 0 && got["a"].LastEvent == "ComputerCheckIn"
	})
	if _, err := c.Activity(t.Context(), []string{"not.an.id"}); err == nil {
		t.Error("Activity of an ID that cannot be a subject token succeeded")
	}
}

// TestActivityWithoutHistory reads no delivery time when no history is kept.
func TestActivityWithoutHistory(t *testing.T) {
	c := bustest.New(t)
	publish(t, c, received("a", "ComputerAdded", `{"a":1}`))
	got, err := c.Activity(t.Context(), []string{"a"})
	if err != nil {
		t.Fatalf("Activity: %v", err)
	}
	if a := got["a"]; a.Waiting != 1 || a.LastEvent != "ComputerAdded" || !a.LastDelivered.IsZero() {
		t.Errorf("Activity = %+v; want one waiting ComputerAdded and no delivery", a)
	}
}
