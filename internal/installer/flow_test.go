package installer

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestInstallFlow follows a browser from the start page through Slack's
// redirect to the welcome message in the channel.
func TestInstallFlow(t *testing.T) {
	env := newEnv(t)
	hook := env.slack.AddCode("code-1", slacktest.Install{ChannelID: "C0JAMF", ChannelName: "jamf", TeamName: "Acme"})
	b := browser(t, true)

	resp, page := get(t, b, env.srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="/install"`) || !strings.Contains(page, "Add to Slack") {
		t.Fatalf("GET / = %d, want 200 with an Add to Slack link to /install:\n%s", resp.StatusCode, page)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q; want default-src 'none'", got)
	}
	for _, asset := range []string{"/assets/style.css", "/assets/copy.js", "/assets/favicon.svg"} {
		if resp, _ := get(t, b, env.srv.URL+asset); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d; want 200", asset, resp.StatusCode)
		}
	}

	// The button sends the browser to Slack with a state bound to a cookie.
	resp, _ = get(t, b, env.srv.URL+"/install")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /install = %d; want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	state := q.Get("state")
	wantQuery := url.Values{
		"client_id":    {slacktest.ClientID},
		"scope":        {"incoming-webhook"},
		"redirect_uri": {env.srv.URL + "/install"},
		"state":        {state},
		"team":         {"T0SLACKTEST"},
	}
	if diff := cmp.Diff(wantQuery, q); diff != "" || state == "" {
		t.Errorf("authorize query (-want +got):\n%s", diff)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != "https://slack.test/oauth/v2/authorize" {
		t.Errorf("redirect goes to %s; want SLACK_OAUTH_URL", got)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == stateCookie {
			ck = c
		}
	}
	if ck == nil {
		t.Fatal("no state cookie")
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.MaxAge != 600 || ck.Path != "/install" {
		t.Errorf("state cookie = %+v; want HttpOnly, SameSite=Lax, not Secure on http, Max-Age 600, Path /install", ck)
	}
	if bound, err := env.keys.OpenToken(stateTokenPurpose, ck.Value, env.clock.Now()); strings.Contains(ck.Value, "=") || err != nil || string(bound) != state {
		t.Errorf("cookie value %q does not bind state %q (it holds %q, %v)", ck.Value, state, bound, err)
	}

	// Slack sends the browser back with a code.
	resp, page = get(t, b, env.srv.URL+"/install?code=code-1&state="+url.QueryEscape(state))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("callback = %d; want 200:\n%s", resp.StatusCode, page)
	}
	jamfURL := env.jamfURLIn(page)
	if jamfURL == "" {
		t.Fatalf("result page shows no Jamf URL:\n%s", page)
	}
	for _, want := range []string{
		"Jackalope is installed in #jamf", "data-copy=\"jamf-url\"", "Settings &gt; Global &gt; Webhooks",
		"<strong>JSON</strong>", "one event per webhook", "SCEPChallenge", "/assets/copy.js",
		"A welcome message with the Jamf URL was posted",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("result page lacks %q", want)
		}
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("result page Cache-Control = %q; want no-store (it holds a secret)", got)
	}
	u, _ := url.Parse(env.srv.URL + "/install")
	if cks := b.Jar.Cookies(u); len(cks) != 0 {
		t.Errorf("state cookie still set after the callback: %v", cks)
	}

	// The welcome message reaches the channel with the Jamf URL.
	msgs := env.slack.WaitFor(t, hook, 1, 5*time.Second)
	if diff := cmp.Diff(render.Welcome(jamfURL), msgs[0]); diff != "" {
		t.Errorf("welcome message (-want +got):\n%s", diff)
	}
	if !strings.Contains(msgs[0].Attachments[0].Text+msgs[0].Text, jamfURL) {
		t.Errorf("welcome message %+v lacks the Jamf URL", msgs[0])
	}

	// SQL holds the channel with its secrets sealed, KV its read model.
	inst := env.only(t)
	token := strings.TrimPrefix(jamfURL, env.srv.URL+"/jamf/")
	want := registry.Installation{
		ID: inst.ID, TeamID: slacktest.DefaultTeamID, TeamName: "Acme", ChannelID: "C0JAMF", ChannelName: "#jamf",
		ConfigurationURL: inst.ConfigurationURL, InstallingUser: slacktest.DefaultUserID,
		TokenHash: env.keys.HashToken(token), Status: registry.StatusActive,
	}
	got := inst
	got.WebhookURLSealed, got.TokenSealed, got.CreatedAt, got.UpdatedAt = "", "", time.Time{}, time.Time{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored installation (-want +got):\n%s", diff)
	}
	if h, err := env.keys.OpenWebhook(inst.ID, inst.WebhookURLSealed); err != nil || h != hook {
		t.Errorf("sealed webhook URL opens to %q, %v; want the webhook", h, err)
	}
	if tok, _, err := env.keys.Open(secret.JamfToken, inst.ID, inst.TokenSealed); err != nil || tok != token {
		t.Errorf("sealed token opens to %q, %v; want the Jamf URL's token", tok, err)
	}
	env.checkKVMatchesSQL(t)

	if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeInstalled)); got != 1 {
		t.Errorf("installs_total{outcome=installed} = %v; want 1", got)
	}
	_, metrics := get(t, b, env.srv.URL+"/metrics")
	if !strings.Contains(metrics, `jackalope_installer_installs_total{outcome="installed"} 1`) {
		t.Errorf("/metrics lacks the install:\n%s", metrics)
	}
	env.checkNoSecrets(t, hook, token, "code-1")
}

// TestBaseURL checks what follows from the public base URL: the redirect
// URI, the state cookie's Secure flag and path, and the pages' links (a
// proxy may serve Jackalope under a sub-path).
func TestBaseURL(t *testing.T) {
	tests := []struct {
		name       string
		base       string
		wantSecure bool
		wantPath   string
		wantLinks  []string
	}{
		{name: "http root", base: "http://localhost:5000", wantPath: "/install", wantLinks: []string{`href="/assets/style.css"`, `href="/install"`}},
		{name: "https root", base: "https://jackalope.example.com", wantSecure: true, wantPath: "/install", wantLinks: []string{`href="/install"`}},
		{name: "https sub-path", base: "https://tools.example.com/jackalope/", wantSecure: true, wantPath: "/jackalope/install",
			wantLinks: []string{`href="/jackalope/assets/style.css"`, `href="/jackalope/install"`, `href="/jackalope/"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(o *Options) { o.BaseURL = tt.base })
			resp, _ := get(t, browser(t, false), env.srv.URL+"/install")
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if got, want := loc.Query().Get("redirect_uri"), strings.TrimSuffix(tt.base, "/")+"/install"; got != want {
				t.Errorf("redirect_uri = %q; want %q", got, want)
			}
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == stateCookie {
					ck = c
				}
			}
			if ck == nil || ck.Secure != tt.wantSecure || ck.Path != tt.wantPath {
				t.Errorf("state cookie = %+v; want Secure %v, Path %s", ck, tt.wantSecure, tt.wantPath)
			}
			_, page := get(t, browser(t, false), env.srv.URL+"/")
			for _, want := range tt.wantLinks {
				if !strings.Contains(page, want) {
					t.Errorf("start page lacks %s:\n%s", want, page)
				}
			}
		})
	}
}

