package bus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestAckWhileDisconnectedLands stops the server while a handler runs: its
// ack, made while the client reconnects, must reach the server once it is
// back, so the event is not delivered a second time. Publishes fail fast
// while disconnected (TestPublishWhileDisconnected); acks must not.
func TestAckWhileDisconnectedLands(t *testing.T) {
	srv := bustest.Server(t)
	// A long AckWait: within the test only the ack can settle the event.
	c := srv.Connect(t, func(cfg *bus.Config) { cfg.AckWait = time.Minute })
	var deliveries atomic.Int32
	first := make(chan *bus.Delivery, 1)
	consumer(t, c, func(_ context.Context, d *bus.Delivery) error {
		if deliveries.Add(1) == 1 {
			first <- d
			return nil
		}
		d.Settle(nil)
		return nil
	})
	publish(t, c, received("inst", "E", `{"n":1}`))
	d := <-first

	srv.Stop()
	testwait.For(t, 15*time.Second, "the client to see the server gone", func() bool { return gone(c) })
	d.Settle(nil) // Ack while disconnected: kept in the reconnect buffer
	srv.Start()
	testwait.For(t, 15*time.Second, "the client to reconnect", c.Connected)

	// Under interest retention the acked event leaves the stream: only the
	// ack made while disconnected can have removed it.
	testwait.For(t, 15*time.Second, "the event acked and removed", func() bool { return settled(t, c) })
	if n := deliveries.Load(); n != 1 {
		t.Errorf("event delivered %d times, want 1: the ack made while disconnected was lost", n)
	}
}

// TestPublishersWhileDisconnected checks every publisher of the package
// with the server down: each fails at once with an error, as its callers
// (the consume loop, the dispatcher, ingest) expect and retry, and none is
// stored once the server is back.
func TestPublishersWhileDisconnected(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	srv.Stop()
	testwait.For(t, 15*time.Second, "the client to see the server gone", func() bool { return gone(c) })

	r := received("inst", "E", `{"n":1}`)
	tests := []struct {
		name    string
		publish func(context.Context) error
	}{
		{name: "event", publish: func(ctx context.Context) error { return c.Publish(ctx, r) }},
		{name: "dead letter", publish: func(ctx context.Context) error {
			return c.DeadLetter(ctx, jamf.DeadLetter{Received: r, Reason: "test", Attempts: 1})
		}},
		{name: "dead channel report", publish: func(ctx context.Context) error {
			return c.ReportDeadChannel(ctx, "inst", "channel_not_found")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The deadline only bounds a broken test: a publish that
			// waited for the reconnect would fail with it, not with the
			// full buffer.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := tt.publish(ctx); !errors.Is(err, nats.ErrReconnectBufExceeded) {
				t.Errorf("publish while disconnected = %v, want nats.ErrReconnectBufExceeded at once", err)
			}
		})
	}

	srv.Start()
	testwait.For(t, 15*time.Second, "the client to reconnect", c.Connected)
	// Anything the client had kept would be sent right after the
	// reconnect, so before this publish, whose ack therefore comes after
	// the server stored them.
	publish(t, c, received("inst", "E", `{"probe":1}`))
	want := map[string]uint64{bus.StreamEvents: 1, bus.StreamDead: 0, bus.StreamControl: 0}
	for stream, n := range want {
		if got := streamMsgs(t, c, stream); got != n {
			t.Errorf("%s holds %d messages after the restart, want %d", stream, got, n)
		}
	}
}

// gone reports whether both of c's connections have seen the server go. A
// message written before a connection notices is lost with the socket,
// whatever the reconnect buffer, so the tests act only after that.
func gone(c *bus.Conn) bool {
	return !c.NATSConn().IsConnected() && !c.PublishConn().IsConnected()
}
