package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
)

var errBoom = errors.New("boom")

// shortAck makes the server redeliver an unacknowledged message after a
// second, so tests see redeliveries quickly.
func shortAck(c *bus.Config) { c.AckWait = time.Second }

// delivery is one handler call.
type delivery struct {
	r          jamf.Received
	start, end time.Time
}

// recorder keeps the handler calls of a test.
type recorder struct {
	mu  sync.Mutex
	got []delivery
}

func (rec *recorder) add(d delivery) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.got = append(rec.got, d)
}

func (rec *recorder) all() []delivery {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]delivery(nil), rec.got...)
}

// handler records each call and answers with answer(r).
func (rec *recorder) handler(answer func(context.Context, jamf.Received) error) func(context.Context, jamf.Received) error {
	return func(ctx context.Context, r jamf.Received) error {
		start := time.Now()
		err := answer(ctx, r)
		rec.add(delivery{r: r, start: start, end: time.Now()})
		return err
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consumer runs c.Consume until the returned stop is called or the test
// ends; stop returns Consume's error.
func consumer(t *testing.T, c *bus.Conn, workers, maxAttempts int, h func(context.Context, jamf.Received) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- c.Consume(ctx, workers, maxAttempts, h) }()
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

// settled reports whether the dispatch consumer has nothing pending,
// delivered or not.
func settled(t *testing.T, c *bus.Conn) bool {
	info := dispatchInfo(t, c)
	return info.NumAckPending == 0 && info.NumPending == 0
}

func publish(t *testing.T, c *bus.Conn, rs ...jamf.Received) {
	t.Helper()
	for _, r := range rs {
		if err := c.Publish(t.Context(), r); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

func TestConsumeOutcomes(t *testing.T) {
	tests := []struct {
		name  string
		first error // what the handler answers on attempt 1; later ones succeed
		// want
		deliveries     int
		minGap, maxGap time.Duration // between the end of attempt 1 and the start of attempt 2
	}{
		{name: "nil acks", first: nil, deliveries: 1},
		{name: "permanent terminates", first: fmt.Errorf("post: %w", retry.Permanent(errBoom)), deliveries: 1},
		{name: "after naks with its delay", first: retry.After(1500*time.Millisecond, errBoom), deliveries: 2, minGap: 1400 * time.Millisecond, maxGap: 2500 * time.Millisecond},
		{name: "plain error backs off", first: errBoom, deliveries: 2, minGap: 0, maxGap: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bustest.New(t, shortAck)
			rec := &recorder{}
			consumer(t, c, 2, 10, rec.handler(func(_ context.Context, r jamf.Received) error {
				if r.Attempt == 1 {
					return tt.first
				}
				return nil
			}))
			publish(t, c, received("inst", "ComputerAdded", `{"k":1}`))

			waitFor(t, 5*time.Second, fmt.Sprintf("%d deliveries", tt.deliveries), func() bool { return len(rec.all()) >= tt.deliveries })
			waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, c) })
			// Longer than AckWait: a message that was not settled comes back.
			time.Sleep(1500 * time.Millisecond)

			got := rec.all()
			if len(got) != tt.deliveries {
				t.Fatalf("deliveries = %d, want %d", len(got), tt.deliveries)
			}
			for i, d := range got {
				if d.r.Attempt != i+1 {
					t.Errorf("delivery %d has Attempt %d, want %d", i, d.r.Attempt, i+1)
				}
			}
			if tt.deliveries == 2 {
				gap := got[1].start.Sub(got[0].end)
				if gap < tt.minGap || gap > tt.maxGap {
					t.Errorf("redelivered after %v, want between %v and %v", gap, tt.minGap, tt.maxGap)
				}
			}
			if info := dispatchInfo(t, c); info.NumAckPending != 0 || info.NumRedelivered != 0 {
				t.Errorf("consumer has %d pending acks and %d redelivered, want 0 and 0", info.NumAckPending, info.NumRedelivered)
			}
		})
	}
}

