package console_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/jackalope-app/jackalope/internal/console"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// deliveryStates is a Delivery with fixed answers.
type deliveryStates map[string]console.DeliveryState

func (d deliveryStates) DeliveryStates(_ context.Context, ids []string) (map[string]console.DeliveryState, error) {
	out := map[string]console.DeliveryState{}
	for _, id := range ids {
		if s, ok := d[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

// TestDeliveryPanels shows the delivery engine's view only where it has
// data, and puts the channels that need someone first: gone, failing,
// with dead letters, paused by Slack, getting digests, then the quiet
// ones.
func TestDeliveryPanels(t *testing.T) {
	states := deliveryStates{}
	env := newEnv(t, func(o *console.Options) { o.Delivery = states })
	now := env.clock.Now()
	install := func(name string) registry.Installation {
		inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: name, UserID: ada.UserID})
		return inst
	}
	quiet := install("a-quiet")
	digest := install("b-digest")
	paused := install("c-paused")
	dead := install("d-deadletters")
	failing := install("e-failing")
	gone := install("f-gone")
	states[digest.ID] = console.DeliveryState{Waiting: 500, Shared: registry.DeliveryState{DigestSince: now.Add(-time.Minute)}}
	states[paused.ID] = console.DeliveryState{
		Waiting:      42,
		LastReceived: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
		LastEvent:    "ComputerCheckIn",
		Shared:       registry.DeliveryState{PausedUntil: now.Add(time.Minute), LastStatus: http.StatusTooManyRequests, LastBody: "rate_limited"},
	}
	env.deadLetter(t, dead.ID, "ComputerAdded", `{"n":1}`)
	states[failing.ID] = console.DeliveryState{Waiting: 7, Shared: registry.DeliveryState{
		Failures: 4, FailingSince: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC), RetryAt: time.Date(2030, 1, 2, 3, 10, 0, 0, time.UTC),
		LastStatus: http.StatusServiceUnavailable, LastBody: "service_unavailable",
	}}
	states[gone.ID] = console.DeliveryState{Shared: registry.DeliveryState{Dead: &registry.DeadMark{
		Code: "channel_is_archived", Status: http.StatusGone, Body: "channel_is_archived", At: time.Date(2030, 1, 2, 2, 0, 0, 0, time.UTC),
	}}}
	b := env.signIn(t, ada)
	_, page := b.get(t, env.srv.URL+"/admin")
	order := regexp.MustCompile(`#[a-f]-[a-z]+`).FindAllString(page, -1)
	if want := []string{"#f-gone", "#e-failing", "#d-deadletters", "#c-paused", "#b-digest", "#a-quiet"}; !cmp.Equal(order, want) {
		t.Errorf("channels in order %v; want %v", order, want)
	}
	for _, want := range []string{"digest mode", "paused by Slack until", "42 waiting", "last event 2030-01-02 03:04 UTC (ComputerCheckIn)",
		"failing since 2030-01-02 03:00 UTC", "gone", "Slack answered <code>410 channel_is_archived</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("channels page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<tr class="attention">`); n != 5 {
		t.Errorf("%d rows marked for attention; want 5 (all but the quiet one)", n)
	}
	if n := strings.Count(page, "waiting ·"); n != 4 {
		t.Errorf("%d channels show delivery figures; want only the 4 with data", n)
	}

	pages := []struct {
		inst registry.Installation
		want []string
	}{
		{quiet, nil},
		{paused, []string{"Events waiting</dt><dd>42", "ComputerCheckIn", "Paused by Slack", "429 (rate limited) <code>rate_limited</code>"}},
		{digest, []string{"Events waiting</dt><dd>500 <span class=\"badge warn\">digests</span>", "each message carries every event that waited"}},
		{failing, []string{"Failing</dt><dd>since 2030-01-02 03:00 UTC, 4 tries in a row", "<code>503 service_unavailable</code>", "next try 2030-01-02 03:10 UTC"}},
		{gone, []string{"Slack says it is gone", "<code>channel_is_archived</code> since 2030-01-02 02:00 UTC", `<span class="badge bad">gone</span>`}},
	}
	for _, p := range pages {
		_, page := b.get(t, env.srv.URL+"/admin/channels/"+p.inst.ID)
		if got := strings.Contains(page, "Events waiting"); got != (p.want != nil) {
			t.Errorf("%s: delivery panel shown %t; want %t", p.inst.ChannelName, got, p.want != nil)
		}
		for _, w := range p.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s: channel page lacks %q", p.inst.ChannelName, w)
			}
		}
	}
}

// TestDeadLetterPreview shows each dead letter as the message it would
// have been, Jamf's text escaped, and says when a body is not a webhook.
func TestDeadLetterPreview(t *testing.T) {
	env := newEnv(t, func(o *console.Options) { o.IconBaseURL = "/static/images" })
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "jamf", UserID: ada.UserID})
	if _, err := env.in.SetJamfURL(t.Context(), inst.ID, "https://acme.jamfcloud.com"); err != nil {
		t.Fatal(err)
	}
	hostile := bytes.Replace(sample(t, "ComputerAdded"), []byte(`"MBP-JRIVERA-01"`), []byte(`"<img src=x onerror=alert(1)> & *bold*"`), 1)
	for _, body := range [][]byte{hostile, sample(t, "ComputerPolicyFinished"), []byte(`{"not":"jamf"}`)} {
		env.deadLetter(t, inst.ID, "ComputerAdded", string(body))
	}
	b := env.signIn(t, ada)
	_, page := b.get(t, env.srv.URL+"/admin/channels/"+inst.ID)
	for _, want := range []string{
		`<details class="preview"><summary>Preview</summary>`,
		`<div class="card green">`, `rel="noopener noreferrer">Computer Added</a></p>`, `<img class="thumb" src="/static/images/computer.png"`,
		`&lt;img src=x onerror=alert(1)&gt; &amp; ∗bold∗`,
		`<div class="card red">`, `<strong>Policy ID:</strong> <a href="https://acme.jamfcloud.com/policies.html?id=87" rel="noopener noreferrer">87</a>`,
		"Not a Jamf Pro webhook Jackalope can read",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("channel page lacks %q", want)
		}
	}
	if strings.Contains(page, "<img src=x") {
		t.Error("Jamf's text reached the page as HTML")
	}
}

// TestSecureCookiesBehindHTTPS marks cookies Secure when SERVER_NAME is
// https.
func TestSecureCookiesBehindHTTPS(t *testing.T) {
	env := newEnv(t)
	keys := env.keys
	c, err := console.New(console.Options{
		Channels: env.in, DeadLetters: env.bus, Audit: env.store, Keys: keys,
		BaseURL: "https://jackalope.example.com",
		OIDC:    console.OIDC{Issuer: env.slack.Issuer(), ClientID: slacktest.ClientID, ClientSecret: slacktest.ClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	c.Register(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/admin/login", nil))
	resp := rec.Result()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "redirect_uri=https%3A%2F%2Fjackalope.example.com%2Fadmin%2Fcallback") {
		t.Fatalf("login = %d to %q; want 302 with the https callback", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].Secure {
		t.Errorf("login cookies %+v; want one, Secure", cookies)
	}
}
