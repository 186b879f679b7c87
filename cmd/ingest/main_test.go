package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const (
	testSecret = "cmd ingest test secret key 0123456789"
	testToken  = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
	testID     = "33333333-aaaa-4bbb-8ccc-000000000001"
	checkIn    = `{"webhook":{"id":1,"name":"Slack","webhookEvent":"ComputerCheckIn","eventTimestamp":1732871702117},"event":{"computer":{"serialNumber":"%s"},"trigger":"CLIENT_CHECKIN","username":"jrivera"}}`
)

func TestRunRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "no secret key", env: map[string]string{}, want: "SECRET_KEY"},
		{name: "bad listen address", env: map[string]string{"SECRET_KEY": testSecret, "LISTEN_ADDR": "five thousand"}, want: "LISTEN_ADDR"},
		{name: "bad publish timeout", env: map[string]string{"SECRET_KEY": testSecret, "PUBLISH_TIMEOUT": "soon"}, want: "PUBLISH_TIMEOUT"},
		{name: "arguments", env: map[string]string{"SECRET_KEY": testSecret}, args: []string{"serve"}, want: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(t.Context(), tt.args, mapEnv(tt.env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// service is ingest running through run, as main runs it: url is its
// public listener, ops the side one with /healthz, /readyz and /metrics.
type service struct {
	url    string
	ops    string
	cancel context.CancelFunc
	done   chan error
	logs   *logtest.Buffer
}

func start(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := launch(t, env)
	s.waitFor(t, "/readyz", http.StatusOK)
	return s
}

// launch runs ingest without waiting for it to be ready.
func launch(t *testing.T, env map[string]string) *service {
	t.Helper()
	env["SECRET_KEY"] = testSecret
	env["LISTEN_ADDR"] = freeAddr(t)
	env["METRICS_ADDR"] = freeAddr(t)
	if env["DATA_DIR"] == "" {
		env["DATA_DIR"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{url: "http://" + env["LISTEN_ADDR"], ops: "http://" + env["METRICS_ADDR"], cancel: cancel, done: make(chan error, 1), logs: &logtest.Buffer{}}
	go func() { s.done <- run(ctx, nil, mapEnv(env), io.Discard, s.logs) }()
	t.Cleanup(func() {
		cancel()
		testwait.Receive(t, s.done, 30*time.Second, "ingest to stop")
	})
	return s
}

// stop cancels run's context and returns what run returned.
func (s *service) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	err := testwait.Receive(t, s.done, 30*time.Second, "ingest to stop")
	s.done <- err // for the cleanup
	return err
}

// get fetches path from the public listener.
func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return fetch(t, s.url+path)
}

// opsGet fetches path from the side listener.
func (s *service) opsGet(t *testing.T, path string) (int, string) {
	t.Helper()
	return fetch(t, s.ops+path)
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor waits until path on the side listener answers code.
func (s *service) waitFor(t *testing.T, path string, code int) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() error {
		if got, body := s.opsGet(t, path); got != code {
			return fmt.Errorf("GET %s = %d %q, want %d\nlogs:\n%s", path, got, body, code, s.logs)
		}
		return nil
	})
}

func (s *service) post(ctx context.Context, token, serial string) (int, error) {
	return s.send(ctx, token, strings.NewReader(fmt.Sprintf(checkIn, serial)))
}

func (s *service) send(ctx context.Context, token string, body io.Reader) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/jamf/"+token, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestRunWithExternalNATS(t *testing.T) {
	n := bustest.Server(t)
	admin := n.Connect(t)
	keys, err := secret.New(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.PutInstallation(t.Context(), registry.Entry{ID: testID, Status: registry.StatusActive, TokenHash: keys.HashToken(testToken)}); err != nil {
		t.Fatal(err)
	}
	s := start(t, map[string]string{"NATS_URL": n.URL(), "PUBLISH_TIMEOUT": "3s"})

	if code, err := s.post(t.Context(), testToken, "C02RUN000001"); err != nil || code != http.StatusNoContent {
		t.Fatalf("POST = %d, %v; want 204", code, err)
	}
	if code, err := s.post(t.Context(), "00000000-0000-4000-8000-000000000000", "C02RUN000002"); err != nil || code != http.StatusNotFound {
		t.Errorf("POST with an unknown token = %d, %v; want 404", code, err)
	}
	if code, body := s.opsGet(t, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := s.get(t, path); code != http.StatusNotFound {
			t.Errorf("GET %s on the public listener = %d, want 404: it is served on METRICS_ADDR only", path, code)
		}
	}
	_, metrics := s.opsGet(t, "/metrics")
	for _, want := range []string{
		`jackalope_ingest_requests_total{code="204",event="ComputerCheckIn"} 1`,
		`jackalope_ingest_requests_total{code="404",event="none"} 1`,
		"jackalope_ingest_publish_seconds_count 1",
		"jackalope_ingest_in_flight 0",
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Not ready while NATS is away; requests in flight during shutdown
	// still get their answer. A publish fails at once while NATS is away,
	// so the request is held in flight by sending its body in two parts,
	// the second once the shutdown has begun.
	n.Stop()
	s.waitFor(t, "/readyz", http.StatusServiceUnavailable)
	type result struct {
		code int
		err  error
	}
	inFlight := make(chan result, 1)
	body := fmt.Sprintf(checkIn, "C02RUN000003")
	pr, pw := io.Pipe()
	go func() {
		code, err := s.send(t.Context(), testToken, pr)
		inFlight <- result{code, err}
	}()
	if _, err := io.WriteString(pw, body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the request to show as in flight", func() bool {
		_, m := s.opsGet(t, "/metrics")
		return strings.Contains(m, "jackalope_ingest_in_flight 1")
	})
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop(t) }()
	// The public listener closes once the shutdown has begun.
	testwait.For(t, 30*time.Second, "the public listener to close", func() bool {
		code, _ := s.get(t, "/")
		return code == 0
	})
	if _, err := io.WriteString(pw, body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	got := <-inFlight
	if got.err != nil || got.code != http.StatusServiceUnavailable {
		t.Errorf("request in flight at shutdown: %d, %v; want its 503 answer", got.code, got.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("run = %v, want nil after a graceful stop", err)
	}
	if strings.Contains(s.logs.String(), testToken) {
		t.Errorf("the token appears in the logs:\n%s", s.logs)
	}
}

// TestRunWaitsForTheInstaller starts ingest against a server where nothing
// is provisioned yet: ingest's NATS user may not create streams, so it
// waits, taking no request, until the installer (here the test) has made
// JAMF_EVENTS and the bucket.
func TestRunWaitsForTheInstaller(t *testing.T) {
	n := bustest.Server(t)
	env := map[string]string{"SECRET_KEY": testSecret, "NATS_URL": n.URL(), "LISTEN_ADDR": freeAddr(t), "METRICS_ADDR": freeAddr(t), "DATA_DIR": t.TempDir()}
	s := &service{url: "http://" + env["LISTEN_ADDR"], ops: "http://" + env["METRICS_ADDR"], done: make(chan error, 1), logs: &logtest.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- run(ctx, nil, mapEnv(env), io.Discard, s.logs) }()
	t.Cleanup(func() { _ = s.stop(t) })

	testwait.Until(t, 30*time.Second, func() error {
		select {
		case err := <-s.done:
			t.Fatalf("ingest stopped (%v) instead of waiting for the stream; logs:\n%s", err, s.logs)
		default:
		}
		if !strings.Contains(s.logs.String(), "waiting for the installer") {
			return fmt.Errorf("ingest never said it waits for the installer; logs:\n%s", s.logs)
		}
		return nil
	})
	if code, _ := s.opsGet(t, "/readyz"); code == http.StatusOK {
		t.Error("ingest is ready before its stream exists")
	}
	for _, want := range []string{"stream JAMF_EVENTS", "KV bucket installations"} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("the waiting log does not name %q:\n%s", want, s.logs)
		}
	}

	installer := n.Connect(t) // provisions, as the installer does at start
	keys, err := secret.New(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := installer.PutInstallation(t.Context(), registry.Entry{ID: testID, Status: registry.StatusActive, TokenHash: keys.HashToken(testToken)}); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "/readyz", http.StatusOK)
	if code, err := s.post(t.Context(), testToken, "C02WAIT00001"); err != nil || code != http.StatusNoContent {
		t.Errorf("POST once provisioned = %d, %v; want 204", code, err)
	}
}

func TestRunWithEmbeddedNATS(t *testing.T) {
	s := start(t, map[string]string{})
	if code, err := s.post(t.Context(), testToken, "C02EMB000001"); err != nil || code != http.StatusNotFound {
		t.Errorf("POST with no installation = %d, %v; want 404", code, err)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	if !strings.Contains(s.logs.String(), "embedded nats server started") {
		t.Errorf("logs do not mention the embedded server:\n%s", s.logs)
	}
}

func TestRunFailsWhenNATSIsUnreachable(t *testing.T) {
	env := map[string]string{"SECRET_KEY": testSecret, "NATS_URL": "nats://" + freeAddr(t), "LISTEN_ADDR": freeAddr(t)}
	err := run(t.Context(), nil, mapEnv(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "nats") {
		t.Errorf("run = %v, want an error about NATS", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run waited for its start timeout instead of failing at once: %v", err)
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestStartupLogHidesCredentials starts ingest with credentials in NATS_URL
// and DATABASE_URL, NATS unreachable: neither the start-up log line nor
// the error shows them.
func TestStartupLogHidesCredentials(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{
		"SECRET_KEY":   testSecret,
		"NATS_URL":     "nats://TOKEN-s3cr3t@" + freeAddr(t),
		"DATABASE_URL": "postgres://u@db/x?password=pw-s3cr3t",
		"LISTEN_ADDR":  freeAddr(t),
	}
	err := run(t.Context(), nil, mapEnv(env), io.Discard, &stderr)
	if err == nil {
		t.Fatal("run succeeded without NATS")
	}
	out := stderr.String() + err.Error()
	if !strings.Contains(out, "ingest starting") {
		t.Fatalf("no start-up line was logged; the check would prove nothing:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the start-up log or error shows a credential:\n%s", out)
	}
}

// TestNotReadyWithAnotherKey pins finding 5 for ingest: with a SECRET_KEY
// other than the one the installer published, ingest is not ready, says why
// in /readyz and logs an ERROR naming SECRET_KEY and SECRET_KEY_PREVIOUS
// (never a key); once the published key is its own, it becomes ready.
func TestNotReadyWithAnotherKey(t *testing.T) {
	n := bustest.Server(t)
	admin := n.Connect(t)
	const installerKey = "the installer's own secret key 0000"
	other, err := secret.New(installerKey)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := secret.New(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.PublishKeys(t.Context(), other.Fingerprint(), ""); err != nil {
		t.Fatal(err)
	}
	s := launch(t, map[string]string{"NATS_URL": n.URL()})
	s.waitFor(t, "/readyz", http.StatusServiceUnavailable)
	if _, body := s.opsGet(t, "/readyz"); !strings.Contains(body, "SECRET_KEY does not match the installer's key") || !strings.Contains(body, other.Fingerprint()) {
		t.Errorf("/readyz says %q; want why, with the installer's fingerprint", body)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "SECRET_KEY_PREVIOUS") {
		t.Errorf("no ERROR naming SECRET_KEY and SECRET_KEY_PREVIOUS in the logs:\n%s", logs)
	}
	for _, key := range []string{testSecret, installerKey} {
		if strings.Contains(logs, key) {
			t.Errorf("the logs show a key (%q)", key)
		}
	}

	if err := admin.PublishKeys(t.Context(), mine.Fingerprint(), ""); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "/readyz", http.StatusOK)
}
