package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
)

const (
	// retryBase and retryMax bound the backoff after an unclassified
	// handler error.
	retryBase = time.Second
	retryMax  = 5 * time.Minute
	// settleTimeout bounds an ack confirmation or the dead letter written
	// when attempts are spent.
	settleTimeout = 5 * time.Second
	// returnTimeout bounds how long a stopping consumer spends handing
	// back the messages it had buffered but not started.
	returnTimeout = 5 * time.Second
	// reasonAttemptsSpent is the dead letter reason when the consume loop
	// gives up after maxAttempts.
	reasonAttemptsSpent = "attempts_spent"
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
)

// Consume delivers the events of JAMF_EVENTS to h, sharing the durable
// consumer "dispatch" with every other dispatcher, with workers handlers
// running at once. It is the one place where a handler's error becomes a
// JetStream answer:
//
//   - nil: Ack, confirmed by the server (DoubleAck) before the worker takes
//     the next message, so a lost ack is logged rather than silent.
//   - retry.Permanent: Term. The handler has already parked the event (see
//     DeadLetter) and done whatever else giving up means.
//   - retry.After(d): NakWithDelay(d).
//   - any other error: NakWithDelay with exponential backoff and full
//     jitter, from 1s up to 5m.
//
// When a retryable error comes back on attempt maxAttempts or later (and
// maxAttempts > 0), the event is parked in JAMF_DEAD with reason
// "attempts_spent" and the error text, and then terminated; a handler that
// wants the last Slack status in the dead letter parks it itself and
// returns retry.Permanent. An event that cannot be decoded is terminated
// and logged. While h runs, the message is kept alive with progress acks so
// that a slow Slack does not cause a redelivery. A panic in h is recovered
// and treated as a retryable error.
//
// When ctx is cancelled Consume stops pulling, hands buffered messages back
// to the server, waits for in-flight handlers and returns nil. Handlers get
// a context that outlives ctx by Config.ShutdownGrace; a handler cut short
// by it has its message handed back (Nak) for another dispatcher. Consume
// returns an error when the consumer cannot be read (not provisioned,
// deleted, or the connection closed).
func (c *Conn) Consume(ctx context.Context, workers, maxAttempts int, h func(context.Context, jamf.Received) error) error {
	cons, err := c.js.Consumer(ctx, StreamEvents, ConsumerDispatch)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerDispatch, err)
	}
	return c.consume(ctx, cons, ConsumerDispatch, workers, func(hctx context.Context, m jetstream.Msg) {
		c.deliverEvent(hctx, m, maxAttempts, h)
	})
}

// ConsumeDeadChannels delivers the dead channel reports (see
// ReportDeadChannel) to h through the durable consumer "installer", one at a
// time, so reports wait in JAMF_CONTROL while no installer runs. A nil error
// acks the report; errors map as in Consume, without a bound on attempts.
// It returns nil once ctx is cancelled and the handler in flight finished.
func (c *Conn) ConsumeDeadChannels(ctx context.Context, h func(ctx context.Context, installationID, reason string) error) error {
	cons, err := c.js.Consumer(ctx, StreamControl, ConsumerInstaller)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerInstaller, err)
	}
	return c.consume(ctx, cons, ConsumerInstaller, 1, func(hctx context.Context, m jetstream.Msg) {
		c.deliverDeadChannel(hctx, m, h)
	})
}

// consume runs workers goroutines that take messages from cons and pass
// them to handle until ctx ends or the consumer fails.
func (c *Conn) consume(ctx context.Context, cons jetstream.Consumer, name string, workers int, handle func(context.Context, jetstream.Msg)) error {
	if workers < 1 {
		workers = 1
	}
	// The buffer stays small because the AckWait of a buffered message
	// runs before a worker starts it and keeps it alive. Missing
	// heartbeats are not an error: the iterator pulls again by itself
	// (see pullHeartbeat).
	iter, err := cons.Messages(
		jetstream.PullMaxMessages(2*workers),
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return fmt.Errorf("consume %s: %w", name, err)
	}

	// Handlers run under their own context so that a shutdown lets them
	// finish; it is cancelled ShutdownGrace after ctx.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	finished := make(chan struct{})
	var grace sync.WaitGroup
	grace.Go(func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(c.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			c.log.Warn("handlers still running after the shutdown grace; cancelling them", "consumer", name)
			cancelHandlers()
		}
	})
	defer func() {
		close(finished)
		grace.Wait()
	}()

	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { errs[i] = c.work(ctx, hctx, iter, handle) })
	}
	wg.Wait()

	if ctx.Err() != nil {
		c.returnBuffered(iter, name)
		return nil
	}
	iter.Stop()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("consume %s: %w", name, err)
		}
	}
	return nil
}