// TestBadState proves that a callback whose state is missing, forged or
// expired stores nothing and sends nothing to Slack: the code it carries
// still works afterwards. TestStateSingleUse covers replays.
func TestBadState(t *testing.T) {
	env := newEnv(t)
	otherKeys, err := secret.New("some-other-secret-key-000000")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		request func(t *testing.T, code string) (url.Values, []*http.Cookie)
		want    string
	}{
		{
			name: "no state",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				_, ck := env.begin(t)
				return url.Values{"code": {code}}, []*http.Cookie{ck}
			},
			want: "did not carry the install",
		},
		{
			name: "no cookie",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, _ := env.begin(t)
				return url.Values{"code": {code}, "state": {state}}, nil
			},
			want: "did not carry the install",
		},
		{
			name: "state of another browser",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, _ := env.begin(t)
				_, ck := env.begin(t)
				return url.Values{"code": {code}, "state": {state}}, []*http.Cookie{ck}
			},
			want: "does not match",
		},
		{
			name: "cookie signed with another key",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, cookie, _ := newStates(otherKeys, env.clock.Now, nil).issue()
				return url.Values{"code": {code}, "state": {state}}, []*http.Cookie{{Name: stateCookie, Value: cookie}}
			},
			want: "does not match",
		},
		{
			name: "cookie with a later expiry",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, ck := env.begin(t)
				parts := strings.Split(ck.Value, ".")
				parts[1] = "99999999999"
				return url.Values{"code": {code}, "state": {state}}, []*http.Cookie{{Name: stateCookie, Value: strings.Join(parts, ".")}}
			},
			want: "does not match",
		},
		{
			name: "garbage cookie",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, _ := env.begin(t)
				return url.Values{"code": {code}, "state": {state}}, []*http.Cookie{{Name: stateCookie, Value: state}}
			},
			want: "does not match",
		},
		{
			name: "expired",
			request: func(t *testing.T, code string) (url.Values, []*http.Cookie) {
				state, ck := env.begin(t)
				env.clock.Advance(StateTTL + time.Second)
				return url.Values{"code": {code}, "state": {state}}, []*http.Cookie{ck}
			},
			want: "more than 10 minutes ago",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := "code-" + tt.name
			hook := env.slack.AddCode(code, slacktest.Install{ChannelName: "bad-state-" + string(rune('a'+i))})
			before := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeBadState))
			q, cookies := tt.request(t, code)
			resp, page := env.callback(t, q, cookies...)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, tt.want) {
				t.Fatalf("callback = %d; want 400 saying %q:\n%s", resp.StatusCode, tt.want, page)
			}
			if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeBadState)); got != before+1 {
				t.Errorf("installs_total{outcome=bad_state} = %v; want %v", got, before+1)
			}
			if n := env.count(t); n != i {
				t.Fatalf("store holds %d installations; want %d (nothing stored)", n, i)
			}
			if n := env.slack.Count(hook); n != 0 {
				t.Errorf("%d messages posted; want none", n)
			}
			// The code was never sent to Slack: a proper install still takes it.
			env.clock.Set(time.Now())
			if status, page, _ := env.install(t, code); status != http.StatusOK {
				t.Fatalf("install with the untouched code = %d; want 200:\n%s", status, page)
			}
		})
	}
	env.checkKVMatchesSQL(t)
}

