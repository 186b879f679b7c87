package console_test

import (
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

// TestDeliveryPanels shows the delivery engine's panels only where it has
// data, and puts a paused channel before a quiet one.
func TestDeliveryPanels(t *testing.T) {
	states := deliveryStates{}
	env := newEnv(t, func(o *console.Options) { o.Delivery = states })
	quiet, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "alpha-quiet", UserID: ada.UserID})
	paused, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "zulu-paused", UserID: ada.UserID})
	states[paused.ID] = console.DeliveryState{
		Waiting:      42,
		LastReceived: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
		LastEvent:    "ComputerCheckIn",
		PausedUntil:  env.clock.Now().Add(time.Minute),
		Digest:       true,
	}
	b := env.signIn(t, ada)
	_, page := b.get(t, env.srv.URL+"/admin")
	if got := regexp.MustCompile(`#(alpha-quiet|zulu-paused)`).FindAllString(page, -1); !cmp.Equal(got, []string{"#zulu-paused", "#alpha-quiet"}) {
		t.Errorf("channels in order %v; want the paused one first", got)
	}
	for _, want := range []string{"digest mode", "paused by Slack until", "42 waiting", "last event 2030-01-02 03:04 UTC"} {
		if !strings.Contains(page, want) {
			t.Errorf("channels page lacks %q", want)
		}
	}
	if n := strings.Count(page, "waiting ·"); n != 1 {
		t.Errorf("%d channels show delivery figures; want only the one with data", n)
	}
	_, page = b.get(t, env.srv.URL+"/admin/channels/"+quiet.ID)
	if strings.Contains(page, "Events waiting") {
		t.Error("a channel without delivery data shows the delivery panel")
	}
	_, page = b.get(t, env.srv.URL+"/admin/channels/"+paused.ID)
	if !strings.Contains(page, "Events waiting") || !strings.Contains(page, "ComputerCheckIn") {
		t.Error("the paused channel's page lacks its delivery panel")
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
