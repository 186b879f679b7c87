package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestAllInOneKeyRotation rotates SECRET_KEY on the all-in-one and its
// embedded server as the README says: the old key becomes
// SECRET_KEY_PREVIOUS next to a new SECRET_KEY, events to the Jamf URLs
// handed out under the old key are still accepted and delivered, `keys
// reseal` seals everything again, and once SECRET_KEY_PREVIOUS is removed
// the same Jamf URLs still work. The channel requires HTTP Basic
// credentials, set under the old key: they keep working too, and a post
// without them is refused. The old key alone is then refused at start.
func TestAllInOneKeyRotation(t *testing.T) {
	const (
		oldKey = "e2e-rotation-old-secret-key-0123456789"
		newKey = "e2e-rotation-new-secret-key-9876543210"
	)
	fake := slacktest.New(t)
	env, base := allInOneEnv(t)
	webhook := fake.NewWebhook("#jamf")
	const password = "e2e-basic-auth-s3cret"
	secrets := []string{oldKey, newKey, webhook, password}
	withAuth := func(r *http.Request) { r.SetBasicAuth("jamf", password) }

	phases := []struct {
		name     string
		key      string
		previous string
		run      func(t *testing.T, jamfURL string) string
	}{
		{name: "old key", key: oldKey, run: func(t *testing.T, _ string) string {
			out := runAllInOne(t, env, "channels", "add", "--webhook-url", webhook, "--channel", "#jamf")
			jamfURL := jamfURLIn(t, "channels add's output", out)
			id := regexp.MustCompile(`installation ([0-9a-f-]{36})`).FindStringSubmatch(out)
			if id == nil {
				t.Fatalf("channels add names no installation:\n%s", out)
			}
			runAllInOne(t, env, "channels", "set", id[1], "--basic-auth", "jamf:"+password)
			// Ingest learns the credentials from the KV bucket a moment
			// after they are set.
			waitStatus(t, jamfURL, eventBody(t, "unauthorized-000"), http.StatusUnauthorized)
			return jamfURL
		}},
		{name: "new key with the old one as previous", key: newKey, previous: oldKey, run: func(t *testing.T, jamfURL string) string {
			postEvent(t, jamfURL, "application/json", eventBody(t, "rotating-000"), withAuth)
			waitDelivered(t, fake, webhook, []string{"rotating-000"}, deliveryTimeout)
			out := runAllInOne(t, env, "keys", "reseal")
			for _, want := range []string{"Sealed again under SECRET_KEY: 1 of 1 installations", "remove it from every service"} {
				if !strings.Contains(out, want) {
					t.Errorf("keys reseal printed:\n%s\nwant %q", out, want)
				}
			}
			if again := runAllInOne(t, env, "keys", "reseal"); !strings.Contains(again, "0 of 1 installations (1 already were, 0 failed)") {
				t.Errorf("a second keys reseal printed:\n%s\nwant nothing left to do", again)
			}
			return jamfURL
		}},
		{name: "new key alone", key: newKey, run: func(t *testing.T, jamfURL string) string {
			return jamfURL
		}},
	}
	var jamfURL string
	for i, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			env["SECRET_KEY"], env["SECRET_KEY_PREVIOUS"] = ph.key, ph.previous
			srv := startAllInOne(t, env)
			waitReady(t, srv, base+"/readyz")
			jamfURL = ph.run(t, jamfURL)
			secrets = append(secrets, jamfURL[strings.LastIndex(jamfURL, "/")+1:])
			id := eventIDs(fmt.Sprintf("phase%c", 'a'+i), 1)[0]
			postEvent(t, jamfURL, "application/json", eventBody(t, id), withAuth)
			waitDelivered(t, fake, webhook, []string{id}, deliveryTimeout)
			if status := postStatus(t, jamfURL, nil); status != http.StatusUnauthorized {
				t.Errorf("POST without credentials = %d; want 401", status)
			}
			if err := srv.stop(t, os.Interrupt); err != nil {
				t.Errorf("AllInOne returned %v after its context ended, want nil", err)
			}
			for _, s := range secrets {
				if strings.Contains(srv.output.String(), s) {
					t.Errorf("the output shows a secret (a key, the webhook URL or the Jamf token)")
				}
			}
		})
		if t.Failed() {
			return
		}
	}

	// Everything is sealed under the new key now: the old key alone opens
	// nothing, and the all-in-one says so instead of starting.
	env["SECRET_KEY"], env["SECRET_KEY_PREVIOUS"] = oldKey, ""
	var out logtest.Buffer
	err := app.AllInOne(context.Background(), nil, getenv(env), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "SECRET_KEY") || !strings.Contains(err.Error(), "opens none of the stored installations") {
		t.Errorf("AllInOne with the old key alone = %v; want a refusal naming SECRET_KEY", err)
	}
}

// postStatus posts an event to jamfURL, adjusted by opt when not nil, and
// returns the status.
func postStatus(t *testing.T, jamfURL string, opt func(*http.Request)) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, jamfURL, bytes.NewReader(eventBody(t, "unauthorized-000")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if opt != nil {
		opt(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", jamfURL, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
