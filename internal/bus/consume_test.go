package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

var errBoom = errors.New("boom")

// shortAck makes the server redeliver an unacknowledged message after a
// second, so tests see redeliveries quickly.
func shortAck(c *bus.Config) { c.AckWait = time.Second }

// taken is what a test's consumer got: each delivery, in order.
type taken struct {
	mu  sync.Mutex
	got []*bus.Delivery
	at  []time.Time
	ch  chan *bus.Delivery
}

func newTaken() *taken { return &taken{ch: make(chan *bus.Delivery, 1000)} }

func (tk *taken) take(_ context.Context, d *bus.Delivery) error {
	tk.mu.Lock()
	tk.got = append(tk.got, d)
	tk.at = append(tk.at, time.Now())
	tk.mu.Unlock()
	tk.ch <- d
	return nil
}

// next waits for the next delivery.
func (tk *taken) next(t *testing.T) *bus.Delivery {
	t.Helper()
	return testwait.Receive(t, tk.ch, 15*time.Second, "a delivery")
}

func (tk *taken) count() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return len(tk.got)
}

// consumer runs c.Consume into take until the returned stop is called or
// the test ends; stop returns Consume's error.
func consumer(t *testing.T, c *bus.Conn, take func(context.Context, *bus.Delivery) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- c.Consume(ctx, 8, take) }()
	var once sync.Once
	var err error
	halt := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Consume did not return within 30s of cancel")
			}
		})
		return err
	}
	var byTest sync.Once
	t.Cleanup(func() {
		// A test that stopped the consumer itself judged its error.
		mine := true
		byTest.Do(func() { mine = false })
		if err := halt(); err != nil && !mine {
			t.Errorf("Consume: %v", err)
		}
	})
	return func() error {
		byTest.Do(func() {})
		return halt()
	}
}

func dispatchInfo(t *testing.T, c *bus.Conn) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := c.JetStream().Consumer(t.Context(), bus.StreamEvents, bus.ConsumerDispatch)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// backlog returns how many events JAMF_EVENTS holds.
func backlog(t *testing.T, c *bus.Conn) uint64 {
	t.Helper()
	return backlogState(t, c).Msgs
}

// backlogState reads JAMF_EVENTS's state through c.
func backlogState(t *testing.T, c *bus.Conn) bus.StreamState {
	t.Helper()
	s, err := c.Backlog(t.Context())
	if err != nil {
		t.Fatalf("backlog: %v", err)
	}
	return s
}

// settled reports whether the dispatch consumer has nothing pending,
// delivered or not, and the backlog is empty.
func settled(t *testing.T, c *bus.Conn) bool {
	info := dispatchInfo(t, c)
	return info.NumAckPending == 0 && info.NumPending == 0 && backlog(t, c) == 0
}