func TestConsumeDecodesEvent(t *testing.T) {
	c := bustest.New(t)
	got := make(chan jamf.Received, 1)
	consumer(t, c, 1, 10, func(_ context.Context, r jamf.Received) error {
		got <- r
		return nil
	})
	want := received("inst-7", "MobileDeviceEnrolled", `{"event":{}}`)
	publish(t, c, want)
	select {
	case r := <-got:
		want.Attempt = 1
		if r.InstallationID != want.InstallationID || r.Event != want.Event || !r.ReceivedAt.Equal(want.ReceivedAt) ||
			string(r.Body) != string(want.Body) || r.Attempt != 1 {
			t.Errorf("handler got %+v, want %+v", r, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
}

func TestConsumeAttemptsSpent(t *testing.T) {
	c := bustest.New(t, shortAck)
	rec := &recorder{}
	consumer(t, c, 1, 3, rec.handler(func(context.Context, jamf.Received) error {
		return fmt.Errorf("post to slack: %w", errBoom)
	}))
	r := received("inst", "ComputerAdded", `{"k":1}`)
	publish(t, c, r)

	waitFor(t, 10*time.Second, "3 deliveries", func() bool { return len(rec.all()) >= 3 })
	waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, c) })
	time.Sleep(1500 * time.Millisecond)
	if got := len(rec.all()); got != 3 {
		t.Errorf("deliveries = %d, want 3", got)
	}
	dead, err := c.ListDead(t.Context(), "inst")
	if err != nil {
		t.Fatalf("ListDead: %v", err)
	}
	if len(dead) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dead))
	}
	d := dead[0]
	if d.Reason != "attempts_spent" || d.Attempts != 3 || d.LastBody != "post to slack: boom" ||
		d.Event != r.Event || string(d.Body) != string(r.Body) || !d.ReceivedAt.Equal(r.ReceivedAt) {
		t.Errorf("dead letter = %+v", d)
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

	rec := &recorder{}
	consumer(t, c, 2, 10, rec.handler(func(context.Context, jamf.Received) error { return nil }))
	waitFor(t, 5*time.Second, "the good event", func() bool { return len(rec.all()) >= 1 })
	waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, c) })
	time.Sleep(1500 * time.Millisecond)
	got := rec.all()
	if len(got) != 1 || string(got[0].r.Body) != string(good.Body) {
		t.Errorf("handler calls = %d (%v), want only the good event", len(got), got)
	}
	if info := dispatchInfo(t, c); info.NumRedelivered != 0 {
		t.Errorf("redelivered = %d, want 0: bad messages must be terminated", info.NumRedelivered)
	}
}

func TestConsumePanicRetries(t *testing.T) {
	c := bustest.New(t, shortAck)
	rec := &recorder{}
	consumer(t, c, 1, 10, rec.handler(func(_ context.Context, r jamf.Received) error {
		if r.Attempt == 1 {
			panic("render blew up")
		}
		return nil
	}))
	publish(t, c, received("inst", "E", `{}`))
	waitFor(t, 5*time.Second, "the retry after a panic", func() bool { return len(rec.all()) >= 1 })
	waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, c) })
	if info := dispatchInfo(t, c); info.Delivered.Consumer != 2 {
		t.Errorf("deliveries = %d, want 2", info.Delivered.Consumer)
	}
}

// TestConsumeKeepsSlowHandlerAlive runs a handler for longer than AckWait:
// progress acks must stop the server from redelivering meanwhile.
func TestConsumeKeepsSlowHandlerAlive(t *testing.T) {
	c := bustest.New(t, shortAck)
	rec := &recorder{}
	consumer(t, c, 2, 10, rec.handler(func(context.Context, jamf.Received) error {
		time.Sleep(2500 * time.Millisecond)
		return nil
	}))
	publish(t, c, received("inst", "E", `{}`))
	waitFor(t, 10*time.Second, "the slow delivery", func() bool { return len(rec.all()) >= 1 })
	waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, c) })
	time.Sleep(1500 * time.Millisecond)
	if got := len(rec.all()); got != 1 {
		t.Errorf("deliveries = %d, want 1", got)
	}
	if info := dispatchInfo(t, c); info.NumRedelivered != 0 {
		t.Errorf("redelivered = %d, want 0", info.NumRedelivered)
	}
}

// TestConsumeShared runs two dispatchers on one durable consumer: each
// event goes to exactly one of them, once.
func TestConsumeShared(t *testing.T) {
	srv := bustest.Server(t)
	a, b := srv.Connect(t, shortAck), srv.Connect(t, shortAck)
	var mu sync.Mutex
	seen := map[string]int{}
	by := map[string]int{}
	h := func(who string) func(context.Context, jamf.Received) error {
		return func(_ context.Context, r jamf.Received) error {
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			seen[string(r.Body)]++
			by[who]++
			return nil
		}
	}
	consumer(t, a, 2, 10, h("a"))
	consumer(t, b, 2, 10, h("b"))
	const n = 60
	for i := range n {
		publish(t, a, received("inst", "E", fmt.Sprintf(`{"n":%d}`, i)))
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	waitFor(t, 10*time.Second, "every event", func() bool { return count() == n })
	waitFor(t, 5*time.Second, "the consumer to settle", func() bool { return settled(t, a) })
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for body, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times, want once", body, k)
		}
	}
	if by["a"] == 0 || by["b"] == 0 {
		t.Errorf("deliveries by dispatcher = %v, want both to take a share", by)
	}
}

