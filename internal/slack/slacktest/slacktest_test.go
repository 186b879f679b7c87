package slacktest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

func TestOAuthSingleUse(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.AddCode("abc", slacktest.Install{ChannelName: "jamf"})
	c := slack.New(fake.Config())

	res, err := c.Exchange(t.Context(), "abc", "")
	if err != nil {
		t.Fatalf("first Exchange = %v", err)
	}
	if res.WebhookURL != hook || res.ChannelName != "#jamf" || res.TeamID != slacktest.DefaultTeamID {
		t.Errorf("result = %+v (webhook %t); want the minted webhook, #jamf, the default team", res, res.WebhookURL == hook)
	}
	if !strings.HasPrefix(hook, strings.TrimSuffix(fake.URL(), "/api")+"/services/") {
		t.Errorf("webhook %s is not on the fake", hook)
	}
	_, err = c.Exchange(t.Context(), "abc", "")
	if got := oauthCode(err); got != "code_already_used" {
		t.Errorf("second Exchange = %v, want code_already_used", err)
	}

	// Every code mints its own webhook, as every Slack install does.
	other := fake.AddCode("def", slacktest.Install{ChannelName: "jamf"})
	if other == hook {
		t.Error("two codes minted the same webhook")
	}
}

// TestOAuthClientAuth posts raw forms, because slack.Client only ever
// sends HTTP Basic authentication and the fake takes both, like Slack.
func TestOAuthClientAuth(t *testing.T) {
	tests := []struct {
		name           string
		basic          bool
		id, secret     string
		grantType      string
		want           string // "" for success
		setClientFirst bool
	}{
		{name: "basic ok", basic: true, id: slacktest.ClientID, secret: slacktest.ClientSecret},
		{name: "form ok", id: slacktest.ClientID, secret: slacktest.ClientSecret},
		{name: "basic wrong id", basic: true, id: "nope", secret: slacktest.ClientSecret, want: "invalid_client_id"},
		{name: "form wrong id", id: "nope", secret: slacktest.ClientSecret, want: "invalid_client_id"},
		{name: "missing id", want: "invalid_client_id"},
		{name: "basic wrong secret", basic: true, id: slacktest.ClientID, secret: "nope", want: "bad_client_secret"},
		{name: "form wrong secret", id: slacktest.ClientID, secret: "nope", want: "bad_client_secret"},
		{name: "refresh grant", id: slacktest.ClientID, secret: slacktest.ClientSecret, grantType: "refresh_token", want: "invalid_grant_type"},
		{name: "SetClient", id: "new-id", secret: "new-secret", setClientFirst: true},
		{name: "SetClient old credentials", id: slacktest.ClientID, secret: slacktest.ClientSecret, setClientFirst: true, want: "invalid_client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			fake.AddCode("c", slacktest.Install{})
			if tt.setClientFirst {
				fake.SetClient("new-id", "new-secret")
			}
			form := url.Values{"code": {"c"}}
			if tt.grantType != "" {
				form.Set("grant_type", tt.grantType)
			}
			if !tt.basic {
				form.Set("client_id", tt.id)
				form.Set("client_secret", tt.secret)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fake.URL()+"/oauth.v2.access", strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic {
				req.SetBasicAuth(tt.id, tt.secret)
			}
			var ans struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			status := do(t, req, &ans)
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200 (Slack reports OAuth errors in the body)", status)
			}
			if ans.OK != (tt.want == "") || ans.Error != tt.want {
				t.Errorf("answer = %+v, want ok=%t error=%q", ans, tt.want == "", tt.want)
			}
		})
	}
}