func publish(t *testing.T, c *bus.Conn, rs ...jamf.Received) {
	t.Helper()
	for _, r := range rs {
		if err := c.Publish(t.Context(), r); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

// TestSettle pins what each verdict does on the server: delivered and
// parked events leave the backlog at once; handed back ones stay and come
// back, not before their delay.
func TestSettle(t *testing.T) {
	t.Run("delivered leaves the backlog", func(t *testing.T) {
		c := bustest.New(t, shortAck)
		tk := newTaken()
		consumer(t, c, tk.take)
		publish(t, c, received("inst", "ComputerAdded", `{"k":1}`))
		tk.next(t).Settle(nil)
		testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	})
	t.Run("parked leaves the backlog", func(t *testing.T) {
		c := bustest.New(t, shortAck)
		tk := newTaken()
		consumer(t, c, tk.take)
		publish(t, c, received("inst", "ComputerAdded", `{"k":2}`))
		tk.next(t).Settle(retry.Permanent(errBoom))
		testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	})
	t.Run("handed back comes back after its delay", func(t *testing.T) {
		c := bustest.New(t, shortAck)
		tk := newTaken()
		consumer(t, c, tk.take)
		publish(t, c, received("inst", "ComputerAdded", `{"k":3}`))
		first := tk.next(t)
		if got := first.Event().Attempt; got != 1 {
			t.Errorf("first delivery's Attempt = %d, want 1", got)
		}
		const delay = 1500 * time.Millisecond
		handed := time.Now()
		first.Settle(retry.After(delay, errBoom))
		second := tk.next(t)
		// The server times the delay on the wall clock (processNak and
		// checkPending compare UnixNano), this test on the monotonic one,
		// and the two can run apart: a CI run saw the event back 1.7 ms
		// early. 1 % of allowance still tells the delay (1.5 s) from the
		// ack wait (1 s) and from an immediate return.
		if gap := time.Since(handed); gap < delay-delay/100 {
			t.Errorf("handed back for %v, came back after %v", delay, gap)
		}
		if got := second.Event().Attempt; got != 2 {
			t.Errorf("second delivery's Attempt = %d, want 2", got)
		}
		if backlog(t, c) != 1 {
			t.Error("a handed back event left the backlog")
		}
		second.Settle(nil)
		testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	})
	t.Run("release brings a handed back event back now", func(t *testing.T) {
		c := bustest.New(t, shortAck)
		tk := newTaken()
		consumer(t, c, tk.take)
		publish(t, c, received("inst", "ComputerAdded", `{"k":4}`))
		d := tk.next(t)
		d.Settle(retry.After(time.Hour, errBoom))
		d.Release()
		again := tk.next(t) // within 15s, not an hour
		if got := again.Event().Attempt; got != 2 {
			t.Errorf("released delivery's Attempt = %d, want 2", got)
		}
		again.Settle(nil)
		testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	})
}

func TestConsumeDecodesEvent(t *testing.T) {
	c := bustest.New(t)
	tk := newTaken()
	consumer(t, c, tk.take)
	want := received("inst-7", "MobileDeviceEnrolled", `{"event":{}}`)
	before := time.Now()
	publish(t, c, want)
	d := tk.next(t)
	r := d.Event()
	if r.InstallationID != want.InstallationID || r.Event != want.Event || !r.ReceivedAt.Equal(want.ReceivedAt) ||
		string(r.Body) != string(want.Body) || r.Attempt != 1 {
		t.Errorf("event = %+v, want %+v with Attempt 1", r, want)
	}
	if r.Queued.Before(before.Add(-time.Second)) || r.Queued.After(time.Now()) {
		t.Errorf("Queued = %v, want the time the stream stored it (after %v)", r.Queued, before)
	}
	d.Settle(nil)
}

// TestDeliveredEventsGoToTheHistory keeps what Slack took in the history,
// and neither a parked event nor one a filter skipped; all three leave the
// backlog.
func TestDeliveredEventsGoToTheHistory(t *testing.T) {
	c := bustest.New(t, func(cfg *bus.Config) { cfg.HistoryMaxAge = time.Hour })
	tk := newTaken()
	consumer(t, c, tk.take)
	publish(t, c, received("inst", "ComputerAdded", `{"kept":1}`), received("inst", "ComputerAdded", `{"parked":1}`),
		received("inst", "ComputerAdded", `{"filtered":1}`))
	tk.next(t).Settle(nil)
	tk.next(t).Settle(retry.Permanent(errBoom))
	tk.next(t).Skip()
	testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	s, err := c.JetStream().Stream(t.Context(), bus.StreamHistory)
	if err != nil {
		t.Fatalf("history stream: %v", err)
	}
	var m *jetstream.RawStreamMsg
	testwait.For(t, 10*time.Second, "the delivered event in the history", func() bool {
		m, err = s.GetLastMsgForSubject(t.Context(), "jamf.history.inst")
		return err == nil
	})
	if string(m.Data) != `{"kept":1}` || m.Header.Get(bus.HeaderEvent) != "ComputerAdded" {
		t.Errorf("history has %s with event %q, want the delivered event", m.Data, m.Header.Get(bus.HeaderEvent))
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("history holds %d events, want only the delivered one (not the parked or the skipped one)", info.State.Msgs)
	}
}

func TestConsumeTerminatesBadMessages(t *testing.T) {
	c := bustest.New(t, shortAck)
	js := c.JetStream()
	good := received("inst", "ComputerAdded", `{"good":true}`)
	header := func(id, event, at string) nats.Header {
		h := nats.Header{}
		if id != "" {
			h.Set(bus.HeaderInstallation, id)
		}
		if event != "" {
			h.Set(bus.HeaderEvent, event)
		}
		if at != "" {
			h.Set(bus.HeaderReceivedAt, at)
		}
		return h
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	bad := []struct {
		name   string
		header nats.Header
	}{
		{name: "no headers", header: nil},
		{name: "no installation", header: header("", "E", now)},
		{name: "installation not the subject's", header: header("other", "E", now)},
		{name: "no event", header: header("inst", "", now)},
		{name: "bad receive time", header: header("inst", "E", "yesterday")},
	}
	for _, b := range bad {
		m := &nats.Msg{Subject: "jamf.events.inst", Header: b.header, Data: []byte(b.name)}
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatalf("publish %s: %v", b.name, err)
		}
	}
	publish(t, c, good)

	tk := newTaken()
	consumer(t, c, tk.take)
	d := tk.next(t)
	if string(d.Event().Body) != string(good.Body) {
		t.Errorf("first delivery = %s, want the good event", d.Event().Body)
	}
	d.Settle(nil)
	// Terminated, the bad messages left the backlog with the good one.
	testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	if n := tk.count(); n != 1 {
		t.Errorf("%d deliveries, want only the good event", n)
	}
}

// TestProgressKeepsAHeldEventAlive holds an event for longer than AckWait
// with progress acks: the server must not give it to another consumer.
func TestProgressKeepsAHeldEventAlive(t *testing.T) {
	srv := bustest.Server(t)
	a, b := srv.Connect(t, shortAck), srv.Connect(t, shortAck)
	ta, tb := newTaken(), newTaken()
	consumer(t, a, ta.take)
	publish(t, a, received("inst", "E", `{"held":1}`))
	d := ta.next(t)
	consumer(t, b, tb.take)
	// Three AckWaits, with a progress ack every tenth of one: a loaded
	// machine may hold a tick back for most of an AckWait.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range 30 {
		<-tick.C
		d.Progress()
	}
	d.Settle(nil)
	testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, a) })
	if n := ta.count() + tb.count(); n != 1 {
		t.Errorf("%d deliveries of an event kept alive, want 1", n)
	}
}

