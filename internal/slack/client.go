package slack

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultAPIURL is Slack's Web API base, used when Config.APIURL is empty.
const DefaultAPIURL = "https://slack.com/api"

// DefaultTimeout bounds every outbound call when Config.Timeout is not set.
const DefaultTimeout = 10 * time.Second

const (
	// maxRead is how much of an answer's body is read; the rest is dropped
	// with the connection, so a huge error page cannot exhaust memory.
	maxRead = 64 << 10
	// maxBody is how much of an answer's body an *Error keeps.
	maxBody = 512
	// userAgent names Jackalope to Slack.
	userAgent = "jackalope (+https://github.com/jackalope-app/jackalope)"
)

// Config configures a Client.
type Config struct {
	// APIURL is the Web API base (SLACK_API_URL), DefaultAPIURL when empty.
	APIURL string
	// HTTPClient sends the requests; a plain http.Client when nil. The
	// Client never follows redirects, whatever the HTTPClient says.
	HTTPClient *http.Client
	// Timeout bounds each call, DefaultTimeout when zero or negative.
	Timeout time.Duration
	// ClientID and ClientSecret are the Slack app's OAuth credentials,
	// needed by Exchange only.
	ClientID, ClientSecret string
	// Webhooks says where incoming webhook URLs may point: Post refuses
	// to send to, and Exchange to accept, any other. The zero value allows
	// DefaultWebhookHosts.
	Webhooks WebhookPolicy
}

// Client talks to Slack. It is safe for concurrent use.
type Client struct {
	apiURL       string
	http         *http.Client
	timeout      time.Duration
	clientID     string
	clientSecret string
	webhooks     WebhookPolicy
}

// PostingClient is an HTTP client for Config.HTTPClient that keeps an idle
// connection per post in flight: every incoming webhook lives on the same
// host (hooks.slack.com), and net/http keeps only two per host by default,
// so busy posters would open a TLS connection for nearly every post.
func PostingClient(inFlight int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(inFlight, 2)
	return &http.Client{Transport: t}
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	}
	// Redirects are answered, not followed: a webhook that moves is not a
	// webhook Slack documents, and following it would post the message (and
	// for the OAuth exchange the client secret) somewhere unknown.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	apiURL := strings.TrimRight(cfg.APIURL, "/")
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{
		apiURL:       apiURL,
		http:         hc,
		timeout:      timeout,
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		webhooks:     cfg.Webhooks,
	}
}

// answer is what came back from one request.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends req with the Client's timeout and reads at most maxRead bytes of
// the answer before closing its body. A transport failure comes back as a
// redacted error that wraps ErrUnavailable; it never holds the request URL.
func (c *Client) do(ctx context.Context, req *http.Request, secrets ...string) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		return answer{}, &Error{Err: unavailable(err, secrets)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRead))
	// The rest of an oversized body is drained up to the same limit so the
	// connection can be reused; anything longer costs a new connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxRead))
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if err != nil {
		return a, &Error{Status: resp.StatusCode, Body: cleanBody(body, secrets), Err: unavailable(err, secrets)}
	}
	return a, nil
}

// unavailable turns a transport failure into an error that wraps
// ErrUnavailable and the underlying cause, with net/http's *url.Error
// removed (it names the URL) and any secret blanked out of the message.
func unavailable(err error, secrets []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &redacted{msg: ErrUnavailable.Error() + ": " + redact(err.Error(), secrets), err: err}
}

// redacted is an error whose message had secrets blanked out. It still
// unwraps to ErrUnavailable and to its cause, so errors.Is works for
// context.DeadlineExceeded and friends.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string   { return e.msg }
func (e *redacted) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// redact replaces every non-empty secret in s by "[redacted]".
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// cleanBody makes an answer's body fit for an *Error: secrets blanked out,
// valid UTF-8, trimmed and cut to maxBody bytes on a rune boundary.
func cleanBody(body []byte, secrets []string) string {
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	return cut(strings.TrimSpace(redact(s, secrets)), maxBody)
}

// cut returns at most the first n bytes of s, never splitting a rune.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
