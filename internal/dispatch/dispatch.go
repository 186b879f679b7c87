// Package dispatch delivers the Jamf events that ingest accepted to their
// Slack channels. (*Dispatcher).Handle is the handler the bus consume loop
// calls for each event: it looks the installation up in the read model,
// renders the message, posts it and returns what should become of the event
// — nil once Slack took it, retry.After(d, err) when it should come back
// after d, retry.Permanent(err) once it was parked as a dead letter. It
// never sleeps on a retry and never acks by itself: the consume loop is the
// one place that acts on the class.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// Installations is the in-memory read model of the installations (the bus
// keeps it current from the KV bucket "installations").
type Installations interface {
	ByID(id string) (registry.Entry, bool)
}

// Poster posts a message to a Slack incoming webhook and classifies the
// answer (see slack.Client.Post).
type Poster interface {
	Post(ctx context.Context, webhookURL string, m slack.Message) error
}

// DeadLetters parks an event that cannot be delivered, replayably.
type DeadLetters interface {
	DeadLetter(ctx context.Context, d jamf.DeadLetter) error
}

// Reporter tells the installer that an installation's channel is gone, so
// that it disables the installation.
type Reporter interface {
	ReportDeadChannel(ctx context.Context, installationID, reason string) error
}

// Opener opens the sealed webhook URL of an installation (see
// secret.Keys.OpenWebhook). A URL sealed for another installation must not
// open, so a read model entry pointed at another channel's webhook is
// refused.
type Opener interface {
	OpenWebhook(installationID, sealed string) (string, error)
}

// Defaults of Options.
const (
	DefaultMaxAttempts     = 10
	DefaultBackoffBase     = time.Second
	DefaultBackoffMax      = 5 * time.Minute
	DefaultUnknownAttempts = 5
	DefaultDeadChannelHold = 10 * time.Minute
	DefaultPaceInterval    = time.Second
)

// Options configures New. Installations, Poster, DeadLetters, Reporter and
// Opener are required.
type Options struct {
	Installations Installations
	Poster        Poster
	DeadLetters   DeadLetters
	Reporter      Reporter
	Opener        Opener

	// MaxAttempts is how many deliveries an event gets before it is parked
	// as a dead letter with reason attempts_spent (DISPATCH_MAX_ATTEMPTS);
	// DefaultMaxAttempts when zero. Give the consume loop the same number.
	MaxAttempts int
	// IconBaseURL is where the message icons are served: BaseURL +
	// "/static/images".
	IconBaseURL string
	// Logger receives a line per failure with the installation, event and
	// attempt, never a webhook URL. Nil discards.
	Logger *slog.Logger
	// Registerer takes the dispatcher's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock for pauses, dead letters and event lag; time.Now
	// when nil.
	Now func() time.Time

	// BackoffBase and BackoffMax bound the exponential backoff with full
	// jitter between retries (DefaultBackoffBase, DefaultBackoffMax).
	BackoffBase, BackoffMax time.Duration
	// UnknownAttempts is how many deliveries an event for an installation
	// missing from the read model gets — it may be brand new and not yet
	// seen by this process — before it is parked as unknown_installation
	// (DefaultUnknownAttempts, never more than MaxAttempts).
	UnknownAttempts int
	// DeadChannelHold is how long a channel that Slack called gone is not
	// posted to while the read model still shows its installation active
	// (DefaultDeadChannelHold). It bridges the time the installer takes to
	// disable the installation: once the read model shows it disabled, or
	// reinstalled with another webhook URL, the read model decides again.
	// Should the installation still be active when the hold ends, the next
	// event tries Slack once more.
	DeadChannelHold time.Duration
	// PaceInterval is the gap this process leaves between the posts to a
	// channel that Slack rate-limited, until its waiting events are through
	// (DefaultPaceInterval: Slack takes about one message a second per
	// channel).
	PaceInterval time.Duration
}

// Dispatcher delivers events to Slack. It is safe for concurrent use by
// any number of workers.
type Dispatcher struct {
	installations   Installations
	poster          Poster
	deadLetters     DeadLetters
	reporter        Reporter
	opener          Opener
	maxAttempts     int
	unknownAttempts int
	backoffBase     time.Duration
	backoffMax      time.Duration
	deadHold        time.Duration
	paceInterval    time.Duration
	iconBaseURL     string
	log             *slog.Logger
	now             func() time.Time
	metrics         *metrics

	mu    sync.Mutex
	paced map[string]*pace       // installation id -> its 429 pause and backlog
	turns map[eventKey]time.Time // event -> when it may post to its paced channel
	dead  map[string]deadMark    // installation id -> Slack said its channel is gone
}