func TestSlackAnswers(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, env *testEnv) string // returns the code to send
		query      url.Values                              // instead of code and state, when set
		wantStatus int
		wantText   []string
		wantCode   string // oauth_errors_total label, "" for none
		outcome    string
	}{
		{
			name:       "access denied",
			query:      url.Values{"error": {"access_denied"}, "state": {"whatever"}},
			wantStatus: http.StatusOK,
			wantText:   []string{"Installation cancelled", "nothing was installed"},
			outcome:    outcomeCancelled,
		},
		{
			name:       "other error on the redirect",
			query:      url.Values{"error": {"invalid_scope"}},
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"Slack did not accept", "<code>invalid_scope</code>"},
			wantCode:   "other",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "odd error on the redirect",
			query:      url.Values{"error": {"<script>alert(1)</script>"}},
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"<code>unknown_error</code>"},
			wantCode:   "other",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "invalid code",
			setup:      func(*testing.T, *testEnv) string { return "never-issued" },
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"<code>invalid_code</code>", "did not recognise the authorization code"},
			wantCode:   "invalid_code",
			outcome:    outcomeOAuthError,
		},
		{
			name: "code already used",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.AddCode("reused", slacktest.Install{ChannelName: "reused"})
				if status, page, _ := env.install(t, "reused"); status != http.StatusOK {
					t.Fatalf("first install = %d:\n%s", status, page)
				}
				return "reused"
			},
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"<code>code_already_used</code>", "already used"},
			wantCode:   "code_already_used",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "bad redirect uri",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.FailOAuth("bad_redirect_uri"); return "c" },
			wantStatus: http.StatusInternalServerError,
			wantText:   []string{"<code>bad_redirect_uri</code>", "Redirect URLs"},
			wantCode:   "bad_redirect_uri",
			outcome:    outcomeOAuthError,
		},
		{
			name: "bad client secret",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.SetClient(slacktest.ClientID, "another-secret")
				env.slack.AddCode("c-secret", slacktest.Install{})
				return "c-secret"
			},
			wantStatus: http.StatusInternalServerError,
			wantText:   []string{"<code>bad_client_secret</code>", "SLACK_CLIENT_SECRET"},
			wantCode:   "bad_client_secret",
			outcome:    outcomeOAuthError,
		},
		{
			name: "invalid client id",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.SetClient("another-id", slacktest.ClientSecret)
				env.slack.AddCode("c-id", slacktest.Install{})
				return "c-id"
			},
			wantStatus: http.StatusInternalServerError,
			wantText:   []string{"<code>invalid_client_id</code>", "SLACK_CLIENT_ID"},
			wantCode:   "invalid_client_id",
			outcome:    outcomeOAuthError,
		},
		{
			name: "oauth url mismatch",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.FailOAuth("oauth_authorization_url_mismatch")
				return "c"
			},
			wantStatus: http.StatusInternalServerError,
			wantText:   []string{"SLACK_OAUTH_URL"},
			wantCode:   "oauth_authorization_url_mismatch",
			outcome:    outcomeOAuthError,
		},
		{
			name: "app not distributed",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.FailOAuth("invalid_team_for_non_distributed_app")
				return "c"
			},
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"public distribution"},
			wantCode:   "invalid_team_for_non_distributed_app",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "access denied at the exchange",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.FailOAuth("access_denied"); return "c" },
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"cancelled in Slack"},
			wantCode:   "access_denied",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "unknown code",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.FailOAuth("something_new"); return "c" },
			wantStatus: http.StatusBadRequest,
			wantText:   []string{"<code>something_new</code>", "Start again"},
			wantCode:   "other",
			outcome:    outcomeOAuthError,
		},
		{
			name:       "slack internal error",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.FailOAuth("internal_error"); return "c" },
			wantStatus: http.StatusBadGateway,
			wantText:   []string{"temporary problem"},
			wantCode:   "internal_error",
			outcome:    outcomeSlackUnavailable,
		},
		{
			name:       "slack answers 500",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.ScriptOAuth(slacktest.ServerError()); return "c" },
			wantStatus: http.StatusBadGateway,
			wantText:   []string{"Slack could not be reached"},
			outcome:    outcomeSlackUnavailable,
		},
		{
			name:       "slack down",
			setup:      func(t *testing.T, env *testEnv) string { env.slack.Close(); return "c" },
			wantStatus: http.StatusBadGateway,
			wantText:   []string{"Slack could not be reached", "nothing was installed"},
			outcome:    outcomeSlackUnavailable,
		},
		{
			name: "slack grants no webhook",
			setup: func(t *testing.T, env *testEnv) string {
				env.slack.ScriptOAuth(slacktest.Response{Status: http.StatusOK, Body: `{"ok":true,"team":{"id":"T1"}}`})
				return "c"
			},
			wantStatus: http.StatusBadGateway,
			wantText:   []string{"no incoming webhook", "incoming-webhook scope"},
			outcome:    outcomeSlackUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			q := tt.query
			var cookies []*http.Cookie
			if q == nil {
				code := tt.setup(t, env)
				state, ck := env.begin(t)
				q, cookies = url.Values{"code": {code}, "state": {state}}, []*http.Cookie{ck}
			}
			before := env.count(t)
			resp, page := env.callback(t, q, cookies...)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("callback = %d; want %d:\n%s", resp.StatusCode, tt.wantStatus, page)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q:\n%s", want, page)
				}
			}
			if strings.Contains(page, "<script>alert") {
				t.Error("page shows the error parameter unescaped")
			}
			if n := env.count(t); n != before {
				t.Errorf("store holds %d installations; want %d", n, before)
			}
			if tt.wantCode != "" {
				if got := testutil.ToFloat64(env.in.metrics.oauthErrors.WithLabelValues(tt.wantCode)); got != 1 {
					t.Errorf("oauth_errors_total{code=%q} = %v; want 1", tt.wantCode, got)
				}
			}
			if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(tt.outcome)); got != 1 {
				t.Errorf("installs_total{outcome=%q} = %v; want 1", tt.outcome, got)
			}
			env.checkKVMatchesSQL(t)
			env.checkNoSecrets(t, "another-secret")
		})
	}
}