// work takes one message at a time from iter until ctx ends or iter fails.
func (c *Conn) work(ctx, hctx context.Context, iter jetstream.MessagesContext, handle func(context.Context, jetstream.Msg)) error {
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			// Stopping: hand it back rather than start it.
			_ = m.Nak()
			return nil
		}
		handle(hctx, m)
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
		_ = m.Nak()
		n++
	}
	iter.Stop()
	if n > 0 {
		c.log.Debug("handed back buffered messages", "consumer", name, "count", n)
	}
}

// deliverEvent decodes one event, runs h on it and settles the message.
func (c *Conn) deliverEvent(ctx context.Context, m jetstream.Msg, maxAttempts int, h func(context.Context, jamf.Received) error) {
	md, err := m.Metadata()
	if err != nil {
		c.log.Error("message without jetstream metadata; terminating it", "subject", m.Subject(), "error", err)
		_ = m.Term()
		return
	}
	r, err := decodeReceived(m.Subject(), m.Headers(), m.Data())
	if err != nil {
		c.log.Error("undeliverable event; terminating it", "subject", m.Subject(), "seq", md.Sequence.Stream, "error", err)
		_ = m.TermWithReason("bad headers")
		return
	}
	r.Attempt = int(md.NumDelivered)
	log := c.log.With("installation", r.InstallationID, "event", r.Event, "attempt", r.Attempt, "seq", md.Sequence.Stream)

	err = c.run(ctx, m, log, func(ctx context.Context) error { return h(ctx, r) })

	var spent func(error) error
	if maxAttempts > 0 && r.Attempt >= maxAttempts {
		spent = func(cause error) error {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
			defer cancel()
			return c.DeadLetter(dctx, jamf.DeadLetter{
				Received: r,
				Reason:   reasonAttemptsSpent,
				Attempts: r.Attempt,
				LastBody: cause.Error(),
				At:       time.Now(),
			})
		}
	}
	c.settle(ctx, m, r.Attempt, err, log, spent)
}

// deliverDeadChannel decodes one dead channel report, runs h on it and
// settles the message.
func (c *Conn) deliverDeadChannel(ctx context.Context, m jetstream.Msg, h func(context.Context, string, string) error) {
	md, err := m.Metadata()
	if err != nil {
		c.log.Error("message without jetstream metadata; terminating it", "subject", m.Subject(), "error", err)
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
	c.settle(ctx, m, attempt, err, log, nil)
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
					log.Debug("progress ack failed", "error", err)
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

// settle answers the server for m according to the handler's err. ctx is
// the handler's context; spent, when not nil, parks the message because its
// attempts are used up.
func (c *Conn) settle(ctx context.Context, m jetstream.Msg, attempt int, err error, log *slog.Logger, spent func(error) error) {
	switch {
	case err == nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		if aerr := m.DoubleAck(actx); aerr != nil {
			log.Warn("ack not confirmed; the message may be delivered again", "error", aerr)
		}
	case ctx.Err() != nil:
		log.Info("handler cut short by shutdown; message handed back", "error", err)
		nak(m, 0, log)
	case retry.IsPermanent(err):
		log.Warn("delivery failed permanently; message terminated", "error", err)
		term(m, log)
	case spent != nil:
		if derr := spent(err); derr != nil {
			d := retry.Backoff(attempt, retryBase, retryMax)
			log.Error("attempts spent but the dead letter failed; will retry", "error", err, "dead_letter_error", derr, "delay", d)
			nak(m, d, log)
			return
		}
		log.Warn("attempts spent; message parked in dead letters", "error", err)
		term(m, log)
	default:
		d, ok := retry.Delay(err)
		if !ok {
			d = retry.Backoff(attempt, retryBase, retryMax)
		}
		log.Info("delivery failed; will retry", "error", err, "delay", d)
		nak(m, d, log)
	}
}

func nak(m jetstream.Msg, d time.Duration, log *slog.Logger) {
	var err error
	if d > 0 {
		err = m.NakWithDelay(d)
	} else {
		err = m.Nak()
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("nak failed; the message returns after the ack wait", "error", err)
	}
}

func term(m jetstream.Msg, log *slog.Logger) {
	if err := m.Term(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("term failed; the message may be delivered again", "error", err)
	}
}
