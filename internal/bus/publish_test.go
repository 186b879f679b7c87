package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

func received(id, event, body string) jamf.Received {
	return jamf.Received{
		InstallationID: id,
		Event:          event,
		ReceivedAt:     time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC),
		Body:           []byte(body),
	}
}

func TestPublishStoresEvent(t *testing.T) {
	c := bustest.New(t)
	r := received("6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11", "ComputerCheckIn", `{"webhook":{"webhookEvent":"ComputerCheckIn"}}`)
	if err := c.Publish(t.Context(), r); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	s, err := c.JetStream().Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	m, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatalf("GetMsg: %v", err)
	}
	if want := "jamf.events." + r.InstallationID; m.Subject != want {
		t.Errorf("subject = %q, want %q", m.Subject, want)
	}
	if !bytes.Equal(m.Data, r.Body) {
		t.Errorf("body = %q, want %q", m.Data, r.Body)
	}
	want := map[string]string{
		bus.HeaderInstallation: r.InstallationID,
		bus.HeaderEvent:        "ComputerCheckIn",
		bus.HeaderReceivedAt:   "2026-03-04T05:06:07.890123456Z",
		jetstream.MsgIDHeader:  bus.EventMsgID(r.InstallationID, r.Body),
		// The server keeps the publish expectation with the message.
		jetstream.ExpectedStreamHeader: bus.StreamEvents,
	}
	got := map[string]string{}
	for k := range m.Header {
		got[k] = m.Header.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if id := got[jetstream.MsgIDHeader]; len(id) != 16 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("Nats-Msg-Id = %q, want 16 characters of base64url", id)
	}
}

func TestPublishDedup(t *testing.T) {
	tests := []struct {
		name   string
		second jamf.Received
		want   uint64
	}{
		{name: "same installation and body", second: received("a", "ComputerAdded", `{"x":1}`), want: 1},
		{name: "same body, other event name", second: received("a", "Other", `{"x":1}`), want: 1},
		{name: "other body", second: received("a", "ComputerAdded", `{"x":2}`), want: 2},
		{name: "other installation", second: received("b", "ComputerAdded", `{"x":1}`), want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bustest.New(t)
			if err := c.Publish(t.Context(), received("a", "ComputerAdded", `{"x":1}`)); err != nil {
				t.Fatalf("first Publish: %v", err)
			}
			if err := c.Publish(t.Context(), tt.second); err != nil {
				t.Fatalf("second Publish: %v; a repeat must be a success", err)
			}
			if got := streamMsgs(t, c, bus.StreamEvents); got != tt.want {
				t.Errorf("stream holds %d messages, want %d", got, tt.want)
			}
		})
	}
}

func TestPublishRejects(t *testing.T) {
	c := bustest.New(t)
	tests := []struct {
		name string
		r    jamf.Received
		want error
	}{
		{name: "empty id", r: received("", "E", "{}"), want: bus.ErrInvalidInstallationID},
		{name: "dot in id", r: received("a.b", "E", "{}"), want: bus.ErrInvalidInstallationID},
		{name: "wildcard id", r: received("*", "E", "{}"), want: bus.ErrInvalidInstallationID},
		{name: "tail wildcard id", r: received(">", "E", "{}"), want: bus.ErrInvalidInstallationID},
		{name: "space in id", r: received("a b", "E", "{}"), want: bus.ErrInvalidInstallationID},
		{name: "no event", r: received("a", "", "{}"), want: bus.ErrNoEvent},
		{name: "event of control characters", r: received("a", "\r\n", "{}"), want: bus.ErrNoEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Publish(t.Context(), tt.r); !errors.Is(err, tt.want) {
				t.Errorf("Publish = %v, want %v", err, tt.want)
			}
		})
	}
	if got := streamMsgs(t, c, bus.StreamEvents); got != 0 {
		t.Errorf("stream holds %d messages, want 0", got)
	}
}