func TestOAuthRedirectAndFailures(t *testing.T) {
	fake := slacktest.New(t)
	fake.SetRedirectURI("https://j.example.com/install")
	fake.AddCode("c", slacktest.Install{})
	c := slack.New(fake.Config())

	_, err := c.Exchange(t.Context(), "c", "https://other.example.com/install")
	if got := oauthCode(err); got != "bad_redirect_uri" {
		t.Errorf("wrong redirect: %v, want bad_redirect_uri", err)
	}
	fake.FailOAuth("access_denied")
	fake.FailOAuth("invalid_team_for_non_distributed_app")
	fake.ScriptOAuth(slacktest.ServerError())
	for _, want := range []string{"500", "access_denied", "invalid_team_for_non_distributed_app"} {
		_, err := c.Exchange(t.Context(), "c", "https://j.example.com/install")
		got := oauthCode(err)
		if want == "500" {
			if !errors.Is(err, slack.ErrUnavailable) {
				t.Errorf("scripted 500: %v, want ErrUnavailable", err)
			}
			continue
		}
		if got != want {
			t.Errorf("forced failure: %v, want %s", err, want)
		}
	}
	// Neither a refused redirect nor a forced failure used the code up.
	if _, err := c.Exchange(t.Context(), "c", "https://j.example.com/install"); err != nil {
		t.Errorf("Exchange after the failures = %v", err)
	}
}

