package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// DeliveryState returns the delivery state every dispatcher shares for
// installation id (the KV bucket "delivery") and its revision. A channel
// without state gives the zero state and revision 0.
func (c *Conn) DeliveryState(ctx context.Context, id string) (registry.DeliveryState, uint64, error) {
	if err := validID(id); err != nil {
		return registry.DeliveryState{}, 0, fmt.Errorf("get delivery state: %w", err)
	}
	kv, err := c.bucket(ctx, BucketDelivery)
	if err != nil {
		return registry.DeliveryState{}, 0, fmt.Errorf("get delivery state of %s: %w", id, err)
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return registry.DeliveryState{}, 0, nil
	}
	if err != nil {
		return registry.DeliveryState{}, 0, fmt.Errorf("get delivery state of %s: %w", id, err)
	}
	var s registry.DeliveryState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		// An unreadable state holds nothing back; the next write replaces it.
		c.log.Warn("unreadable delivery state; ignored", "installation", id, "err", err)
		return registry.DeliveryState{}, e.Revision(), nil
	}
	return s, e.Revision(), nil
}

// SetDeliveryState stores s for installation id if the stored revision is
// still rev (0: nothing stored, or cleared) and returns the new revision. ok
// is false, with a nil error, when another writer changed it first: the
// caller reads it again and decides anew.
func (c *Conn) SetDeliveryState(ctx context.Context, id string, s registry.DeliveryState, rev uint64) (uint64, bool, error) {
	if err := validID(id); err != nil {
		return 0, false, fmt.Errorf("set delivery state: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return 0, false, fmt.Errorf("set delivery state of %s: %w", id, err)
	}
	next, err := c.writeDeliveryState(ctx, id, b, rev)
	switch {
	case isConflict(err):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("set delivery state of %s: %w", id, err)
	}
	return next, true, nil
}

// writeDeliveryState writes b as id's delivery state at revision rev and
// returns the next. A new key goes through kv.Create, which also takes the
// place of a delete marker. A change goes through publish, as kv.Update
// would send it: every post writes one, and the jetstream package decodes
// each answer with encoding/json (5 % of the all-in-one's CPU at a steady
// 500 events/s, docs/benchmarks.md).
func (c *Conn) writeDeliveryState(ctx context.Context, id string, b []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		kv, err := c.bucket(ctx, BucketDelivery)
		if err != nil {
			return 0, err
		}
		return kv.Create(ctx, id, b)
	}
	m := &nats.Msg{
		Subject: deliverySubject + id,
		Header:  nats.Header{jetstream.ExpectedLastSubjSeqHeader: {strconv.FormatUint(rev, 10)}},
		Data:    b,
	}
	ack, err := c.publishAck(ctx, m, streamDelivery, "")
	return ack.seq, err
}

// isConflict reports whether err says another writer changed the key
// first: jetstream's errors for a create, or the stream's "wrong last
// sequence" answer to a publish, whose code is another on a replicated
// stream.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// ClearDeliveryState forgets the delivery state of installation id — a
// dead mark, a 429 pause, the backoff of a failing channel, its pace — and
// tells every dispatcher, so that its next event goes out at once
// everywhere. Clearing a channel without state succeeds.
func (c *Conn) ClearDeliveryState(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("clear delivery state: %w", err)
	}
	kv, err := c.bucket(ctx, BucketDelivery)
	if err != nil {
		return fmt.Errorf("clear delivery state of %s: %w", id, err)
	}
	if err := kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("clear delivery state of %s: %w", id, err)
	}
	return c.NotifyDelivery(ctx, id)
}

// DeliveryStates returns the stored delivery state of every channel that
// has one, by installation ID.
func (c *Conn) DeliveryStates(ctx context.Context) (map[string]registry.DeliveryState, error) {
	kv, err := c.bucket(ctx, BucketDelivery)
	if err != nil {
		return nil, fmt.Errorf("list delivery states: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list delivery states: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]registry.DeliveryState{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list delivery states: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list delivery states: watch closed")
			}
			if e == nil {
				return out, nil
			}
			var s registry.DeliveryState
			if json.Unmarshal(e.Value(), &s) == nil {
				out[e.Key()] = s
			}
		}
	}
}

// NotifyDelivery tells every dispatcher, without storing anything, that
// the channel of installation id takes messages again (it answered after
// failing, or was enabled or reinstalled), so that they send the events
// they hold back for it now. A dispatcher that misses the notice sends them
// when their own delay ends.
func (c *Conn) NotifyDelivery(_ context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("notify delivery: %w", err)
	}
	if err := c.nc.Publish(subjectDelivery+id, nil); err != nil {
		return fmt.Errorf("notify delivery of %s: %w", id, err)
	}
	return nil
}

// WatchDeliveryNotices calls f with the installation ID of every
// NotifyDelivery, from any process, until ctx ends. f runs on one goroutine,
// one notice at a time.
func (c *Conn) WatchDeliveryNotices(ctx context.Context, f func(id string)) error {
	sub, err := c.nc.Subscribe(subjectDelivery+"*", func(m *nats.Msg) {
		if id := lastToken(m.Subject); validID(id) == nil {
			f(id)
		}
	})
	if err != nil {
		return fmt.Errorf("watch delivery notices: %w", err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	return nil
}