// TestPublishFullStream fills a small stream: it must refuse the event that
// does not fit and keep the ones it acknowledged.
func TestPublishFullStream(t *testing.T) {
	c := bustest.New(t, func(cfg *bus.Config) { cfg.MaxBytes = 8 << 10 })
	body := strings.Repeat("x", 1000)
	var stored uint64
	var err error
	for i := range 20 {
		err = c.Publish(t.Context(), received("a", "E", body+string(rune('a'+i))))
		if err != nil {
			break
		}
		stored++
	}
	if err == nil {
		t.Fatal("Publish never failed on a full stream")
	}
	if stored == 0 {
		t.Fatal("no event fitted in the stream")
	}
	if got := streamMsgs(t, c, bus.StreamEvents); got != stored {
		t.Errorf("stream holds %d messages, want the %d acknowledged", got, stored)
	}
	s, _ := c.JetStream().Stream(t.Context(), bus.StreamEvents)
	if first := s.CachedInfo().State.FirstSeq; first != 1 {
		t.Errorf("first sequence = %d, want 1: an acknowledged event was dropped", first)
	}
}

// TestPublishServerDown stops the server: Publish must fail by the
// context's deadline, and work again once the server is back.
func TestPublishServerDown(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	if err := c.Publish(t.Context(), received("a", "E", `{"n":1}`)); err != nil {
		t.Fatalf("Publish before stop: %v", err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	errc := make(chan error, 1)
	go func() { errc <- c.Publish(ctx, received("a", "E", `{"n":2}`)) }()
	err := testwait.Receive(t, errc, 30*time.Second, "Publish with the server down to give up at its 500ms deadline")
	cancel()
	if err == nil {
		t.Fatal("Publish with the server down: got nil error")
	}
	if c.Connected() {
		t.Error("Connected() = true with the server down")
	}

	srv.Start()
	testwait.For(t, 15*time.Second, "a publish after the restart", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err = c.Publish(ctx, received("a", "E", `{"n":3}`))
		return err == nil
	})
	// The connections reconnect each on its own schedule; a publish can
	// succeed a moment before the other one is back.
	testwait.For(t, 15*time.Second, "Connected() after a successful publish", c.Connected)
	s, err := c.JetStream().Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	last, err := s.GetLastMsgForSubject(t.Context(), "jamf.events.a")
	if err != nil {
		t.Fatalf("last message: %v", err)
	}
	if string(last.Data) != `{"n":3}` {
		t.Errorf("last stored body = %s, want {\"n\":3}", last.Data)
	}
}

// TestPublishWhileDisconnected stops the server: a publish must fail at
// once rather than wait in a reconnect buffer for its deadline, and must
// not be stored when the server comes back, since its caller has already
// answered that it failed.
func TestPublishWhileDisconnected(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	if err := c.Publish(t.Context(), received("a", "E", `{"n":1}`)); err != nil {
		t.Fatalf("Publish before stop: %v", err)
	}

	srv.Stop()
	testwait.For(t, 15*time.Second, "the client to see the server gone", func() bool { return gone(c) })
	// The deadline only bounds a broken test: a publish that waited for
	// the reconnect would fail with it, not with the full buffer.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	err := c.Publish(ctx, received("a", "E", `{"n":2}`))
	cancel()
	if !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Fatalf("Publish while disconnected = %v, want nats.ErrReconnectBufExceeded at once", err)
	}

	srv.Start()
	testwait.For(t, 15*time.Second, "the client to reconnect", c.Connected)
	if err := c.Publish(t.Context(), received("a", "E", `{"n":3}`)); err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	var bodies []string
	s, err := c.JetStream().Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		bodies = append(bodies, string(m.Data))
	}
	if diff := cmp.Diff([]string{`{"n":1}`, `{"n":3}`}, bodies); diff != "" {
		t.Errorf("stored bodies (-want +got):\n%s", diff)
	}
}

