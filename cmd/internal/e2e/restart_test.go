package e2e

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestAllInOneKill9 runs the cmd/jackalope binary, adds a channel by hand,
// and posts events while Slack is down, so that every accepted event is
// still queued; it then stops the process — kill -9, or SIGTERM — brings
// Slack back, restarts the binary on the same DATA_DIR and expects every
// event that was answered 204 to reach the channel.
func TestAllInOneKill9(t *testing.T) {
	const events = 50
	tests := []struct {
		name     string
		tag      string // names the events: tag-000, tag-001, ...
		sig      syscall.Signal
		graceful bool // exits 0, rather than dying by the signal
	}{
		{name: "SIGKILL", tag: "kill", sig: syscall.SIGKILL},
		{name: "SIGTERM", tag: "term", sig: syscall.SIGTERM, graceful: true},
	}
	bin := binaries(t, "jackalope")["jackalope"]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			slack := newOutage(t, fake)
			env, base := allInOneEnv(t)

			first := startProcess(t, "jackalope", bin, env)
			waitReady(t, first, base+"/readyz")
			webhook := fake.NewWebhook("#jamf")
			out := runCommand(t, bin, env, "channels", "add", "--webhook-url", slack.url(t, webhook), "--channel", "#jamf")
			jamfURL := jamfURLIn(t, "channels add's output", out)

			slack.down.Store(true)
			ids := eventIDs(tt.tag, events)
			for _, id := range ids {
				postEvent(t, jamfURL, "application/json", eventBody(t, id))
			}
			slack.waitRefused(t, 1)
			if n := fake.Count(webhook); n != 0 {
				t.Fatalf("%d messages reached Slack during the outage", n)
			}

			err := first.stop(t, tt.sig)
			switch {
			case tt.graceful && err != nil:
				t.Errorf("after SIGTERM jackalope exited with %v, want status 0", err)
			case !tt.graceful && !exitedBySignal(err, tt.sig):
				t.Errorf("jackalope ended with %v, want death by %v", err, tt.sig)
			}
			t.Logf("%d events accepted and queued; %d posts refused during the outage; stopped by %v",
				events, slack.refused.Load(), tt.sig)

			slack.down.Store(false)
			restarted := time.Now()
			second := startProcess(t, "jackalope (restarted)", bin, env)
			waitReady(t, second, base+"/readyz")
			got := waitDelivered(t, fake, webhook, ids, deliveryTimeout)
			t.Logf("all %d events delivered %v after the restart (%d duplicates)",
				events, time.Since(restarted).Round(time.Millisecond), duplicates(got, ids))

			if err := second.stop(t, os.Interrupt); err != nil {
				t.Errorf("after SIGINT jackalope exited with %v, want status 0", err)
			}
		})
	}
}
