package slack

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// DefaultWebhookHosts are the hosts incoming webhook URLs may point at when
// SLACK_WEBHOOK_HOSTS is not set: Slack's own.
var DefaultWebhookHosts = []string{"hooks.slack.com"}

// maxWebhookURLLength bounds a webhook URL; Slack's are about 80
// characters.
const maxWebhookURLLength = 2048

// WebhookPolicy says where incoming webhook URLs may point
// (SLACK_WEBHOOK_HOSTS). A webhook URL is a secret that Jackalope posts
// Jamf data to, so one that points anywhere else — a private address, a
// host of the one who typed it, plain http — is refused wherever it enters
// (channels add, the OAuth exchange) and wherever it leaves (Post). The
// zero value allows DefaultWebhookHosts.
type WebhookPolicy struct {
	hosts []string // canonical, see canonicalHost
}

// NewWebhookPolicy allows hosts: host names or IP addresses, compared
// without regard to case or a trailing dot. Empty means DefaultWebhookHosts.
func NewWebhookPolicy(hosts ...string) WebhookPolicy {
	var p WebhookPolicy
	for _, h := range hosts {
		if h = canonicalHost(h); h != "" && !slices.Contains(p.hosts, h) {
			p.hosts = append(p.hosts, h)
		}
	}
	return p
}

// Hosts lists the hosts the policy allows.
func (p WebhookPolicy) Hosts() []string {
	if len(p.hosts) == 0 {
		return slices.Clone(DefaultWebhookHosts)
	}
	return slices.Clone(p.hosts)
}

// Check returns nil when webhookURL may be posted to: an https URL, on
// port 443, to one of the policy's hosts, with no user or password in it.
// A loopback host (127.0.0.0/8, ::1, localhost) that the policy lists may
// also be reached over plain http and on any port: local fakes of Slack
// and tests use that. Anything else gives an error wrapping
// ErrWebhookRefused that says why and never contains the URL, which is a
// secret (its host may be named).
func (p WebhookPolicy) Check(webhookURL string) error {
	if len(webhookURL) > maxWebhookURLLength {
		return fmt.Errorf("%w: it is longer than %d characters", ErrWebhookRefused, maxWebhookURLLength)
	}
	u, err := url.Parse(webhookURL)
	switch {
	case err != nil:
		// The parse error quotes the URL, so it is dropped.
		return fmt.Errorf("%w: it is not a URL", ErrWebhookRefused)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%w: it must be an https URL, such as https://hooks.slack.com/services/T000/B000/XXXX", ErrWebhookRefused)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%w: it has no host", ErrWebhookRefused)
	case u.User != nil:
		return fmt.Errorf("%w: it carries a user name or password", ErrWebhookRefused)
	}
	host := canonicalHost(u.Hostname())
	if !slices.Contains(p.Hosts(), host) {
		return fmt.Errorf("%w: %s is not in SLACK_WEBHOOK_HOSTS (%s)", ErrWebhookRefused, hostName(host), strings.Join(p.Hosts(), ","))
	}
	if isLoopback(host) {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: plain http is allowed only to a loopback host; use https", ErrWebhookRefused)
	}
	if port := u.Port(); port != "" && port != "443" {
		return fmt.Errorf("%w: port %s; Slack's webhooks use 443", ErrWebhookRefused, port)
	}
	return nil
}

// canonicalHost is host in lower case, without brackets or a trailing dot,
// an IP address in its shortest form.
func canonicalHost(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimSuffix(host, ".")
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return host
}

// hostName names host in an error when it looks like a host name or an IP
// address, and "its host" otherwise, so nothing odd from the URL is shown.
func hostName(host string) string {
	if host == "" || len(host) > 253 {
		return "its host"
	}
	for _, r := range host {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != ':' {
			return "its host"
		}
	}
	return "host " + host
}

// isLoopback reports whether host, canonical, names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