// TestConsumeShared runs two consumers on the durable consumer: each event
// goes to exactly one of them, once.
func TestConsumeShared(t *testing.T) {
	srv := bustest.Server(t)
	a, b := srv.Connect(t, shortAck), srv.Connect(t, shortAck)
	var mu sync.Mutex
	seen := map[string]int{}
	by := map[string]int{}
	take := func(who string) func(context.Context, *bus.Delivery) error {
		return func(_ context.Context, d *bus.Delivery) error {
			mu.Lock()
			seen[string(d.Event().Body)]++
			by[who]++
			mu.Unlock()
			// Slow enough that both get a share.
			time.AfterFunc(10*time.Millisecond, func() { d.Settle(nil) })
			return nil
		}
	}
	consumer(t, a, take("a"))
	consumer(t, b, take("b"))
	const n = 60
	for i := range n {
		publish(t, a, received("inst", "E", fmt.Sprintf(`{"n":%d}`, i)))
	}
	testwait.For(t, 20*time.Second, "every event settled", func() bool { return settled(t, a) })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("%d distinct events delivered, want %d", len(seen), n)
	}
	for body, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times, want once", body, k)
		}
	}
	if by["a"] == 0 || by["b"] == 0 {
		t.Errorf("deliveries by consumer = %v, want both to take a share", by)
	}
}

// TestConsumeRedeliversAfterCrash loses a dispatcher with an event taken
// (its connection goes away without an ack): another one gets the event
// after AckWait.
func TestConsumeRedeliversAfterCrash(t *testing.T) {
	srv := bustest.Server(t)
	a, b := srv.Connect(t, shortAck), srv.Connect(t, shortAck)
	ta := newTaken()
	stopA := consumer(t, a, ta.take)
	publish(t, b, received("inst", "E", `{"crash":1}`))
	ta.next(t)
	a.Close()
	_ = stopA() // on a closed connection Consume may fail; it must return

	tb := newTaken()
	consumer(t, b, tb.take)
	d := tb.next(t)
	if got := d.Event().Attempt; got != 2 {
		t.Errorf("redelivery's Attempt = %d, want 2", got)
	}
	d.Settle(nil)
}

// TestConsumeShutdownHandsBufferedBack stops Consume with events pulled
// ahead and not taken: they go back to the server at once, far sooner than
// AckWait.
func TestConsumeShutdownHandsBufferedBack(t *testing.T) {
	c := bustest.New(t, func(cfg *bus.Config) { cfg.AckWait = time.Hour })
	block := make(chan struct{})
	var first atomic.Pointer[bus.Delivery]
	stop := consumer(t, c, func(ctx context.Context, d *bus.Delivery) error {
		first.Store(d)
		// The dispatcher is full: Consume waits here while it buffers.
		select {
		case <-block:
		case <-ctx.Done():
		}
		d.Settle(retry.After(0, ctx.Err()))
		return ctx.Err()
	})
	publish(t, c, received("inst", "E", `{"n":1}`), received("inst", "E", `{"n":2}`), received("inst", "E", `{"n":3}`))
	// The server counts the three pending once they are pulled, which may
	// be before Consume hands the first to take.
	testwait.For(t, 10*time.Second, "the first event taken and the rest pulled ahead", func() bool {
		return first.Load() != nil && dispatchInfo(t, c).NumAckPending == 3
	})
	if err := stop(); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	tk := newTaken()
	consumer(t, c, tk.take)
	for range 3 {
		tk.next(t).Settle(nil)
	}
	testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
}

