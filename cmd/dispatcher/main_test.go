package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
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
	url := fake.NewWebhook("jamf")
	entry := registry.Entry{ID: "5f0c8a9e-1d2b-4c3d-8e4f-0a1b2c3d4e5f", Status: registry.StatusActive,
		TokenHash: keys.HashToken("token"), WebhookURLSealed: keys.Seal(url)}
	if err := setup.PutInstallation(t.Context(), entry); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"webhook": {"webhookEvent": "JSSStartup", "eventTimestamp": 1732870801234}, "event": {"hostAddress": "jamf.example.com", "jssUrl": "https://jamf.example.com/", "isClusterMaster": true}}`)
	if err := setup.Publish(t.Context(), jamf.Received{InstallationID: entry.ID, Event: "JSSStartup", ReceivedAt: time.Now(), Body: body}); err != nil {
		t.Fatal(err)
	}

	metrics := freeAddr(t)
	var stderr logtest.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{
			"SECRET_KEY":       testSecretKey,
			"NATS_URL":         nats.URL(),
			"METRICS_ADDR":     metrics,
			"SERVER_NAME":      "jackalope.example.com",
			"DISPATCH_WORKERS": "2",
			"SHUTDOWN_TIMEOUT": "5s",
			"DATA_DIR":         t.TempDir(),
		}), io.Discard, &stderr)
	}()

	msgs := fake.WaitFor(t, url, 1, 15*time.Second)
	if a := msgs[0].Attachments; len(a) != 1 || !strings.HasPrefix(a[0].ThumbURL, "https://jackalope.example.com/static/images/") || a[0].Title != "Jamf Pro Startup" {
		t.Errorf("delivered %+v, want a Jamf Pro Startup attachment with an icon under SERVER_NAME", msgs[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get("http://" + metrics + "/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d, want 200", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("http://" + metrics + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d, want 200", code)
	}
	// The fake counts the message before the dispatcher has read the
	// answer, so the metrics may lag behind for a moment.
	wants := []string{`jackalope_dispatch_deliveries_total{outcome="delivered"} 1`, "jackalope_dispatch_event_lag_seconds_count 1", `jackalope_slack_request_seconds_count{class="ok"} 1`}
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, text := get("http://" + metrics + "/metrics")
		missing = missing[:0]
		for _, want := range wants {
			if code != http.StatusOK || !strings.Contains(text, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("/metrics lacks %q", missing)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after the signal, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after the signal")
	}
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
		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"dlq"}, args...), vars, &out, io.Discard); err != nil {
			t.Fatalf("dlq %v: %v", args, err)
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
