package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/retry"
)

// Bounds on the wait taken from a 429's Retry-After header.
const (
	// DefaultRetryAfter is the wait after a 429 whose Retry-After header is
	// missing, unparseable or negative.
	DefaultRetryAfter = 30 * time.Second
	// MinRetryAfter and MaxRetryAfter clamp the header's value, so that
	// "0" does not spin and a wild value does not park a channel for days.
	MinRetryAfter = time.Second
	MaxRetryAfter = 15 * time.Minute
)

// goneCodes are the bodies with which Slack says that an incoming webhook
// will never post again. Slack sends them with 403, 404, 410, 400 and even
// 200, so the body decides, not the status.
var goneCodes = map[string]bool{
	"no_service":                        true,
	"no_service_id":                     true,
	"channel_not_found":                 true,
	"channel_is_archived":               true,
	"invalid_token":                     true,
	"token_revoked":                     true,
	"token_expired":                     true,
	"account_inactive":                  true,
	"user_not_found":                    true,
	"no_team":                           true,
	"team_disabled":                     true,
	"no_active_hooks":                   true,
	"action_prohibited":                 true,
	"posting_to_general_channel_denied": true,
}

// badCodes are the bodies with which Slack refuses one message while the
// channel stays fine.
var badCodes = map[string]bool{
	"invalid_payload": true,
	"no_text":         true,
	"missing_text_or_fallback_or_attachments": true,
	"too_many_attachments":                    true,
	"invalid_attachments":                     true,
	"invalid_blocks":                          true,
	"invalid_blocks_format":                   true,
	"msg_too_long":                            true,
}

// Post sends m to the incoming webhook at webhookURL and classifies Slack's
// answer once, so that callers act on classes and never on statuses:
//
//   - any 2xx: nil;
//   - a body saying the channel is gone (no_service, channel_not_found,
//     channel_is_archived, invalid_token, action_prohibited, ...), whatever
//     the status: retry.Permanent wrapping ErrChannelGone;
//   - 429: retry.After(Retry-After) wrapping ErrRateLimited;
//   - invalid_payload, no_text, too_many_attachments and any other 400 or
//     413: retry.Permanent wrapping ErrBadMessage;
//   - a network error, a timeout, 5xx or any other status: an error
//     wrapping ErrUnavailable, to be retried with backoff.
//
// Every error except nil is an *Error (find it with errors.As) carrying the
// status and body. A webhookURL that is not an http(s) URL can never be
// posted to and counts as a gone channel. One that the Client's
// WebhookPolicy refuses (another host, plain http, ...) is not posted to:
// retry.Permanent wrapping ErrWebhookRefused. No error ever contains the
// webhook URL, which is a secret.
func (c *Client) Post(ctx context.Context, webhookURL string, m Message) error {
	u, err := url.Parse(webhookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The parse error quotes the URL, so it is dropped.
		return retry.Permanent(&Error{Err: fmt.Errorf("%w: the webhook url is not an http(s) url", ErrChannelGone)})
	}
	if err := c.webhooks.Check(webhookURL); err != nil {
		return retry.Permanent(&Error{Err: err})
	}
	secrets := webhookSecrets(webhookURL, u)

	body, err := json.Marshal(m)
	if err != nil {
		return retry.Permanent(&Error{Err: fmt.Errorf("%w: encode message: %w", ErrBadMessage, err)})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return retry.Permanent(&Error{Err: fmt.Errorf("%w: the webhook url cannot be requested", ErrChannelGone)})
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", userAgent)

	a, err := c.do(ctx, req, secrets...)
	if err != nil {
		if a.status >= 200 && a.status < 300 {
			// Slack took the message; only the rest of its "ok" got lost.
			// Posting again would show the message twice.
			return nil
		}
		return err
	}
	return classify(a.status, a.header.Get("Retry-After"), cleanBody(a.body, secrets), time.Now())
}

// classify maps one webhook answer to its class. body is already cleaned.
func classify(status int, retryAfterHeader, body string, now time.Time) error {
	code := strings.ToLower(body)
	switch {
	case goneCodes[code]:
		return retry.Permanent(&Error{Status: status, Body: body, Err: ErrChannelGone})
	case status == http.StatusTooManyRequests:
		return retry.After(retryAfter(retryAfterHeader, now), &Error{Status: status, Body: body, Err: ErrRateLimited})
	case badCodes[code] && status < 500:
		return retry.Permanent(&Error{Status: status, Body: body, Err: ErrBadMessage})
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge:
		return retry.Permanent(&Error{Status: status, Body: body, Err: ErrBadMessage})
	default:
		return &Error{Status: status, Body: body, Err: ErrUnavailable}
	}
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date.
// A missing, unparseable, infinite or negative value gives
// DefaultRetryAfter; any other result is clamped to [MinRetryAfter, MaxRetryAfter].
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return DefaultRetryAfter
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(h, 64); err == nil {
		switch {
		case math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0:
			return DefaultRetryAfter
		case secs >= MaxRetryAfter.Seconds():
			return MaxRetryAfter
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	} else {
		return DefaultRetryAfter
	}
	return min(max(d, MinRetryAfter), MaxRetryAfter)
}

// webhookSecrets lists the forms in which a webhook URL could show up in an
// answer or an error: the whole URL, its path, and its last path segment
// (the part of a Slack webhook URL that is the actual secret). Longer forms
// come first so that they are blanked out whole.
func webhookSecrets(raw string, u *url.URL) []string {
	secrets := []string{raw, u.String(), u.RequestURI(), u.EscapedPath(), u.Path}
	if i := strings.LastIndexByte(u.Path, '/'); i >= 0 && len(u.Path)-i-1 >= 8 {
		secrets = append(secrets, u.Path[i+1:])
	}
	out := secrets[:0]
	for _, s := range secrets {
		if len(s) > 1 {
			out = append(out, s)
		}
	}
	return out
}
