package slack_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

func TestExchange(t *testing.T) {
	fake := slacktest.New(t)
	fake.SetRedirectURI("https://jackalope.example.com/install")
	hook := fake.AddCode("code-1", slacktest.Install{
		TeamID: "T123", TeamName: "Example", ChannelID: "C456", ChannelName: "jamf", UserID: "U789",
	})
	c := slack.New(fake.Config())

	got, err := c.Exchange(t.Context(), "code-1", "https://jackalope.example.com/install")
	if err != nil {
		t.Fatalf("Exchange = %v", err)
	}
	want := slack.OAuthResult{
		TeamID: "T123", TeamName: "Example", ChannelID: "C456", ChannelName: "#jamf",
		WebhookURL: hook, AuthedUserID: "U789", AppID: slacktest.AppID, Scope: slacktest.Scope,
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "ConfigurationURL"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if got.ConfigurationURL == "" {
		t.Error("ConfigurationURL is empty")
	}
	if err := c.Post(t.Context(), got.WebhookURL, slack.Message{Text: "welcome"}); err != nil {
		t.Errorf("posting to the granted webhook: %v", err)
	}
}

func TestExchangeErrors(t *testing.T) {
	const redirect = "https://jackalope.example.com/install"
	tests := []struct {
		name        string
		setup       func(t *testing.T, fake *slacktest.Server, cfg *slack.Config)
		code        string
		redirect    string
		wantCode    string // the *OAuthError's code, if any
		unavailable bool   // errors.Is(err, ErrUnavailable)
		noWebhook   bool
	}{
		{name: "unknown code", code: "nope", redirect: redirect, wantCode: "invalid_code"},
		{name: "empty code", code: "", redirect: redirect, wantCode: "invalid_code"},
		{
			name: "code used twice", code: "c", redirect: redirect, wantCode: "code_already_used",
			setup: func(t *testing.T, fake *slacktest.Server, cfg *slack.Config) {
				fake.AddCode("c", slacktest.Install{})
				if _, err := slack.New(*cfg).Exchange(t.Context(), "c", redirect); err != nil {
					t.Fatalf("first exchange: %v", err)
				}
			},
		},
		{name: "redirect mismatch", code: "c", redirect: "https://evil.example.com/install", wantCode: "bad_redirect_uri"},
		{name: "redirect missing", code: "c", redirect: "", wantCode: "bad_redirect_uri"},
		{
			name: "wrong client id", code: "c", redirect: redirect, wantCode: "invalid_client_id",
			setup: func(_ *testing.T, _ *slacktest.Server, cfg *slack.Config) { cfg.ClientID = "other" },
		},
		{
			name: "wrong client secret", code: "c", redirect: redirect, wantCode: "bad_client_secret",
			setup: func(_ *testing.T, _ *slacktest.Server, cfg *slack.Config) { cfg.ClientSecret = "other" },
		},
		{
			name: "access denied", code: "c", redirect: redirect, wantCode: "access_denied",
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.FailOAuth("access_denied") },
		},
		{
			name: "invalid grant type", code: "c", redirect: redirect, wantCode: "invalid_grant_type",
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.FailOAuth("invalid_grant_type") },
		},
		{
			name: "odd error code", code: "c", redirect: redirect, wantCode: "unknown_error",
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.FailOAuth("Not A Code <script>") },
		},
		{
			name: "slack internal error", code: "c", redirect: redirect, wantCode: "internal_error", unavailable: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.FailOAuth("internal_error") },
		},
		{
			name: "500", code: "c", redirect: redirect, unavailable: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.ScriptOAuth(slacktest.ServerError()) },
		},
		{
			name: "429", code: "c", redirect: redirect, unavailable: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) {
				fake.ScriptOAuth(slacktest.Ratelimited("3"))
			},
		},
		{
			name: "not json", code: "c", redirect: redirect, unavailable: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) {
				fake.ScriptOAuth(slacktest.Response{Status: 200, Body: "<html>maintenance</html>"})
			},
		},
		{
			name: "no incoming webhook", code: "c", redirect: redirect, noWebhook: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) {
				fake.ScriptOAuth(slacktest.Response{Status: 200, Body: `{"ok":true,"team":{"id":"T1"},"scope":"commands"}`})
			},
		},
		{
			name: "unreachable", code: "c", redirect: redirect, unavailable: true,
			setup: func(_ *testing.T, fake *slacktest.Server, _ *slack.Config) { fake.Close() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			fake.SetRedirectURI(redirect)
			fake.AddCode("c", slacktest.Install{})
			cfg := fake.Config()
			if tt.setup != nil {
				tt.setup(t, fake, &cfg)
			}

			_, err := slack.New(cfg).Exchange(t.Context(), tt.code, tt.redirect)

			if err == nil {
				t.Fatal("Exchange = nil error")
			}
			var oe *slack.OAuthError
			if gotOAuth := errors.As(err, &oe); gotOAuth != (tt.wantCode != "") {
				t.Fatalf("errors.As(%v, *OAuthError) = %v, want %v", err, gotOAuth, tt.wantCode != "")
			}
			if oe != nil && oe.Code != tt.wantCode {
				t.Errorf("Code = %q, want %q", oe.Code, tt.wantCode)
			}
			if oe != nil && oe.Hint() == "" {
				t.Error("Hint is empty")
			}
			if got := errors.Is(err, slack.ErrUnavailable); got != tt.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tt.unavailable)
			}
			if got := errors.Is(err, slack.ErrNoWebhook); got != tt.noWebhook {
				t.Errorf("errors.Is(%v, ErrNoWebhook) = %v, want %v", err, got, tt.noWebhook)
			}
		})
	}
}