// pace is the state of a channel that Slack rate-limited in this process.
type pace struct {
	until  time.Time // end of the pause Slack asked for
	next   time.Time // the next free turn for a waiting event
	status int       // Slack's 429 answer, for dead letters
	body   string
}

// eventKey tells one event from another without its message ID, which
// the handler does not see: a paused event that comes back at its turn is
// let through instead of being given a new one.
type eventKey struct {
	installation string
	receivedAt   int64
	body         uint64
}

// deadMark records that Slack called an installation's channel gone.
type deadMark struct {
	sealed   string    // the webhook URL that died; a reinstall brings another
	until    time.Time // end of the hold
	code     string    // Slack's reason code, reported to the installer
	status   int       // Slack's answer, copied into later dead letters
	body     string
	reported bool // the installer was told
}

const (
	// sweepAt is the size from which the pace, turn and dead-mark maps
	// are swept of what has expired whenever one is added to.
	sweepAt = 256
	// turnTolerance lets an event that comes back this much before its
	// turn post anyway: redeliveries are not exactly on time.
	turnTolerance = 50 * time.Millisecond
	// turnKeep is how long a turn that nobody came back for is kept.
	turnKeep = time.Minute
)

// ErrParked is wrapped, as retry.Permanent, by Handle's answer for an event
// it parked as a dead letter, so that the consume loop terminates it.
var ErrParked = errors.New("event parked as a dead letter")

// Errors Handle returns to have an event come back without a post.
var (
	errUnknownInstallation = errors.New("installation not in the read model")
	errPaused              = errors.New("channel paused after a slack rate limit")
)

// New returns a Dispatcher, or an error when a required dependency is
// missing, a setting is negative or the metrics cannot be registered.
func New(opts Options) (*Dispatcher, error) {
	var missing []string
	for name, v := range map[string]any{
		"Installations": opts.Installations, "Poster": opts.Poster, "DeadLetters": opts.DeadLetters,
		"Reporter": opts.Reporter, "Opener": opts.Opener,
	} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("dispatch options: missing %s", strings.Join(missing, ", "))
	}
	if opts.MaxAttempts < 0 || opts.UnknownAttempts < 0 || opts.BackoffBase < 0 || opts.BackoffMax < 0 ||
		opts.DeadChannelHold < 0 || opts.PaceInterval < 0 {
		return nil, errors.New("dispatch options: attempts and durations must not be negative")
	}
	d := &Dispatcher{
		installations:   opts.Installations,
		poster:          opts.Poster,
		deadLetters:     opts.DeadLetters,
		reporter:        opts.Reporter,
		opener:          opts.Opener,
		maxAttempts:     cmp.Or(opts.MaxAttempts, DefaultMaxAttempts),
		unknownAttempts: cmp.Or(opts.UnknownAttempts, DefaultUnknownAttempts),
		backoffBase:     cmp.Or(opts.BackoffBase, DefaultBackoffBase),
		backoffMax:      cmp.Or(opts.BackoffMax, DefaultBackoffMax),
		deadHold:        cmp.Or(opts.DeadChannelHold, DefaultDeadChannelHold),
		paceInterval:    cmp.Or(opts.PaceInterval, DefaultPaceInterval),
		iconBaseURL:     strings.TrimRight(opts.IconBaseURL, "/"),
		log:             cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:             opts.Now,
		paced:           make(map[string]*pace),
		turns:           make(map[eventKey]time.Time),
		dead:            make(map[string]deadMark),
	}
	d.unknownAttempts = min(d.unknownAttempts, d.maxAttempts)
	d.backoffMax = max(d.backoffMax, d.backoffBase)
	if d.now == nil {
		d.now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	return d, nil
}

