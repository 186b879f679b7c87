package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// streamShape is what the tests pin of a stream's configuration.
type streamShape struct {
	Subjects   []string
	Storage    jetstream.StorageType
	Retention  jetstream.RetentionPolicy
	Discard    jetstream.DiscardPolicy
	MaxAge     time.Duration
	MaxBytes   int64
	Duplicates time.Duration
}

func shapeOf(t *testing.T, js jetstream.JetStream, name string) streamShape {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	cfg := s.CachedInfo().Config
	return streamShape{
		Subjects:   cfg.Subjects,
		Storage:    cfg.Storage,
		Retention:  cfg.Retention,
		Discard:    cfg.Discard,
		MaxAge:     cfg.MaxAge,
		MaxBytes:   cfg.MaxBytes,
		Duplicates: cfg.Duplicates,
	}
}

// checkProvisioned checks what Provision made on the server behind c, which
// was configured with cfg's sizes.
func checkProvisioned(t *testing.T, c *bus.Conn, maxAge, deadMaxAge time.Duration, maxBytes int64, dedup time.Duration) {
	t.Helper()
	js := c.JetStream()
	streams := []struct {
		name string
		want streamShape
	}{
		{
			name: bus.StreamEvents,
			want: streamShape{
				Subjects: []string{"jamf.events.>"}, Storage: jetstream.FileStorage,
				Retention: jetstream.InterestPolicy, Discard: jetstream.DiscardNew,
				MaxAge: maxAge, MaxBytes: maxBytes, Duplicates: dedup,
			},
		},
		{
			name: bus.StreamDead,
			want: streamShape{
				Subjects: []string{"jamf.dead.>"}, Storage: jetstream.FileStorage,
				Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
				MaxAge: deadMaxAge, MaxBytes: maxBytes, Duplicates: dedup,
			},
		},
		{
			name: bus.StreamControl,
			want: streamShape{
				Subjects: []string{"jackalope.control.>"}, Storage: jetstream.FileStorage,
				Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardOld,
				MaxAge: 7 * 24 * time.Hour, MaxBytes: -1, Duplicates: dedup,
			},
		},
	}
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			if diff := cmp.Diff(s.want, shapeOf(t, js, s.name)); diff != "" {
				t.Errorf("stream %s (-want +got):\n%s", s.name, diff)
			}
		})
	}

	consumers := []struct {
		stream, name string
	}{
		{bus.StreamEvents, bus.ConsumerDispatch},
		{bus.StreamControl, bus.ConsumerInstaller},
	}
	for _, cc := range consumers {
		t.Run(cc.name, func(t *testing.T) {
			cons, err := js.Consumer(t.Context(), cc.stream, cc.name)
			if err != nil {
				t.Fatalf("consumer %s: %v", cc.name, err)
			}
			cfg := cons.CachedInfo().Config
			if cfg.Durable != cc.name || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.MaxDeliver != -1 {
				t.Errorf("consumer %s: durable %q, ack policy %v, max deliver %d; want durable, explicit, -1",
					cc.name, cfg.Durable, cfg.AckPolicy, cfg.MaxDeliver)
			}
			// A flooded channel's waiting events must never stop the
			// others': no bound on the events handed out.
			if cc.name == bus.ConsumerDispatch && cfg.MaxAckPending != -1 {
				t.Errorf("consumer %s: max ack pending %d, want -1", cc.name, cfg.MaxAckPending)
			}
		})
	}

	for _, bucket := range []string{bus.BucketInstallations, bus.BucketDelivery} {
		t.Run(bucket, func(t *testing.T) {
			kv, err := js.KeyValue(t.Context(), bucket)
			if err != nil {
				t.Fatalf("kv: %v", err)
			}
			st, err := kv.Status(t.Context())
			if err != nil {
				t.Fatalf("kv status: %v", err)
			}
			if st.History() != 1 {
				t.Errorf("kv history = %d, want 1", st.History())
			}
		})
	}
}