// TestExchangeRequest checks what goes over the wire: a form POST to
// oauth.v2.access with the code and redirect URI, and the client credentials
// in HTTP Basic authentication only.
func TestExchangeRequest(t *testing.T) {
	type seen struct {
		Method, Path, ContentType string
		User, Password            string
		Basic                     bool
		Form                      url.Values
	}
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		got = seen{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Form: form}
		got.User, got.Password, got.Basic = r.BasicAuth()
		_, _ = io.WriteString(w, `{"ok":true,"app_id":"A1","scope":"incoming-webhook","authed_user":{"id":"U1"},
			"team":{"id":"T1","name":"Team"},
			"incoming_webhook":{"channel":"#c","channel_id":"C1","configuration_url":"https://t.slack.com/services/B1","url":"https://hooks.slack.com/services/T1/B1/xyz"}}`)
	}))
	defer srv.Close()
	c := slack.New(slack.Config{APIURL: srv.URL + "/api/", ClientID: "id-1", ClientSecret: "secret-1"})

	res, err := c.Exchange(t.Context(), "the-code", "https://j.example.com/install")
	if err != nil {
		t.Fatalf("Exchange = %v", err)
	}
	want := seen{
		Method: "POST", Path: "/api/oauth.v2.access", ContentType: "application/x-www-form-urlencoded",
		User: "id-1", Password: "secret-1", Basic: true,
		Form: url.Values{
			"code":         {"the-code"},
			"redirect_uri": {"https://j.example.com/install"},
			"grant_type":   {"authorization_code"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	wantRes := slack.OAuthResult{
		TeamID: "T1", TeamName: "Team", ChannelID: "C1", ChannelName: "#c",
		WebhookURL: "https://hooks.slack.com/services/T1/B1/xyz", ConfigurationURL: "https://t.slack.com/services/B1",
		AuthedUserID: "U1", AppID: "A1", Scope: "incoming-webhook",
	}
	if diff := cmp.Diff(wantRes, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestExchangeNotConfigured(t *testing.T) {
	fake := slacktest.New(t)
	fake.AddCode("c", slacktest.Install{})
	_, err := slack.New(slack.Config{APIURL: fake.URL()}).Exchange(t.Context(), "c", "")
	if err == nil {
		t.Fatal("Exchange without client credentials = nil error")
	}
	var oe *slack.OAuthError
	if errors.As(err, &oe) || errors.Is(err, slack.ErrUnavailable) {
		t.Errorf("got %v; want a configuration error, neither an OAuthError nor ErrUnavailable", err)
	}
}

// TestHints checks that every code the installer can meet has its own
// advice, not the catch-all.
func TestHints(t *testing.T) {
	fallback := (&slack.OAuthError{Code: "never_heard_of_it"}).Hint()
	temporary := (&slack.OAuthError{Code: "internal_error"}).Hint()
	codes := []string{
		"invalid_code", "code_already_used", "bad_redirect_uri", "invalid_client_id",
		"bad_client_secret", "invalid_grant_type", "access_denied", "oauth_authorization_url_mismatch",
		"invalid_team_for_non_distributed_app",
	}
	seen := map[string]string{}
	for _, code := range codes {
		h := (&slack.OAuthError{Code: code}).Hint()
		if h == fallback || h == temporary {
			t.Errorf("Hint(%s) is the generic one", code)
		}
		if other, dup := seen[h]; dup {
			t.Errorf("Hint(%s) is the same as Hint(%s)", code, other)
		}
		seen[h] = code
	}
	if fallback == "" || temporary == "" || fallback == temporary {
		t.Errorf("want distinct non-empty generic and temporary hints, got %q and %q", fallback, temporary)
	}
}
