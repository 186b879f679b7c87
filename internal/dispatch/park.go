package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// parkTimeout bounds writing one dead letter.
const parkTimeout = 5 * time.Second

// failure is why an event is parked, with Slack's last answer.
type failure struct {
	reason string
	status int
	body   string
}

// failureOf copies Slack's status and body from err, if it carries them.
func failureOf(reason string, err error) failure {
	f := failure{reason: reason}
	var se *slack.Error
	if errors.As(err, &se) {
		f.status, f.body = se.Status, se.Body
	}
	return f
}

// park writes dv's event as a dead letter with f and settles it as
// parked. When the dead letter cannot be written, the event goes back to
// the bus to be tried again, so that it is never lost.
func (d *Dispatcher) park(ctx context.Context, log *slog.Logger, dv Delivery, f failure) {
	ev := dv.Event()
	dl := jamf.DeadLetter{
		Received:   ev,
		Reason:     f.reason,
		Attempts:   ev.Attempt,
		LastStatus: f.status,
		LastBody:   f.body,
		At:         time.Now().UTC(),
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), parkTimeout)
	defer cancel()
	if err := d.deadLetters.DeadLetter(pctx, dl); err != nil {
		wait := retry.Backoff(max(ev.Attempt, 1), d.retryBase, d.retryMax)
		d.metrics.deliveries.WithLabelValues(OutcomeRetried).Inc()
		log.Error("cannot write the dead letter; the event stays on the bus", "reason", f.reason, "wait", wait.String(), "err", err)
		dv.Settle(retry.After(wait, fmt.Errorf("dead letter (%s): %w", f.reason, err)))
		return
	}
	d.metrics.deliveries.WithLabelValues(OutcomeDeadLettered).Inc()
	d.metrics.deadLetters.WithLabelValues(f.reason).Inc()
	log.Warn("event parked as a dead letter", "reason", f.reason, "status", f.status)
	dv.Settle(retry.Permanent(fmt.Errorf("%w (%s)", ErrParked, f.reason)))
}

// codePattern matches a Slack error code such as channel_is_archived.
var codePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// reasonCode turns Slack's answer body into the reason reported to the
// installer: the error code when the body is one, else "channel_dead".
func reasonCode(body string) string {
	code := strings.ToLower(strings.TrimSpace(body))
	if codePattern.MatchString(code) {
		return code
	}
	return ReasonChannelDead
}