// TestProvisionUpgradesOldBacklog provisions a server laid out by earlier
// versions: JAMF_EVENTS with limits retention, holding events "dispatch"
// already acked and events still waiting. Provision must switch it in
// place: the delivered events leave, the waiting ones stay and are
// delivered, each once.
func TestProvisionUpgradesOldBacklog(t *testing.T) {
	srv := bustest.Server(t)
	ctx := t.Context()
	old, err := bus.Connect(ctx, bus.Config{URL: srv.URL()}, bustest.Logger(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(old.Close)
	js := old.JetStream()
	// The layout of earlier versions, as their Provision made it.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: bus.StreamEvents, Subjects: []string{"jamf.events.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: bus.DefaultMaxAge, MaxBytes: 64 << 20,
		Discard: jetstream.DiscardNew, Duplicates: bus.DefaultDedupWindow,
	}); err != nil {
		t.Fatalf("old stream: %v", err)
	}
	cons, err := js.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: bus.ConsumerDispatch, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
		MaxDeliver: -1, MaxAckPending: 10000, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatalf("old consumer: %v", err)
	}
	const delivered, waiting = 30, 20
	for i := range delivered + waiting {
		publish(t, old, received("inst", "ComputerAdded", fmt.Sprintf(`{"n":%d}`, i)))
	}
	batch, err := cons.Fetch(delivered)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if got := streamMsgs(t, old, bus.StreamEvents); got != delivered+waiting {
		t.Fatalf("the old layout holds %d events, want %d (delivered ones too)", got, delivered+waiting)
	}

	c := srv.Connect(t)
	if got := shapeOf(t, c.JetStream(), bus.StreamEvents).Retention; got != jetstream.InterestPolicy {
		t.Fatalf("retention after the upgrade = %v, want interest", got)
	}
	if got := streamMsgs(t, c, bus.StreamEvents); got != waiting {
		t.Errorf("backlog after the upgrade = %d events, want the %d still waiting", got, waiting)
	}
	tk := newTaken()
	consumer(t, c, tk.take)
	seen := map[string]bool{}
	for range waiting {
		d := tk.next(t)
		seen[string(d.Event().Body)] = true
		d.Settle(nil)
	}
	for i := delivered; i < delivered+waiting; i++ {
		if body := fmt.Sprintf(`{"n":%d}`, i); !seen[body] {
			t.Errorf("waiting event %s not delivered after the upgrade", body)
		}
	}
	testwait.For(t, 10*time.Second, "the backlog to empty", func() bool { return settled(t, c) })
	if n := tk.count(); n != waiting {
		t.Errorf("%d deliveries after the upgrade, want %d: delivered events must not come again", n, waiting)
	}
}

func TestProvisionEmbedded(t *testing.T) {
	c := bustest.New(t)
	checkProvisioned(t, c, bus.DefaultMaxAge, bus.DefaultDeadMaxAge, 64<<20, bus.DefaultDedupWindow)
	if err := c.Provision(t.Context()); err != nil {
		t.Errorf("second Provision: %v", err)
	}
	if !c.Connected() {
		t.Error("Connected() = false, want true")
	}
	if got := c.MaxPayload(); got < 2<<20 {
		t.Errorf("MaxPayload() = %d, want room for a 1 MiB body and headers", got)
	}
}

// TestProvisionRestart starts the embedded server twice on one data
// directory: the second start provisions a provisioned store and keeps the
// events stored by the first.
func TestProvisionRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	cfg := bus.Config{DataDir: dir, MaxBytes: 64 << 20}

	first, err := bus.Connect(ctx, cfg, bustest.Logger(t))
	if err != nil {
		t.Fatalf("first Connect: %v", err)
	}
	if err := first.Provision(ctx); err != nil {
		first.Close()
		t.Fatalf("first Provision: %v", err)
	}
	r := jamf.Received{InstallationID: "inst-1", Event: "ComputerAdded", ReceivedAt: time.Now(), Body: []byte(`{"a":1}`)}
	if err := first.Publish(ctx, r); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	first.Close()

	cfg.MaxAge = 2 * time.Hour
	second, err := bus.Connect(ctx, cfg, bustest.Logger(t))
	if err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	defer second.Close()
	if err := second.Provision(ctx); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if got := streamMsgs(t, second, bus.StreamEvents); got != 1 {
		t.Errorf("events after restart = %d, want 1", got)
	}
	if got := shapeOf(t, second.JetStream(), bus.StreamEvents).MaxAge; got != 2*time.Hour {
		t.Errorf("MaxAge after restart = %v, want 2h", got)
	}
}

