package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// ErrNoHistory is returned when JAMF_HISTORY does not exist: the history is
// off (HISTORY_MAX_AGE=0).
var ErrNoHistory = errors.New("no history is kept (HISTORY_MAX_AGE=0)")

// historyFetch is how many history messages one read takes.
const historyFetch = 256

// History returns the delivered events of installationID kept in
// JAMF_HISTORY, delivered from since to until (zero: up to the newest),
// oldest first, each with Seq set to its place in the history and At to
// when it was delivered. See EachHistory to read many without holding them.
func (c *Conn) History(ctx context.Context, installationID string, since, until time.Time) ([]jamf.DeadLetter, error) {
	var out []jamf.DeadLetter
	err := c.EachHistory(ctx, installationID, since, until, func(d jamf.DeadLetter) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// EachHistory calls f with each delivered event of installationID kept in
// JAMF_HISTORY, delivered from since to until (zero: up to the newest),
// oldest first, as History returns them, and stops at f's first error. An
// entry it cannot read is skipped and logged.
func (c *Conn) EachHistory(ctx context.Context, installationID string, since, until time.Time, f func(jamf.DeadLetter) error) error {
	err := c.scanHistory(ctx, installationID, since, until, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		r, err := decodeReceived(subjectEvents+installationID, m.Headers(), m.Data())
		if err != nil {
			c.log.Warn("unreadable history entry; skipped", "installation", installationID, "seq", md.Sequence.Stream, "err", err)
			return nil
		}
		return f(jamf.DeadLetter{Received: r, Seq: md.Sequence.Stream, At: md.Timestamp})
	})
	if err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	return nil
}

// ResendHistory publishes the delivered events of installationID kept in
// JAMF_HISTORY, delivered from since to until (zero: up to the newest),
// back to JAMF_EVENTS, to be delivered again (a channel was recreated,
// say). Each goes under a message ID made of the event itself
// (installation, body, receive time), so that the dedup window takes it
// once: a rerun of the same resend within the window, or a resent event
// that is in the history twice, is not sent twice. It returns how many
// entries it read and sent.
func (c *Conn) ResendHistory(ctx context.Context, installationID string, since, until time.Time) (int, error) {
	n := 0
	err := c.scanHistory(ctx, installationID, since, until, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		out := nats.NewMsg(subjectEvents + installationID)
		for _, h := range []string{headerInstallation, headerEvent, headerReceivedAt} {
			if v := m.Headers().Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
		out.Header.Set(headerInstallation, installationID)
		out.Data = m.Data()
		id := eventMsgID(installationID, m.Data()) + "-resend-" + m.Headers().Get(headerReceivedAt)
		if err := c.publish(ctx, out, StreamEvents, id); err != nil {
			return fmt.Errorf("resend history entry %d: %w", md.Sequence.Stream, err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("resend history: %w", err)
	}
	if n > 0 {
		c.log.Info("history resent", "installation", installationID, "events", n, "since", since.UTC().Format(time.RFC3339))
	}
	return n, nil
}

// scanHistory calls f for each history message of installationID stored
// from since to until (zero: no bound), oldest first, up to the last one
// stored when it started. It reads with an ordered consumer, which acks
// nothing and leaves the history as it is.
func (c *Conn) scanHistory(ctx context.Context, installationID string, since, until time.Time, f func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	if err := validID(installationID); err != nil {
		return err
	}
	stream, err := c.js.Stream(ctx, StreamHistory)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return ErrNoHistory
	}
	if err != nil {
		return err
	}
	subject := subjectHistory + installationID
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return err
	}
	if info.State.Subjects[subject] == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return err
	}
	for {
		batch, err := cons.Fetch(historyFetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > last || !until.IsZero() && md.Timestamp.After(until) {
				return nil
			}
			if err := f(m, md); err != nil {
				return err
			}
			if md.NumPending == 0 || md.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if got == 0 {
			return nil
		}
	}
}
