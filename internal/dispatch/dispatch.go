// Package dispatch delivers the Jamf events that ingest accepted to their
// Slack channels.
//
// A Dispatcher takes events from the bus (Run) into a queue per channel
// and keeps every channel to its pace, shared with every other dispatcher
// through the bus: before each post it claims the channel's turn with a
// compare-and-set on the channel's delivery state (registry.DeliveryState),
// which also carries a 429's pause, the backoff of a failing channel and
// the mark of a channel Slack called gone. Up to MaxInFlight runners run
// the turns of the channels that are ready, in turn. A channel that must
// wait never holds a runner or stops the bus: its events wait in memory
// for a turn that is near, or go back to the bus with a delay when it is
// far. A channel whose waiting events cannot go out at its pace within its
// DigestAfter gets digests: each turn carries every event that waited for
// it.
//
// Each event ends in one verdict for the bus (Delivery.Settle): nil once
// Slack took it, retry.After(d, err) to come back after d,
// retry.Permanent(err) once it was parked as a dead letter; or, when its
// channel's event filter (registry.EventFilter, applied by render.Shows)
// hides it, Delivery.Skip: settled at once without a post and without a
// dead letter, and counted in jackalope_events_filtered_total. Events are
// given up only when their delivery deadline passed while their channel
// fails (deadline_passed), or for what no retry fixes (a dead channel, a
// message Slack refuses, a disabled installation, a webhook URL this
// process cannot open or may not post to). The Dispatcher is the one place
// that decides that an event's budget is spent.
package dispatch

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// States keeps the delivery state every dispatcher shares (the bus's KV
// bucket "delivery").
type States interface {
	// DeliveryState returns a channel's state and its revision (0 when
	// it has none).
	DeliveryState(ctx context.Context, id string) (registry.DeliveryState, uint64, error)
	// SetDeliveryState stores s if the revision is still rev; ok is false
	// when another writer came first.
	SetDeliveryState(ctx context.Context, id string, s registry.DeliveryState, rev uint64) (next uint64, ok bool, err error)
	// NotifyDelivery tells every dispatcher that a channel takes messages
	// again.
	NotifyDelivery(ctx context.Context, id string) error
}

// Delivery is one event the bus handed out and that the Dispatcher must
// settle (see bus.Delivery).
type Delivery interface {
	// Event returns the event, with Attempt and Queued set.
	Event() jamf.Received
	// Settle answers the bus: nil delivered, retry.After(d, err) back
	// after d, retry.Permanent(err) parked.
	Settle(err error)
	// Release brings an event handed back with a delay back now.
	Release()
	// Progress keeps an event the Dispatcher holds from going to another
	// dispatcher.
	Progress()
	// Skip settles an event that is not to be posted (its channel's
	// event filter hides it): it leaves the bus as a delivered one does,
	// but is not kept as delivered.
	Skip()
}

// Defaults of Options.
const (
	DefaultDeadline        = 24 * time.Hour
	DefaultRetryBase       = time.Second
	DefaultRetryMax        = 5 * time.Minute
	DefaultInterval        = time.Second
	DefaultBurst           = 3
	DefaultDigestAfter     = 5 * time.Second
	DefaultMaxInFlight     = 256
	DefaultUnknownAttempts = 5
	DefaultAckWait         = 30 * time.Second
	DefaultProbeLease      = 15 * time.Second
	DefaultHoldPerChannel  = DefaultHoldTotal - DefaultHoldTotal/4
	DefaultHoldTotal       = 20000
)

