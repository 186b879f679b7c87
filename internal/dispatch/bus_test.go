package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// These tests run dispatchers the way cmd/dispatcher does: bus.Consume
// on a real JetStream (embedded, in a temporary directory) calling
// Handle, posting to the fake Slack over HTTP.

// system is a JetStream, a fake Slack and the read model, shared by the
// dispatchers of one test. Every log line of the bus and the dispatchers
// is captured and checked for webhook URLs when the test ends.
type system struct {
	t     testing.TB
	conn  *bus.Conn
	slack *slacktest.Server
	keys  *secret.Keys
	model *bus.Installations
	logs  *logCapture

	mu   sync.Mutex
	urls []string
}

// newSystem starts an embedded JetStream; adjust tunes the bus config (a
// short AckWait, say).
func newSystem(t testing.TB, adjust func(*bus.Config)) *system {
	t.Helper()
	s := &system{t: t, slack: slacktest.New(t), logs: &logCapture{}}
	t.Cleanup(func() { checkNoLeaks(t, s.logs, s.webhookURLs) })
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = keys
	cfg := bus.Config{DataDir: t.TempDir(), MaxBytes: 64 << 20, ShutdownGrace: 2 * time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	s.conn = s.connect(cfg)
	s.model, err = s.conn.WatchInstallations(t.Context())
	if err != nil {
		t.Fatalf("watch installations: %v", err)
	}
	return s
}

// connect opens and provisions a bus connection that logs into s.logs.
func (s *system) connect(cfg bus.Config) *bus.Conn {
	s.t.Helper()
	conn, err := bus.Connect(s.t.Context(), cfg, s.logs.logger().With("component", "bus"))
	if err != nil {
		s.t.Fatalf("connect bus: %v", err)
	}
	s.t.Cleanup(conn.Close)
	if err := conn.Provision(s.t.Context()); err != nil {
		s.t.Fatalf("provision bus: %v", err)
	}
	return conn
}

func (s *system) webhookURLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.urls...)
}

// addChannel installs a new channel and waits until the read model has it.
func (s *system) addChannel(name string) (registry.Entry, string) {
	s.t.Helper()
	url := s.slack.NewWebhook(name)
	s.mu.Lock()
	s.urls = append(s.urls, url)
	s.mu.Unlock()
	id := uuid.NewString()
	e := registry.Entry{
		ID:               id,
		Status:           registry.StatusActive,
		TokenHash:        s.keys.HashToken(name),
		WebhookURLSealed: s.keys.Seal(secret.WebhookURL, id, url),
		ChannelName:      name,
		JamfURL:          "https://jamf.example.com",
	}
	s.put(e)
	return e, url
}

// put stores e in the KV bucket and waits until the read model shows it.
func (s *system) put(e registry.Entry) {
	s.t.Helper()
	if err := s.conn.PutInstallation(s.t.Context(), e); err != nil {
		s.t.Fatalf("put installation: %v", err)
	}
	s.eventually("the read model to show the installation", 5*time.Second, func() bool {
		got, ok := s.model.ByID(e.ID)
		return ok && got == e
	})
}

