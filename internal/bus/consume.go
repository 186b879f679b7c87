package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
)

const (
	// retryBase and retryMax bound the backoff after an unclassified
	// handler error.
	retryBase = time.Second
	retryMax  = 5 * time.Minute
	// settleTimeout bounds an ack confirmation.
	settleTimeout = 5 * time.Second
	// returnTimeout bounds how long a stopping consumer spends handing
	// back the messages it had buffered but not started.
	returnTimeout = 5 * time.Second
	// pullExpiry is how long one pull request waits on the server for
	// messages before the client renews it.
	pullExpiry = 30 * time.Second
	// pullHeartbeat is the idle heartbeat the server sends while a pull
	// request waits. Two missed ones make the iterator pull afresh, which
	// is its only way out when it has no pull on the server and does not
	// know it. That happens: the nats.go (v1.55) iterator does not renew its
	// pull when the batch runs low while the goroutine that sends pulls
	// still counts the previous one as in flight, and never checks again
	// once that clears (checkPending and fetchInProgress in
	// jetstream/pull.go), so a batch taken within a few milliseconds on a
	// loaded machine leaves it idle; and the server silently drops a pull
	// with heartbeats when the consumer's waiting pulls are full. With the
	// client's default (half the expiry) such a consumer idled for 30s
	// while events waited; with this one it resumes within about 2s.
	pullHeartbeat = time.Second
	// handBackDelay is the least delay of a negative acknowledgement. The
	// server keeps the delay of a delayed one in the consumer's stored
	// state, but a plain one only in memory: an event handed back without
	// a delay just before the server restarts (the all-in-one's embedded
	// server stops with the process) would wait out the whole AckWait
	// after the restart.
	handBackDelay = time.Millisecond
)

// releasePayload is a negative acknowledgement with handBackDelay, as
// jetstream.Msg.NakWithDelay writes it.
var releasePayload = []byte(fmt.Sprintf(`-NAK {"delay": %d}`, handBackDelay.Nanoseconds()))

// Delivery is one event of JAMF_EVENTS that a dispatcher took and has not
// settled yet. Settle is the one place where a dispatcher's verdict on an
// event becomes a JetStream answer. A Delivery is safe for concurrent use.
//
// After Settle, only Release may still be called: a Delivery handed back
// with a delay keeps no more than what Release needs, so that a dispatcher
// may remember many of them.
type Delivery struct {
	c     *Conn
	reply string
	seq   uint64

	mu  sync.Mutex
	msg jetstream.Msg // nil once settled
	ev  jamf.Received // without its body once settled
}

// Event returns the event, with Attempt (the server's delivery count) and
// Queued (when JAMF_EVENTS stored it) set.
func (d *Delivery) Event() jamf.Received {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ev
}

// Settle answers the server for the event according to err:
//
//   - nil: delivered. The event is copied to JAMF_HISTORY when the history
//     is on, then acked, which removes it from the backlog. The ack goes
//     out within ackDelay, with the others of that moment, and is not
//     waited for: a lost one makes the server deliver the event again after
//     AckWait (at least once, never lost).
//   - retry.Permanent: terminated, which removes it from the backlog. The
//     dispatcher has already parked it in JAMF_DEAD.
//   - retry.After(d): handed back, to be delivered again after d (at once
//     for 0). It stays in the backlog; see Release.
//   - any other error: handed back with exponential backoff and full
//     jitter, from 1s up to 5m.
func (d *Delivery) Settle(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.msg == nil {
		return
	}
	log := d.c.log
	switch {
	case err == nil:
		d.c.record(d)
		d.c.acks.add(d.c, pendingAck{msg: d.msg, installation: d.ev.InstallationID, seq: d.seq})
	case retry.IsPermanent(err):
		term(d.msg, log)
	default:
		wait, ok := retry.Delay(err)
		if !ok {
			wait = retry.Backoff(d.ev.Attempt, retryBase, retryMax)
		}
		nak(d.msg, wait, log)
	}
	d.msg, d.ev.Body = nil, nil
}

// Release makes an event handed back with a delay (Settle with retry.After)
// come back now: the dispatchers use it when the channel it waits for
// answers again. Releasing an event whose delay already ran out, or one that
// another dispatcher settled meanwhile, may deliver it once more (at least
// once), so callers release only events whose delay is still running.
func (d *Delivery) Release() {
	if err := d.c.nc.Publish(d.reply, releasePayload); err != nil {
		d.c.log.Debug("release failed; the event comes back when its delay ends", "seq", d.seq, "err", err)
	}
}

// Skip acks an event the dispatcher decided not to post (its channel's
// event filter hides it): it leaves the backlog like a delivered one, but
// is not copied to JAMF_HISTORY, which keeps what Slack took. Like Settle,
// it does not wait for the ack.
func (d *Delivery) Skip() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.msg == nil {
		return
	}
	d.c.acks.add(d.c, pendingAck{msg: d.msg, installation: d.ev.InstallationID, seq: d.seq})
	d.msg, d.ev.Body = nil, nil
}