// TestConsumeRedeliversAfterCrash loses a dispatcher mid-handle (its
// connection goes away without an ack): another one gets the event after
// AckWait.
func TestConsumeRedeliversAfterCrash(t *testing.T) {
	srv := bustest.Server(t)
	a, b := srv.Connect(t, shortAck), srv.Connect(t, shortAck)

	started := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var startOnce sync.Once
	stopA := consumer(t, a, 1, 10, func(context.Context, jamf.Received) error {
		startOnce.Do(func() { close(started) })
		<-release
		return nil
	})
	publish(t, b, received("inst", "E", `{"crash":1}`))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("dispatcher a got nothing")
	}

	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	<-closed

	got := make(chan jamf.Received, 1)
	consumer(t, b, 1, 10, func(_ context.Context, r jamf.Received) error {
		got <- r
		return nil
	})
	select {
	case r := <-got:
		if r.Attempt != 2 {
			t.Errorf("redelivery Attempt = %d, want 2", r.Attempt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not redelivered to dispatcher b")
	}
	release <- struct{}{}
	// Consume on a closed connection fails or, when the cancel wins the
	// race, returns nil; either way it must return.
	_ = stopA()
}

// TestConsumeShutdown cancels Consume while a handler runs.
func TestConsumeShutdown(t *testing.T) {
	t.Run("in-flight handler finishes and acks", func(t *testing.T) {
		c := bustest.New(t, func(cfg *bus.Config) { cfg.AckWait = 30 * time.Second })
		started := make(chan struct{})
		var finished time.Time
		var mu sync.Mutex
		stop := consumer(t, c, 1, 10, func(ctx context.Context, _ jamf.Received) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			mu.Lock()
			finished = time.Now()
			mu.Unlock()
			if ctx.Err() != nil {
				return errors.New("handler context cancelled within the grace")
			}
			return nil
		})
		publish(t, c, received("inst", "E", `{}`))
		<-started
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		returned := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if finished.IsZero() || finished.After(returned) {
			t.Error("Consume returned before the in-flight handler finished")
		}
		if !settled(t, c) {
			t.Error("the finished message was not acknowledged")
		}
	})

	t.Run("handler past the grace is cut short and handed back", func(t *testing.T) {
		c := bustest.New(t, func(cfg *bus.Config) {
			cfg.AckWait = 30 * time.Second
			cfg.ShutdownGrace = 300 * time.Millisecond
		})
		started := make(chan struct{}, 10)
		stop := consumer(t, c, 1, 10, func(ctx context.Context, _ jamf.Received) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		publish(t, c,
			received("inst", "E", `{"n":1}`),
			received("inst", "E", `{"n":2}`),
			received("inst", "E", `{"n":3}`))
		<-started
		begin := time.Now()
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("Consume took %v to stop with a 300ms grace", took)
		}

		// Far sooner than AckWait (30s): the in-flight and the buffered
		// events were handed back.
		rec := &recorder{}
		consumer(t, c, 2, 10, rec.handler(func(context.Context, jamf.Received) error { return nil }))
		waitFor(t, 5*time.Second, "the handed back events", func() bool { return len(rec.all()) == 3 })
	})
}

func TestConsumeNeedsProvisioning(t *testing.T) {
	srv := bustest.Server(t)
	c, err := bus.Connect(t.Context(), bus.Config{URL: srv.URL()}, bustest.Logger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close()
	err = c.Consume(t.Context(), 1, 1, func(context.Context, jamf.Received) error { return nil })
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("Consume on an empty server = %v, want stream or consumer not found", err)
	}
}

// TestConsumeSurvivesRestart restarts the server under a running Consume:
// events published once it is back are delivered.
func TestConsumeSurvivesRestart(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	got := make(chan string, 10)
	consumer(t, c, 2, 10, func(_ context.Context, r jamf.Received) error {
		got <- string(r.Body)
		return nil
	})
	expect := func(body string) {
		t.Helper()
		select {
		case b := <-got:
			if b != body {
				t.Errorf("delivered %s, want %s", b, body)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s not delivered", body)
		}
	}
	publish(t, c, received("inst", "E", `{"before":1}`))
	expect(`{"before":1}`)

	srv.Restart()
	waitFor(t, 15*time.Second, "a publish after the restart", func() bool {
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
	waitFor(t, 5*time.Second, "the test's pull to wait", func() bool { return dispatchInfo(t, c).NumWaiting == 1 })
	if _, err := pulls.NextMsg(time.Second); err != nil {
		t.Fatalf("the test's own pull: %v", err)
	}

	got := make(chan time.Time, 1)
	consumer(t, c, 1, 10, func(context.Context, jamf.Received) error {
		got <- time.Now()
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
	published := time.Now()
	select {
	case at := <-got:
		if wait := at.Sub(published); wait > 3*time.Second {
			t.Errorf("event delivered %v after it was published, want within 3s", wait)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not delivered within 10s of its publish: Consume idles with its pull lost")
	}
}