// Options configures New. Installations, Poster, DeadLetters, Reporter,
// Opener and States are required; zero settings take the Default* values.
type Options struct {
	Installations Installations
	Poster        Poster
	DeadLetters   DeadLetters
	Reporter      Reporter
	Opener        Opener
	States        States

	// Deadline is an event's delivery budget, from the moment it entered
	// the backlog (DELIVERY_DEADLINE). An event is parked as
	// deadline_passed when its channel still fails after it; waiting for
	// the channel's turn or a 429's pause never parks one.
	Deadline time.Duration
	// RetryBase and RetryMax bound the exponential backoff with full
	// jitter of a failing channel (RETRY_MAX_DELAY).
	RetryBase, RetryMax time.Duration
	// Interval, Burst, Digests and DigestAfter are the channels' pace and
	// digest settings where an installation does not set its own
	// (CHANNEL_PACE, CHANNEL_BURST, DIGESTS, DIGEST_AFTER). Digests is
	// off only when DigestsOff is set, so that the zero Options digest.
	Interval    time.Duration
	Burst       int
	DigestsOff  bool
	DigestAfter time.Duration
	// MaxInFlight bounds the posts under way at once (DISPATCH_WORKERS).
	MaxInFlight int
	// Busy, when set, reports that the process is busy with work that
	// comes before delivery: in the all-in-one, ingest serving a burst of
	// webhooks (Jamf Pro waits 2 s for an answer; Slack can wait). While
	// it reports true, the dispatcher takes one event from the bus per
	// yieldInterval: every event taken costs the bus a delivery, an ack
	// and a history copy, whether it goes out alone or in a digest. The
	// others wait on the bus; those already held go out at their pace.
	Busy func() bool
	// AckWait is the bus consumer's ack wait: events held longer than a
	// third of it are kept alive with progress acks.
	AckWait time.Duration
	// ProbeLease is how long a dispatcher trying a failing channel holds
	// it, so that others do not try at the same time; more than Slack's
	// timeout.
	ProbeLease time.Duration
	// HoldPerChannel and HoldTotal bound the events this process holds in
	// memory, per channel and in all; beyond them a channel's events wait
	// on the bus, and the bus stops handing out more. HoldPerChannel is
	// also the most a digest carries, so that a channel keeps up with a
	// storm of HoldPerChannel events per turn of its pace; the defaults
	// let one channel take three quarters, and keep a quarter for the
	// others, which a paused or stormed channel then never holds up.
	HoldPerChannel, HoldTotal int
	// UnknownAttempts is how many deliveries an event for an installation
	// missing from the read model gets — it may be brand new and not yet
	// seen by this process — before it is parked as unknown_installation.
	UnknownAttempts int
	// IconBaseURL is where the message icons are served: BaseURL +
	// "/static/images".
	IconBaseURL string
	// Logger receives a line per failure with the installation, event and
	// attempt, never a webhook URL. Nil discards.
	Logger *slog.Logger
	// Registerer takes the dispatcher's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Dispatcher delivers events to Slack. It is safe for concurrent use.
type Dispatcher struct {
	installations Installations
	poster        Poster
	deadLetters   DeadLetters
	reporter      Reporter
	opener        Opener
	states        States

	deadline        time.Duration
	retryBase       time.Duration
	retryMax        time.Duration
	defaults        pace
	ackWait         time.Duration
	probeLease      time.Duration
	holdPerChannel  int
	holdTotal       int
	unknownAttempts int
	iconBaseURL     string
	log             *slog.Logger
	metrics         *metrics

	id        string        // random, tells this dispatcher from others in turn tickets
	busy      func() bool   // Options.Busy
	busyUntil atomic.Int64  // Unix nanoseconds: busy until then (busyNow)
	trickle   chan struct{} // the one event taken at a time while busy
	tasks     sync.WaitGroup
	// work is the context of posts and of the shared state's reads and
	// writes; Run sets it before it takes the first event and cancels it
	// a grace after its own context ends.
	work context.Context

	mu       sync.Mutex
	channels map[string]*channel
	held     int           // events in channel queues and posts under way
	space    chan struct{} // closed and replaced when held drops below holdTotal
	stopping bool
	cache    map[string]cached // shared delivery state last seen, by installation
	failing  map[string]bool   // installations whose cached state is failing
	reported map[string]string // dead mark fingerprint reported to the installer, by installation

	// Runners run the channels' turns (channel.go, run).
	maxRunners int           // Options.MaxInFlight
	runners    int           // running
	idle       int           // waiting for a channel, not yet handed one
	ready      []*channel    // waiting for a runner, first come first
	handoff    chan *channel // to a waiting runner; room for maxRunners
	halt       chan struct{} // closed by stop: waiting runners end
}

// cached is a channel's delivery state as this process last read or wrote
// it.
type cached struct {
	state registry.DeliveryState
	rev   uint64
}

// ErrParked is wrapped, as retry.Permanent, by the verdict on an event
// that was parked as a dead letter, so that the bus terminates it.
var ErrParked = errors.New("event parked as a dead letter")

// Errors that hand an event back to the bus without a post.
var (
	errUnknownInstallation = errors.New("installation not in the read model")
	errWaiting             = errors.New("channel waits for its turn")
	errStopping            = errors.New("dispatcher stopping")
)

// New returns a Dispatcher, or an error when a required dependency is
// missing, a setting is negative or the metrics cannot be registered.
func New(opts Options) (*Dispatcher, error) {
	var missing []string
	for name, v := range map[string]any{
		"Installations": opts.Installations, "Poster": opts.Poster, "DeadLetters": opts.DeadLetters,
		"Reporter": opts.Reporter, "Opener": opts.Opener, "States": opts.States,
	} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("dispatch options: missing %s", strings.Join(missing, ", "))
	}
	if opts.Deadline < 0 || opts.RetryBase < 0 || opts.RetryMax < 0 || opts.Interval < 0 || opts.Burst < 0 ||
		opts.DigestAfter < 0 || opts.MaxInFlight < 0 || opts.AckWait < 0 || opts.ProbeLease < 0 ||
		opts.HoldPerChannel < 0 || opts.HoldTotal < 0 || opts.UnknownAttempts < 0 {
		return nil, errors.New("dispatch options: counts and durations must not be negative")
	}
	d := &Dispatcher{
		installations: opts.Installations,
		poster:        opts.Poster,
		deadLetters:   opts.DeadLetters,
		reporter:      opts.Reporter,
		opener:        opts.Opener,
		states:        opts.States,
		deadline:      cmp.Or(opts.Deadline, DefaultDeadline),
		retryBase:     cmp.Or(opts.RetryBase, DefaultRetryBase),
		retryMax:      cmp.Or(opts.RetryMax, DefaultRetryMax),
		defaults: pace{
			interval:    cmp.Or(opts.Interval, DefaultInterval),
			burst:       cmp.Or(opts.Burst, DefaultBurst),
			digests:     !opts.DigestsOff,
			digestAfter: cmp.Or(opts.DigestAfter, DefaultDigestAfter),
		},
		ackWait:         cmp.Or(opts.AckWait, DefaultAckWait),
		probeLease:      cmp.Or(opts.ProbeLease, DefaultProbeLease),
		holdPerChannel:  cmp.Or(opts.HoldPerChannel, DefaultHoldPerChannel),
		holdTotal:       cmp.Or(opts.HoldTotal, DefaultHoldTotal),
		unknownAttempts: cmp.Or(opts.UnknownAttempts, DefaultUnknownAttempts),
		iconBaseURL:     strings.TrimRight(opts.IconBaseURL, "/"),
		log:             cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		id:              crand.Text(),
		maxRunners:      cmp.Or(opts.MaxInFlight, DefaultMaxInFlight),
		halt:            make(chan struct{}),
		busy:            opts.Busy,
		trickle:         make(chan struct{}, 1),
		channels:        map[string]*channel{},
		space:           make(chan struct{}),
		cache:           map[string]cached{},
		failing:         map[string]bool{},
		reported:        map[string]string{},
	}
	d.handoff = make(chan *channel, d.maxRunners)
	d.retryMax = max(d.retryMax, d.retryBase)
	d.holdTotal = max(d.holdTotal, d.holdPerChannel)
	m, err := newMetrics(opts.Registerer, d)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	return d, nil
}