// TestReinstallKeepsJamfURL installs twice into one channel: the second
// install keeps the Jamf URL and the Jamf Pro URL, takes the new webhook and
// names, and welcomes through the new webhook.
func TestReinstallKeepsJamfURL(t *testing.T) {
	env := newEnv(t)
	first := env.slack.AddCode("first", slacktest.Install{TeamID: "T1", TeamName: "Acme", ChannelID: "C1", ChannelName: "jamf"})
	status, page, jamfURL := env.install(t, "first")
	if status != http.StatusOK || jamfURL == "" {
		t.Fatalf("first install = %d:\n%s", status, page)
	}
	env.slack.WaitFor(t, first, 1, 5*time.Second)
	id := env.only(t).ID
	resp, _ := postForm(t, env, id, url.Values{"token": {formTokenIn(page)}, "jamf_url": {"https://acme.jamfcloud.com/"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set Jamf Pro URL = %d", resp.StatusCode)
	}
	if _, err := env.store.SetStatus(t.Context(), id, registry.StatusDisabled, "channel_not_found"); err != nil {
		t.Fatal(err)
	}

	second := env.slack.AddCode("second", slacktest.Install{TeamID: "T1", TeamName: "Acme Corp", ChannelID: "C1", ChannelName: "jamf-alerts"})
	status, page, again := env.install(t, "second")
	if status != http.StatusOK {
		t.Fatalf("second install = %d:\n%s", status, page)
	}
	if again != jamfURL {
		t.Errorf("re-install shows Jamf URL %q; want the first one %q", again, jamfURL)
	}
	if !strings.Contains(page, "Jamf URL is unchanged") || !strings.Contains(page, `value="https://acme.jamfcloud.com"`) {
		t.Errorf("re-install page does not say the URL is kept or lost the Jamf Pro URL:\n%s", page)
	}
	msgs := env.slack.WaitFor(t, second, 1, 5*time.Second)
	if diff := cmp.Diff(render.Welcome(jamfURL), msgs[0]); diff != "" {
		t.Errorf("welcome on the new webhook (-want +got):\n%s", diff)
	}
	if n := env.slack.Count(first); n != 1 {
		t.Errorf("old webhook got %d messages; want only the first welcome", n)
	}

	inst := env.only(t)
	if inst.ID != id || inst.TeamName != "Acme Corp" || inst.ChannelName != "#jamf-alerts" ||
		inst.Status != registry.StatusActive || inst.StatusReason != "" || inst.JamfURL != "https://acme.jamfcloud.com" {
		t.Errorf("after re-install: %+v; want same ID, new names, active, Jamf Pro URL kept", inst)
	}
	if h, _ := env.keys.OpenWebhook(inst.ID, inst.WebhookURLSealed); h != second {
		t.Error("re-install kept the old webhook URL")
	}
	env.checkKVMatchesSQL(t)
	if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeReinstalled)); got != 1 {
		t.Errorf("installs_total{outcome=reinstalled} = %v; want 1", got)
	}
}