// ackDelay is how long the ack of a delivered event waits, to go out with
// the acks of the events delivered meanwhile. Under interest retention an
// acked event leaves JAMF_EVENTS, and each time the last one leaves, the
// server's file store deletes its write block and creates a new file: at
// a steady few hundred events a second, with each acked within
// milliseconds, that happened for a good share of events and took about a
// fifth of the all-in-one's CPU (docs/benchmarks.md). Held back this
// long, acks overlap the next events and the stream rarely empties. A
// process that dies meanwhile has its last events delivered again after
// AckWait: at least once, as any ack lost on the way.
const ackDelay = 20 * time.Millisecond

// pendingAck is the ack of a delivered event, waiting for ackDelay.
type pendingAck struct {
	msg          jetstream.Msg
	installation string
	seq          uint64
}

// ackBatch holds the acks that wait; one timer sends them all.
type ackBatch struct {
	mu      sync.Mutex
	pending []pendingAck
	timer   *time.Timer
	closed  bool // Close flushed the batch: acks go out at once
}

// add queues a for the next flush, or sends it now once c is closing.
func (b *ackBatch) add(c *Conn, a pendingAck) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.sendAcks([]pendingAck{a})
		return
	}
	b.pending = append(b.pending, a)
	if b.timer == nil {
		b.timer = time.AfterFunc(ackDelay, func() { c.sendAcks(b.take(false)) })
	}
	b.mu.Unlock()
}

// take empties the batch; closing makes later acks go out at once.
func (b *ackBatch) take(closing bool) []pendingAck {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.closed = b.closed || closing
	p := b.pending
	b.pending = nil
	return p
}

// sendAcks acks each of acks. A lost ack makes the server deliver the
// event again after AckWait: at least once, never lost.
func (c *Conn) sendAcks(acks []pendingAck) {
	for _, a := range acks {
		if err := a.msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			c.log.Warn("ack failed; the event will be delivered again", "installation", a.installation, "seq", a.seq, "err", err)
		}
	}
}

// Progress tells the server that the event is still being worked on, so
// that it does not give it to another dispatcher after AckWait.
func (d *Delivery) Progress() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.msg == nil {
		return
	}
	if err := d.msg.InProgress(); err != nil {
		d.c.log.Debug("progress ack failed", "seq", d.seq, "err", err)
	}
}

// record copies a delivered event to JAMF_HISTORY without waiting for the
// stream: the history is a convenience, never a reason to hold an ack.
func (c *Conn) record(d *Delivery) {
	if c.cfg.HistoryMaxAge <= 0 {
		return
	}
	m := nats.NewMsg(subjectHistory + d.ev.InstallationID)
	for _, h := range []string{headerInstallation, headerEvent, headerReceivedAt} {
		if v := d.msg.Headers().Get(h); v != "" {
			m.Header.Set(h, v)
		}
	}
	m.Data = d.ev.Body
	if err := c.nc.PublishMsg(m); err != nil {
		c.log.Debug("history copy failed", "installation", d.ev.InstallationID, "err", err)
	}
}

// Consume takes the events of JAMF_EVENTS through the durable consumer
// "dispatch", which every dispatcher shares, and gives each to take, one at
// a time, with up to buffer more pulled ahead. take may block (a dispatcher
// holding as many events as it may); the events it takes are its to settle.
// A message whose headers are not an event is terminated and logged.
//
// When ctx is cancelled Consume stops pulling, hands the buffered messages
// back to the server and returns nil; take gets ctx and should return its
// error when ctx ends while it blocks, handing the event back itself.
// Consume returns an error when the consumer cannot be read (not
// provisioned, deleted, or the connection closed).
func (c *Conn) Consume(ctx context.Context, buffer int, take func(context.Context, *Delivery) error) error {
	cons, err := c.js.Consumer(ctx, StreamEvents, ConsumerDispatch)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerDispatch, err)
	}
	iter, err := c.messages(cons, max(buffer, 1))
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerDispatch, err)
	}
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				c.returnBuffered(iter, ConsumerDispatch)
				return nil
			}
			iter.Stop()
			return fmt.Errorf("consume %s: %w", ConsumerDispatch, err)
		}
		d, ok := c.delivery(m)
		if !ok {
			continue
		}
		if err := take(ctx, d); err != nil && ctx.Err() == nil {
			iter.Stop()
			return fmt.Errorf("consume %s: %w", ConsumerDispatch, err)
		}
	}
}

