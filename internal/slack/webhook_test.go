package slack_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// loopbackHooks lets the tests post to httptest servers on 127.0.0.1.
var loopbackHooks = slack.NewWebhookPolicy("127.0.0.1")

func TestWebhookPolicy(t *testing.T) {
	const secretPath = "/services/T0AAA/B0BBB/s3cr3tWebhookToken"
	tests := []struct {
		name  string
		hosts []string // nil: the default, hooks.slack.com
		url   string
		ok    bool
		why   string // in the error
	}{
		{name: "slack", url: "https://hooks.slack.com" + secretPath, ok: true},
		{name: "slack on 443", url: "https://hooks.slack.com:443" + secretPath, ok: true},
		{name: "uppercase host and scheme", url: "HTTPS://HOOKS.SLACK.COM" + secretPath, ok: true},
		{name: "trailing dot", url: "https://hooks.slack.com." + secretPath, ok: true},
		{name: "another listed host", hosts: []string{"hooks.slack.com", "hooks.slack-gov.com"}, url: "https://hooks.slack-gov.com" + secretPath, ok: true},
		{name: "listed with a trailing dot and capitals", hosts: []string{"Hooks.Slack.COM."}, url: "https://hooks.slack.com" + secretPath, ok: true},
		{name: "loopback listed, plain http, odd port", hosts: []string{"127.0.0.1"}, url: "http://127.0.0.1:38211" + secretPath, ok: true},
		{name: "ipv6 loopback listed", hosts: []string{"::1"}, url: "http://[::1]:8080" + secretPath, ok: true},
		{name: "ipv6 loopback listed in brackets, long form", hosts: []string{"[0:0:0:0:0:0:0:1]"}, url: "http://[::1]:8080" + secretPath, ok: true},
		{name: "localhost listed", hosts: []string{"localhost"}, url: "http://localhost:9000" + secretPath, ok: true},

		{name: "host not listed", url: "https://hooks.evil.example" + secretPath, why: "host hooks.evil.example is not in SLACK_WEBHOOK_HOSTS (hooks.slack.com)"},
		{name: "listed host as a prefix", url: "https://hooks.slack.com.evil.example" + secretPath, why: "not in SLACK_WEBHOOK_HOSTS"},
		{name: "listed host as a suffix", url: "https://evilhooks.slack.com" + secretPath, why: "not in SLACK_WEBHOOK_HOSTS"},
		{name: "private address", url: "https://10.0.0.5" + secretPath, why: "host 10.0.0.5 is not in SLACK_WEBHOOK_HOSTS"},
		{name: "link-local metadata address", url: "http://169.254.169.254/latest/meta-data", why: "not in SLACK_WEBHOOK_HOSTS"},
		{name: "loopback not listed", url: "http://127.0.0.1:8080" + secretPath, why: "host 127.0.0.1 is not in SLACK_WEBHOOK_HOSTS"},
		{name: "another loopback address than the listed one", hosts: []string{"127.0.0.1"}, url: "http://127.0.0.2:8080" + secretPath, why: "not in SLACK_WEBHOOK_HOSTS"},
		{name: "ipv6 loopback not listed", hosts: []string{"127.0.0.1"}, url: "http://[::1]:8080" + secretPath, why: "host ::1 is not in SLACK_WEBHOOK_HOSTS"},
		{name: "plain http to slack", url: "http://hooks.slack.com" + secretPath, why: "plain http"},
		{name: "plain http to a listed private host", hosts: []string{"10.1.2.3"}, url: "http://10.1.2.3" + secretPath, why: "plain http"},
		{name: "odd port", url: "https://hooks.slack.com:8443" + secretPath, why: "port 8443"},
		{name: "user and password", url: "https://user:pass@hooks.slack.com" + secretPath, why: "user name or password"},
		{name: "user hiding another host", url: "https://hooks.slack.com@evil.example" + secretPath, why: "user name or password"},
		{name: "not https", url: "ftp://hooks.slack.com" + secretPath, why: "https URL"},
		{name: "no host", url: "https:" + secretPath, why: "no host"},
		{name: "not a url", url: "https://hooks.slack.com/\x7f" + secretPath, why: "not a URL"},
		{name: "too long", url: "https://hooks.slack.com/" + strings.Repeat("x", 2100), why: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := slack.NewWebhookPolicy(tt.hosts...).Check(tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, slack.ErrWebhookRefused) {
				t.Errorf("Check = %v, want ErrWebhookRefused", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Check = %q, want it to say %q", err, tt.why)
			}
			for _, secret := range []string{tt.url, secretPath, "s3cr3tWebhookToken"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Check's error %q contains the secret %q", err, secret)
				}
			}
		})
	}
}

func TestWebhookPolicyHosts(t *testing.T) {
	if diff := cmp.Diff([]string{"hooks.slack.com"}, slack.WebhookPolicy{}.Hosts()); diff != "" {
		t.Errorf("zero policy's hosts (-want +got):\n%s", diff)
	}
	got := slack.NewWebhookPolicy(" Hooks.Slack.com. ", "hooks.slack.com", "[::1]", "").Hosts()
	if diff := cmp.Diff([]string{"hooks.slack.com", "::1"}, got); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

// TestPostRefusesWebhookOutsidePolicy checks that a webhook URL the policy
// refuses is never posted to, and says so as a permanent, distinct class.
func TestPostRefusesWebhookOutsidePolicy(t *testing.T) {
	var posted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted.Add(1) }))
	defer srv.Close()
	hook := srv.URL + "/services/T/B/s3cr3tWebhookToken"
	err := slack.New(slack.Config{}).Post(context.Background(), hook, slack.Message{Text: "hi"})
	if !errors.Is(err, slack.ErrWebhookRefused) || !retry.IsPermanent(err) {
		t.Errorf("Post = %v, want a permanent ErrWebhookRefused", err)
	}
	if got := slack.Class(err); got != slack.ClassWebhookRefused {
		t.Errorf("Class = %q, want %q", got, slack.ClassWebhookRefused)
	}
	if strings.Contains(err.Error(), "s3cr3tWebhookToken") {
		t.Errorf("Post's error %q contains the webhook URL", err)
	}
	if n := posted.Load(); n != 0 {
		t.Errorf("the refused webhook got %d posts, want none", n)
	}
}

// TestExchangeRefusesWebhookOutsidePolicy checks that an install whose
// webhook URL the policy refuses fails with ErrWebhookRefused, without the
// URL in the error.
func TestExchangeRefusesWebhookOutsidePolicy(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.AddCode("code-1", slacktest.Install{ChannelName: "jamf"})
	cfg := fake.Config()
	cfg.Webhooks = slack.WebhookPolicy{} // hooks.slack.com only
	_, err := slack.New(cfg).Exchange(t.Context(), "code-1", "")
	if !errors.Is(err, slack.ErrWebhookRefused) {
		t.Fatalf("Exchange = %v, want ErrWebhookRefused", err)
	}
	if strings.Contains(err.Error(), hook) || strings.Contains(err.Error(), hook[strings.LastIndexByte(hook, '/')+1:]) {
		t.Errorf("Exchange's error %q contains the webhook URL", err)
	}
}