func TestScriptOrder(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#jamf")
	fake.Script(hook,
		slacktest.Ratelimited("3"),
		slacktest.ServerError(),
		slacktest.Dead("channel_is_archived"),
		slacktest.BadPayload(),
		slacktest.OK(),
	)
	c := slack.New(fake.Config())
	type result struct {
		Class string
		Delay time.Duration
	}
	var got []result
	for i := range 7 {
		err := c.Post(t.Context(), hook, slack.Message{Text: fmt.Sprint(i)})
		d, _ := retry.Delay(err)
		got = append(got, result{slack.Class(err), d})
	}
	want := []result{
		{"rate_limited", 3 * time.Second}, {"retry", 0}, {"channel_gone", 0}, {"bad_message", 0},
		{"ok", 0}, {"ok", 0}, {"ok", 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	var statuses []int
	for _, r := range fake.Requests(hook) {
		statuses = append(statuses, r.Status)
	}
	if diff := cmp.Diff([]int{429, 500, 410, 400, 200, 200, 200}, statuses); diff != "" {
		t.Errorf("recorded statuses (-want +got):\n%s", diff)
	}
	wantMsgs := []slack.Message{{Text: "4"}, {Text: "5"}, {Text: "6"}}
	if diff := cmp.Diff(wantMsgs, fake.Messages(hook)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestRateLimit(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#flood")
	quiet := fake.NewWebhook("#quiet")
	c := slack.New(fake.Config())
	post := func(u string) error { return c.Post(t.Context(), u, slack.Message{Text: "x"}) }
	// The limits run on the test's clock: no time passes between two posts
	// unless the test says so.
	var passed atomic.Int64
	start := time.Now()
	slacktest.SetClock(fake, func() time.Time { return start.Add(time.Duration(passed.Load())) })

	// Like Slack: one a second with a burst of two. The third post in a row
	// is refused with Retry-After: 1.
	fake.SetRateLimit(hook, 1, 2)
	for i := range 2 {
		if err := post(hook); err != nil {
			t.Fatalf("post %d within the burst = %v", i, err)
		}
	}
	err := post(hook)
	if d, ok := retry.Delay(err); slack.Class(err) != "rate_limited" || !ok || d != time.Second {
		t.Fatalf("post past the burst = %v (delay %v), want rate_limited after 1s", err, d)
	}
	if err := post(quiet); err != nil {
		t.Errorf("another webhook is limited too: %v", err)
	}

	// A second later there is room for one more.
	passed.Add(int64(time.Second))
	if err := post(hook); err != nil {
		t.Fatalf("post a second later = %v", err)
	}

	// A faster limit recovers sooner.
	fake.SetRateLimit(hook, 20, 1)
	if err := post(hook); err != nil {
		t.Fatalf("first post at 20/s = %v", err)
	}
	if err := post(hook); slack.Class(err) != "rate_limited" {
		t.Fatalf("second post at once = %v, want rate_limited", err)
	}
	passed.Add(int64(50 * time.Millisecond))
	if err := post(hook); err != nil {
		t.Errorf("post 50ms later = %v, want nil", err)
	}
	fake.SetRateLimit(hook, 0, 0)
	for range 5 {
		if err := post(hook); err != nil {
			t.Fatalf("post with the limit off = %v", err)
		}
	}
	if got := fake.Count(hook); got != 2+1+1+1+5 {
		t.Errorf("Count = %d, want %d", got, 2+1+1+1+5)
	}
}

func TestKill(t *testing.T) {
	tests := []struct {
		name, code string
		status     int
		body       string
	}{
		{name: "archived", code: "channel_is_archived", status: 410, body: "channel_is_archived"},
		{name: "revoked", code: "invalid_token", status: 403, body: "invalid_token"},
		{name: "default", code: "", status: 404, body: "no_service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			hook := fake.NewWebhook("#gone")
			c := slack.New(fake.Config())
			if err := c.Post(t.Context(), hook, slack.Message{Text: "before"}); err != nil {
				t.Fatalf("Post before Kill = %v", err)
			}
			fake.Kill(hook, tt.code)
			fake.Script(hook, slacktest.OK()) // a dead webhook stays dead
			for range 3 {
				err := c.Post(t.Context(), hook, slack.Message{Text: "after"})
				var se *slack.Error
				if !errors.As(err, &se) || se.Status != tt.status || se.Body != tt.body || slack.Class(err) != "channel_gone" {
					t.Errorf("Post after Kill = %v, want channel_gone %d %s", err, tt.status, tt.body)
				}
			}
			if got := fake.Count(hook); got != 1 {
				t.Errorf("Count = %d, want 1", got)
			}
		})
	}
}

func TestUnknownWebhook(t *testing.T) {
	fake := slacktest.New(t)
	fake.NewWebhook("#real")
	c := slack.New(fake.Config())
	err := c.Post(t.Context(), strings.TrimSuffix(fake.URL(), "/api")+"/services/T0/B0/madeup", slack.Message{Text: "x"})
	var se *slack.Error
	if !errors.As(err, &se) || se.Status != 404 || se.Body != "no_service" {
		t.Errorf("Post to an unknown webhook = %v, want 404 no_service", err)
	}
	if fake.Total() != 0 {
		t.Errorf("Total = %d, want 0", fake.Total())
	}
}

// TestValidation posts raw bodies, as slack.Client only sends valid ones.
func TestValidation(t *testing.T) {
	many := slack.Message{Attachments: make([]slack.Attachment, 101)}
	manyJSON, _ := json.Marshal(many)
	tests := []struct {
		name   string
		body   string
		status int
		answer string
	}{
		{name: "text", body: `{"text":"hi"}`, status: 200, answer: "ok"},
		{name: "attachments only", body: `{"attachments":[{"fallback":"f","text":"t"}]}`, status: 200, answer: "ok"},
		{name: "unknown fields kept", body: `{"text":"hi","username":"jamf"}`, status: 200, answer: "ok"},
		{name: "not json", body: `text=hi`, status: 400, answer: "invalid_payload"},
		{name: "empty", body: ``, status: 400, answer: "invalid_payload"},
		{name: "truncated", body: `{"text":"hi"`, status: 400, answer: "invalid_payload"},
		{name: "no text", body: `{}`, status: 400, answer: "no_text"},
		{name: "empty text", body: `{"text":""}`, status: 400, answer: "no_text"},
		{name: "too many attachments", body: string(manyJSON), status: 400, answer: "too_many_attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			hook := fake.NewWebhook("#v")
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hook, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			var answer string
			status := do(t, req, &answer)
			if status != tt.status || answer != tt.answer {
				t.Errorf("answer = %d %q, want %d %q", status, answer, tt.status, tt.answer)
			}
			if got, want := fake.Count(hook), map[bool]int{true: 1}[tt.status == 200]; got != want {
				t.Errorf("Count = %d, want %d", got, want)
			}
			if got := len(fake.Requests(hook)); got != 1 {
				t.Errorf("len(Requests) = %d, want 1: refused requests are recorded too", got)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	fake := slacktest.New(t)
	a, b := fake.NewWebhook("#a"), fake.NewWebhook("#b")
	c := slack.New(fake.Config())
	start := time.Now()

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			hook := a
			if i%4 == 0 {
				hook = b
			}
			if err := c.Post(t.Context(), hook, slack.Message{Text: fmt.Sprint(i)}); err != nil {
				t.Errorf("Post %d = %v", i, err)
			}
		})
	}
	gotA := fake.WaitFor(t, a, 30, 5*time.Second)
	gotB := fake.WaitFor(t, b, 10, 5*time.Second)
	wg.Wait()

	if len(gotA) != 30 || len(gotB) != 10 || fake.Count(a) != 30 || fake.Count(b) != 10 || fake.Total() != n {
		t.Errorf("counts a=%d/%d b=%d/%d total=%d; want 30, 10, %d", len(gotA), fake.Count(a), len(gotB), fake.Count(b), fake.Total(), n)
	}
	seen := map[string]bool{}
	for _, r := range append(fake.Requests(a), fake.Requests(b)...) {
		var m slack.Message
		if err := json.Unmarshal(r.Body, &m); err != nil || !cmp.Equal(m, r.Message) {
			t.Errorf("Request.Body %s does not decode to Request.Message %+v", r.Body, r.Message)
		}
		if r.Time.Before(start) || r.Time.After(time.Now()) || r.Status != 200 {
			t.Errorf("Request{Time: %v, Status: %d}, want a time within the test and 200", r.Time, r.Status)
		}
		seen[r.Message.Text] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages recorded, want %d", len(seen), n)
	}
	if got := fake.Messages("http://elsewhere.example.com/services/x"); got != nil {
		t.Errorf("Messages of an unknown webhook = %v, want nil", got)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#never")
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		fake.WaitFor(rec, hook, 1, 50*time.Millisecond)
	}()
	<-done
	if !rec.failed {
		t.Error("WaitFor did not fail the test on timeout")
	}
}

// recorder is a testing.TB whose Fatalf records the failure and stops the
// goroutine, so that a test can check that WaitFor fails.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	panic("recorder: Fatalf")
}

func TestLatencyAndDelay(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#slow")
	fake.SetLatency(50 * time.Millisecond)
	c := slack.New(fake.Config())
	start := time.Now()
	if err := c.Post(t.Context(), hook, slack.Message{Text: "x"}); err != nil {
		t.Fatalf("Post = %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Post took %v, want at least the 50ms latency", d)
	}
	fake.SetLatency(0)

	// An answer slower than the client's timeout: the client sees a
	// retryable failure, yet Slack posted the message, as real Slack can.
	fake.Script(hook, slacktest.Response{Status: 200, Body: "ok", Delay: 300 * time.Millisecond})
	cfg := fake.Config()
	cfg.Timeout = 50 * time.Millisecond
	err := slack.New(cfg).Post(t.Context(), hook, slack.Message{Text: "late"})
	if slack.Class(err) != "retry" {
		t.Errorf("Post with a slow answer = %v, want retry", err)
	}
	msgs := fake.WaitFor(t, hook, 2, 5*time.Second)
	if msgs[1].Text != "late" {
		t.Errorf("second message = %q, want late", msgs[1].Text)
	}
}

func TestClose(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#down")
	fake.Script(hook, slacktest.Response{Status: 200, Body: "ok", Delay: time.Hour})
	c := slack.New(fake.Config())
	errc := make(chan error, 1)
	sent := make(chan struct{})
	var once sync.Once
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }})
	go func() { errc <- c.Post(ctx, hook, slack.Message{Text: "stuck"}) }()
	select {
	case <-sent:
	case err := <-errc:
		t.Fatalf("Post = %v before its request was sent", err)
	}

	closed := make(chan struct{})
	go func() { fake.Close(); close(closed) }()
	testwait.Receive(t, closed, 30*time.Second, "Close, which must not wait for a delayed answer")
	if err := <-errc; slack.Class(err) != "retry" {
		t.Errorf("Post cut by Close = %v, want retry", err)
	}
	if err := c.Post(t.Context(), hook, slack.Message{Text: "x"}); !errors.Is(err, slack.ErrUnavailable) {
		t.Errorf("Post after Close = %v, want ErrUnavailable", err)
	}
	fake.Close() // a second Close, like the one at cleanup, is harmless
}

func oauthCode(err error) string {
	var oe *slack.OAuthError
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// do sends req and decodes the answer into v: JSON into a struct, or the
// raw text into a *string.
func do(t *testing.T, req *http.Request, v any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := v.(*string); ok {
		*s = string(body)
	} else if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return resp.StatusCode
}
