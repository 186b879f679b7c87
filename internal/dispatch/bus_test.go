package dispatch_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// These tests run dispatchers the way cmd/dispatcher does: on a real
// JetStream (embedded, in a temporary directory) and its KV buckets,
// posting to the fake Slack over HTTP. The synctest tests pin the timing
// rules; these pin that the real bus and Slack client carry them.

// system is a JetStream, a fake Slack and the read model, shared by the
// dispatchers of one test. Every log line of the bus and the dispatchers
// is captured and checked for webhook URLs when the test ends.
type system struct {
	t     testing.TB
	nats  *bustest.NATS
	conn  *bus.Conn
	slack *slacktest.Server
	keys  *secret.Keys
	model *bus.Installations
	logs  *logCapture

	mu   sync.Mutex
	urls []string
}

func newSystem(t testing.TB, adjust func(*bus.Config)) *system {
	t.Helper()
	s := &system{t: t, slack: slacktest.New(t), logs: &logCapture{}}
	t.Cleanup(func() { checkNoLeaks(t, s.logs, s.webhookURLs) })
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = keys
	s.nats = bustest.Server(t)
	s.conn = s.connect(adjust)
	s.model, err = s.conn.WatchInstallations(t.Context())
	if err != nil {
		t.Fatalf("watch installations: %v", err)
	}
	return s
}

// connect opens and provisions a bus connection to s's server that logs
// into s.logs; adjust tunes its configuration.
func (s *system) connect(adjust func(*bus.Config)) *bus.Conn {
	s.t.Helper()
	cfg := bus.Config{URL: s.nats.URL(), MaxBytes: 64 << 20, ShutdownGrace: 2 * time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
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
func (s *system) addChannel(name string, settings registry.DeliverySettings) (registry.Entry, string) {
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
		Delivery:         settings,
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
	testwait.For(s.t, 5*time.Second, "the read model to show the installation", func() bool {
		got, ok := s.model.ByID(e.ID)
		return ok && got.Equal(e)
	})
}

// start runs a Dispatcher on conn as app.Deliver does, until the test ends
// or the returned stop is called.
func (s *system) start(conn *bus.Conn, name string, configure func(*dispatch.Options)) (stop func(), reg *prometheus.Registry) {
	s.t.Helper()
	reg = prometheus.NewRegistry()
	opts := dispatch.Options{
		Installations: s.model,
		Poster:        slack.New(s.slack.Config()),
		DeadLetters:   conn,
		Reporter:      conn,
		Opener:        s.keys,
		States:        conn,
		IconBaseURL:   iconBase,
		Logger:        s.logs.logger().With("dispatcher", name),
		Registerer:    reg,
		RetryBase:     10 * time.Millisecond,
		RetryMax:      100 * time.Millisecond,
	}
	if configure != nil {
		configure(&opts)
	}
	d, err := dispatch.New(opts)
	if err != nil {
		s.t.Fatalf("dispatch.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := conn.WatchDeliveryNotices(ctx, d.Recovered); err != nil {
		s.t.Fatalf("watch notices: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, 5*time.Second, func(ctx context.Context, take dispatch.Take) error {
			return conn.Consume(ctx, 64, func(ctx context.Context, dv *bus.Delivery) error { return take(ctx, dv) })
		})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := testwait.Receive(s.t, done, 30*time.Second, "dispatcher "+name+" to stop"); err != nil {
				s.t.Errorf("Run: %v", err)
			}
		})
	}
	s.t.Cleanup(stop)
	return stop, reg
}

// publish stores events named names for the installation, as ingest does.
func (s *system) publish(id string, names ...string) {
	s.t.Helper()
	for _, n := range names {
		ev := jamf.Received{InstallationID: id, Event: "ComputerAdded", ReceivedAt: time.Now(), Body: eventBody(n)}
		if err := s.conn.Publish(s.t.Context(), ev); err != nil {
			s.t.Fatalf("publish: %v", err)
		}
	}
}

// backlog returns how many events wait in JAMF_EVENTS.
func (s *system) backlog() uint64 {
	b, err := s.conn.Backlog(s.t.Context())
	if err != nil {
		s.t.Fatalf("backlog: %v", err)
	}
	return b.Msgs
}

// named counts, per event name, the messages at webhook that name it.
func (s *system) named(webhook string) map[string]int {
	var posts []post
	for _, m := range s.slack.Messages(webhook) {
		posts = append(posts, post{msg: m})
	}
	return namedIn(posts)
}

func TestDeliversOverNATSAndEmptiesTheBacklog(t *testing.T) {
	s := newSystem(t, nil)
	e, url := s.addChannel("jamf", registry.DeliverySettings{Interval: 10 * time.Millisecond, Digests: registry.DigestsOff})
	s.start(s.conn, "d1", nil)
	evs := names("over", 30)
	s.publish(e.ID, evs...)
	testwait.For(t, 30*time.Second, "every event in Slack and the backlog empty", func() bool {
		return len(s.named(url)) == len(evs) && s.backlog() == 0
	})
	for n, k := range s.named(url) {
		if k != 1 {
			t.Errorf("%s posted %d times, want once", n, k)
		}
	}
}

