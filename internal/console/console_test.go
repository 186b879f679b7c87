package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/console"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestSignInShowsOwnWorkspace signs in members of two workspaces: each
// sees only its own channels, those that need attention first.
func TestSignInShowsOwnWorkspace(t *testing.T) {
	env := newEnv(t)
	quiet, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "alpha-quiet", UserID: ada.UserID})
	broken, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "zulu-broken", UserID: bob.UserID})
	dead, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "mike-dead-letters", UserID: ada.UserID})
	other, _ := env.install(t, slacktest.Install{TeamID: eve.TeamID, TeamName: "Other Corp", ChannelName: "other-secret", UserID: eve.UserID})
	if _, err := env.in.Disable(t.Context(), broken.ID, "channel_not_found"); err != nil {
		t.Fatal(err)
	}
	env.deadLetter(t, dead.ID, "ComputerAdded", `{"n":1}`)

	b := env.signIn(t, ada)
	resp, page := b.get(t, env.srv.URL+"/admin")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin = %d:\n%s", resp.StatusCode, page)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") || strings.Contains(got, "unsafe") {
		t.Errorf("Content-Security-Policy = %q; want the strict policy", got)
	}
	order := regexp.MustCompile(`#(alpha-quiet|zulu-broken|mike-dead-letters|other-secret)`).FindAllString(page, -1)
	if diff := cmp.Diff([]string{"#zulu-broken", "#mike-dead-letters", "#alpha-quiet"}, order); diff != "" {
		t.Errorf("channels shown to Ada (-want +got):\n%s", diff)
	}
	for _, want := range []string{"Ada Lovelace", "channel_not_found", "read-only", quiet.ID} {
		if !strings.Contains(page, want) {
			t.Errorf("channels page lacks %q", want)
		}
	}
	if strings.Contains(page, other.ID) || strings.Contains(page, "Other Corp") {
		t.Error("Ada's channels page shows the other workspace's channel")
	}

	_, page = env.signIn(t, eve).get(t, env.srv.URL+"/admin")
	if got := regexp.MustCompile(`#[a-z-]+-(quiet|broken|letters|secret)`).FindAllString(page, -1); !cmp.Equal(got, []string{"#other-secret"}) {
		t.Errorf("Eve sees %v; want only #other-secret", got)
	}
	env.checkNoSecrets(t)
}

// TestSignedOutGoesToSlack sends a browser without a session to the
// sign-in, and the sign-in to Slack's authorize page with a state, a nonce
// and a login cookie scoped to the callback.
func TestSignedOutGoesToSlack(t *testing.T) {
	env := newEnv(t)
	b := browser(t)
	resp, _ := b.get(t, env.srv.URL+"/admin")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("GET /admin signed out = %d to %q; want 302 to /admin/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.get(t, env.srv.URL+"/admin/login")
	loc := mustParse(t, resp.Header.Get("Location"))
	q := loc.Query()
	if loc.Scheme+"://"+loc.Host+loc.Path != env.slack.Issuer()+"/openid/connect/authorize" || q.Get("client_id") != slacktest.ClientID ||
		q.Get("scope") != "openid profile" || q.Get("redirect_uri") != env.srv.URL+"/admin/callback" ||
		q.Get("response_type") != "code" || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("state") == q.Get("nonce") {
		t.Errorf("login redirects to %s; want Slack's authorize page with client_id, openid profile, the callback, a state and a nonce", loc)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "jackalope_console_login" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/admin/callback" || ck.MaxAge != 600 {
		t.Errorf("login cookie = %+v; want HttpOnly, SameSite=Lax, Path /admin/callback, 10 minutes", ck)
	}
}

// TestSessionCookie checks the session cookie's attributes and refuses a
// forged or expired one.
func TestSessionCookie(t *testing.T) {
	env := newEnv(t)
	b := env.signIn(t, ada)
	base := mustParse(t, env.srv.URL+"/admin")
	var session *http.Cookie
	for _, c := range b.http.Jar.Cookies(base) {
		if c.Name == "jackalope_console" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie after signing in")
	}

	tests := []struct {
		name   string
		cookie func() string
		wait   time.Duration
		want   int
	}{
		{"genuine", func() string { return session.Value }, 0, http.StatusOK},
		{"forged payload", func() string {
			payload, rest, _ := strings.Cut(session.Value, ".")
			forged := []byte(payload)
			forged[len(forged)/2] ^= 2
			return string(forged) + "." + rest
		}, 0, http.StatusFound},
		{"signed with another key", func() string {
			other := strings.Repeat("A", 43)
			return session.Value[:strings.LastIndexByte(session.Value, '.')+1] + other
		}, 0, http.StatusFound},
		{"empty", func() string { return "" }, 0, http.StatusFound},
		{"expired", func() string { return session.Value }, 8*time.Hour + time.Second, http.StatusFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Advance(tt.wait)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.srv.URL+"/admin", nil)
			req.AddCookie(&http.Cookie{Name: "jackalope_console", Value: tt.cookie()})
			resp, _ := browser(t).do(t, req)
			if resp.StatusCode != tt.want {
				t.Errorf("GET /admin with a %s session = %d; want %d", tt.name, resp.StatusCode, tt.want)
			}
		})
	}
}

