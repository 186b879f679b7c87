package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
)

const (
	// holdNear is the longest wait for a turn during which a channel's
	// events stay in memory; for a longer one they go back to the bus.
	holdNear = 10 * time.Second
	// failingDefer bounds how long the events of a failing channel wait on
	// the bus (never past their deadline): as long as the channel has
	// been failing, at most this. The dispatcher that handed them back
	// releases them as soon as the channel answers again; only if it died
	// meanwhile do they wait their whole delay, which therefore stays
	// short while an outage is.
	failingDefer = 30 * time.Minute
	// stateAttempts bounds the compare-and-set rounds of one change to a
	// channel's shared state.
	stateAttempts = 8
	// stateRetry is the wait before a channel whose shared state could not
	// be read or written is tried again.
	stateRetry = time.Second
)

// waitHeld is the reason label of an event sent back to the bus because its
// channel already holds as many events in this process as a turn takes.
const waitHeld = "held"

// channel is one installation's events in this process.
type channel struct {
	id       string
	queue    []*item     // waiting for a turn, oldest first
	posting  []*item     // in the post under way
	running  bool        // a goroutine runs the channel's turns
	timer    *time.Timer // wakes the channel for its next turn
	deferred []deferral  // handed back to the bus while the channel fails
	// far is the last wait longer than holdNear the channel was told,
	// until the channel runs again: events that arrive meanwhile go
	// straight back to the bus.
	far claim
	// gen counts the times the channel was found to answer again
	// (Recovered): an event handed back on a decision taken before the
	// latest one comes back at once rather than at the end of its delay.
	gen uint64
}

// item is one event the dispatcher holds.
type item struct {
	dv    Delivery
	ev    jamf.Received
	env   jamf.Envelope
	taken time.Time // when the dispatcher took it
	since time.Time // when it was taken or last kept alive
	alone bool      // Slack refused a digest with it: it goes out alone
}

// deferral is an event handed back to the bus until until, to be released
// early when its channel answers again.
type deferral struct {
	dv    Delivery
	until time.Time
}

// wakeLocked gives ch to a runner when it has events and nothing runs or
// waits for it: to one that waits for work, or else to the ready queue,
// starting another runner when fewer than maxRunners run. The caller
// holds mu.
func (d *Dispatcher) wakeLocked(ch *channel) {
	if ch.running || ch.timer != nil || len(ch.queue) == 0 || d.stopping || d.work == nil {
		return
	}
	ch.running = true
	ch.far = claim{}
	if d.idle > 0 {
		// handoff has room for every waiting runner.
		d.idle--
		d.handoff <- ch
		return
	}
	d.ready = append(d.ready, ch)
	if d.runners < d.maxRunners {
		d.runners++
		d.tasks.Add(1)
		go d.run(d.work)
	}
}

// runnerLinger is how long a runner with nothing to run waits for a
// channel before it ends. A runner that lives on keeps the stack that
// rendering and posting grew; a goroutine per turn grew it again each
// time (3 % of the all-in-one's CPU at a steady 500 events/s).
const runnerLinger = time.Second