// TestPublishAckLostOrLate puts a proxy between the publisher and the
// server that drops or holds back what the server sends the publish
// connection (its acknowledgements): the publish must fail with
// bus.ErrAckLate by its deadline, never succeed, and the pipeline must
// serve the next publish once acknowledgements flow again. A late
// acknowledgement arriving after the caller gave up changes nothing.
func TestPublishAckLostOrLate(t *testing.T) {
	for _, rule := range []bustest.Rule{bustest.Drop, bustest.Hold} {
		name := map[bustest.Rule]string{bustest.Drop: "lost", bustest.Hold: "late"}[rule]
		t.Run(name, func(t *testing.T) {
			srv := bustest.Server(t)
			proxy := bustest.NewProxy(t, srv.URL())
			c := srv.Connect(t, func(cfg *bus.Config) { cfg.URL = proxy.URL(); cfg.Name = "ackproxy" })
			if err := c.Publish(t.Context(), received("a", "E", `{"n":1}`)); err != nil {
				t.Fatalf("Publish before the proxy interferes: %v", err)
			}

			proxy.Set("ackproxy-publish", rule)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			err := c.Publish(ctx, received("a", "E", `{"n":2}`))
			cancel()
			if !errors.Is(err, bus.ErrAckLate) {
				t.Fatalf("Publish with its acknowledgement %s: error = %v, want bus.ErrAckLate", name, err)
			}

			proxy.Set("ackproxy-publish", bustest.Pass)
			if err := c.Publish(t.Context(), received("a", "E", `{"n":3}`)); err != nil {
				t.Fatalf("Publish after acknowledgements flow again: %v", err)
			}
			// The server stored the event whose acknowledgement went
			// missing: a 503 promises nothing either way, and Jamf's retry
			// of it is folded by the message ID.
			if err := c.Publish(t.Context(), received("a", "E", `{"n":2}`)); err != nil {
				t.Fatalf("Publish of the event again: %v", err)
			}
			if got := streamMsgs(t, c, bus.StreamEvents); got != 3 {
				t.Errorf("stream holds %d messages, want 3", got)
			}
		})
	}
}

// TestPublishConcurrent publishes from many goroutines at once through the
// shared pipeline, more than it keeps pending: each must get its own
// acknowledgement and every event must be stored once.
func TestPublishConcurrent(t *testing.T) {
	c := bustest.New(t)
	const n = 600
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- c.Publish(t.Context(), received("a", "E", fmt.Sprintf(`{"n":%d}`, i)))
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Publish: %v", err)
		}
	}
	if got := streamMsgs(t, c, bus.StreamEvents); got != n {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
}

// fakeStream connects to a server with no streams, where answer, a plain
// subscriber to the events' subject, plays the stream: it takes every
// publish and answers it, or not, as the test needs.
func fakeStream(t *testing.T, answer func(m *nats.Msg)) *bus.Conn {
	t.Helper()
	srv := bustest.Server(t)
	c, err := bus.Connect(t.Context(), bus.Config{URL: srv.URL()}, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe("jamf.events.>", answer); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPublishResendsUnanswered plays a stream leader that stops with a
// publish in hand (a cluster node restarted): the first publish is never
// answered. Publish sends the same message again, with the same message
// ID, and succeeds on the answer to that.
func TestPublishResendsUnanswered(t *testing.T) {
	var ids []string
	var mu sync.Mutex
	c := fakeStream(t, func(m *nats.Msg) {
		mu.Lock()
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		n := len(ids)
		mu.Unlock()
		if n > 1 {
			_ = m.Respond([]byte(`{"stream":"JAMF_EVENTS","seq":1}`))
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, received("inst", "E", `{"n":1}`)); err != nil {
		t.Fatalf("Publish = %v, want success on the answer to the second send", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" {
		t.Errorf("sent with message IDs %q, want the same ID twice", ids)
	}
}

// TestPublishAsksAgainWhileInProcess plays a stream that is still storing
// a copy publish sent before: it answers "duplicate message id is in
// process", then, asked again, that it has the message. Publish succeeds.
func TestPublishAsksAgainWhileInProcess(t *testing.T) {
	var asked atomic.Int32
	c := fakeStream(t, func(m *nats.Msg) {
		if asked.Add(1) == 1 {
			_ = m.Respond([]byte(`{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}`))
			return
		}
		_ = m.Respond([]byte(`{"stream":"JAMF_EVENTS","seq":1,"duplicate":true}`))
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, received("inst", "E", `{"n":1}`)); err != nil {
		t.Fatalf("Publish = %v, want success once the stream has the copy", err)
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the stream was asked %d times, want 2", n)
	}
}
