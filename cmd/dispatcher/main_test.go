package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const testSecretKey = "dispatcher-main-test-key-0123456789"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunDeliversAndStops runs the dispatcher as its main does, against a
// standalone JetStream and the fake Slack: the event is delivered with
// icons from SERVER_NAME, the side port answers, and a cancelled context
// (the signal) stops it cleanly.
func TestRunDeliversAndStops(t *testing.T) {
	nats := bustest.Server(t)
	setup := nats.Connect(t)
	fake := slacktest.New(t)
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	url := oneEvent(t, setup, fake, keys, "5f0c8a9e-1d2b-4c3d-8e4f-0a1b2c3d4e5f")

	metrics := freeAddr(t)
	cancel, done, stderr := runInBackground(t, map[string]string{
		"SECRET_KEY":          testSecretKey,
		"NATS_URL":            nats.URL(),
		"METRICS_ADDR":        metrics,
		"SLACK_WEBHOOK_HOSTS": fake.WebhookHost(),
		"SERVER_NAME":         "jackalope.example.com",
		"DISPATCH_WORKERS":    "2",
		"SHUTDOWN_TIMEOUT":    "5s",
		"DATA_DIR":            t.TempDir(),
	})

	msgs := fake.WaitFor(t, url, 1, 15*time.Second)
	if a := msgs[0].Attachments; len(a) != 1 || !strings.HasPrefix(a[0].ThumbURL, "https://jackalope.example.com/static/images/") || a[0].Title != "Jamf Pro Startup" {
		t.Errorf("delivered %+v, want a Jamf Pro Startup attachment with an icon under SERVER_NAME", msgs[0])
	}
	testwait.Until(t, 30*time.Second, func() error {
		if code, _ := get("http://" + metrics + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz answered %d, want 200", code)
		}
		return nil
	})
	if code, _ := get("http://" + metrics + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d, want 200", code)
	}
	// The fake counts the message before the dispatcher has read the
	// answer, so the metrics may lag behind for a moment.
	wants := []string{`jackalope_dispatch_deliveries_total{outcome="delivered"} 1`, "jackalope_dispatch_event_lag_seconds_count 1", `jackalope_slack_request_seconds_count{class="ok"} 1`}
	testwait.Until(t, 30*time.Second, func() error {
		code, text := get("http://" + metrics + "/metrics")
		var missing []string
		for _, want := range wants {
			if code != http.StatusOK || !strings.Contains(text, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("/metrics lacks %q", missing)
		}
		return nil
	})

	stopRun(t, cancel, done)
	logs := stderr.String()
	for _, secretText := range []string{url, url[strings.LastIndexByte(url, '/')+1:], testSecretKey} {
		if strings.Contains(logs, secretText) {
			t.Errorf("the log shows a secret (%q)", secretText)
		}
	}
	if !strings.Contains(logs, "dispatcher consuming") {
		t.Errorf("the log does not say the dispatcher started consuming:\n%s", logs)
	}
}

func TestRunRefuses(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "elsewhere", "data")
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		want  string
		usage bool
	}{
		{"no secret key", nil, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "SECRET_KEY", false},
		{"bad config", nil, map[string]string{"SECRET_KEY": testSecretKey, "DISPATCH_WORKERS": "none"}, "DISPATCH_WORKERS", false},
		{"unknown command", []string{"deliver"}, nil, `unknown command "deliver"`, true},
		{"dlq without a command", []string{"dlq"}, nil, "dlq needs a command", true},
		{"replay without a scope", []string{"dlq", "replay"}, nil, "exactly one of --installation ID and --all", true},
		{"drop with both scopes", []string{"dlq", "drop", "--all", "--installation", "x"}, nil, "exactly one of", true},
		{"list with a stray argument", []string{"dlq", "list", "extra"}, nil, `unexpected argument "extra"`, true},
		{"list without NATS_URL from another directory", []string{"dlq", "list"}, map[string]string{"DATA_DIR": empty},
			"NATS_URL is not set and DATA_DIR (" + empty + ") holds no embedded NATS store", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), tt.args, env(tt.vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
			if got := errors.Is(err, dispatch.ErrUsage); got != tt.usage {
				t.Errorf("errors.Is(err, ErrUsage) = %v, want %v", got, tt.usage)
			}
		})
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused dlq command left %s behind (%v); want nothing created", empty, err)
	}
}