// TestReinstallAfterKeyChange re-installs a channel whose token was sealed
// under another SECRET_KEY: it gets a new Jamf URL, since the old one stopped
// working with the key.
func TestReinstallAfterKeyChange(t *testing.T) {
	env := newEnv(t)
	old, err := secret.New("the-previous-secret-key-0000")
	if err != nil {
		t.Fatal(err)
	}
	stale, _, err := env.store.Upsert(t.Context(), registry.Installation{
		TeamID: "T1", ChannelID: "C1", ChannelName: "#jamf", WebhookURLSealed: old.SealLegacy("https://hooks.example/x"),
		TokenHash: old.HashToken("old-token"), TokenSealed: old.SealLegacy("old-token"),
	})
	if err != nil {
		t.Fatal(err)
	}
	env.slack.AddCode("c", slacktest.Install{TeamID: "T1", ChannelID: "C1", ChannelName: "jamf"})
	status, page, jamfURL := env.install(t, "c")
	if status != http.StatusOK || jamfURL == "" {
		t.Fatalf("install = %d:\n%s", status, page)
	}
	inst := env.only(t)
	token := strings.TrimPrefix(jamfURL, env.srv.URL+"/jamf/")
	if inst.ID != stale.ID || inst.TokenHash != env.keys.HashToken(token) {
		t.Errorf("installation %+v; want the same ID with a token readable under the current key", inst)
	}
	env.checkKVMatchesSQL(t)
}

func TestWelcomeRefused(t *testing.T) {
	env := newEnv(t)
	hook := env.slack.AddCode("c", slacktest.Install{ChannelName: "jamf"})
	env.slack.Kill(hook, "channel_is_archived")
	status, page, jamfURL := env.install(t, "c")
	if status != http.StatusOK || jamfURL == "" {
		t.Fatalf("install = %d; want 200 with the Jamf URL:\n%s", status, page)
	}
	if !strings.Contains(page, "Slack did not take the welcome message") || !strings.Contains(page, "cannot receive messages") {
		t.Errorf("page does not say the welcome failed:\n%s", page)
	}
	if n := env.count(t); n != 1 {
		t.Errorf("store holds %d installations; want the install kept", n)
	}
	env.checkKVMatchesSQL(t)
	if got := testutil.ToFloat64(env.in.metrics.welcomeFailures); got != 1 {
		t.Errorf("welcome_failures_total = %v; want 1", got)
	}
	env.checkNoSecrets(t, hook, strings.TrimPrefix(jamfURL, env.srv.URL+"/jamf/"))
}