func TestConsumeNeedsProvisioning(t *testing.T) {
	srv := bustest.Server(t)
	c, err := bus.Connect(t.Context(), bus.Config{URL: srv.URL()}, bustest.Logger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close()
	err = c.Consume(t.Context(), 1, func(context.Context, *bus.Delivery) error { return nil })
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("Consume on an empty server = %v, want stream or consumer not found", err)
	}
}

// TestConsumeSurvivesRestart restarts the server under a running Consume:
// events published once it is back are delivered.
func TestConsumeSurvivesRestart(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	tk := newTaken()
	consumer(t, c, tk.take)
	expect := func(body string) {
		t.Helper()
		d := tk.next(t)
		if b := string(d.Event().Body); b != body {
			t.Errorf("delivered %s, want %s", b, body)
		}
		d.Settle(nil)
	}
	publish(t, c, received("inst", "E", `{"before":1}`))
	expect(`{"before":1}`)

	srv.Restart()
	testwait.For(t, 15*time.Second, "a publish after the restart", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return c.Publish(ctx, received("inst", "E", `{"after":1}`)) == nil
	})
	expect(`{"after":1}`)
}

// TestConsumeResumesAfterALostPull leaves Consume without a pull on the
// server while it believes it has one: the server drops a pull with
// heartbeats, silently, when the consumer's waiting pulls are full. The
// nats.go iterator also ends up idle with events waiting when it skips
// renewing its pull on a loaded machine (see pullHeartbeat in consume.go).
// Either way only the missing idle heartbeats get it going again, and that
// must take a couple of seconds, not the client's default 30s.
func TestConsumeResumesAfterALostPull(t *testing.T) {
	c := bustest.New(t)
	js := c.JetStream()
	ctx := t.Context()

	// Room for one waiting pull: the server drops a pull with heartbeats
	// that finds it taken, silently, so the client can only learn from
	// missing heartbeats.
	cfg := dispatchInfo(t, c).Config
	cfg.MaxWaiting = 1
	if err := js.DeleteConsumer(ctx, bus.StreamEvents, bus.ConsumerDispatch); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
	if _, err := js.CreateConsumer(ctx, bus.StreamEvents, cfg); err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	nc := c.NATSConn()
	next := "$JS.API.CONSUMER.MSG.NEXT." + bus.StreamEvents + "." + bus.ConsumerDispatch
	pulls, err := nc.SubscribeSync(next)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = pulls.Unsubscribe() }()
	inbox := nats.NewInbox()
	statuses, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = statuses.Unsubscribe() }()
	const hold = 2 * time.Second
	req := fmt.Sprintf(`{"batch":1,"expires":%d}`, hold.Nanoseconds())
	if err := nc.PublishRequest(next, inbox, []byte(req)); err != nil {
		t.Fatalf("pull: %v", err)
	}
	testwait.For(t, 5*time.Second, "the test's pull to wait", func() bool { return dispatchInfo(t, c).NumWaiting == 1 })
	if _, err := pulls.NextMsg(time.Second); err != nil {
		t.Fatalf("the test's own pull: %v", err)
	}

	got := make(chan time.Time, 1)
	consumer(t, c, func(_ context.Context, d *bus.Delivery) error {
		got <- time.Now()
		d.Settle(nil)
		return nil
	})
	if _, err := pulls.NextMsg(hold / 2); err != nil {
		t.Fatalf("no pull from Consume while the test's pull held the slot: %v", err)
	}
	// The slot frees when the test's pull expires; the event published
	// after that waits for Consume to pull again.
	if m, err := statuses.NextMsg(5 * time.Second); err != nil || m.Header.Get("Status") != "408" {
		t.Fatalf("the test's pull did not expire: %v %v", m, err)
	}
	publish(t, c, received("inst", "E", `{}`))
	// Missing heartbeats take a couple of seconds to notice; the client's
	// default would take 30s. The bound sits between them.
	testwait.Receive(t, got, 10*time.Second, "the event's delivery (else Consume idles with its pull lost)")
}
