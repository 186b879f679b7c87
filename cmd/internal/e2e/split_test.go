package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/pgtest"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const (
	// splitEvents are posted while both dispatchers run, inFlightEvents
	// while one of them is about to be killed.
	splitEvents    = 200
	inFlightEvents = 48
	// splitWorkers is DISPATCH_WORKERS of each dispatcher: the posts it
	// makes at once.
	splitWorkers = 4
	// deliveredSeries is the dispatcher metric of posts Slack took.
	deliveredSeries = `jackalope_dispatch_deliveries_total{outcome="delivered"}`
)

// TestSplitProcesses runs the deployment an SRE runs: the installer (on
// PostgreSQL), ingest and two dispatchers as separate processes built from
// cmd/, sharing the external NATS server. It installs a channel through
// the installer's OAuth flow, posts events to ingest, and expects every one
// exactly once in the channel with both dispatchers sharing the work; then
// it slows Slack, kills one dispatcher with events in flight and expects
// the survivor to deliver every event, the killed one's after their
// AckWait.
func TestSplitProcesses(t *testing.T) {
	natsURL, dbURL := os.Getenv(bustest.EnvURL), os.Getenv(pgtest.EnvURL)
	if natsURL == "" || dbURL == "" {
		t.Skipf("set %s and %s (CI does) to run the installer, ingest and two dispatchers as processes against them",
			bustest.EnvURL, pgtest.EnvURL)
	}
	start := time.Now()
	bins := binaries(t, "installer", "ingest", "dispatcher")

	js := jetStream(t, natsURL)
	purgeLeftovers(t, js)
	t.Logf("purged %s, %s, %s and the %s bucket on the external NATS server", bus.StreamEvents, bus.StreamDead,
		bus.StreamControl, bus.BucketInstallations)

	fake := slacktest.New(t)
	common := map[string]string{
		"NATS_URL":            natsURL,
		"SECRET_KEY":          randomKey(t),
		"SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"SLACK_WEBHOOK_HOSTS": fakeWebhookHosts,
		// Each event in a message of its own, so that each is seen to
		// arrive exactly once: no pace to speak of, no digests.
		"CHANNEL_PACE": "100/s", "CHANNEL_BURST": "100", "DIGESTS": "off",
	}
	with := func(extra map[string]string) map[string]string {
		env := maps.Clone(common)
		maps.Copy(env, extra)
		return env
	}

	// Each service serves /healthz, /readyz and /metrics on a side port
	// (METRICS_ADDR) of its own, never on its public listener.
	installerAddr, installerBase := loopback(t)
	installerOpsAddr, installerOps := loopback(t)
	installerEnv := with(map[string]string{"LISTEN_ADDR": installerAddr, "METRICS_ADDR": installerOpsAddr,
		"SERVER_NAME": installerBase, "DATABASE_URL": pgtest.URL(t)})
	authorizeURL := withSlackApp(installerEnv, fake)
	installer := startProcess(t, "installer", bins["installer"], installerEnv)

	ingestAddr, ingestBase := loopback(t)
	ingestOpsAddr, ingestOps := loopback(t)
	ingest := startProcess(t, "ingest", bins["ingest"], with(map[string]string{"LISTEN_ADDR": ingestAddr, "METRICS_ADDR": ingestOpsAddr}))

	type dispatcher struct {
		svc     *service
		base    string // METRICS_ADDR: /readyz and /metrics
		metrics string
	}
	var dispatchers [2]dispatcher
	for i := range dispatchers {
		addr, base := loopback(t)
		name := "dispatcher-" + strconv.Itoa(i+1)
		dispatchers[i] = dispatcher{
			svc: startProcess(t, name, bins["dispatcher"], with(map[string]string{
				"METRICS_ADDR":     addr,
				"SERVER_NAME":      installerBase, // the icons' base
				"DISPATCH_WORKERS": strconv.Itoa(splitWorkers),
			})),
			base:    base,
			metrics: base + "/metrics",
		}
	}
	waitReady(t, installer, installerOps+"/readyz")
	waitReady(t, ingest, ingestOps+"/readyz")
	for _, base := range []string{installerBase, ingestBase} {
		if status, _, _ := get(t, base+"/metrics"); status != http.StatusNotFound {
			t.Errorf("GET %s/metrics = %d, want 404: the public listener does not serve it", base, status)
		}
	}
	for _, d := range dispatchers {
		waitReady(t, d.svc, d.base+"/readyz")
	}
	t.Logf("installer, ingest and 2 dispatchers ready after %v", time.Since(start).Round(time.Millisecond))

	jamfURL, webhook := installThroughSlack(t, fake, installerBase, authorizeURL, "jamf")
	checkWelcome(t, fake, webhook, jamfURL)
	u, err := url.Parse(jamfURL)
	if err != nil {
		t.Fatal(err)
	}
	// A reverse proxy sends /jamf/ to ingest in a real deployment.
	ingestJamfURL := ingestBase + u.Path
	t.Logf("installed through the installer's OAuth flow; posting to ingest at %s/jamf/…", ingestBase)

	// Both dispatchers share the work; each event arrives exactly once.
	fake.SetLatency(20 * time.Millisecond)
	phase := time.Now()
	ids := eventIDs("split", splitEvents)
	for _, id := range ids {
		postEvent(t, ingestJamfURL, "application/json", eventBody(t, id))
	}
	got := waitDelivered(t, fake, webhook, ids, deliveryTimeout)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s arrived %d times, want exactly once", id, got[id])
		}
	}
	var delivered [2]float64
	for i, d := range dispatchers {
		delivered[i] = scrapeCounter(t, d.metrics, deliveredSeries)
	}
	t.Logf("%d events delivered in %v: dispatcher-1 %v, dispatcher-2 %v",
		splitEvents, time.Since(phase).Round(time.Millisecond), delivered[0], delivered[1])
	if delivered[0] == 0 || delivered[1] == 0 || delivered[0]+delivered[1] != splitEvents {
		t.Errorf("dispatchers delivered %v and %v, want both some and %d together", delivered[0], delivered[1], splitEvents)
	}

	// One dispatcher dies with events in flight; the survivor delivers
	// them all.
	fake.SetLatency(time.Second)
	ids = eventIDs("inflight", inFlightEvents)
	for _, id := range ids {
		postEvent(t, ingestJamfURL, "application/json", eventBody(t, id))
	}
	held := waitAckPending(t, js, inFlightEvents)
	victim, survivor := dispatchers[0], dispatchers[1]
	testwait.For(t, deliveryTimeout, "dispatcher-1 to hold events", func() bool {
		return scrapeCounter(t, victim.metrics, "jackalope_dispatch_held_events") > 0
	})
	if err := victim.svc.stop(t, syscall.SIGKILL); !exitedBySignal(err, syscall.SIGKILL) {
		t.Errorf("dispatcher-1 ended with %v, want death by SIGKILL", err)
	}
	killed := time.Now()
	fake.SetLatency(0)
	t.Logf("killed dispatcher-1 with events of its own among the %d unacknowledged", held)

	got = waitDelivered(t, fake, webhook, ids, bus.DefaultAckWait+deliveryTimeout)
	t.Logf("all %d events delivered %v after the kill (AckWait is %v; %d duplicates from posts in flight at the kill)",
		inFlightEvents, time.Since(killed).Round(time.Millisecond), bus.DefaultAckWait, duplicates(got, ids))
	if after := scrapeCounter(t, survivor.metrics, deliveredSeries); after <= delivered[1] {
		t.Errorf("dispatcher-2 delivered %v before the kill and %v after, want more", delivered[1], after)
	}

	for _, s := range []*service{survivor.svc, ingest, installer} {
		if err := s.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("after SIGTERM %s exited with %v, want status 0", s.name, err)
		}
	}
	t.Logf("split deployment test done in %v", time.Since(start).Round(time.Millisecond))
}