// Take is what Run gives the bus: it takes one event.
type Take func(ctx context.Context, dv Delivery) error

// Run delivers the events consume hands out until ctx ends: consume is
// the bus's consume loop (bus.Conn.Consume), calling take for each event.
// When ctx ends, Run hands the events it holds back to the bus, lets the
// posts under way finish within grace (then cancels them, and hands their
// events back too), and returns consume's error.
func (d *Dispatcher) Run(ctx context.Context, grace time.Duration, consume func(ctx context.Context, take Take) error) error {
	// Posts run under their own context, so that a shutdown lets them
	// finish; it ends grace after ctx.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	d.mu.Lock()
	d.work = work
	d.mu.Unlock()
	keepAlive := make(chan struct{})
	go func() {
		defer close(keepAlive)
		d.keepAlive(work)
	}()

	err := consume(ctx, d.take)

	d.stop()
	finished := make(chan struct{})
	go func() {
		d.tasks.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(grace):
		d.log.Warn("posts still under way after the shutdown grace; cancelling them", "grace", grace.String())
		cancel()
		<-finished
	}
	cancel()
	<-keepAlive
	return err
}

// take queues dv for its channel and starts the channel's turn if it is
// idle. While the process is busy (Options.Busy) it takes one event per
// yieldInterval, and while it holds holdTotal events it waits for room;
// either wait ends with ctx, and dv then goes back to the bus.
func (d *Dispatcher) take(ctx context.Context, dv Delivery) error {
	if !d.yield(ctx) {
		dv.Settle(retry.After(0, errStopping))
		return ctx.Err()
	}
	ev := dv.Event()
	env, err := jamf.Parse(ev.Body)
	if err != nil {
		log := d.eventLog(ev)
		log.Warn("event body cannot be parsed", "err", err)
		d.park(d.work, log, dv, failure{reason: ReasonBadMessage})
		return nil
	}
	if e, ok := d.installations.ByID(ev.InstallationID); ok && !render.Shows(e.Filter, env) {
		d.filtered(dv, ev, env)
		return nil
	}
	now := time.Now()
	it := &item{dv: dv, ev: ev, env: env, taken: now, since: now}

	d.mu.Lock()
	for d.held >= d.holdTotal && !d.stopping {
		space := d.space
		d.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			dv.Settle(retry.After(0, errStopping))
			return ctx.Err()
		}
		d.mu.Lock()
	}
	if d.stopping {
		d.mu.Unlock()
		dv.Settle(retry.After(0, errStopping))
		return nil
	}
	ch := d.channels[ev.InstallationID]
	if ch == nil {
		ch = &channel{id: ev.InstallationID}
		d.channels[ch.id] = ch
	}
	if far := ch.far; far.verdict == mustWait && time.Until(far.until) > holdNear && len(ch.queue) >= far.keep() {
		// The channel was told to wait long: this event waits on the bus
		// with the others.
		gen := ch.gen
		d.mu.Unlock()
		d.handBack(d.work, ch, []*item{it}, far, gen)
		return nil
	}
	if len(ch.queue) >= d.holdPerChannel {
		d.mu.Unlock()
		// The channel has more waiting here than a turn takes: this one
		// waits on the bus for a while.
		wait := d.defaults.interval*time.Duration(1+rand.IntN(8)) + time.Second
		d.metrics.waits.WithLabelValues(waitHeld).Inc()
		dv.Settle(retry.After(wait, errWaiting))
		return nil
	}
	ch.queue = append(ch.queue, it)
	d.held++
	d.wakeLocked(ch)
	d.mu.Unlock()
	return nil
}

