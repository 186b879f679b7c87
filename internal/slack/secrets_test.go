package slack_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestNoSecretsInErrors drives every failure path that could carry a
// secret (the webhook URL, the client secret, the OAuth code) and checks
// that neither the error's text, its formatted forms, the *Error's Body nor
// a log line made from it contains one. net/http's own errors name the URL,
// and servers and proxies echo what they were sent, so this can fail.
func TestNoSecretsInErrors(t *testing.T) {
	const (
		hookSecret   = "hooksecretABCDEFGH12345678"
		clientSecret = "clientsecret-9f8e7d6c5b4a"
		code         = "oauthcode-1234567890.abcdef"
	)
	// echo answers with everything the request held, as a misbehaving
	// proxy's error page might.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			_, pass, _ := r.BasicAuth()
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html>%s http://%s%s %s %s %s</html>", r.Method, r.Host, r.URL.RequestURI(), r.URL.Path, body, pass)
		}
	}
	newServer := func(h http.Handler) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	slow := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body is read first: only then does net/http notice the client
		// hanging up and cancel the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	hookPath := "/services/T0001/B0001/" + hookSecret

	posts := []struct {
		name string
		url  string
	}{
		{name: "post refused", url: closed.URL + hookPath},
		{name: "post timeout", url: slow + hookPath},
		{name: "post 404 echo", url: newServer(echo(404)) + hookPath},
		{name: "post 500 echo", url: newServer(echo(500)) + hookPath},
		{name: "post 400 echo", url: newServer(echo(400)) + hookPath},
		{name: "post 429 echo", url: newServer(echo(429)) + hookPath},
		{name: "post bad url", url: "https://hooks.slack.com" + hookPath + "\x7f"},
		{name: "post no host", url: "https:///services/T0001/B0001/" + hookSecret},
		{name: "post unknown host", url: "http://hooks.invalid" + hookPath},
	}
	exchanges := []struct {
		name   string
		apiURL string
	}{
		{name: "exchange refused", apiURL: closed.URL},
		{name: "exchange timeout", apiURL: slow},
		{name: "exchange 500 echo", apiURL: newServer(echo(500))},
		{name: "exchange 200 echo", apiURL: newServer(echo(200))},
		{name: "exchange 403 echo", apiURL: newServer(echo(403))},
		{name: "exchange broken success", apiURL: newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"ok":true,"incoming_webhook":{"url":"https://hooks.slack.com%s","channel_id":1}}`, hookPath)
		}))},
	}

	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("want an error")
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Error("failed", "err", err)
		slog.New(slog.NewTextHandler(&logs, nil)).Error("failed", "err", err)
		forms := []string{err.Error(), fmt.Sprintf("%v %+v %s %q", err, err, err, err), logs.String()}
		var se *slack.Error
		if errors.As(err, &se) {
			forms = append(forms, se.Body, fmt.Sprintf("%#v", *se))
		}
		for _, form := range forms {
			for _, secret := range []string{hookSecret, clientSecret, code, hookPath} {
				if strings.Contains(form, secret) {
					t.Errorf("%q contains the secret %q", form, secret)
				}
			}
		}
	}

	for _, tt := range posts {
		t.Run(tt.name, func(t *testing.T) {
			c := slack.New(slack.Config{Webhooks: loopbackHooks, Timeout: 200 * time.Millisecond})
			check(t, c.Post(t.Context(), tt.url, slack.Message{Text: "hi"}))
		})
	}
	for _, tt := range exchanges {
		t.Run(tt.name, func(t *testing.T) {
			c := slack.New(slack.Config{APIURL: tt.apiURL, ClientID: "id", ClientSecret: clientSecret, Timeout: 200 * time.Millisecond})
			_, err := c.Exchange(t.Context(), code, "https://j.example.com/install")
			check(t, err)
		})
	}
	t.Run("exchange refused by the fake", func(t *testing.T) {
		fake := slacktest.New(t)
		cfg := fake.Config()
		cfg.ClientSecret = clientSecret
		_, err := slack.New(cfg).Exchange(t.Context(), code, "")
		check(t, err)
	})
}

// TestResultHidesWebhook checks that printing or logging an OAuthResult
// leaves the webhook URL out.
func TestResultHidesWebhook(t *testing.T) {
	res := slack.OAuthResult{TeamID: "T1", ChannelID: "C1", WebhookURL: "https://hooks.slack.com/services/T1/B1/hooksecret123"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("installed", "result", res)
	for _, form := range []string{fmt.Sprint(res), fmt.Sprintf("%v %+v %s", res, res, res), logs.String()} {
		if strings.Contains(form, "hooksecret123") {
			t.Errorf("%q contains the webhook URL", form)
		}
		if !strings.Contains(form, "C1") {
			t.Errorf("%q does not name the channel", form)
		}
	}
}