// run runs channels' turns, one turn at a time: the ready queue's first,
// or the one wakeLocked hands it while it waits, for up to runnerLinger,
// then it ends (at once when the Dispatcher stops). A channel whose turn
// says to go on queues again behind the ready ones, so that a busy channel
// does not keep a runner from the rest.
//
// Every runner that waits is counted in idle until wakeLocked hands it a
// channel through handoff, or until it stops waiting: idle plus what
// handoff holds is the number of runners waiting, so a channel handed off
// is always taken.
func (d *Dispatcher) run(work context.Context) {
	defer d.tasks.Done()
	linger := time.NewTimer(runnerLinger)
	defer linger.Stop()
	for {
		d.mu.Lock()
		var ch *channel
		if len(d.ready) > 0 {
			ch = d.ready[0]
			d.ready[0] = nil
			d.ready = d.ready[1:]
		} else {
			d.idle++
		}
		d.mu.Unlock()
		if ch == nil {
			linger.Reset(runnerLinger)
			select {
			case ch = <-d.handoff:
			case <-linger.C:
			case <-d.halt:
			}
		}
		if ch == nil {
			d.mu.Lock()
			select {
			case ch = <-d.handoff: // handed off as this runner stopped waiting
			default:
				d.idle--
				d.runners--
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
		}
		if d.turn(work, ch) {
			d.mu.Lock()
			d.ready = append(d.ready, ch)
			d.mu.Unlock()
		}
	}
}

// dropIdleLocked forgets ch once nothing of it is left. The caller holds
// mu.
func (d *Dispatcher) dropIdleLocked(ch *channel) {
	if !ch.running && ch.timer == nil && len(ch.queue) == 0 && len(ch.posting) == 0 && len(ch.deferred) == 0 {
		delete(d.channels, ch.id)
	}
}

// releaseLocked counts n held events as settled, making room for the bus's
// next ones. The caller holds mu.
func (d *Dispatcher) releaseLocked(n int) {
	d.held -= n
	if d.held < d.holdTotal && !d.stopping {
		close(d.space)
		d.space = make(chan struct{})
	}
}

// turn runs one turn of ch: it claims the channel's next turn from the
// shared state and posts its oldest event, or a digest of all that wait;
// or, when the turn is not yet, arranges to be woken. It reports whether
// the caller should run the next turn at once.
func (d *Dispatcher) turn(work context.Context, ch *channel) bool {
	d.mu.Lock()
	if d.stopping || len(ch.queue) == 0 {
		ch.running = false
		d.dropIdleLocked(ch)
		d.mu.Unlock()
		return false
	}
	d.mu.Unlock()

	entry, ok := d.installations.ByID(ch.id)
	switch {
	case !ok:
		d.unknown(work, ch)
		return true
	case entry.Status != registry.StatusActive:
		// The read model has caught up with a dead channel, if it was one.
		d.parkQueue(work, ch, failure{reason: ReasonChannelDisabled})
		return true
	}
	p := d.paceOf(entry)
	webhook := registry.WebhookFingerprint(entry.WebhookURLSealed)

	d.mu.Lock()
	if d.stopping || len(ch.queue) == 0 { // Stop handed the events back meanwhile
		ch.running = false
		d.dropIdleLocked(ch)
		d.mu.Unlock()
		return false
	}
	gen := ch.gen
	a := asker{dispatcher: d.id, oldest: ch.queue[0].ev.Queued, webhook: webhook, digest: d.behindLocked(ch, p), want: 1}
	if !a.digest {
		a.want = len(ch.queue) // a digest takes one turn; events one by one take a turn each
	}
	d.mu.Unlock()
	digest := a.digest
	c, err := d.claim(work, ch.id, p, a)
	if err != nil {
		d.log.Error("cannot read or write the channel's delivery state; trying again", "installation", ch.id, "err", err)
		d.waitTurn(work, ch, claim{verdict: mustWait, until: time.Now().Add(stateRetry), why: waitPaced}, gen)
		return false
	}
	switch c.verdict {
	case isDead:
		d.deadChannel(work, ch)
		return true
	case mustWait:
		d.waitTurn(work, ch, c, gen)
		return false
	}
	if digest {
		d.post(work, ch, entry, p, webhook, true, c.probe)
		return true
	}
	for range c.turns {
		if !d.post(work, ch, entry, p, webhook, false, c.probe) {
			break
		}
	}
	return true
}

// behindLocked says whether ch's next post should be a digest: digests are
// on, and its waiting events cannot all go out at its pace within
// DigestAfter (by their number, or because the oldest has waited that
// long already). The caller holds mu.
func (d *Dispatcher) behindLocked(ch *channel, p pace) bool {
	n := len(ch.queue)
	if !p.digests || n < 2 || ch.queue[0].alone || ch.queue[1].alone {
		return false
	}
	return time.Duration(n-1)*p.interval > p.digestAfter || time.Since(ch.queue[0].taken) > p.digestAfter
}

// paceOf is the pace of entry's channel: its own settings over the
// defaults.
func (d *Dispatcher) paceOf(e registry.Entry) pace {
	s := e.Delivery
	p := d.defaults
	p.interval = cmp.Or(s.Interval, p.interval)
	p.burst = cmp.Or(s.Burst, p.burst)
	p.digestAfter = cmp.Or(s.DigestAfter, p.digestAfter)
	switch s.Digests {
	case registry.DigestsOn:
		p.digests = true
	case registry.DigestsOff:
		p.digests = false
	}
	return p
}

// claim decides, with the shared state, whether ch may post now, and
// takes the turn when it may.
func (d *Dispatcher) claim(ctx context.Context, id string, p pace, a asker) (claim, error) {
	fresh := false
	for range stateAttempts {
		cur, err := d.current(ctx, id, fresh)
		if err != nil {
			return claim{}, err
		}
		c := decide(cur.state, time.Now(), p, a, d.probeLease)
		switch {
		case c.verdict == isDead && !fresh:
			// A mark does not expire: make sure it was not cleared.
			fresh = true
			continue
		case c.verdict != mayPost && !c.store:
			return c, nil
		}
		ok, err := d.store(ctx, id, c.next, cur.rev)
		if err != nil {
			return claim{}, err
		}
		if ok {
			return c, nil
		}
		fresh = true
	}
	// Others keep taking the turns: try again at the next one.
	return claim{verdict: mustWait, until: time.Now().Add(p.interval), why: waitPaced}, nil
}

// update applies change to id's shared state with compare-and-set.
func (d *Dispatcher) update(ctx context.Context, id string, change func(registry.DeliveryState) registry.DeliveryState) error {
	fresh := false
	for range stateAttempts {
		cur, err := d.current(ctx, id, fresh)
		if err != nil {
			return err
		}
		ok, err := d.store(ctx, id, change(cur.state), cur.rev)
		if err != nil || ok {
			return err
		}
		fresh = true
	}
	return fmt.Errorf("delivery state of %s: changed by others %d times in a row", id, stateAttempts)
}

// current returns id's shared state as last seen here, or read afresh.
func (d *Dispatcher) current(ctx context.Context, id string, fresh bool) (cached, error) {
	if !fresh {
		d.mu.Lock()
		cur, ok := d.cache[id]
		d.mu.Unlock()
		if ok {
			return cur, nil
		}
	}
	s, rev, err := d.states.DeliveryState(ctx, id)
	if err != nil {
		return cached{}, err
	}
	cur := cached{state: s, rev: rev}
	d.mu.Lock()
	d.cacheLocked(id, cur)
	d.mu.Unlock()
	return cur, nil
}

// store writes s as id's shared state if its revision is still rev.
func (d *Dispatcher) store(ctx context.Context, id string, s registry.DeliveryState, rev uint64) (bool, error) {
	next, ok, err := d.states.SetDeliveryState(ctx, id, s, rev)
	if err != nil || !ok {
		return false, err
	}
	d.mu.Lock()
	d.cacheLocked(id, cached{state: s, rev: next})
	d.mu.Unlock()
	return true, nil
}

// cacheLocked records c as what this process last saw of id's shared
// state, and keeps the set of failing channels with it. The caller holds
// mu.
func (d *Dispatcher) cacheLocked(id string, c cached) {
	d.cache[id] = c
	if c.state.Failing() {
		d.failing[id] = true
	} else {
		delete(d.failing, id)
	}
}

// waitTurn arranges for ch to run again when c, decided at generation gen
// of the channel, says: its events stay here for a near turn; for a far
// one they go back to the bus, all but the oldest of a failing channel,
// which stays to try it again at its time.
func (d *Dispatcher) waitTurn(work context.Context, ch *channel, c claim, gen uint64) {
	wait := time.Until(c.until)
	d.metrics.waits.WithLabelValues(c.why).Inc()
	var back []*item
	d.mu.Lock()
	d.log.Debug("channel waits", "installation", ch.id, "why", c.why, "wait", wait.String(), "events", len(ch.queue))
	ch.running = false
	if wait > holdNear {
		ch.far = c
		keep := min(c.keep(), len(ch.queue))
		back = ch.queue[keep:]
		ch.queue = ch.queue[:keep:keep]
		d.releaseLocked(len(back))
	}
	if !d.stopping && len(ch.queue) > 0 {
		ch.timer = time.AfterFunc(max(wait, 0), func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			ch.timer = nil
			d.wakeLocked(ch)
		})
	}
	d.dropIdleLocked(ch)
	d.mu.Unlock()
	d.handBack(work, ch, back, c, gen)
}