// delivery decodes m into a Delivery, terminating it when it is not an
// event.
func (c *Conn) delivery(m jetstream.Msg) (*Delivery, bool) {
	md, err := m.Metadata()
	if err != nil {
		c.log.Error("message without jetstream metadata; terminating it", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return nil, false
	}
	r, err := decodeReceived(m.Subject(), m.Headers(), m.Data())
	if err != nil {
		c.log.Error("undeliverable event; terminating it", "subject", m.Subject(), "seq", md.Sequence.Stream, "err", err)
		_ = m.TermWithReason("bad headers")
		return nil, false
	}
	r.Attempt = int(md.NumDelivered)
	r.Queued = md.Timestamp
	return &Delivery{c: c, msg: m, reply: m.Reply(), ev: r, seq: md.Sequence.Stream}, true
}

// messages opens a pull iterator on cons with up to buffer messages pulled
// ahead. Missing heartbeats are not an error: the iterator pulls again by
// itself (see pullHeartbeat).
func (c *Conn) messages(cons jetstream.Consumer, buffer int) (jetstream.MessagesContext, error) {
	return cons.Messages(
		jetstream.PullMaxMessages(buffer),
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
}

// ConsumeDeadChannels delivers the dead channel reports (see
// ReportDeadChannel) to h through the durable consumer "installer", one at a
// time, so reports wait in JAMF_CONTROL while no installer runs. A nil error
// acks the report; retry.Permanent terminates it; retry.After(d) hands it
// back for d, any other error with backoff. It returns nil once ctx is
// cancelled and the handler in flight finished.
func (c *Conn) ConsumeDeadChannels(ctx context.Context, h func(ctx context.Context, installationID, reason string) error) error {
	cons, err := c.js.Consumer(ctx, StreamControl, ConsumerInstaller)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerInstaller, err)
	}
	iter, err := c.messages(cons, 2)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerInstaller, err)
	}
	// The handler runs under its own context so that a shutdown lets it
	// finish; it is cancelled ShutdownGrace after ctx.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.ShutdownGrace, cancel) })
	defer stop()
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				c.returnBuffered(iter, ConsumerInstaller)
				return nil
			}
			iter.Stop()
			return fmt.Errorf("consume %s: %w", ConsumerInstaller, err)
		}
		c.deliverDeadChannel(hctx, m, h)
	}
}

// returnBuffered stops iter and naks the messages it had already pulled,
// so another consumer gets them now rather than after AckWait.
func (c *Conn) returnBuffered(iter jetstream.MessagesContext, name string) {
	iter.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
	defer cancel()
	n := 0
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			break
		}
		_ = m.NakWithDelay(handBackDelay)
		n++
	}
	iter.Stop()
	if n > 0 {
		c.log.Debug("handed back buffered messages", "consumer", name, "count", n)
	}
}

// deliverDeadChannel decodes one dead channel report, runs h on it and
// settles the message.
func (c *Conn) deliverDeadChannel(ctx context.Context, m jetstream.Msg, h func(context.Context, string, string) error) {
	md, err := m.Metadata()
	if err != nil {
		c.log.Error("message without jetstream metadata; terminating it", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	id := m.Headers().Get(headerInstallation)
	if id == "" || validID(id) != nil || lastToken(m.Subject()) != id {
		c.log.Error("bad dead channel report; terminating it", "subject", m.Subject(), "seq", md.Sequence.Stream)
		_ = m.TermWithReason("bad headers")
		return
	}
	reason := string(m.Data())
	attempt := int(md.NumDelivered)
	log := c.log.With("installation", id, "attempt", attempt, "seq", md.Sequence.Stream)
	err = c.run(ctx, m, log, func(ctx context.Context) error { return h(ctx, id, reason) })
	c.settle(ctx, m, attempt, err, log)
}

// run calls f, keeping m alive with progress acks while it runs, and turns
// a panic into an error.
func (c *Conn) run(ctx context.Context, m jetstream.Msg, log *slog.Logger, f func(context.Context) error) (err error) {
	done := make(chan struct{})
	var alive sync.WaitGroup
	alive.Go(func() {
		t := time.NewTicker(max(c.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := m.InProgress(); err != nil {
					log.Debug("progress ack failed", "err", err)
				}
			}
		}
	})
	defer func() {
		close(done)
		alive.Wait()
	}()
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return f(ctx)
}

// settle answers the server for a control message according to the
// handler's err. ctx is the handler's context.
func (c *Conn) settle(ctx context.Context, m jetstream.Msg, attempt int, err error, log *slog.Logger) {
	switch {
	case err == nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		if aerr := m.DoubleAck(actx); aerr != nil {
			log.Warn("ack not confirmed; the message may be delivered again", "err", aerr)
		}
	case ctx.Err() != nil:
		log.Info("handler cut short by shutdown; message handed back", "err", err)
		nak(m, 0, log)
	case retry.IsPermanent(err):
		log.Warn("handling failed permanently; message terminated", "err", err)
		term(m, log)
	default:
		d, ok := retry.Delay(err)
		if !ok {
			d = retry.Backoff(attempt, retryBase, retryMax)
		}
		log.Info("handling failed; will retry", "err", err, "wait", d.String())
		nak(m, d, log)
	}
}

// nak hands m back to be delivered again after d, and after at least
// handBackDelay.
func nak(m jetstream.Msg, d time.Duration, log *slog.Logger) {
	if err := m.NakWithDelay(max(d, handBackDelay)); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("nak failed; the message returns after the ack wait", "err", err)
	}
}

func term(m jetstream.Msg, log *slog.Logger) {
	if err := m.Term(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("term failed; the message may be delivered again", "err", err)
	}
}