// TestProvisionUpdates provisions a server a second time with changed
// settings, as a new release or a changed environment would.
func TestProvisionUpdates(t *testing.T) {
	srv := bustest.Server(t)
	first := srv.Connect(t, func(c *bus.Config) { c.MaxAge = time.Hour })
	if got := shapeOf(t, first.JetStream(), bus.StreamEvents).MaxAge; got != time.Hour {
		t.Fatalf("MaxAge = %v, want 1h", got)
	}
	second := srv.Connect(t, func(c *bus.Config) {
		c.MaxAge = 3 * time.Hour
		c.DeadMaxAge = 48 * time.Hour
		c.DedupWindow = 5 * time.Minute
		c.AckWait = 90 * time.Second
	})
	checkProvisioned(t, second, 3*time.Hour, 48*time.Hour, 64<<20, 5*time.Minute)
	cons, err := second.JetStream().Consumer(t.Context(), bus.StreamEvents, bus.ConsumerDispatch)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if got := cons.CachedInfo().Config.AckWait; got != 90*time.Second {
		t.Errorf("AckWait = %v, want 90s", got)
	}
}

// TestProvisionExternal runs against JACKALOPE_TEST_NATS_URL. The server is
// shared: the test only provisions, and restores the settings it changed.
func TestProvisionExternal(t *testing.T) {
	c := bustest.External(t)
	checkProvisioned(t, c, bus.DefaultMaxAge, bus.DefaultDeadMaxAge, bus.DefaultMaxBytes, bus.DefaultDedupWindow)

	changed := bustest.External(t, func(c *bus.Config) { c.MaxAge = bus.DefaultMaxAge + time.Hour })
	if got := shapeOf(t, changed.JetStream(), bus.StreamEvents).MaxAge; got != bus.DefaultMaxAge+time.Hour {
		t.Errorf("changed MaxAge = %v, want %v", got, bus.DefaultMaxAge+time.Hour)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Provision(ctx); err != nil {
		t.Fatalf("restore Provision: %v", err)
	}
	if got := shapeOf(t, c.JetStream(), bus.StreamEvents).MaxAge; got != bus.DefaultMaxAge {
		t.Errorf("restored MaxAge = %v, want %v", got, bus.DefaultMaxAge)
	}
}

func TestConnectEmbeddedNeedsDataDir(t *testing.T) {
	if _, err := bus.Connect(t.Context(), bus.Config{}, nil); err == nil {
		t.Error("Connect without URL and DataDir: got nil error")
	}
}

func streamMsgs(t *testing.T, c *bus.Conn, name string) uint64 {
	t.Helper()
	s, err := c.JetStream().Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State.Msgs
}

// TestProvisionMissingChangesNothing checks what commands rely on: on a
// bare server ProvisionMissing creates everything; on a provisioned one it
// keeps the services' settings even when its own differ.
func TestProvisionMissingChangesNothing(t *testing.T) {
	srv := bustest.Server(t)
	ctx := t.Context()
	connect := func(cfg bus.Config) *bus.Conn {
		t.Helper()
		cfg.URL = srv.URL()
		c, err := bus.Connect(ctx, cfg, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(c.Close)
		return c
	}

	first := connect(bus.Config{MaxAge: 2 * time.Hour})
	if err := first.ProvisionMissing(ctx); err != nil {
		t.Fatalf("ProvisionMissing on a bare server: %v", err)
	}
	checkProvisioned(t, first, 2*time.Hour, bus.DefaultDeadMaxAge, bus.DefaultMaxBytes, bus.DefaultDedupWindow)
	if err := first.ProvisionMissing(ctx); err != nil {
		t.Fatalf("second ProvisionMissing: %v", err)
	}

	service := srv.Connect(t, func(c *bus.Config) { c.MaxAge = 5 * time.Hour; c.AckWait = 45 * time.Second })
	command := connect(bus.Config{MaxAge: time.Hour, AckWait: 10 * time.Second, DedupWindow: 10 * time.Second})
	if err := command.ProvisionMissing(ctx); err != nil {
		t.Fatalf("ProvisionMissing on a provisioned server: %v", err)
	}
	if got := shapeOf(t, service.JetStream(), bus.StreamEvents); got.MaxAge != 5*time.Hour || got.Duplicates != bus.DefaultDedupWindow {
		t.Errorf("after a command: MaxAge = %v, Duplicates = %v; want the service's 5h and %v", got.MaxAge, got.Duplicates, bus.DefaultDedupWindow)
	}
	cons, err := service.JetStream().Consumer(ctx, bus.StreamEvents, bus.ConsumerDispatch)
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.AckWait; got != 45*time.Second {
		t.Errorf("after a command: AckWait = %v; want the service's 45s", got)
	}
}