// keep is how many events a channel keeps in memory through a far wait:
// a failing channel keeps its oldest, to try the channel with at its time.
func (c claim) keep() int {
	if c.why == waitFailing {
		return 1
	}
	return 0
}

// handBack hands items back to the bus until the end of the far wait c
// (with jitter), decided at generation gen of ch. The events of a failing
// channel wait longer, up to their deadline, and are remembered so that
// they come back as soon as the channel answers; the ones whose deadline
// has passed are parked.
func (d *Dispatcher) handBack(ctx context.Context, ch *channel, items []*item, c claim, gen uint64) {
	now := time.Now()
	wait := c.until.Sub(now)
	var expired []*item
	for _, it := range items {
		delay := wait + time.Duration(rand.Int64N(int64(max(time.Second, wait/10))))
		if c.why == waitFailing {
			rest := it.ev.Queued.Add(d.deadline).Sub(now)
			if rest <= 0 {
				expired = append(expired, it)
				continue
			}
			delay = min(max(wait, now.Sub(c.failingSince)), failingDefer, rest)
		}
		it.dv.Settle(retry.After(delay, errWaiting))
		if c.why == waitFailing {
			d.remember(ch, it.dv, now.Add(delay), gen)
		}
	}
	if len(expired) > 0 {
		d.mu.Lock()
		st := d.cache[ch.id].state
		d.mu.Unlock()
		f := failure{reason: ReasonDeadlinePassed, status: st.LastStatus, body: st.LastBody}
		for _, it := range expired {
			d.park(ctx, d.eventLog(it.ev), it.dv, f)
		}
	}
}