// Handle delivers one event and returns its class for the consume loop:
//
//   - nil: Slack answered 2xx; ack it.
//   - retry.After(d, err): deliver it again after d — a 429's Retry-After
//     (the channel then pauses in this process, and its other events wait
//     their turn instead of each collecting a 429), the backoff after a
//     retryable failure, or 0 when a shutdown cut the post short.
//   - retry.Permanent(err), err wrapping ErrParked: it was parked as a dead
//     letter; terminate it.
//
// Events that no retry will deliver are parked at once: a body that cannot
// be parsed or that Slack refuses (bad_message), a channel that is gone
// (channel_dead; also reported, so the installer disables the installation,
// and no further post to it is made), a disabled installation
// (channel_disabled), an installation still unknown after UnknownAttempts
// deliveries (unknown_installation), a webhook URL this process cannot open
// (unreadable_webhook) or may not post to (webhook_refused: outside
// SLACK_WEBHOOK_HOSTS; nothing is sent and the installation stays active).
// An event still undelivered on delivery MaxAttempts
// is parked as attempts_spent with Slack's last answer. When the dead letter
// cannot be written, Handle returns a retryable error, so the event stays
// on the bus and is never lost.
func (d *Dispatcher) Handle(ctx context.Context, ev jamf.Received) error {
	log := d.log.With("installation", ev.InstallationID, "event", ev.Event, "attempt", ev.Attempt)
	entry, ok := d.installations.ByID(ev.InstallationID)
	if !ok {
		if ev.Attempt < d.unknownAttempts {
			wait := retry.Ceiling(max(ev.Attempt, 1), d.backoffBase, d.backoffMax)
			log.Info("installation not in the read model yet, retrying", "wait", wait)
			d.metrics.deliveries.WithLabelValues(OutcomeRetried).Inc()
			return retry.After(wait, errUnknownInstallation)
		}
		log.Warn("installation unknown")
		return d.park(ctx, log, ev, failure{reason: ReasonUnknownInstallation})
	}
	if entry.Status != registry.StatusActive {
		// The read model has caught up with a dead channel, if this was one.
		d.forgetDead(entry.ID)
		return d.park(ctx, log, ev, failure{reason: ReasonChannelDisabled})
	}
	env, err := jamf.Parse(ev.Body)
	if err != nil {
		log.Warn("event body cannot be parsed", "err", err)
		return d.park(ctx, log, ev, failure{reason: ReasonBadMessage})
	}
	if mark, ok := d.deadMark(entry); ok {
		return d.channelStillGone(ctx, log, ev, mark)
	}
	key := keyOf(ev)
	if wait, p, ok := d.waitTurn(entry.ID, key); ok {
		return d.retryLater(ctx, log, ev, OutcomePaused, wait, errPaused, failure{reason: ReasonAttemptsSpent, status: p.status, body: p.body})
	}
	webhookURL, err := d.opener.OpenWebhook(entry.ID, entry.WebhookURLSealed)
	if err != nil {
		log.Error("cannot open the installation's sealed webhook url: this process's SECRET_KEY (and SECRET_KEY_PREVIOUS) "+
			"differ from the installer's, or the entry holds another installation's webhook", "err", err)
		return d.park(ctx, log, ev, failure{reason: ReasonUnreadableWebhook})
	}
	msg := render.Message(env, render.Options{IconBaseURL: d.iconBaseURL, JamfURL: entry.JamfURL})
	start := time.Now()
	err = d.poster.Post(ctx, webhookURL, msg)
	if !errors.Is(err, slack.ErrWebhookRefused) { // nothing was sent
		d.metrics.requests.WithLabelValues(slack.Class(err)).Observe(time.Since(start).Seconds())
	}
	return d.settle(ctx, log, ev, entry, key, err)
}

