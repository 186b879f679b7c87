package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

func TestOpsApart(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		allInOne bool
		want     bool
	}{
		{name: "split service by default", want: true},
		{name: "split service, METRICS_ADDR set", env: map[string]string{"METRICS_ADDR": ":9191"}, want: true},
		{name: "split service, METRICS_ADDR is LISTEN_ADDR", env: map[string]string{"METRICS_ADDR": ":5000"}, want: false},
		{name: "all-in-one by default", allInOne: true, want: false},
		{name: "all-in-one, METRICS_ADDR set", env: map[string]string{"METRICS_ADDR": ":9090"}, allInOne: true, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got := OpsApart(cfg, tt.allInOne); got != tt.want {
				t.Errorf("OpsApart = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAllInOneOpsApart serves the all-in-one with METRICS_ADDR set: the
// ops endpoints answer there and 404 on the public port, and the start-up
// notes say so.
func TestAllInOneOpsApart(t *testing.T) {
	addr, opsAddr := loopbackAddr(t), loopbackAddr(t)
	env := map[string]string{"LISTEN_ADDR": addr, "METRICS_ADDR": opsAddr, "DATA_DIR": t.TempDir(), "SHUTDOWN_TIMEOUT": "5s"}
	stdout, stderr, stop := serveAllInOne(t, env)
	defer stop()

	testwait.Until(t, 30*time.Second, func() error {
		if code, _ := httpGet(t, "http://"+opsAddr+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz on METRICS_ADDR answered %d; want 200\n%s", code, stderr)
		}
		return nil
	})
	if code, body := httpGet(t, "http://"+opsAddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "jackalope_ingest_in_flight") {
		t.Errorf("GET /metrics on METRICS_ADDR = %d; want 200 with the ingest series", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := httpGet(t, "http://"+addr+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the public port = %d; want 404 with METRICS_ADDR set", path, code)
		}
	}
	if code, _ := httpGet(t, "http://"+addr+"/"); code != http.StatusOK {
		t.Errorf("GET / on the public port = %d; want the page", code)
	}
	if !strings.Contains(stdout.String(), "/metrics on "+opsAddr+" (METRICS_ADDR)") {
		t.Errorf("start-up notes do not say where the ops endpoints are:\n%s", stdout)
	}
	if !strings.Contains(stderr.String(), `"metrics_addr":"`+opsAddr+`"`) {
		t.Errorf("the log does not say where the ops endpoints are:\n%s", stderr)
	}
}

// serveAllInOne serves the all-in-one with env in the background until
// stop, which fails the test unless AllInOne then returns nil within 30s.
func serveAllInOne(t *testing.T, env map[string]string) (stdout, stderr *logtest.Buffer, stop func()) {
	t.Helper()
	stdout, stderr = &logtest.Buffer{}, &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- AllInOne(ctx, nil, func(k string) string { return env[k] }, stdout, stderr) }()
	return stdout, stderr, func() {
		t.Helper()
		cancel()
		if err := testwait.Receive(t, done, 30*time.Second, "AllInOne to stop"); err != nil {
			t.Errorf("AllInOne = %v after its context ended; want nil", err)
		}
	}
}

// loopbackAddr returns a loopback address that was free a moment ago.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpGet answers 0 when nothing listens yet.
func httpGet(t *testing.T, url string) (int, string) {
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

// TestAllInOneStartupLogHidesCredentials starts the all-in-one with
// credentials in NATS_URL and DATABASE_URL, the database unreachable:
// neither the start-up log line, the notes nor the error shows them.
func TestAllInOneStartupLogHidesCredentials(t *testing.T) {
	env := map[string]string{
		"NATS_URL":     "nats://TOKEN-s3cr3t@" + loopbackAddr(t),
		"DATABASE_URL": "postgres://u@" + loopbackAddr(t) + "/x?password=pw-s3cr3t&connect_timeout=5",
		"LISTEN_ADDR":  loopbackAddr(t),
		"DATA_DIR":     t.TempDir(),
	}
	var stdout, stderr logtest.Buffer
	err := AllInOne(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil {
		t.Fatal("AllInOne served without a database")
	}
	out := stdout.String() + stderr.String() + err.Error()
	if !strings.Contains(out, "jackalope starting") {
		t.Fatalf("no start-up line was logged; the check would prove nothing:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the start-up log, notes or error show a credential:\n%s", out)
	}
}