// filtered settles dv, whose channel's event filter hides it, without a
// post or a dead letter, and counts it by event type: the catalog's name,
// or "other" for a type Jamf Pro added later, so that the label stays
// bounded.
func (d *Dispatcher) filtered(dv Delivery, ev jamf.Received, env jamf.Envelope) {
	label := jamf.Canonical(env.Webhook.Event)
	if !jamf.Known(label) {
		label = filteredOther
	}
	d.metrics.filtered.WithLabelValues(label).Inc()
	// Not through eventLog: a filter may hide most events, and a logger
	// built per event costs even when debug lines are dropped.
	d.log.Debug("event hidden by the channel's event filter; not posted",
		"installation", ev.InstallationID, "event", ev.Event, "attempt", ev.Attempt)
	dv.Skip()
}

// Recovered tells the Dispatcher that installation id's channel takes
// messages again, as some process found (a post succeeded after failures,
// or the channel was enabled or reinstalled): it forgets what it knew of
// the channel's state and sends back the events it had handed back to the
// bus for it, so that they come now rather than at the end of their delay.
func (d *Dispatcher) Recovered(id string) {
	d.mu.Lock()
	delete(d.cache, id)
	delete(d.failing, id)
	delete(d.reported, id)
	if ch := d.channels[id]; ch != nil {
		ch.far = claim{}
		ch.gen++
		// A channel waiting for the end of a pause or a backoff that was
		// just cleared goes now.
		if ch.timer != nil && ch.timer.Stop() {
			ch.timer = nil
			d.wakeLocked(ch)
		}
	}
	d.mu.Unlock()
	if n := d.releaseDeferred(id); n > 0 {
		d.log.Info("channel answers again; its events come back now", "installation", id, "events", n)
	}
}

