package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

// TestUpgradeFromTheOldBacklog fills the layout of earlier versions —
// JAMF_EVENTS with limits retention and the consumer "dispatch", holding
// events it delivered and events still waiting — then starts this build
// on it: every waiting event reaches Slack, none of the delivered ones
// comes again, and the backlog is empty afterwards.
func TestUpgradeFromTheOldBacklog(t *testing.T) {
	const delivered, waiting = 40, 60
	bins := binaries(t, "installer", "ingest", "dispatcher")
	natsURL := startNATSServer(t, natsServerBinary(t), nil)
	fake := slacktest.New(t)
	key := randomKey(t)
	dataDir := t.TempDir()

	// The registry the old installer kept: one channel added by hand.
	keys, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	webhook := fake.NewWebhook("#upgraded")
	id := uuid.NewString()
	token := uuid.NewString()
	store, err := sqlite.Open(t.Context(), filepath.Join(dataDir, "jackalope.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Upsert(t.Context(), registry.Installation{
		ID: id, ChannelID: "manual-upgrade", ChannelName: "#upgraded",
		WebhookURLSealed: keys.Seal(secret.WebhookURL, id, webhook),
		TokenHash:        keys.HashToken(token), TokenSealed: keys.Seal(secret.JamfToken, id, token),
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// The old backlog, as earlier versions provisioned it.
	js := jetStream(t, natsURL)
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: bus.StreamEvents, Subjects: []string{"jamf.events.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: bus.DefaultMaxAge, MaxBytes: bus.DefaultMaxBytes,
		Discard: jetstream.DiscardNew, Duplicates: bus.DefaultDedupWindow,
	}); err != nil {
		t.Fatalf("old stream: %v", err)
	}
	cons, err := js.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: bus.ConsumerDispatch, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxDeliver: -1, MaxAckPending: 10000, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatalf("old consumer: %v", err)
	}
	// Old ingests published events as ingest publishes them now.
	old, err := bus.Connect(ctx, bus.Config{URL: natsURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := eventIDs("upgrade", delivered+waiting)
	for _, name := range ids {
		if err := old.Publish(ctx, jamf.Received{InstallationID: id, Event: "ComputerAdded", ReceivedAt: time.Now(), Body: eventBody(t, name)}); err != nil {
			t.Fatalf("publish to the old backlog: %v", err)
		}
	}
	old.Close()
	// The old dispatchers delivered the first ones.
	batch, err := cons.Fetch(delivered)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	if acked != delivered {
		t.Fatalf("acked %d old events, want %d", acked, delivered)
	}
	t.Logf("old layout: %d events stored, %d of them delivered", delivered+waiting, delivered)

	// This build starts on it.
	common := map[string]string{
		"NATS_URL":            natsURL,
		"SECRET_KEY":          key,
		"SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"SLACK_WEBHOOK_HOSTS": fakeWebhookHosts,
		"CHANNEL_PACE":        "100/s", "CHANNEL_BURST": "100", "DIGESTS": "off",
	}
	with := func(extra map[string]string) map[string]string {
		env := maps.Clone(common)
		maps.Copy(env, extra)
		return env
	}
	addr, base := loopback(t)
	ops, opsBase := loopback(t)
	installer := startProcess(t, "installer", bins["installer"], with(map[string]string{
		"LISTEN_ADDR": addr, "METRICS_ADDR": ops, "SERVER_NAME": base, "DATA_DIR": dataDir}))
	waitReady(t, installer, opsBase+"/readyz")
	ops, opsBase = loopback(t)
	dispatcher := startProcess(t, "dispatcher", bins["dispatcher"], with(map[string]string{"METRICS_ADDR": ops, "SERVER_NAME": base}))
	waitReady(t, dispatcher, opsBase+"/readyz")

	got := waitDelivered(t, fake, webhook, ids[delivered:], deliveryTimeout)
	for _, name := range ids[delivered:] {
		if got[name] != 1 {
			t.Errorf("waiting event %s reached Slack %d times, want once", name, got[name])
		}
	}
	for _, name := range ids[:delivered] {
		if got[name] != 0 {
			t.Errorf("event %s, delivered before the upgrade, came again", name)
		}
	}
	stream, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info := stream.CachedInfo()
	if info.Config.Retention != jetstream.InterestPolicy {
		t.Errorf("retention after the upgrade = %v, want interest", info.Config.Retention)
	}
	waitBacklogEmpty(t, js)
	t.Logf("after the upgrade all %d waiting events reached Slack once, none of the %d delivered ones again; the backlog is empty", waiting, delivered)
}

// waitBacklogEmpty waits until JAMF_EVENTS holds nothing.
func waitBacklogEmpty(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var last uint64
	poll(t, deliveryTimeout, func() (bool, string) {
		s, err := js.Stream(t.Context(), bus.StreamEvents)
		if err != nil {
			return false, err.Error()
		}
		last = s.CachedInfo().State.Msgs
		return last == 0, fmt.Sprintf("the backlog still holds %s events", strconv.FormatUint(last, 10))
	})
}
