package bus

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestAwait checks that a service that does not provision waits, saying
// what for, until another process has created what it needs, and that it
// gives up with its context naming what is still missing.
func TestAwait(t *testing.T) {
	dir := t.TempDir()
	logs := newWatchedLog()
	c, err := Connect(t.Context(), Config{DataDir: dir}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Cut short, it names what is missing.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Await(ctx, IngestNeeds) }()
	logs.waitFor(t, "waiting for the installer")
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "missing stream "+StreamEvents+", KV bucket "+BucketInstallations) {
		t.Errorf("Await cut short on an empty server = %v; want it to name the missing stream and bucket", err)
	}

	logs.reset()
	go func() { done <- c.Await(t.Context(), DispatchNeeds) }()
	text := logs.waitFor(t, "waiting for the installer")
	for _, want := range []string{"consumer dispatch of stream JAMF_EVENTS", "stream JAMF_DEAD", "stream JAMF_CONTROL", "KV bucket installations"} {
		if !strings.Contains(text, want) {
			t.Errorf("Await's log does not name %q:\n%s", want, text)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Await returned %v before anything was provisioned", err)
	default:
	}

	// Another process provisions; Await notices.
	other, err := Connect(t.Context(), Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Receive(t, done, 30*time.Second, "Await to return after the streams and bucket were created"); err != nil {
		t.Errorf("Await after provisioning = %v; want nil", err)
	}
	if err := c.Await(t.Context(), IngestNeeds); err != nil {
		t.Errorf("Await on a provisioned server = %v; want nil", err)
	}
}

// watchedLog is a log a test can wait on: every write wakes waitFor.
type watchedLog struct {
	mu    sync.Mutex
	buf   strings.Builder
	wrote chan struct{}
}

func newWatchedLog() *watchedLog { return &watchedLog{wrote: make(chan struct{}, 1)} }

func (l *watchedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *watchedLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// waitFor returns the log once it contains s, failing the test after 30s.
func (l *watchedLog) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		text := l.buf.String()
		l.mu.Unlock()
		if strings.Contains(text, s) {
			return text
		}
		select {
		case <-l.wrote:
		case <-timeout:
			t.Fatalf("the log never said %q:\n%s", s, text)
		}
	}
}