// releaseDeferred brings back now the events this process handed back to
// the bus for id's channel, and returns how many.
func (d *Dispatcher) releaseDeferred(id string) int {
	d.mu.Lock()
	var release []Delivery
	if ch := d.channels[id]; ch != nil {
		now := time.Now()
		for _, df := range ch.deferred {
			// One whose delay is ending comes back anyway; releasing it
			// could deliver it twice.
			if df.until.Sub(now) > time.Second {
				release = append(release, df.dv)
			}
		}
		ch.deferred = nil
		d.dropIdleLocked(ch)
	}
	d.mu.Unlock()
	for _, dv := range release {
		dv.Release()
	}
	return len(release)
}

// stop makes the Dispatcher take no more events and hands back the ones
// that wait (posts under way finish) and the ones it had deferred.
func (d *Dispatcher) stop() {
	d.mu.Lock()
	d.stopping = true
	close(d.space)
	close(d.halt)
	var back []Delivery
	var release []Delivery
	for _, ch := range d.channels {
		if ch.timer != nil {
			ch.timer.Stop()
			ch.timer = nil
		}
		for _, it := range ch.queue {
			back = append(back, it.dv)
		}
		d.held -= len(ch.queue)
		ch.queue = nil
		for _, df := range ch.deferred {
			release = append(release, df.dv)
		}
		ch.deferred = nil
	}
	d.mu.Unlock()
	for _, dv := range back {
		dv.Settle(retry.After(0, errStopping))
	}
	// Another dispatcher takes over what this one held back for failing
	// channels, and will release it when the channel answers.
	for _, dv := range release {
		dv.Release()
	}
	if n := len(back) + len(release); n > 0 {
		d.log.Info("handed events back to the bus", "waiting", len(back), "deferred", len(release))
	}
}

// keepAlive sends progress acks for the events held longer than a third
// of AckWait, until ctx ends.
func (d *Dispatcher) keepAlive(ctx context.Context) {
	every := d.ackWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var stale []Delivery
			d.mu.Lock()
			for _, ch := range d.channels {
				for _, list := range [][]*item{ch.queue, ch.posting} {
					for _, it := range list {
						if now.Sub(it.since) >= every {
							it.since = now
							stale = append(stale, it.dv)
						}
					}
				}
			}
			d.mu.Unlock()
			for _, dv := range stale {
				dv.Progress()
			}
		}
	}
}

// eventLog is the logger for one event, with the keys every line of this
// package uses.
func (d *Dispatcher) eventLog(ev jamf.Received) *slog.Logger {
	return d.log.With("installation", ev.InstallationID, "event", ev.Event, "attempt", ev.Attempt)
}