// maxDeferred bounds the handed-back events a channel remembers for an
// early release; the rest come back when their delay ends.
const maxDeferred = 50000

// remember keeps dv, handed back to the bus until until on a decision
// taken at generation gen of ch, for release when the channel answers
// again; if it answered again since that decision, dv comes back at once.
func (d *Dispatcher) remember(ch *channel, dv Delivery, until time.Time, gen uint64) {
	d.mu.Lock()
	if ch.gen != gen {
		d.mu.Unlock()
		dv.Release()
		return
	}
	defer d.mu.Unlock()
	if len(ch.deferred) >= maxDeferred {
		// Forget the ones whose delay has ended: they came back already.
		now := time.Now()
		ch.deferred = slices.DeleteFunc(ch.deferred, func(df deferral) bool { return !df.until.After(now) })
		if len(ch.deferred) >= maxDeferred {
			return
		}
	}
	ch.deferred = append(ch.deferred, deferral{dv: dv, until: until})
	if d.channels[ch.id] == nil {
		d.channels[ch.id] = ch
	}
}

// post sends ch's oldest event, or, for a digest, every event that waits
// for it, and settles them by Slack's answer. It reports whether Slack took
// them; false also when there was nothing left to send.
func (d *Dispatcher) post(work context.Context, ch *channel, entry registry.Entry, p pace, webhook string, digest, probe bool) bool {
	d.mu.Lock()
	if len(ch.queue) == 0 {
		d.mu.Unlock()
		return false
	}
	n := 1
	if digest {
		for n < len(ch.queue) && n < d.holdPerChannel && !ch.queue[n].alone {
			n++
		}
	}
	items := ch.queue[:n:n]
	ch.queue = ch.queue[n:]
	ch.posting = items
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		ch.posting = nil
		d.mu.Unlock()
	}()

	webhookURL, err := d.opener.OpenWebhook(entry.ID, entry.WebhookURLSealed)
	if err != nil {
		d.log.Error("cannot open the installation's sealed webhook url: this process's SECRET_KEY (and SECRET_KEY_PREVIOUS) "+
			"differ from the installer's, or the entry holds another installation's webhook", "installation", ch.id, "err", err)
		d.parkItems(work, items, failure{reason: ReasonUnreadableWebhook})
		d.parkQueue(work, ch, failure{reason: ReasonUnreadableWebhook})
		return false
	}
	opts := render.Options{IconBaseURL: d.iconBaseURL, JamfURL: entry.JamfURL}
	var msg slack.Message
	if len(items) == 1 {
		msg = render.Message(items[0].env, opts)
	} else {
		events := make([]render.DigestEvent, len(items))
		for i, it := range items {
			events[i] = render.DigestEvent{Envelope: it.env, ReceivedAt: it.ev.ReceivedAt}
		}
		msg = render.Digest(events, opts)
	}
	start := time.Now()
	err = d.poster.Post(work, webhookURL, msg)
	if !errors.Is(err, slack.ErrWebhookRefused) { // nothing was sent
		d.metrics.requests.WithLabelValues(slack.Class(err)).Observe(time.Since(start).Seconds())
	}
	d.settle(work, ch, p, webhook, items, probe, err)
	return err == nil
}