// settle acts on the class of Slack's answer to ev's post.
func (d *Dispatcher) settle(ctx context.Context, log *slog.Logger, ev jamf.Received, entry registry.Entry, key eventKey, err error) error {
	if err == nil {
		if !ev.ReceivedAt.IsZero() {
			d.metrics.lag.Observe(max(d.now().Sub(ev.ReceivedAt), 0).Seconds())
		}
		d.metrics.deliveries.WithLabelValues(OutcomeDelivered).Inc()
		log.Debug("delivered")
		return nil
	}
	wait, hasDelay := retry.Delay(err)
	switch {
	case errors.Is(err, slack.ErrChannelGone):
		return d.channelGone(ctx, log, ev, entry, err)
	case errors.Is(err, slack.ErrBadMessage):
		log.Warn("slack refused the message", "err", err)
		return d.park(ctx, log, ev, failureOf(ReasonBadMessage, err))
	case errors.Is(err, slack.ErrWebhookRefused):
		// The installation stays active: the URL or SLACK_WEBHOOK_HOSTS
		// must change, and then its dead letters can be replayed.
		log.Error("the installation's webhook url is outside SLACK_WEBHOOK_HOSTS; not posting", "err", err)
		return d.park(ctx, log, ev, failureOf(ReasonWebhookRefused, err))
	case hasDelay || errors.Is(err, slack.ErrRateLimited):
		f := failureOf(ReasonAttemptsSpent, err)
		wait = d.pause(entry.ID, key, cmp.Or(wait, slack.DefaultRetryAfter), f)
		log.Info("slack rate limited the channel; pausing it", "wait", wait)
		return d.retryLater(ctx, log, ev, OutcomeRateLimited, wait, err, f)
	case retry.IsPermanent(err):
		log.Warn("slack refused the message for good", "err", err)
		return d.park(ctx, log, ev, failureOf(ReasonRejected, err))
	case ctx.Err() != nil:
		// The dispatcher is stopping mid-post: not the event's fault; it
		// goes back at once for another process.
		d.metrics.deliveries.WithLabelValues(OutcomeRetried).Inc()
		log.Info("post cut short by shutdown")
		return retry.After(0, fmt.Errorf("post interrupted: %w", err))
	}
	wait = retry.Backoff(max(ev.Attempt, 1), d.backoffBase, d.backoffMax)
	if ev.Attempt < d.maxAttempts {
		log.Info("post failed, retrying", "wait", wait, "err", err)
	}
	return d.retryLater(ctx, log, ev, OutcomeRetried, wait, err, failureOf(ReasonAttemptsSpent, err))
}

// retryLater hands ev back to be delivered after wait, counting outcome,
// or, when this was its last attempt, parks it with f.
func (d *Dispatcher) retryLater(ctx context.Context, log *slog.Logger, ev jamf.Received, outcome string, wait time.Duration, cause error, f failure) error {
	if ev.Attempt >= d.maxAttempts {
		log.Warn("delivery attempts spent", "err", cause)
		return d.park(ctx, log, ev, f)
	}
	d.metrics.deliveries.WithLabelValues(outcome).Inc()
	return retry.After(wait, cause)
}

// channelGone parks ev, stops posting to the channel in this process and
// reports it to the installer.
func (d *Dispatcher) channelGone(ctx context.Context, log *slog.Logger, ev jamf.Received, entry registry.Entry, err error) error {
	f := failureOf(ReasonChannelDead, err)
	now := d.now()
	mark := deadMark{
		sealed: entry.WebhookURLSealed,
		until:  now.Add(d.deadHold),
		code:   reasonCode(f.body),
		status: f.status,
		body:   f.body,
	}
	d.mu.Lock()
	if len(d.dead) >= sweepAt {
		for id, m := range d.dead {
			if now.After(m.until) {
				delete(d.dead, id)
			}
		}
	}
	if old, ok := d.dead[entry.ID]; ok && old.sealed == mark.sealed {
		mark.reported = old.reported
	}
	d.dead[entry.ID] = mark
	d.mu.Unlock()
	log.Warn("slack says the channel is gone; parking its events and reporting it", "code", mark.code, "status", f.status)
	if err := d.park(ctx, log, ev, f); !errors.Is(err, ErrParked) {
		return err
	}
	d.report(ctx, log, entry.ID)
	return retry.Permanent(fmt.Errorf("%w (%s)", ErrParked, f.reason))
}

// channelStillGone parks ev without posting: Slack already called its
// channel gone. It reports the channel again if the last report failed.
func (d *Dispatcher) channelStillGone(ctx context.Context, log *slog.Logger, ev jamf.Received, mark deadMark) error {
	log.Debug("channel is gone; not posting")
	err := d.park(ctx, log, ev, failure{reason: ReasonChannelDead, status: mark.status, body: mark.body})
	if errors.Is(err, ErrParked) && !mark.reported {
		d.report(ctx, log, ev.InstallationID)
	}
	return err
}

// report tells the installer that id's channel is gone, once per dead mark.
// A failure is logged, and the report is tried again with the channel's
// next event.
func (d *Dispatcher) report(ctx context.Context, log *slog.Logger, id string) {
	d.mu.Lock()
	mark, ok := d.dead[id]
	d.mu.Unlock()
	if !ok || mark.reported {
		return
	}
	if err := d.reporter.ReportDeadChannel(ctx, id, mark.code); err != nil {
		log.Error("cannot report the dead channel to the installer; trying again with its next event", "err", err)
		return
	}
	d.mu.Lock()
	if m, ok := d.dead[id]; ok && m.sealed == mark.sealed {
		m.reported = true
		d.dead[id] = m
	}
	d.mu.Unlock()
}