// TestInstallWebhookRefused installs with a Slack client whose webhook
// policy does not list the fake's host, as when Slack (or whatever
// SLACK_API_URL points at) hands out a webhook elsewhere: nothing is
// stored, nothing is posted, and neither the page nor the log shows the
// webhook URL.
func TestInstallWebhookRefused(t *testing.T) {
	env := newEnv(t)
	strict := env.slack.Config()
	strict.Webhooks = slack.WebhookPolicy{} // hooks.slack.com only
	env.in.slack = slack.New(strict)
	hook := env.slack.AddCode("c", slacktest.Install{ChannelName: "jamf"})
	status, page, jamfURL := env.install(t, "c")
	if status != http.StatusBadGateway || jamfURL != "" {
		t.Fatalf("install = %d; want 502 without a Jamf URL:\n%s", status, page)
	}
	if !strings.Contains(page, "SLACK_WEBHOOK_HOSTS") {
		t.Errorf("page does not name SLACK_WEBHOOK_HOSTS:\n%s", page)
	}
	if n := env.count(t); n != 0 {
		t.Errorf("store holds %d installations; want none", n)
	}
	if msgs := env.slack.Messages(hook); len(msgs) != 0 {
		t.Errorf("the refused webhook got %d messages; want none", len(msgs))
	}
	if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeWebhookRefused)); got != 1 {
		t.Errorf("installs_total{outcome=webhook_refused} = %v; want 1", got)
	}
	env.checkNoSecrets(t, hook, hook[strings.LastIndexByte(hook, '/')+1:])
	if strings.Contains(page, hook) {
		t.Errorf("the page shows the webhook URL:\n%s", page)
	}
}

// TestPublishFailure closes the KV connection before an install: Slack
// approves it, the KV write fails, and the page says the install is not
// finished instead of showing a Jamf URL that does not work yet.
func TestPublishFailure(t *testing.T) {
	env := newEnv(t)
	env.slack.AddCode("c", slacktest.Install{ChannelID: "C1", ChannelName: "jamf"})
	env.kv.Close()
	status, page, jamfURL := env.install(t, "c")
	if status != http.StatusServiceUnavailable || jamfURL != "" {
		t.Fatalf("install with KV down = %d; want 503 without a Jamf URL:\n%s", status, page)
	}
	if !strings.Contains(page, "could not save or activate it") {
		t.Errorf("page does not explain:\n%s", page)
	}
	if got := testutil.ToFloat64(env.in.metrics.installs.WithLabelValues(outcomeFailed)); got != 1 {
		t.Errorf("installs_total{outcome=failed} = %v; want 1", got)
	}
}

