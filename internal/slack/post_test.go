package slack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestPostClassifies pins, in one table, how every kind of webhook answer
// maps to a retry class. The consume loop acts on these classes alone, so a
// change here changes what is retried, dead-lettered or disabled.
func TestPostClassifies(t *testing.T) {
	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		class      string
		delay      time.Duration // wanted retry.Delay, for rate_limited
	}{
		{name: "200 ok", status: 200, body: "ok", class: "ok"},
		{name: "204 empty", status: 204, class: "ok"},
		{name: "201 anything", status: 201, body: "created", class: "ok"},

		{name: "404 no_service", status: 404, body: "no_service", class: "channel_gone"},
		{name: "404 channel_not_found", status: 404, body: "channel_not_found", class: "channel_gone"},
		{name: "410 channel_is_archived", status: 410, body: "channel_is_archived", class: "channel_gone"},
		{name: "403 invalid_token", status: 403, body: "invalid_token", class: "channel_gone"},
		{name: "404 no_team", status: 404, body: "no_team", class: "channel_gone"},
		{name: "410 team_disabled", status: 410, body: "team_disabled", class: "channel_gone"},
		{name: "410 no_active_hooks", status: 410, body: "no_active_hooks", class: "channel_gone"},
		{name: "403 action_prohibited", status: 403, body: "action_prohibited", class: "channel_gone"},
		{name: "403 posting_to_general_channel_denied", status: 403, body: "posting_to_general_channel_denied", class: "channel_gone"},
		{name: "400 no_service_id", status: 400, body: "no_service_id", class: "channel_gone"},
		{name: "200 with a dead body", status: 200, body: "channel_is_archived", class: "channel_gone"},
		{name: "dead body with whitespace", status: 404, body: " no_service\n", class: "channel_gone"},
		{name: "dead body wins over 429", status: 429, body: "no_service", retryAfter: "1", class: "channel_gone"},

		{name: "400 invalid_payload", status: 400, body: "invalid_payload", class: "bad_message"},
		{name: "400 no_text", status: 400, body: "no_text", class: "bad_message"},
		{name: "400 too_many_attachments", status: 400, body: "too_many_attachments", class: "bad_message"},
		{name: "400 unknown body", status: 400, body: "something_new", class: "bad_message"},
		{name: "400 empty body", status: 400, class: "bad_message"},
		{name: "413 too large", status: 413, body: "Request Entity Too Large", class: "bad_message"},

		{name: "500 rollup_error", status: 500, body: "rollup_error", class: "retry"},
		{name: "502 html", status: 502, body: html, class: "retry"},
		{name: "503 empty", status: 503, class: "retry"},
		{name: "504", status: 504, body: "upstream timed out", class: "retry"},
		{name: "500 with a bad-message body", status: 500, body: "invalid_payload", class: "retry"},
		{name: "403 html from a proxy", status: 403, body: "<html>Forbidden</html>", class: "retry"},
		{name: "404 html from a proxy", status: 404, body: "<html>Not Found</html>", class: "retry"},
		{name: "401", status: 401, body: "unauthorized", class: "retry"},
		{name: "302 not followed", status: 302, class: "retry"},

		{name: "429 Retry-After 1", status: 429, body: "rate_limited", retryAfter: "1", class: "rate_limited", delay: time.Second},
		{name: "429 Retry-After 7", status: 429, retryAfter: "7", class: "rate_limited", delay: 7 * time.Second},
		{name: "429 Retry-After fraction", status: 429, retryAfter: "1.5", class: "rate_limited", delay: 1500 * time.Millisecond},
		{name: "429 no Retry-After", status: 429, class: "rate_limited", delay: 30 * time.Second},
		{name: "429 Retry-After garbage", status: 429, retryAfter: "soon", class: "rate_limited", delay: 30 * time.Second},
		{name: "429 Retry-After negative", status: 429, retryAfter: "-5", class: "rate_limited", delay: 30 * time.Second},
		{name: "429 Retry-After Inf", status: 429, retryAfter: "Inf", class: "rate_limited", delay: 30 * time.Second},
		{name: "429 Retry-After 0", status: 429, retryAfter: "0", class: "rate_limited", delay: time.Second},
		{name: "429 Retry-After huge", status: 429, retryAfter: "99999999999999", class: "rate_limited", delay: 15 * time.Minute},
		{name: "429 Retry-After past date", status: 429, retryAfter: "Mon, 02 Jan 2006 15:04:05 GMT", class: "rate_limited", delay: time.Second},
		{name: "429 Retry-After far date", status: 429, retryAfter: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), class: "rate_limited", delay: 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := slack.New(slack.Config{Webhooks: loopbackHooks, Timeout: 5 * time.Second})

			err := c.Post(t.Context(), srv.URL+"/services/T1/B1/secret0123456789", slack.Message{Text: "hi"})

			if got := slack.Class(err); got != tt.class {
				t.Fatalf("Class(%v) = %q, want %q", err, got, tt.class)
			}
			if tt.class == "ok" {
				return
			}
			wantPermanent := tt.class == "channel_gone" || tt.class == "bad_message"
			if got := retry.IsPermanent(err); got != wantPermanent {
				t.Errorf("IsPermanent = %v, want %v", got, wantPermanent)
			}
			d, hasDelay := retry.Delay(err)
			if hasDelay != (tt.class == "rate_limited") || d != tt.delay {
				t.Errorf("Delay = %v, %v; want %v, %v", d, hasDelay, tt.delay, tt.class == "rate_limited")
			}
			var se *slack.Error
			if !errors.As(err, &se) {
				t.Fatalf("errors.As(%v, *slack.Error) = false", err)
			}
			if se.Status != tt.status || se.Body != strings.TrimSpace(tt.body) {
				t.Errorf("Error{Status: %d, Body: %q}, want {%d, %q}", se.Status, se.Body, tt.status, strings.TrimSpace(tt.body))
			}
			sentinel := map[string]error{
				"channel_gone": slack.ErrChannelGone,
				"bad_message":  slack.ErrBadMessage,
				"rate_limited": slack.ErrRateLimited,
				"retry":        slack.ErrUnavailable,
			}[tt.class]
			if !errors.Is(err, sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
			}
		})
	}
}

func TestPostTransportFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/services/T1/B1/secret0123456789"
	closed.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	tests := []struct {
		name  string
		url   string
		class string
		is    error
	}{
		{name: "connection refused", url: closedURL, class: "retry", is: slack.ErrUnavailable},
		{name: "timeout", url: slow.URL + "/services/T1/B1/secret0123456789", class: "retry", is: context.DeadlineExceeded},
		{name: "not a url", url: "https://hooks.slack.com/services/T1/B1/\x7fsecret", class: "channel_gone", is: slack.ErrChannelGone},
		{name: "not http", url: "ftp://hooks.slack.com/services/T1/B1/secret", class: "channel_gone", is: slack.ErrChannelGone},
		{name: "empty", url: "", class: "channel_gone", is: slack.ErrChannelGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := slack.New(slack.Config{Webhooks: loopbackHooks, Timeout: 200 * time.Millisecond})
			err := c.Post(t.Context(), tt.url, slack.Message{Text: "hi"})
			if got := slack.Class(err); got != tt.class {
				t.Errorf("Class(%v) = %q, want %q", err, got, tt.class)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var se *slack.Error
			if !errors.As(err, &se) || se.Status != 0 {
				t.Errorf("want a *slack.Error with Status 0, got %#v", se)
			}
		})
	}
}

// TestPostLostAnswer checks that a 2xx whose body is cut off counts as
// posted: Slack took the message, and posting again would show it twice.
func TestPostLostAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "o")
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c := slack.New(slack.Config{Webhooks: loopbackHooks})
	if err := c.Post(t.Context(), srv.URL+"/services/T/B/x", slack.Message{Text: "hi"}); err != nil {
		t.Errorf("Post = %v, want nil", err)
	}
}

func TestPostDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/services/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	hc := &http.Client{} // follows redirects by default; New must override it
	c := slack.New(slack.Config{Webhooks: loopbackHooks, HTTPClient: hc})
	err := c.Post(t.Context(), srv.URL+"/services/T/B/x", slack.Message{Text: "hi"})
	if followed.Load() {
		t.Error("the redirect was followed")
	}
	if got := slack.Class(err); got != "retry" {
		t.Errorf("Class = %q, want retry", got)
	}
	if hc.CheckRedirect != nil {
		t.Error("New changed the caller's http.Client")
	}
}

func TestPostBodyCut(t *testing.T) {
	long := strings.Repeat("é", 100<<10) // 200 KiB, past both the read and the keep limits
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "x"+long)
	}))
	defer srv.Close()
	err := slack.New(slack.Config{Webhooks: loopbackHooks}).Post(t.Context(), srv.URL+"/services/T/B/x", slack.Message{Text: "hi"})
	var se *slack.Error
	if !errors.As(err, &se) {
		t.Fatalf("errors.As(%v, *slack.Error) = false", err)
	}
	if len(se.Body) > 512 || len(se.Body) < 500 {
		t.Errorf("len(Body) = %d, want at most 512 and close to it", len(se.Body))
	}
	if !strings.HasPrefix("x"+long, se.Body) {
		t.Error("Body is not a prefix of the answer, or split a character")
	}
	if len(err.Error()) > 300 {
		t.Errorf("error string is %d bytes long, want it short: %s", len(err.Error()), err)
	}
}

// TestPostSends checks the request itself against the fake Slack.
func TestPostSends(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("#jamf")
	m := slack.Message{
		Text: "Computer added",
		Attachments: []slack.Attachment{{
			Fallback: "fb", Color: "#36a64f", Title: "Mac-042", Text: "*added*",
			Fields:   []slack.Field{{Title: "Serial", Value: "C02X", Short: true}},
			ThumbURL: "https://example.com/static/mac.png", Ts: 1700000000, MrkdwnIn: []string{"text"},
		}},
	}
	c := slack.New(fake.Config())
	if err := c.Post(t.Context(), hook, m); err != nil {
		t.Fatalf("Post = %v", err)
	}
	if diff := cmp.Diff([]slack.Message{m}, fake.Messages(hook)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: "ok"},
		{name: "foreign", err: errors.New("boom"), want: "retry"},
		{name: "foreign permanent", err: retry.Permanent(errors.New("boom")), want: "bad_message"},
		{name: "foreign after", err: retry.After(time.Second, errors.New("boom")), want: "rate_limited"},
		{name: "wrapped gone", err: fmt.Errorf("dispatch: %w", retry.Permanent(&slack.Error{Status: 404, Body: "no_service", Err: slack.ErrChannelGone})), want: "channel_gone"},
		{name: "wrapped bad", err: fmt.Errorf("dispatch: %w", &slack.Error{Status: 400, Err: slack.ErrBadMessage}), want: "bad_message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slack.Class(tt.err); got != tt.want {
				t.Errorf("Class(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestPostingClientKeepsAConnectionPerPost posts two waves of 8 posts at
// once, each wave held by the server until all 8 arrived, through a
// client made by PostingClient(8): the second wave reuses the first's
// connections (net/http's default keeps two, and would open 6 more).
func TestPostingClientKeepsAConnectionPerPost(t *testing.T) {
	const posts = 8
	var opened atomic.Int64
	arrived := make(chan struct{}, posts)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	client := slack.New(slack.Config{Webhooks: slack.NewWebhookPolicy("127.0.0.1"), HTTPClient: slack.PostingClient(posts)})
	for wave := range 2 {
		errs := make(chan error, posts)
		for range posts {
			go func() { errs <- client.Post(t.Context(), srv.URL+"/services/T0/B0/x", slack.Message{Text: "hi"}) }()
		}
		for range posts {
			<-arrived
		}
		for range posts {
			release <- struct{}{}
		}
		for range posts {
			if err := <-errs; err != nil {
				t.Fatalf("wave %d: post: %v", wave, err)
			}
		}
	}
	if n := opened.Load(); n != posts {
		t.Errorf("two waves of %d posts opened %d connections, want %d", posts, n, posts)
	}
}