// TestSessionCookieAttributes reads the cookie the callback sets.
func TestSessionCookieAttributes(t *testing.T) {
	env := newEnv(t)
	b := browser(t)
	resp, _ := b.get(t, env.srv.URL+"/admin/login")
	resp, _ = b.get(t, env.slack.SignIn(t, resp.Header.Get("Location"), ada))
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "jackalope_console" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/admin" || ck.MaxAge != 8*3600 {
		t.Errorf("session cookie = %+v; want HttpOnly, SameSite=Lax, not Secure on http, Path /admin, 8 hours", ck)
	}
}

// TestIDTokenRefused signs in with id_tokens that must not pass, and with
// a callback that does not match its sign-in: nobody is signed in.
func TestIDTokenRefused(t *testing.T) {
	tests := []struct {
		name    string
		forgery slacktest.Forgery
		tamper  func(callback string, login *http.Cookie) (string, *http.Cookie)
		want    int
	}{
		{name: "wrong audience", forgery: slacktest.Forgery{Audience: "another-app"}, want: http.StatusBadRequest},
		{name: "wrong issuer", forgery: slacktest.Forgery{Issuer: "https://slack.example"}, want: http.StatusBadRequest},
		{name: "wrong nonce", forgery: slacktest.Forgery{Nonce: "replayed-nonce"}, want: http.StatusBadRequest},
		{name: "wrong signature", forgery: slacktest.Forgery{WrongKey: true}, want: http.StatusBadRequest},
		{name: "expired", forgery: slacktest.Forgery{Expired: true}, want: http.StatusBadRequest},
		{name: "other state", tamper: func(cb string, ck *http.Cookie) (string, *http.Cookie) {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", "attacker-state")
			u.RawQuery = q.Encode()
			return u.String(), ck
		}, want: http.StatusBadRequest},
		{name: "no login cookie", tamper: func(cb string, _ *http.Cookie) (string, *http.Cookie) { return cb, nil }, want: http.StatusBadRequest},
		{name: "cancelled at Slack", tamper: func(cb string, ck *http.Cookie) (string, *http.Cookie) {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Del("code")
			q.Set("error", "access_denied")
			u.RawQuery = q.Encode()
			return u.String(), ck
		}, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.slack.Forge(tt.forgery)
			resp, _ := browser(t).get(t, env.srv.URL+"/admin/login")
			var login *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "jackalope_console_login" {
					login = c
				}
			}
			callback := env.slack.SignIn(t, resp.Header.Get("Location"), ada)
			if tt.tamper != nil {
				callback, login = tt.tamper(callback, login)
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, callback, nil)
			if login != nil {
				req.AddCookie(login)
			}
			resp, page := browser(t).do(t, req)
			if resp.StatusCode != tt.want {
				t.Errorf("callback = %d; want %d:\n%s", resp.StatusCode, tt.want, page)
			}
			for _, c := range resp.Cookies() {
				if c.Name == "jackalope_console" && c.Value != "" {
					t.Errorf("a refused sign-in set a session cookie")
				}
			}
			if !strings.Contains(page, "Sign in with Slack") {
				t.Errorf("refusal page does not offer to sign in again:\n%s", page)
			}
			env.checkNoSecrets(t, mustParse(t, callback).Query().Get("code"))
		})
	}
}

// TestDiscoveryIsLazy starts the console while Slack's discovery fails:
// the service serves, the sign-in says Slack cannot be reached, and works
// once Slack answers again and the retry interval has passed.
func TestDiscoveryIsLazy(t *testing.T) {
	env := newEnv(t)
	env.slack.SetDiscoveryDown(true)
	b := browser(t)
	for range 2 {
		resp, page := b.get(t, env.srv.URL+"/admin/login")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "Slack cannot be reached") {
			t.Fatalf("login while discovery fails = %d; want 503 saying Slack cannot be reached:\n%s", resp.StatusCode, page)
		}
	}
	env.slack.SetDiscoveryDown(false)
	env.clock.Advance(5 * time.Second)
	if resp, page := b.get(t, env.srv.URL+"/admin/login"); resp.StatusCode != http.StatusFound {
		t.Fatalf("login once Slack answers = %d; want 302 to Slack:\n%s", resp.StatusCode, page)
	}
	env.signIn(t, ada)
}

// TestNotConfigured says what to set when the Slack app is missing.
func TestNotConfigured(t *testing.T) {
	env := newEnv(t, func(o *console.Options) { o.OIDC.ClientSecret = "" })
	resp, page := browser(t).get(t, env.srv.URL+"/admin/login")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "SLACK_CLIENT_SECRET") || strings.Contains(page, "SLACK_CLIENT_ID ") {
		t.Errorf("login without a client secret = %d; want 503 naming SLACK_CLIENT_SECRET:\n%s", resp.StatusCode, page)
	}
}