func TestNotConfigured(t *testing.T) {
	tests := []struct {
		name        string
		oauth       OAuth
		wantMissing []string
		wantAbsent  []string
	}{
		{name: "neither", oauth: OAuth{}, wantMissing: []string{"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}},
		{name: "no client id", oauth: OAuth{ClientSecretSet: true}, wantMissing: []string{"SLACK_CLIENT_ID"}, wantAbsent: []string{"SLACK_CLIENT_SECRET"}},
		{name: "no client secret", oauth: OAuth{ClientID: "123.456"}, wantMissing: []string{"SLACK_CLIENT_SECRET"}, wantAbsent: []string{"SLACK_CLIENT_ID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(o *Options) { o.OAuth = tt.oauth })
			if diff := cmp.Diff(tt.wantMissing, tt.oauth.Missing()); diff != "" {
				t.Errorf("Missing (-want +got):\n%s", diff)
			}
			for _, path := range []string{"/", "/install"} {
				resp, page := get(t, browser(t, false), env.srv.URL+path)
				wantStatus := http.StatusOK
				if path == "/install" {
					wantStatus = http.StatusServiceUnavailable
				}
				if resp.StatusCode != wantStatus {
					t.Errorf("GET %s = %d; want %d", path, resp.StatusCode, wantStatus)
				}
				for _, want := range append([]string{
					"not set up", "jackalope channels add --webhook-url URL --channel NAME",
					"installer channels add --webhook-url URL --channel NAME", env.srv.URL + "/install",
				}, tt.wantMissing...) {
					if !strings.Contains(page, want) {
						t.Errorf("GET %s lacks %q:\n%s", path, want, page)
					}
				}
				for _, absent := range append([]string{`href="/install"`}, tt.wantAbsent...) {
					if strings.Contains(page, absent) {
						t.Errorf("GET %s shows %q", path, absent)
					}
				}
			}
		})
	}
}

// postForm posts the Jamf Pro URL form of installation id.
func postForm(t *testing.T, env *testEnv, id string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.srv.URL+"/installations/"+id+"/jamf-url", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, browser(t, false), req)
}

func TestJamfProURLForm(t *testing.T) {
	env := newEnv(t)
	env.slack.AddCode("c", slacktest.Install{ChannelName: "jamf"})
	status, page, _ := env.install(t, "c")
	if status != http.StatusOK {
		t.Fatalf("install = %d", status)
	}
	id := env.only(t).ID
	token := formTokenIn(page)
	if token == "" || !strings.Contains(page, `action="/installations/`+id+`/jamf-url"`) {
		t.Fatalf("result page has no Jamf Pro URL form for %s:\n%s", id, page)
	}
	env.slack.AddCode("other", slacktest.Install{ChannelName: "other"})
	if status, _, _ := env.install(t, "other"); status != http.StatusOK {
		t.Fatal("second install failed")
	}

	tests := []struct {
		name       string
		id         string
		token      string
		value      string
		advance    time.Duration
		wantStatus int
		wantText   string
		wantStored string
	}{
		{name: "sets it", id: id, token: token, value: " https://acme.jamfcloud.com:8443/ ", wantStatus: 200, wantText: "link to", wantStored: "https://acme.jamfcloud.com:8443"},
		{name: "http is fine", id: id, token: token, value: "http://jamf.internal", wantStatus: 200, wantStored: "http://jamf.internal"},
		{name: "javascript refused", id: id, token: token, value: "javascript:alert(1)", wantStatus: 400, wantText: "must be an http or https address", wantStored: "http://jamf.internal"},
		{name: "ftp refused", id: id, token: token, value: "ftp://jamf.example.com", wantStatus: 400, wantText: "must be an http or https address", wantStored: "http://jamf.internal"},
		{name: "user info refused", id: id, token: token, value: "https://admin:pw@jamf.example.com", wantStatus: 400, wantStored: "http://jamf.internal"},
		{name: "query refused", id: id, token: token, value: "https://jamf.example.com/?x=1", wantStatus: 400, wantStored: "http://jamf.internal"},
		{name: "no host refused", id: id, token: token, value: "https:///path", wantStatus: 400, wantStored: "http://jamf.internal"},
		{name: "missing token", id: id, value: "https://evil.example", wantStatus: 403, wantText: "expired or does not belong", wantStored: "http://jamf.internal"},
		{name: "forged token", id: id, token: token[:len(token)-2] + "xx", value: "https://evil.example", wantStatus: 403, wantStored: "http://jamf.internal"},
		{name: "token of another installation", id: id, token: env.in.formToken("00000000-0000-4000-8000-000000000000"), value: "https://evil.example", wantStatus: 403, wantStored: "http://jamf.internal"},
		{name: "empty clears it", id: id, token: token, value: "", wantStatus: 200, wantText: "will not link", wantStored: ""},
		{name: "unknown installation", id: "00000000-0000-4000-8000-000000000000", token: env.in.formToken("00000000-0000-4000-8000-000000000000"), value: "https://x.example", wantStatus: 404, wantStored: ""},
		{name: "expired token", id: id, token: token, value: "https://late.example", advance: formTokenTTL, wantStatus: 403, wantStored: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Advance(tt.advance)
			resp, page := postForm(t, env, tt.id, url.Values{"token": {tt.token}, "jamf_url": {tt.value}})
			if resp.StatusCode != tt.wantStatus || !strings.Contains(page, tt.wantText) {
				t.Errorf("POST = %d; want %d containing %q:\n%s", resp.StatusCode, tt.wantStatus, tt.wantText, page)
			}
			inst, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if inst.JamfURL != tt.wantStored {
				t.Errorf("stored Jamf Pro URL = %q; want %q", inst.JamfURL, tt.wantStored)
			}
			env.checkKVMatchesSQL(t)
		})
	}
}