// jetStream connects to the NATS server at natsURL for what the bus does
// not offer: purging streams and reading consumer state.
func jetStream(t *testing.T, natsURL string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Name("jackalope-e2e"), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", bustest.EnvURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// purgeLeftovers empties the Jackalope streams and the installations
// bucket (its stream) of an earlier run, so that old events and channels
// do not mix with this run's. Streams that do not exist yet are skipped:
// the services provision them.
func purgeLeftovers(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, name := range []string{bus.StreamEvents, bus.StreamDead, bus.StreamControl, "KV_" + bus.BucketInstallations} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatalf("purge %s: %v", name, err)
		}
	}
}

// waitAckPending waits until the dispatchers hold at least n events
// handed out and not yet acknowledged, and returns how many they hold.
func waitAckPending(t *testing.T, js jetstream.JetStream, n int) int {
	t.Helper()
	var pending int
	testwait.Until(t, deliveryTimeout, func() error {
		c, err := js.Consumer(t.Context(), bus.StreamEvents, bus.ConsumerDispatch)
		if err != nil {
			t.Fatalf("consumer %s: %v", bus.ConsumerDispatch, err)
		}
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatalf("consumer %s info: %v", bus.ConsumerDispatch, err)
		}
		pending = info.NumAckPending
		if pending < n {
			return fmt.Errorf("the dispatchers hold %d unacknowledged events, want %d", pending, n)
		}
		return nil
	})
	return pending
}

// randomKey is a fresh SECRET_KEY shared by the split services.
func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