// TestDispatchersShareThePaceOverNATS runs three dispatchers, each on its
// own connection, against a channel Slack limits: the pace they share
// through the KV bucket keeps Slack from answering 429.
func TestDispatchersShareThePaceOverNATS(t *testing.T) {
	s := newSystem(t, nil)
	e, url := s.addChannel("shared", registry.DeliverySettings{Interval: 100 * time.Millisecond, Burst: 3, Digests: registry.DigestsOff})
	// Slack's own limit, a little looser than the pace, as Slack's is.
	s.slack.SetRateLimit(url, 12, 4)
	for i, name := range []string{"d1", "d2", "d3"} {
		conn := s.conn
		if i > 0 {
			conn = s.connect(nil)
		}
		s.start(conn, name, nil)
	}
	evs := names("pace", 40)
	s.publish(e.ID, evs...)
	testwait.For(t, 60*time.Second, "every event in Slack", func() bool { return len(s.named(url)) == len(evs) })
	limited := 0
	for _, r := range s.slack.Requests(url) {
		if r.Status == 429 {
			limited++
		}
	}
	if limited > 2 {
		t.Errorf("Slack answered 429 %d times to three dispatchers sharing a pace, want at most 2", limited)
	}
}

// TestEnableClearsADeadChannelEverywhere kills a channel, then clears its
// delivery state as `channels enable` does: both dispatchers deliver to it
// again at once.
func TestEnableClearsADeadChannelEverywhere(t *testing.T) {
	s := newSystem(t, nil)
	e, url := s.addChannel("revived", registry.DeliverySettings{})
	other := s.connect(nil)
	s.start(s.conn, "d1", nil)
	s.start(other, "d2", nil)
	s.slack.Kill(url, "channel_is_archived")
	s.publish(e.ID, names("before", 4)...)
	testwait.For(t, 30*time.Second, "the events parked", func() bool {
		dead, err := s.conn.ListDead(t.Context(), e.ID)
		return err == nil && len(dead) == 4
	})
	st, _, err := s.conn.DeliveryState(t.Context(), e.ID)
	if err != nil || st.Dead == nil || st.Dead.Code != "channel_is_archived" {
		t.Fatalf("delivery state = %+v, %v; want the channel marked dead", st, err)
	}

	s.slack.Revive(url)
	if err := s.conn.ClearDeliveryState(t.Context(), e.ID); err != nil {
		t.Fatalf("ClearDeliveryState: %v", err)
	}
	if n, err := s.conn.ReplayDead(t.Context(), e.ID, false); err != nil || n != 4 {
		t.Fatalf("ReplayDead = %d, %v; want 4", n, err)
	}
	s.publish(e.ID, names("after", 4)...)
	// A dispatcher that kept the dead mark would park these events again:
	// the bound only stops a broken test, the pace and digests take their
	// time under load.
	testwait.For(t, 30*time.Second, "the replayed and new events delivered", func() bool {
		got := s.named(url)
		return len(got) == 8
	})
}

// TestCopiedSealIsRefused pins finding 2 of the security review: an
// installation's KV entry pointed at another channel's sealed webhook URL
// does not send its events to that channel; they are parked as
// unreadable_webhook, replayable once the entry is repaired.
func TestCopiedSealIsRefused(t *testing.T) {
	s := newSystem(t, nil)
	victim, victimURL := s.addChannel("victim", registry.DeliverySettings{})
	forged, forgedURL := s.addChannel("forged", registry.DeliverySettings{})
	forged.WebhookURLSealed = victim.WebhookURLSealed
	s.put(forged)
	s.start(s.conn, "d1", nil)

	s.publish(forged.ID, "forged-000")
	testwait.For(t, 10*time.Second, "the forged channel's event parked", func() bool {
		dead, err := s.conn.ListDead(t.Context(), forged.ID)
		return err == nil && len(dead) == 1 && dead[0].Reason == dispatch.ReasonUnreadableWebhook
	})
	// The victim's channel still gets its own events, and only those.
	s.publish(victim.ID, "victim-000")
	testwait.For(t, 10*time.Second, "the victim's own event", func() bool { return s.named(victimURL)["victim-000"] == 1 })
	if got := s.named(victimURL); len(got) != 1 {
		t.Errorf("the victim's webhook named %v, want only its own event", got)
	}
	if got := s.slack.Count(forgedURL); got != 0 {
		t.Errorf("posts to the forged channel's own webhook = %d, want 0", got)
	}
}

// TestRefusedWebhookIsParkedNotPosted: a stored webhook URL outside
// SLACK_WEBHOOK_HOSTS is never posted to; its events are parked as
// webhook_refused, and the installation stays active.
func TestRefusedWebhookIsParkedNotPosted(t *testing.T) {
	s := newSystem(t, nil)
	e, _ := s.addChannel("refused", registry.DeliverySettings{})
	const outside = "https://hooks.evil.example/services/T0/B0/refusedrefusedrefused"
	s.mu.Lock()
	s.urls = append(s.urls, outside)
	s.mu.Unlock()
	e.WebhookURLSealed = s.keys.Seal(secret.WebhookURL, e.ID, outside)
	s.put(e)
	s.start(s.conn, "d1", nil)
	s.publish(e.ID, "refused-000", "refused-001")
	testwait.For(t, 10*time.Second, "both events parked", func() bool {
		dead, err := s.conn.ListDead(t.Context(), e.ID)
		if err != nil || len(dead) != 2 {
			return false
		}
		return dead[0].Reason == dispatch.ReasonWebhookRefused && dead[1].Reason == dispatch.ReasonWebhookRefused
	})
	if got, _ := s.model.ByID(e.ID); got.Status != registry.StatusActive {
		t.Errorf("installation status = %s, want it to stay active", got.Status)
	}
}