// settle acts on Slack's answer to the post of items to ch.
func (d *Dispatcher) settle(work context.Context, ch *channel, p pace, webhook string, items []*item, probe bool, err error) {
	now := time.Now()
	if err == nil {
		for _, it := range items {
			if !it.ev.ReceivedAt.IsZero() {
				d.metrics.lag.Observe(max(now.Sub(it.ev.ReceivedAt), 0).Seconds())
			}
			it.dv.Settle(nil)
		}
		d.mu.Lock()
		d.releaseLocked(len(items))
		failing := d.cache[ch.id].state.Failing()
		d.mu.Unlock()
		d.metrics.deliveries.WithLabelValues(OutcomeDelivered).Add(float64(len(items)))
		if len(items) > 1 {
			d.metrics.digests.Inc()
			d.metrics.digestEvents.Observe(float64(len(items)))
		}
		if failing || probe {
			d.answersAgain(work, ch.id, d.postLog(ch, items))
		}
		d.slackAnswers(work, ch.id)
		return
	}
	log := d.postLog(ch, items)

	f := failureOf(ReasonDeadlinePassed, err)
	wait, hasDelay := retry.Delay(err)
	switch {
	case errors.Is(err, slack.ErrChannelGone):
		code := reasonCode(f.body)
		if uerr := d.update(work, ch.id, func(s registry.DeliveryState) registry.DeliveryState {
			return gone(s, now, webhook, code, f)
		}); uerr != nil {
			log.Error("cannot mark the channel dead for the other dispatchers", "err", uerr)
		}
		log.Warn("slack says the channel is gone; parking its events and reporting it", "code", code, "status", f.status)
		f.reason = ReasonChannelDead
		d.parkItems(work, items, f)
		d.parkQueue(work, ch, f)
		d.report(work, ch.id, webhook, code)
		// What waits on the bus comes back now, to be parked too.
		d.releaseDeferred(ch.id)
	case errors.Is(err, slack.ErrWebhookRefused):
		// The installation stays active: the URL or SLACK_WEBHOOK_HOSTS
		// must change, and then its dead letters can be replayed.
		log.Error("the installation's webhook url is outside SLACK_WEBHOOK_HOSTS; not posting", "err", err)
		f.reason = ReasonWebhookRefused
		d.parkItems(work, items, f)
		d.parkQueue(work, ch, f)
	case errors.Is(err, slack.ErrBadMessage) && len(items) > 1:
		log.Warn("slack refused a digest; its events go out one by one", "status", f.status, "err", err)
		for _, it := range items {
			it.alone = true
		}
		d.putBack(ch, items)
	case errors.Is(err, slack.ErrBadMessage):
		log.Warn("slack refused the message", "status", f.status, "err", err)
		f.reason = ReasonBadMessage
		d.parkItems(work, items, f)
	case hasDelay || errors.Is(err, slack.ErrRateLimited):
		wait = cmp.Or(wait, slack.DefaultRetryAfter)
		if uerr := d.update(work, ch.id, func(s registry.DeliveryState) registry.DeliveryState {
			return paused(s, now, wait, p, f)
		}); uerr != nil {
			log.Error("cannot pause the channel for the other dispatchers", "err", uerr)
		}
		log.Info("slack rate limited the channel; pausing it everywhere", "wait", wait.String())
		d.metrics.deliveries.WithLabelValues(OutcomeRateLimited).Add(float64(len(items)))
		d.putBack(ch, items)
	case retry.IsPermanent(err):
		log.Warn("slack refused the message for good", "status", f.status, "err", err)
		f.reason = ReasonRejected
		d.parkItems(work, items, f)
	case work.Err() != nil:
		// The dispatcher is stopping mid-post: not the events' fault; they
		// go back at once for another process.
		log.Info("post cut short by shutdown; events handed back")
		d.putBack(ch, items)
	default:
		var retryAt time.Time
		if uerr := d.update(work, ch.id, func(s registry.DeliveryState) registry.DeliveryState {
			s = failed(s, now, d.retryBase, d.retryMax, f)
			retryAt = s.RetryAt
			return s
		}); uerr != nil {
			log.Error("cannot record the failure for the other dispatchers", "err", uerr)
			retryAt = now.Add(retry.Backoff(1, d.retryBase, d.retryMax))
		}
		log.Warn("post to slack failed; the channel is tried again later", "status", f.status, "err", err,
			"retry_in", retryAt.Sub(now).Round(time.Millisecond).String())
		var keep, expired []*item
		for _, it := range items {
			if now.Sub(it.ev.Queued) >= d.deadline {
				expired = append(expired, it)
			} else {
				keep = append(keep, it)
			}
		}
		d.metrics.deliveries.WithLabelValues(OutcomeRetried).Add(float64(len(keep)))
		d.parkItems(work, expired, f)
		d.putBack(ch, keep)
	}
}