// deadMark returns entry's dead mark while it holds: the read model still
// shows the webhook URL that died and the hold has not ended.
func (d *Dispatcher) deadMark(entry registry.Entry) (deadMark, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	mark, ok := d.dead[entry.ID]
	if !ok {
		return deadMark{}, false
	}
	if mark.sealed != entry.WebhookURLSealed || d.now().After(mark.until) {
		delete(d.dead, entry.ID)
		return deadMark{}, false
	}
	return mark, true
}

func (d *Dispatcher) forgetDead(id string) {
	d.mu.Lock()
	delete(d.dead, id)
	d.mu.Unlock()
}

// pause stops posting to id's channel in this process for wait after Slack
// answered a 429 to the event key, and gives that event the first turn when
// the pause ends. It returns how long the event waits.
func (d *Dispatcher) pause(id string, key eventKey, wait time.Duration, f failure) time.Duration {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep(now)
	p, ok := d.paced[id]
	if !ok {
		p = &pace{}
		d.paced[id] = p
	}
	p.until = later(p.until, now.Add(wait))
	p.next = later(p.next, p.until.Add(d.paceInterval))
	p.status, p.body = f.status, f.body
	d.turns[key] = p.until
	return p.until.Sub(now)
}

// waitTurn says whether the event key must wait before it posts to id's
// channel, and how long: a channel paced after a 429 takes its waiting
// events one per PaceInterval, each at the turn it was given on its first
// try. An event back at its turn goes ahead; once every turn given out has
// passed, the channel is free again.
func (d *Dispatcher) waitTurn(id string, key eventKey) (time.Duration, pace, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	p, paced := d.paced[id]
	if turn, ok := d.turns[key]; ok {
		if rest := turn.Sub(now); rest > turnTolerance && paced {
			return rest, *p, true
		}
		delete(d.turns, key)
		return 0, pace{}, false
	}
	if !paced {
		return 0, pace{}, false
	}
	turn := later(p.until, p.next)
	if !turn.After(now) {
		delete(d.paced, id)
		return 0, pace{}, false
	}
	d.sweep(now)
	d.turns[key] = turn
	p.next = turn.Add(d.paceInterval)
	return turn.Sub(now), *p, true
}

// sweep drops the paces and turns that have expired once the maps grow.
// The caller holds mu.
func (d *Dispatcher) sweep(now time.Time) {
	if len(d.paced) >= sweepAt {
		for id, p := range d.paced {
			if !later(p.until, p.next).After(now) {
				delete(d.paced, id)
			}
		}
	}
	if len(d.turns) >= sweepAt {
		for k, t := range d.turns {
			if now.Sub(t) > turnKeep {
				delete(d.turns, k)
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// keyOf identifies ev by installation, receive time and body.
func keyOf(ev jamf.Received) eventKey {
	h := fnv.New64a()
	h.Write(ev.Body)
	return eventKey{installation: ev.InstallationID, receivedAt: ev.ReceivedAt.UnixNano(), body: h.Sum64()}
}

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

// park writes ev as a dead letter with f and returns retry.Permanent
// wrapping ErrParked. When the dead letter cannot be written it returns a
// retryable error instead, so the event is not terminated and not lost.
func (d *Dispatcher) park(ctx context.Context, log *slog.Logger, ev jamf.Received, f failure) error {
	dl := jamf.DeadLetter{
		Received:   ev,
		Reason:     f.reason,
		Attempts:   ev.Attempt,
		LastStatus: f.status,
		LastBody:   f.body,
		At:         d.now().UTC(),
	}
	if err := d.deadLetters.DeadLetter(ctx, dl); err != nil {
		wait := retry.Backoff(max(ev.Attempt, 1), d.backoffBase, d.backoffMax)
		d.metrics.deliveries.WithLabelValues(OutcomeRetried).Inc()
		log.Error("cannot write the dead letter; the event stays on the bus", "reason", f.reason, "wait", wait, "err", err)
		return retry.After(wait, fmt.Errorf("dead letter (%s): %w", f.reason, err))
	}
	d.metrics.deliveries.WithLabelValues(OutcomeDeadLettered).Inc()
	d.metrics.deadLetters.WithLabelValues(f.reason).Inc()
	log.Warn("event parked as a dead letter", "reason", f.reason, "status", f.status)
	return retry.Permanent(fmt.Errorf("%w (%s)", ErrParked, f.reason))
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
