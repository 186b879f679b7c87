// Package bustest gives tests a real NATS JetStream to talk to: an embedded
// server in a temporary directory (New), a standalone server that a test can
// stop and start again on the same port and store (Server), or the external
// server named by JACKALOPE_TEST_NATS_URL (External). Every *bus.Conn it
// returns is provisioned and closed when the test ends.
package bustest

import (
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jackalope-app/jackalope/internal/bus"
)

// EnvURL names the variable that points External at a NATS server.
const EnvURL = "JACKALOPE_TEST_NATS_URL"

// testMaxBytes keeps the streams of throwaway servers small.
const testMaxBytes = 64 << 20

// New returns a provisioned connection to an embedded server whose store
// lives in a temporary directory. opts adjust the configuration (a short
// AckWait, say) before connecting.
func New(t testing.TB, opts ...func(*bus.Config)) *bus.Conn {
	t.Helper()
	cfg := bus.Config{DataDir: t.TempDir(), MaxBytes: testMaxBytes}
	return connect(t, cfg, opts)
}

// External returns a provisioned connection to the server named by
// JACKALOPE_TEST_NATS_URL, and skips the test when it is not set. That
// server is shared: a test must leave the streams in place and clean up
// what it added.
func External(t testing.TB, opts ...func(*bus.Config)) *bus.Conn {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		t.Skipf("%s is not set", EnvURL)
	}
	return connect(t, bus.Config{URL: url}, opts)
}

// NATS is a standalone NATS server with JetStream on a loopback port, for
// tests that must see what happens while the server is down. Stop and
// Start keep its port and store.
type NATS struct {
	t    testing.TB
	dir  string
	port int

	mu  sync.Mutex
	srv *server.Server
}

// Server starts a standalone server that is shut down when the test ends.
func Server(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, dir: t.TempDir(), port: server.RANDOM_PORT}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// URL is the client URL of the server; it stays the same across restarts.
func (n *NATS) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(n.port)
}

// Connect returns a provisioned connection to n that reconnects by itself
// across Stop and Start. The server must be running.
func (n *NATS) Connect(t testing.TB, opts ...func(*bus.Config)) *bus.Conn {
	t.Helper()
	return connect(t, bus.Config{URL: n.URL(), MaxBytes: testMaxBytes}, opts)
}

// Start starts the server, on the port and store it had before if it ran
// already. It does nothing when the server is running.
func (n *NATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	opts := &server.Options{
		ServerName: "bustest",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.dir,
		NoSigs:     true,
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		n.t.Fatalf("bustest: new nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10*time.Second) || !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		n.t.Fatalf("bustest: nats server on port %d did not start", n.port)
	}
	n.port = srv.Addr().(*net.TCPAddr).Port
	n.srv = srv
}

// Stop shuts the server down and waits until its store is flushed. It does
// nothing when the server is not running.
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart stops the server and starts it again.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	n.Start()
}

func connect(t testing.TB, cfg bus.Config, opts []func(*bus.Config)) *bus.Conn {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	c, err := bus.Connect(t.Context(), cfg, Logger(t))
	if err != nil {
		t.Fatalf("bustest: connect: %v", err)
	}
	t.Cleanup(c.Close)
	if err := c.Provision(t.Context()); err != nil {
		t.Fatalf("bustest: provision: %v", err)
	}
	return c
}

// Logger returns a logger that writes to the test's output until the test
// ends, and drops lines that goroutines write after that.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
