package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestOnDemand checks a readiness condition looked at on demand: nothing
// is checked until readiness is asked; an answer is kept for
// healthCheckInterval, then looked at again; an error keeps the last
// answer; each change is heard once.
func TestOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			checks  int
			answer  string
			fail    error
			changes []string
		)
		c := onDemand(func(context.Context) (string, error) {
			checks++
			return answer, fail
		}, func(problem string) { changes = append(changes, problem) })

		time.Sleep(10 * healthCheckInterval)
		if checks != 0 {
			t.Fatalf("%d checks before readiness was asked, want none", checks)
		}
		if !c.OK() || checks != 1 {
			t.Fatalf("OK = false or %d checks after the first ask, want true and 1", checks)
		}

		answer = "the database does not answer"
		if !c.OK() || checks != 1 {
			t.Errorf("asked again at once: OK = false or %d checks; want the kept answer, 1 check", checks)
		}
		time.Sleep(healthCheckInterval)
		if c.OK() || c.Reason() != answer || checks != 2 {
			t.Errorf("asked after the interval: OK = true, reason %q or %d checks; want false, %q, 2", c.Reason(), checks, answer)
		}

		fail = errors.New("cannot tell")
		answer = ""
		time.Sleep(healthCheckInterval)
		if c.OK() || checks != 3 {
			t.Errorf("a check that failed: OK = true or %d checks; want the last answer (false), 3", checks)
		}

		fail = nil
		time.Sleep(healthCheckInterval)
		if !c.OK() || checks != 4 {
			t.Errorf("the problem gone: OK = false or %d checks; want true, 4", checks)
		}
		if want := []string{"the database does not answer", ""}; !slices.Equal(changes, want) {
			t.Errorf("changes heard %q, want %q", changes, want)
		}
	})
}

// TestBacklogHasRoom fills a small backlog until it refuses an event:
// ingest's condition then says it is full, naming STREAM_MAX_BYTES, and
// logs it once.
func TestBacklogHasRoom(t *testing.T) {
	conn := bustest.New(t, func(cfg *bus.Config) { cfg.MaxBytes = 32 << 10 })
	logs := &logtest.Buffer{}
	c := BacklogHasRoom(conn, slog.New(slog.NewTextHandler(logs, nil)))
	if !c.OK() {
		t.Fatalf("an empty backlog has no room: %s", c.Reason())
	}
	pad := strings.Repeat("x", 900)
	for i := range 100 {
		err := conn.Publish(t.Context(), jamf.Received{InstallationID: "inst", Event: "E", ReceivedAt: time.Now(),
			Body: []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))})
		if err != nil {
			break
		}
	}
	// The answer is kept for healthCheckInterval after the first ask.
	testwait.For(t, 30*time.Second, "readiness to see the backlog full", func() bool { return !c.OK() })
	if why := c.Reason(); !strings.Contains(why, "STREAM_MAX_BYTES") {
		t.Errorf("Reason() = %q, want it to name STREAM_MAX_BYTES", why)
	}
	if n := strings.Count(logs.String(), "backlog full"); n != 1 {
		t.Errorf("logged %d times that the backlog is full, want once:\n%s", n, logs)
	}
}