// postLog is the logger for a post of items to ch: the event's keys for
// one, the count for a digest.
func (d *Dispatcher) postLog(ch *channel, items []*item) *slog.Logger {
	if len(items) == 1 {
		return d.eventLog(items[0].ev)
	}
	return d.log.With("installation", ch.id, "events", len(items))
}

// answersAgain clears the failing state of id everywhere once a post went
// through, and brings back the events this and every other dispatcher
// handed back for it.
func (d *Dispatcher) answersAgain(ctx context.Context, id string, log *slog.Logger) {
	if err := d.update(ctx, id, recovered); err != nil {
		log.Error("cannot clear the channel's failures for the other dispatchers", "err", err)
	}
	log.Info("channel answers again")
	if err := d.states.NotifyDelivery(ctx, id); err != nil {
		log.Warn("cannot tell the other dispatchers that the channel answers again", "err", err)
	}
	d.Recovered(id)
}

// slackRecheck is how often, at most, a success on one channel makes the
// others that fail the way Slack fails when it is down (5xx, no answer)
// try again before their backoff ends.
const slackRecheck = 10 * time.Second

// slackAnswers brings forward the next try of each channel this process
// knows to be failing as Slack fails when it is down, once Slack took a
// post to another channel (except): Slack is back, most likely for all of
// them, so their events should not wait out a backoff of minutes. A channel
// whose own failure goes on is tried at most once per slackRecheck this
// way.
func (d *Dispatcher) slackAnswers(ctx context.Context, except string) {
	now := time.Now()
	d.mu.Lock()
	var due []string
	for id := range d.failing {
		s := d.cache[id].state
		if id != except && (s.LastStatus == 0 || s.LastStatus >= 500) && s.RetryAt.Sub(now) > slackRecheck {
			due = append(due, id)
		}
	}
	d.mu.Unlock()
	for _, id := range due {
		err := d.update(ctx, id, func(s registry.DeliveryState) registry.DeliveryState {
			if s.Failing() && s.RetryAt.After(now) {
				s.RetryAt = now
			}
			return s
		})
		if err != nil {
			d.log.Debug("cannot bring a failing channel's next try forward", "installation", id, "err", err)
			continue
		}
		d.log.Debug("slack answers again: trying a failing channel now", "installation", id)
		d.mu.Lock()
		if ch := d.channels[id]; ch != nil {
			ch.far = claim{}
			if ch.timer != nil && ch.timer.Stop() {
				ch.timer = nil
				d.wakeLocked(ch)
			}
		}
		d.mu.Unlock()
	}
}

// putBack returns items to the front of ch's queue, in order, or hands
// them back to the bus when the dispatcher is stopping.
func (d *Dispatcher) putBack(ch *channel, items []*item) {
	if len(items) == 0 {
		return
	}
	d.mu.Lock()
	if !d.stopping {
		ch.queue = append(items[:len(items):len(items)], ch.queue...)
		d.mu.Unlock()
		return
	}
	d.releaseLocked(len(items))
	d.mu.Unlock()
	for _, it := range items {
		it.dv.Settle(retry.After(0, errStopping))
	}
}

// takeQueue empties ch's queue and returns what was in it.
func (d *Dispatcher) takeQueue(ch *channel) []*item {
	d.mu.Lock()
	defer d.mu.Unlock()
	items := ch.queue
	ch.queue = nil
	return items
}

