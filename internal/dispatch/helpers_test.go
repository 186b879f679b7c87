package dispatch_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testSecretKey is the SECRET_KEY of every test.
const testSecretKey = "dispatch-test-secret-key-0123456789"

// iconBase is the icon base URL the tests give the dispatcher.
const iconBase = "https://jackalope.example.com/static/images"

// logCapture collects every line a test logs, so that the test can prove
// that no webhook URL ever reaches a log.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// leaks returns each webhook URL of which logs shows the whole URL, its
// path, or its secret last path segment.
func leaks(logs string, webhookURLs []string) []string {
	var out []string
	for _, raw := range webhookURLs {
		u, err := url.Parse(raw)
		if err != nil {
			out = append(out, raw)
			continue
		}
		forms := []string{raw, u.Path}
		if i := strings.LastIndexByte(u.Path, '/'); i >= 0 {
			forms = append(forms, u.Path[i+1:])
		}
		for _, f := range forms {
			if len(f) > 4 && strings.Contains(logs, f) {
				out = append(out, raw)
				break
			}
		}
	}
	return out
}

// checkNoLeaks fails t when logs show any of webhookURLs.
func checkNoLeaks(t testing.TB, logs *logCapture, webhookURLs func() []string) {
	t.Helper()
	if got := leaks(logs.String(), webhookURLs()); len(got) > 0 {
		t.Errorf("logs show %d webhook URL(s), which are secrets: %v", len(got), got)
	}
}

func TestLeaksFindsAWebhookURL(t *testing.T) {
	const hook = "http://127.0.0.1:1234/services/T0/B0/s3cr3tt0k3nv4lu3"
	tests := []struct {
		name string
		logs string
		want int
	}{
		{"clean", `level=INFO msg=delivered installation=abc`, 0},
		{"whole url", `err="post ` + hook + `: refused"`, 1},
		{"path only", `path=/services/T0/B0/s3cr3tt0k3nv4lu3`, 1},
		{"secret segment", `token=s3cr3tt0k3nv4lu3`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leaks(tt.logs, []string{hook}); len(got) != tt.want {
				t.Errorf("leaks(%q) = %v, want %d leak(s)", tt.logs, got, tt.want)
			}
		})
	}
}

// bodySeq makes every test body unique, so that the bus's dedup window
// never folds two events of a test into one.
var bodySeq atomic.Int64

// numberedComputerAdded returns a unique ComputerAdded body and its number
// n: the computer is MBP-TEST-<n>, serial C02TEST<n, 5 digits>, and the
// eventTimestamp is 1732870801234+n milliseconds.
func numberedComputerAdded() ([]byte, int64) {
	n := bodySeq.Add(1)
	return fmt.Appendf(nil, `{
  "webhook": {"id": 11, "name": "Slack - Computer Added", "webhookEvent": "ComputerAdded", "eventTimestamp": %d},
  "event": {
    "udid": "6F2B9C1E-4A7D-5B3E-9C21-%012d",
    "deviceName": "MBP-TEST-%d",
    "model": "MacBook Pro (14-inch, 2023)",
    "serialNumber": "C02TEST%05d",
    "osVersion": "14.6.1",
    "username": "jrivera",
    "realName": "Jordan Rivera",
    "jssID": %d
  }
}`, 1732870801234+n, n, n, n, n), n
}