// dispatcher is one running consume loop.
type dispatcher struct {
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start runs a Dispatcher on conn with workers workers until stop or the
// end of the test.
func (s *system) start(conn *bus.Conn, name string, workers int, poster dispatch.Poster, configure func(*dispatch.Options)) *dispatcher {
	s.t.Helper()
	if poster == nil {
		poster = slack.New(s.slack.Config())
	}
	reg := prometheus.NewRegistry()
	opts := dispatch.Options{
		Installations: s.model,
		Poster:        poster,
		DeadLetters:   conn,
		Reporter:      conn,
		Opener:        s.keys,
		MaxAttempts:   testMaxAttempts,
		IconBaseURL:   iconBase,
		Logger:        s.logs.logger().With("dispatcher", name),
		Registerer:    reg,
		BackoffBase:   testBase,
		BackoffMax:    testMax,
	}
	if configure != nil {
		configure(&opts)
	}
	d, err := dispatch.New(opts)
	if err != nil {
		s.t.Fatalf("dispatch.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dispatcher{reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- conn.Consume(ctx, workers, opts.MaxAttempts, d.Handle) }()
	s.t.Cleanup(func() { r.stop(s.t) })
	return r
}

// stop cancels the consume loop and waits for it.
func (r *dispatcher) stop(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Logf("consume loop ended with: %v", err)
		}
		r.done <- err // a second stop returns at once
	case <-time.After(30 * time.Second):
		t.Errorf("consume loop did not stop")
	}
}

// publish stores a new unique event for the installation, as ingest does.
func (s *system) publish(id string) []byte {
	s.t.Helper()
	body := computerAdded()
	s.publishBody(id, body)
	return body
}

func (s *system) publishBody(id string, body []byte) {
	s.t.Helper()
	ev := jamf.Received{InstallationID: id, Event: "ComputerAdded", ReceivedAt: time.Now(), Body: body}
	if err := s.conn.Publish(s.t.Context(), ev); err != nil {
		s.t.Fatalf("publish: %v", err)
	}
}

// waitDead waits until the installation has n dead letters and returns them.
func (s *system) waitDead(id string, n int) []jamf.DeadLetter {
	s.t.Helper()
	var dead []jamf.DeadLetter
	s.eventually("dead letters", 10*time.Second, func() bool {
		var err error
		dead, err = s.conn.ListDead(s.t.Context(), id)
		if err != nil {
			s.t.Fatalf("list dead letters: %v", err)
		}
		return len(dead) >= n
	})
	if len(dead) != n {
		s.t.Fatalf("got %d dead letters, want %d: %+v", len(dead), n, deadSummary(dead))
	}
	return dead
}

func (s *system) eventually(what string, timeout time.Duration, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle gives a running system time to make requests it should not make.
func settle() { time.Sleep(300 * time.Millisecond) }

func deadSummary(dead []jamf.DeadLetter) []parkedSummary {
	out := make([]parkedSummary, len(dead))
	for i, d := range dead {
		out[i] = parkedSummary{d.Reason, d.Attempts, d.LastStatus, d.LastBody}
	}
	return out
}

// TestConsumeActsOnEachAnswer runs each class of Slack answer through the
// bus: what Slack saw, what was delivered, what was parked.
func TestConsumeActsOnEachAnswer(t *testing.T) {
	s := newSystem(t, nil)
	s.start(s.conn, "d1", 4, nil, nil)
	tests := []struct {
		name      string
		script    []slacktest.Response
		requests  int
		delivered int
		parked    []parkedSummary
	}{
		{"2xx is delivered once", nil, 1, 1, nil},
		{"5xx is retried until it is delivered", []slacktest.Response{slacktest.ServerError(), slacktest.ServerError()}, 3, 1, nil},
		{"attempts spent are parked with the last answer", []slacktest.Response{slacktest.ServerError(), slacktest.ServerError(), slacktest.ServerError()}, 3, 0,
			[]parkedSummary{{"attempts_spent", 3, 500, "rollup_error"}}},
		{"429 is retried after Retry-After", []slacktest.Response{slacktest.Ratelimited("1")}, 2, 1, nil},
		{"a dead channel is parked at once", []slacktest.Response{slacktest.Dead("action_prohibited")}, 1, 0,
			[]parkedSummary{{"channel_dead", 1, 403, "action_prohibited"}}},
		{"a bad message is parked at once", []slacktest.Response{slacktest.BadPayload()}, 1, 0,
			[]parkedSummary{{"bad_message", 1, 400, "invalid_payload"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := s.addChannel(strings.ReplaceAll(tt.name, " ", "-"))
			s.slack.Script(url, tt.script...)
			s.publish(e.ID)
			if tt.delivered > 0 {
				s.slack.WaitFor(t, url, tt.delivered, 10*time.Second)
			}
			var dead []jamf.DeadLetter
			if len(tt.parked) > 0 {
				dead = s.waitDead(e.ID, len(tt.parked))
			}
			settle()
			if got := len(s.slack.Requests(url)); got != tt.requests {
				t.Errorf("slack requests = %d, want %d", got, tt.requests)
			}
			if got := s.slack.Count(url); got != tt.delivered {
				t.Errorf("delivered = %d, want %d", got, tt.delivered)
			}
			if len(tt.parked) == 0 {
				dead, _ = s.conn.ListDead(t.Context(), e.ID)
			}
			if diff := cmp.Diff(tt.parked, deadSummary(dead), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dead letters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetryAfterIsHonoured sends a 429 with Retry-After 3 and checks at
// the fake that nothing reached the channel again before 3 s had passed:
// neither the retry nor the events that arrived meanwhile, which wait
// their turn instead of collecting a 429 each.
func TestRetryAfterIsHonoured(t *testing.T) {
	s := newSystem(t, nil)
	s.start(s.conn, "d1", 4, nil, nil)
	e, url := s.addChannel("ratelimited")
	s.slack.Script(url, slacktest.Ratelimited("3"))
	s.publish(e.ID)
	s.eventually("the 429", 10*time.Second, func() bool { return len(s.slack.Requests(url)) == 1 })
	s.publish(e.ID)
	s.publish(e.ID)
	msgs := s.slack.WaitFor(t, url, 3, 20*time.Second)
	reqs := s.slack.Requests(url)
	if reqs[0].Status != 429 {
		t.Fatalf("first answer = %d, want the scripted 429", reqs[0].Status)
	}
	for i, r := range reqs[1:] {
		if wait := r.Time.Sub(reqs[0].Time); wait < 3*time.Second {
			t.Errorf("request %d came %v after the 429, want at least 3s", i+1, wait)
		}
		if r.Status != 200 {
			t.Errorf("request %d answered %d, want 200 (no second 429)", i+1, r.Status)
		}
	}
	if len(reqs) != 4 || len(msgs) != 3 {
		t.Errorf("slack saw %d requests and delivered %d messages, want 4 and 3", len(reqs), len(msgs))
	}
}

// TestAttemptsSpentThenReplay parks an event whose attempts are spent,
// lists it and replays it with the dlq command, and checks that it is then
// delivered exactly once.
func TestAttemptsSpentThenReplay(t *testing.T) {
	s := newSystem(t, nil)
	s.start(s.conn, "d1", 2, nil, nil)
	e, url := s.addChannel("flaky")
	s.slack.Script(url, slacktest.ServerError(), slacktest.ServerError(), slacktest.ServerError())
	s.publish(e.ID)
	dead := s.waitDead(e.ID, 1)
	settle()
	if diff := cmp.Diff([]parkedSummary{{"attempts_spent", testMaxAttempts, 500, "rollup_error"}}, deadSummary(s.waitDead(e.ID, 1))); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	if got := len(s.slack.Requests(url)); got != testMaxAttempts {
		t.Errorf("slack requests = %d, want %d", got, testMaxAttempts)
	}
	if s.slack.Count(url) != 0 {
		t.Fatalf("delivered %d, want 0 before the replay", s.slack.Count(url))
	}

	var out bytes.Buffer
	if err := dispatch.RunDLQCommand(t.Context(), []string{"list", "--installation", e.ID}, s.conn, &out); err != nil {
		t.Fatalf("dlq list: %v", err)
	}
	for _, want := range []string{"attempts_spent", "ComputerAdded", "500 rollup_error", dead[0].At.UTC().Format(time.RFC3339), "1 dead letter:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dlq list output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := dispatch.RunDLQCommand(t.Context(), []string{"replay", "--installation", e.ID}, s.conn, &out); err != nil {
		t.Fatalf("dlq replay: %v", err)
	}
	if !strings.Contains(out.String(), "replayed 1 dead letter") {
		t.Errorf("dlq replay output = %q, want it to say it replayed 1", out.String())
	}
	s.slack.WaitFor(t, url, 1, 10*time.Second)
	settle()
	if got := s.slack.Count(url); got != 1 {
		t.Errorf("delivered %d times after the replay, want exactly 1", got)
	}
	if dead, _ := s.conn.ListDead(t.Context(), e.ID); len(dead) != 0 {
		t.Errorf("dead letters after the replay = %+v, want none", deadSummary(dead))
	}
}

// TestDeadChannel kills a webhook and sends several events: Slack sees one
// request, the installer gets the report, every event is parked, and the
// channel receives again once it is reinstalled.
func TestDeadChannel(t *testing.T) {
	s := newSystem(t, nil)
	s.start(s.conn, "d1", 4, nil, nil)
	e, url := s.addChannel("archived")
	s.slack.Kill(url, "channel_is_archived")

	reports := make(chan string, 10)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_ = s.conn.ConsumeDeadChannels(ctx, func(_ context.Context, id, reason string) error {
			reports <- id + " " + reason
			return nil
		})
	}()
	t.Cleanup(cancel)

	s.publish(e.ID)
	s.waitDead(e.ID, 1)
	for range 4 {
		s.publish(e.ID)
	}
	dead := s.waitDead(e.ID, 5)
	settle()
	if got := len(s.slack.Requests(url)); got != 1 {
		t.Errorf("slack requests to the dead channel = %d, want 1", got)
	}
	for _, d := range dead {
		if d.Reason != "channel_dead" || d.LastStatus != 410 || d.LastBody != "channel_is_archived" {
			t.Errorf("dead letter %+v, want channel_dead 410 channel_is_archived", parkedSummary{d.Reason, d.Attempts, d.LastStatus, d.LastBody})
		}
	}
	select {
	case r := <-reports:
		if want := e.ID + " channel_is_archived"; r != want {
			t.Errorf("report = %q, want %q", r, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead channel report reached the installer")
	}

	// The installer reinstalls the channel with a new webhook.
	newURL := s.slack.NewWebhook("archived")
	s.mu.Lock()
	s.urls = append(s.urls, newURL)
	s.mu.Unlock()
	e.WebhookURLSealed = s.keys.Seal(secret.WebhookURL, e.ID, newURL)
	s.put(e)
	s.publish(e.ID)
	s.slack.WaitFor(t, newURL, 1, 10*time.Second)
	if got := len(s.slack.Requests(url)); got != 1 {
		t.Errorf("slack requests to the dead webhook = %d, want still 1", got)
	}
}

// TestBadMessageKeepsTheChannel parks a message Slack refuses and a body
// that cannot be parsed, and delivers the channel's next event.
// TestCopiedSealIsRefused pins finding 2: an installation's KV entry
// pointed at another channel's sealed webhook URL does not send its events
// to that channel; they are parked as unreadable_webhook, replayable once
// the entry is repaired.
func TestCopiedSealIsRefused(t *testing.T) {
	s := newSystem(t, nil)
	victim, victimURL := s.addChannel("victim")
	forged, forgedURL := s.addChannel("forged")
	forged.WebhookURLSealed = victim.WebhookURLSealed
	s.put(forged)
	d := s.start(s.conn, "d1", 2, nil, nil)

	s.publish(forged.ID)
	dead := s.waitDead(forged.ID, 1)
	if dead[0].Reason != dispatch.ReasonUnreadableWebhook {
		t.Errorf("dead letter reason = %q, want %q", dead[0].Reason, dispatch.ReasonUnreadableWebhook)
	}
	// The victim's channel still gets its own events, and only those.
	s.publish(victim.ID)
	s.slack.WaitFor(t, victimURL, 1, 10*time.Second)
	d.stop(t)
	if got := s.slack.Count(victimURL); got != 1 {
		t.Errorf("posts to the victim's webhook = %d, want only its own event", got)
	}
	if got := s.slack.Count(forgedURL); got != 0 {
		t.Errorf("posts to the forged channel's own webhook = %d, want 0", got)
	}
}

func TestBadMessageKeepsTheChannel(t *testing.T) {
	s := newSystem(t, nil)
	s.start(s.conn, "d1", 2, nil, nil)
	e, url := s.addChannel("bad")
	s.slack.Script(url, slacktest.BadPayload())
	s.publish(e.ID)
	s.waitDead(e.ID, 1)
	s.publishBody(e.ID, []byte(`{"webhook": {"webhookEvent": "ComputerAdded"}, "event": []}`))
	dead := s.waitDead(e.ID, 2)
	s.publish(e.ID)
	msgs := s.slack.WaitFor(t, url, 1, 10*time.Second)
	settle()
	if diff := cmp.Diff([]parkedSummary{{"bad_message", 1, 400, "invalid_payload"}, {"bad_message", 1, 0, ""}}, deadSummary(dead)); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	if got := len(s.slack.Requests(url)); got != 2 || len(msgs) != 1 {
		t.Errorf("slack saw %d requests and delivered %d, want 2 and 1", got, len(msgs))
	}
}

// hangingPoster blocks every post until release is closed, as a process
// that stopped mid-delivery would.
type hangingPoster struct {
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func (p *hangingPoster) Post(ctx context.Context, _ string, _ slack.Message) error {
	p.once.Do(func() { close(p.started) })
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	return errors.New("hung post given up")
}

// TestStoppedMidDeliveryIsRedelivered stops a dispatcher while it posts,
// without an ack or a nak, and checks that another one delivers the event
// once the ack wait has passed.
func TestStoppedMidDeliveryIsRedelivered(t *testing.T) {
	server := bustestServer(t)
	s := newSystem(t, func(c *bus.Config) {
		c.URL, c.DataDir = server, ""
		c.AckWait = time.Second
	})
	e, url := s.addChannel("crash")

	// Dispatcher A takes the event and hangs in the post; then its
	// connection goes away under it, as when the process is killed.
	connA := s.connect(bus.Config{URL: server, AckWait: time.Second, ShutdownGrace: time.Second})
	hang := &hangingPoster{started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(hang.release) })
	a := s.start(connA, "a", 1, hang, nil)
	s.publish(e.ID)
	select {
	case <-hang.started:
	case <-time.After(10 * time.Second):
		t.Fatal("dispatcher A never started the post")
	}
	connA.Close()
	a.cancel()

	// Dispatcher B delivers it after the ack wait.
	start := time.Now()
	s.start(s.conn, "b", 1, nil, nil)
	s.slack.WaitFor(t, url, 1, 15*time.Second)
	settle()
	if got := s.slack.Count(url); got != 1 {
		t.Errorf("delivered %d times, want exactly once", got)
	}
	t.Logf("redelivered %v after dispatcher A stopped", time.Since(start))
}

// TestShutdownHandsInFlightBack stops a dispatcher gracefully while Slack
// is slow: the post is cut short after the shutdown grace and the event is
// handed back at once (well before the ack wait) for another dispatcher.
func TestShutdownHandsInFlightBack(t *testing.T) {
	s := newSystem(t, func(c *bus.Config) {
		c.AckWait = time.Minute
		c.ShutdownGrace = 200 * time.Millisecond
	})
	e, url := s.addChannel("slow")
	s.slack.Script(url, slacktest.Response{Status: 500, Body: "rollup_error", Delay: 3 * time.Second})
	a := s.start(s.conn, "a", 1, nil, nil)
	s.publish(e.ID)
	time.Sleep(300 * time.Millisecond) // A is in the post
	start := time.Now()
	a.stop(t)
	s.start(s.conn, "b", 1, nil, nil)
	s.slack.WaitFor(t, url, 1, 10*time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("another dispatcher delivered it %v after the stop, want well under the minute of ack wait", took)
	}
	if dead, _ := s.conn.ListDead(t.Context(), e.ID); len(dead) != 0 {
		t.Errorf("dead letters = %+v, want none", deadSummary(dead))
	}
}

// TestTwoDispatchersShareTheLoad runs two consume loops, each on its own
// connection, over many channels, and checks at the fake that every event
// was delivered exactly once and that both dispatchers took part.
func TestTwoDispatchersShareTheLoad(t *testing.T) {
	server := bustestServer(t)
	s := newSystem(t, func(c *bus.Config) { c.URL, c.DataDir = server, "" })
	s.slack.SetLatency(2 * time.Millisecond)
	connB := s.connect(bus.Config{URL: server})
	a := s.start(s.conn, "a", 2, nil, nil)
	b := s.start(connB, "b", 2, nil, nil)

	const channels, perChannel = 20, 10
	urls := make([]string, channels)
	for i := range channels {
		var e registry.Entry
		e, urls[i] = s.addChannel(fmt.Sprintf("load-%d", i))
		for range perChannel {
			s.publish(e.ID)
		}
	}
	s.eventually("every event delivered", 30*time.Second, func() bool { return s.slack.Total() >= channels*perChannel })
	settle()
	for i, url := range urls {
		if got := s.slack.Count(url); got != perChannel {
			t.Errorf("channel %d got %d messages, want exactly %d", i, got, perChannel)
		}
	}
	if got := s.slack.Total(); got != channels*perChannel {
		t.Errorf("slack got %d messages in all, want %d", got, channels*perChannel)
	}
	byA := counter(t, a.reg, "jackalope_dispatch_deliveries_total", "outcome", "delivered")
	byB := counter(t, b.reg, "jackalope_dispatch_deliveries_total", "outcome", "delivered")
	if byA == 0 || byB == 0 || byA+byB != channels*perChannel {
		t.Errorf("dispatcher a delivered %v and b %v, want both some and %d together", byA, byB, channels*perChannel)
	}
}

// bustestServer starts a standalone JetStream server, for tests that need
// more than one connection, and returns its URL.
func bustestServer(t testing.TB) string {
	t.Helper()
	return bustest.Server(t).URL()
}