// parkQueue parks every event waiting in ch with f.
func (d *Dispatcher) parkQueue(ctx context.Context, ch *channel, f failure) {
	d.parkItems(ctx, d.takeQueue(ch), f)
}

// parkItems parks each of items with f.
func (d *Dispatcher) parkItems(ctx context.Context, items []*item, f failure) {
	for _, it := range items {
		d.park(ctx, d.eventLog(it.ev), it.dv, f)
	}
	if len(items) > 0 {
		d.mu.Lock()
		d.releaseLocked(len(items))
		d.mu.Unlock()
	}
}

// deadChannel parks the events of ch, whose channel Slack already called
// gone, without posting, and reports the channel if this process has not
// yet.
func (d *Dispatcher) deadChannel(ctx context.Context, ch *channel) {
	d.mu.Lock()
	mark := d.cache[ch.id].state.Dead
	d.mu.Unlock()
	f := failure{reason: ReasonChannelDead}
	if mark != nil {
		f.status, f.body = mark.Status, mark.Body
	}
	d.parkQueue(ctx, ch, f)
	if mark != nil {
		d.report(ctx, ch.id, mark.Webhook, mark.Code)
	}
}

// unknown hands the events of ch, whose installation the read model does
// not show, back to the bus for a while — the installation may be brand
// new — and parks those that came back too often.
func (d *Dispatcher) unknown(ctx context.Context, ch *channel) {
	items := d.takeQueue(ch)
	for _, it := range items {
		log := d.eventLog(it.ev)
		if it.ev.Attempt < d.unknownAttempts {
			wait := retry.Ceiling(max(it.ev.Attempt, 1), d.retryBase, d.retryMax)
			log.Debug("installation not in the read model yet; retrying", "wait", wait.String())
			d.metrics.deliveries.WithLabelValues(OutcomeRetried).Inc()
			it.dv.Settle(retry.After(wait, errUnknownInstallation))
			continue
		}
		log.Warn("installation unknown")
		d.park(ctx, log, it.dv, failure{reason: ReasonUnknownInstallation})
	}
	d.mu.Lock()
	d.releaseLocked(len(items))
	d.mu.Unlock()
}

// report tells the installer that id's channel is gone, once per dead mark
// and process. A failure is logged, and the report is tried again with the
// channel's next event.
func (d *Dispatcher) report(ctx context.Context, id, webhook, code string) {
	d.mu.Lock()
	done := d.reported[id] == webhook
	d.mu.Unlock()
	if done {
		return
	}
	if err := d.reporter.ReportDeadChannel(ctx, id, code); err != nil {
		d.log.Error("cannot report the dead channel to the installer; trying again with its next event", "installation", id, "err", err)
		return
	}
	d.mu.Lock()
	d.reported[id] = webhook
	d.mu.Unlock()
}

// yieldInterval is how often the dispatcher takes an event while the
// process is busy with work that comes first (Options.Busy): about 100
// events a second, so that delivery goes on, slowly, through a long burst.
const yieldInterval = 10 * time.Millisecond

// busyLinger is how long the process counts as busy after Options.Busy
// last said so. In a burst at the machine's limit, the webhooks in flight
// dip below the mark for moments, about one in twenty; taking events at
// full speed in each dip let through more than ten times the trickle.
const busyLinger = 100 * time.Millisecond

// busyNow reports whether the process is busy, or was within busyLinger.
func (d *Dispatcher) busyNow() bool {
	if d.busy == nil {
		return false
	}
	now := time.Now()
	if d.busy() {
		d.busyUntil.Store(now.Add(busyLinger).UnixNano())
		return true
	}
	return now.UnixNano() < d.busyUntil.Load()
}

// yield holds the next event back while the process is busy: then events
// are taken one at a time, each after yieldInterval, and at full speed
// again busyLinger after it is not. It reports false when ctx ended
// first.
func (d *Dispatcher) yield(ctx context.Context) bool {
	if !d.busyNow() {
		return true
	}
	select {
	case d.trickle <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-d.trickle }()
	if !d.busyNow() { // it ended while this event waited for its turn
		return true
	}
	return retry.Sleep(ctx, yieldInterval)
}
