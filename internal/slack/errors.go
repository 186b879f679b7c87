package slack

import (
	"errors"
	"fmt"

	"github.com/jackalope-app/jackalope/internal/retry"
)

// The error classes Post and Exchange return. Test them with errors.Is.
var (
	// ErrUnavailable means Slack could not be reached, did not answer in
	// time, or failed on its side (5xx, a broken answer). Trying again later
	// may work; the installer answers 502.
	ErrUnavailable = errors.New("slack unavailable")
	// ErrRateLimited means Slack answered 429. The error also carries the
	// wait (see retry.Delay).
	ErrRateLimited = errors.New("slack rate limited")
	// ErrChannelGone means the incoming webhook can no longer post: the
	// channel was deleted or archived, the app was removed, the workspace is
	// gone. No retry will fix it; the installation should be disabled.
	ErrChannelGone = errors.New("slack channel is gone")
	// ErrBadMessage means Slack refused this message (invalid_payload,
	// no_text, ...). No retry will fix it, but the channel is fine.
	ErrBadMessage = errors.New("slack rejected the message")
	// ErrWebhookRefused means a webhook URL points where the WebhookPolicy
	// (SLACK_WEBHOOK_HOSTS) does not allow: another host, plain http, a
	// user and password in it. Nothing was sent. No retry will fix it, but
	// the channel may be fine: the URL or the policy must change.
	ErrWebhookRefused = errors.New("webhook url refused")
	// ErrNoWebhook means an OAuth exchange succeeded but granted no incoming
	// webhook, because the app did not ask for the incoming-webhook scope.
	ErrNoWebhook = errors.New("slack granted no incoming webhook (the app must request the incoming-webhook scope)")
)

// Error is Slack's answer to a failed call. Status is 0 when no answer came
// (a network error or a timeout). Body is the answer's body, trimmed, cut to
// 512 bytes and with the webhook URL blanked out. Err is one of the class
// sentinels above, possibly joined with a transport cause.
//
// Callers find it with errors.As to report the last status and body of a
// dead letter.
type Error struct {
	Status int
	Body   string
	Err    error
}

// Error reports the class, then status and body when there was an answer.
// It never contains the webhook URL: Body is redacted when it is built.
func (e *Error) Error() string {
	msg := "slack call failed"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Status == 0 {
		return msg
	}
	body := cut(e.Body, 128)
	if len(body) < len(e.Body) {
		body += "..."
	}
	return fmt.Sprintf("%s (status %d, body %q)", msg, e.Status, body)
}

// Unwrap returns the class sentinel (and cause), for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// Classes returned by Class, stable for use as metric label values.
const (
	ClassOK          = "ok"
	ClassRetry       = "retry"
	ClassRateLimited = "rate_limited"
	ClassChannelGone = "channel_gone"
	ClassBadMessage  = "bad_message"
	// ClassWebhookRefused is a post the WebhookPolicy stopped: nothing was
	// sent.
	ClassWebhookRefused = "webhook_refused"
)

// Class names the class of an error returned by Post, for metric labels and
// logs: "ok" for nil, "retry", "rate_limited", "channel_gone",
// "bad_message" or "webhook_refused". An error from elsewhere counts as "rate_limited" when it
// carries a retry.After delay, "bad_message" when it is retry.Permanent (it
// is dead-lettered without disabling the channel) and "retry" otherwise.
func Class(err error) string {
	switch {
	case err == nil:
		return ClassOK
	case errors.Is(err, ErrChannelGone):
		return ClassChannelGone
	case errors.Is(err, ErrBadMessage):
		return ClassBadMessage
	case errors.Is(err, ErrWebhookRefused):
		return ClassWebhookRefused
	case errors.Is(err, ErrRateLimited):
		return ClassRateLimited
	}
	if _, ok := retry.Delay(err); ok {
		return ClassRateLimited
	}
	if retry.IsPermanent(err) {
		return ClassBadMessage
	}
	return ClassRetry
}