// TestRunDLQ lists, replays and drops dead letters through the
// subcommand, as an operator would.
func TestRunDLQ(t *testing.T) {
	nats := bustest.Server(t)
	setup := nats.Connect(t)
	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	park := func(event string) {
		t.Helper()
		err := setup.DeadLetter(t.Context(), jamf.DeadLetter{
			Received: jamf.Received{InstallationID: id, Event: event, ReceivedAt: time.Now(),
				Body: []byte(`{"webhook": {"webhookEvent": "` + event + `"}, "event": {}, "n": "` + time.Now().String() + `"}`)},
			Reason: "channel_dead", Attempts: 1, LastStatus: 404, LastBody: "no_service", At: time.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	park("ComputerAdded")
	park("JSSShutdown")
	vars := env(map[string]string{"NATS_URL": nats.URL(), "DATA_DIR": t.TempDir()})
	dlq := func(args ...string) string {
		t.Helper()
		var out, stderr bytes.Buffer
		if err := run(t.Context(), append([]string{"dlq"}, args...), vars, &out, &stderr); err != nil {
			t.Fatalf("dlq %v: %v", args, err)
		}
		if args[0] != "help" && !strings.Contains(stderr.String(), "acting on NATS "+nats.URL()) {
			t.Errorf("dlq %v does not say which NATS it acts on; stderr:\n%s", args, &stderr)
		}
		return out.String()
	}

	list := dlq("list")
	for _, want := range []string{"2 dead letters: channel_dead 2", "ComputerAdded 1", "JSSShutdown 1", "404 no_service", id} {
		if !strings.Contains(list, want) {
			t.Errorf("dlq list lacks %q:\n%s", want, list)
		}
	}
	if got := dlq("list", "--installation", "00000000-0000-0000-0000-000000000000"); !strings.Contains(got, "no dead letters") {
		t.Errorf("dlq list of another installation = %q, want no dead letters", got)
	}
	if got := dlq("replay", "--installation", id); !strings.Contains(got, "replayed 2 dead letters (installation "+id+")") {
		t.Errorf("dlq replay = %q, want it to say 2 were replayed", got)
	}
	if dead, err := setup.ListDead(t.Context(), ""); err != nil || len(dead) != 0 {
		t.Errorf("after the replay: %d dead letters (%v), want none", len(dead), err)
	}
	park("JSSStartup")
	if got := dlq("drop", "--all"); !strings.Contains(got, "dropped 1 dead letter (all installations)") {
		t.Errorf("dlq drop = %q, want it to say 1 was dropped", got)
	}
	if got := dlq("help"); !strings.Contains(got, "dlq replay (--installation ID [--seq N] | --all)") {
		t.Errorf("dlq help = %q, want the usage", got)
	}
}

// TestStartupLogHidesCredentials starts the dispatcher with credentials in
// NATS_URL and DATABASE_URL, NATS unreachable: neither the start-up log
// line nor the error shows them.
func TestStartupLogHidesCredentials(t *testing.T) {
	var stderr bytes.Buffer
	vars := map[string]string{
		"SECRET_KEY":   testSecretKey,
		"NATS_URL":     "nats://TOKEN-s3cr3t@" + freeAddr(t),
		"DATABASE_URL": "postgres://u@db/x?password=pw-s3cr3t",
		"METRICS_ADDR": freeAddr(t),
	}
	err := run(t.Context(), nil, env(vars), io.Discard, &stderr)
	if err == nil {
		t.Fatal("run succeeded without NATS")
	}
	out := stderr.String() + err.Error()
	if !strings.Contains(out, "dispatcher starting") {
		t.Fatalf("no start-up line was logged; the check would prove nothing:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the start-up log or error shows a credential:\n%s", out)
	}
}

// TestNotReadyWithAnotherKey pins finding 5 for dispatchers: with a
// SECRET_KEY other than the one the installer published, a dispatcher is
// not ready, says why in /readyz, logs an ERROR naming SECRET_KEY and
// SECRET_KEY_PREVIOUS (never a key), and parks nothing: it delivers only
// once the published key is one it holds.
func TestNotReadyWithAnotherKey(t *testing.T) {
	nats := bustest.Server(t)
	setup := nats.Connect(t)
	fake := slacktest.New(t)
	const installerKey = "the installer's own secret key 0000"
	other, err := secret.New(installerKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := setup.PublishKeys(t.Context(), other.Fingerprint(), ""); err != nil {
		t.Fatal(err)
	}
	url := oneEvent(t, setup, fake, keys, "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")

	metrics := freeAddr(t)
	cancel, done, stderr := runInBackground(t, map[string]string{
		"SECRET_KEY":          testSecretKey,
		"NATS_URL":            nats.URL(),
		"METRICS_ADDR":        metrics,
		"SLACK_WEBHOOK_HOSTS": fake.WebhookHost(),
		"SHUTDOWN_TIMEOUT":    "5s",
		"DATA_DIR":            t.TempDir(),
	})
	var body503 string
	testwait.Until(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("run returned %v before it answered /readyz", err)
		default:
		}
		code, text := get("http://" + metrics + "/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(text, "SECRET_KEY") {
			return fmt.Errorf("/readyz = %d %q; want 503 saying why", code, text)
		}
		body503 = text
		return nil
	})
	if !strings.Contains(body503, "SECRET_KEY does not match the installer's key") || !strings.Contains(body503, other.Fingerprint()) {
		t.Errorf("/readyz says %q; want why, with the installer's fingerprint", body503)
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "SECRET_KEY_PREVIOUS") {
		t.Errorf("no ERROR naming SECRET_KEY and SECRET_KEY_PREVIOUS in the logs:\n%s", logs)
	}
	for _, key := range []string{testSecretKey, installerKey} {
		if strings.Contains(logs, key) {
			t.Errorf("the logs show a key (%q)", key)
		}
	}
	if dead, err := setup.ListDead(t.Context(), ""); err != nil || len(dead) != 0 {
		t.Errorf("dead letters while the keys disagree: %d (%v); want none", len(dead), err)
	}
	if n := fake.Count(url); n != 0 {
		t.Errorf("posts while the keys disagree: %d; want none", n)
	}

	if err := setup.PublishKeys(t.Context(), keys.Fingerprint(), ""); err != nil {
		t.Fatal(err)
	}
	fake.WaitFor(t, url, 1, 20*time.Second)
	stopRun(t, cancel, done)
}

// oneEvent stores installation id, whose webhook is a new one on fake
// sealed with keys, and one JSSStartup event for it; it returns the
// webhook URL.
func oneEvent(t *testing.T, setup *bus.Conn, fake *slacktest.Server, keys *secret.Keys, id string) string {
	t.Helper()
	url := fake.NewWebhook("jamf")
	entry := registry.Entry{ID: id, Status: registry.StatusActive,
		TokenHash: keys.HashToken("token"), WebhookURLSealed: keys.Seal(secret.WebhookURL, id, url)}
	if err := setup.PutInstallation(t.Context(), entry); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"webhook": {"webhookEvent": "JSSStartup", "eventTimestamp": 1732870801234}, "event": {"hostAddress": "jamf.example.com", "jssUrl": "https://jamf.example.com/", "isClusterMaster": true}}`)
	if err := setup.Publish(t.Context(), jamf.Received{InstallationID: id, Event: "JSSStartup", ReceivedAt: time.Now(), Body: body}); err != nil {
		t.Fatal(err)
	}
	return url
}

// runInBackground runs the dispatcher with vars until cancel; done gets
// what run returned, stderr its logs.
func runInBackground(t *testing.T, vars map[string]string) (cancel context.CancelFunc, done chan error, stderr *logtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done = make(chan error, 1)
	stderr = &logtest.Buffer{}
	go func() { done <- run(ctx, nil, env(vars), io.Discard, stderr) }()
	return cancel, done, stderr
}

// stopRun cancels run's context, as the signal does, and fails the test
// unless run returns nil in time.
func stopRun(t *testing.T, cancel context.CancelFunc, done chan error) {
	t.Helper()
	cancel()
	if err := testwait.Receive(t, done, 20*time.Second, "run to return after the signal"); err != nil {
		t.Errorf("run returned %v after the signal, want nil", err)
	}
}
