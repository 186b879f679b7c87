package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// Headers a dead letter carries on top of the event's own.
const (
	headerDeadReason = "Jackalope-Dead-Reason"
	headerAttempts   = "Jackalope-Attempts"
	headerLastStatus = "Jackalope-Last-Status"
	headerLastBody   = "Jackalope-Last-Body"
	headerDeadAt     = "Jackalope-Dead-At"

	// maxLastBody bounds the last Slack answer kept with a dead letter.
	maxLastBody = 1024
	// maxReason bounds a dead letter or dead channel reason.
	maxReason = 256
)

// ErrNoScope is returned by ReplayDead and DropDead when they are given
// neither an installation nor all.
var ErrNoScope = errors.New("name an installation or ask for all")

// DeadLetter parks d in JAMF_DEAD under jamf.dead.<InstallationID>, with the
// original body and headers and why it could not be delivered, and returns
// once JetStream acknowledged it. LastBody is cut to 1 KiB and made safe for
// a header.
func (c *Conn) DeadLetter(ctx context.Context, d jamf.DeadLetter) error {
	if err := validID(d.InstallationID); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	m := eventMsg(d.Received)
	m.Subject = subjectDead + d.InstallationID
	m.Header.Set(headerDeadReason, headerSafe(d.Reason, maxReason))
	m.Header.Set(headerAttempts, strconv.Itoa(d.Attempts))
	m.Header.Set(headerLastStatus, strconv.Itoa(d.LastStatus))
	if body := headerSafe(d.LastBody, maxLastBody); body != "" {
		m.Header.Set(headerLastBody, body)
	}
	m.Header.Set(headerDeadAt, at.UTC().Format(time.RFC3339Nano))

	// The ID only folds a repeat of this very call (a client retry): the
	// same event may honestly die again later, after a replay.
	id := eventMsgID(d.InstallationID, d.Body) + "-dead-" + strconv.FormatInt(at.UnixNano(), 10)
	if err := c.publish(ctx, m, StreamDead, id); err != nil {
		return fmt.Errorf("dead letter for installation %s: %w", d.InstallationID, err)
	}
	return nil
}

// ListDead returns the dead letters of one installation, or of all when
// installationID is empty, oldest first, with Seq set.
func (c *Conn) ListDead(ctx context.Context, installationID string) ([]jamf.DeadLetter, error) {
	filter, err := deadFilter(installationID, installationID == "")
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := []jamf.DeadLetter{}
	err = c.scanDead(ctx, filter, func(raw *jetstream.RawStreamMsg) error {
		out = append(out, decodeDead(raw))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// ReplayDead publishes the dead letters of installationID (or every one,
// with all) back to JAMF_EVENTS, each under a fresh message ID so the dedup
// window does not swallow it, and deletes each from JAMF_DEAD only after its
// publish was acknowledged. It clears the delivery state of each channel it
// replayed to (see ClearDeliveryState), so that a channel marked dead and
// enabled since takes its replayed events at once. It returns how many were
// replayed; on an error, the ones counted are replayed and the rest stay
// dead.
func (c *Conn) ReplayDead(ctx context.Context, installationID string, all bool) (int, error) {
	filter, err := deadFilter(installationID, all)
	if err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	stream, err := c.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	n := 0
	replayed := map[string]bool{}
	defer func() {
		for id := range replayed {
			c.clearReplayed(ctx, id)
		}
	}()
	err = c.scanDead(ctx, filter, func(raw *jetstream.RawStreamMsg) error {
		id, ok, err := c.replay(ctx, stream, raw)
		if ok {
			n++
			replayed[id] = true
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("replay dead letters: %w", err)
	}
	return n, nil
}

// replay publishes one dead letter back to JAMF_EVENTS and deletes it from
// JAMF_DEAD once the publish was acknowledged. A dead letter without a
// valid installation is left in place and reported as not replayed.
func (c *Conn) replay(ctx context.Context, stream jetstream.Stream, raw *jetstream.RawStreamMsg) (string, bool, error) {
	d := decodeDead(raw)
	if validID(d.InstallationID) != nil {
		c.log.Warn("dead letter without a valid installation; left in place", "seq", raw.Sequence)
		return "", false, nil
	}
	m := nats.NewMsg(subjectEvents + d.InstallationID)
	for _, h := range []string{headerInstallation, headerEvent, headerReceivedAt} {
		if v := raw.Header.Get(h); v != "" {
			m.Header.Set(h, v)
		}
	}
	m.Header.Set(headerInstallation, d.InstallationID)
	m.Data = raw.Data
	// A replay that dies halfway and is run again publishes the same ID and
	// is folded by the dedup window.
	id := eventMsgID(d.InstallationID, raw.Data) + "-replay-" + strconv.FormatUint(raw.Sequence, 10)
	if err := c.publish(ctx, m, StreamEvents, id); err != nil {
		return "", false, fmt.Errorf("republish dead letter %d: %w", raw.Sequence, err)
	}
	if err := stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", false, fmt.Errorf("delete replayed dead letter %d: %w", raw.Sequence, err)
	}
	c.log.Info("dead letter replayed", "installation", d.InstallationID, "event", d.Event, "seq", raw.Sequence)
	return d.InstallationID, true, nil
}

// clearReplayed clears the delivery state of a channel whose dead letters
// were replayed (see ReplayDead), logging a failure: the replay itself
// succeeded.
func (c *Conn) clearReplayed(ctx context.Context, id string) {
	if err := c.ClearDeliveryState(ctx, id); err != nil {
		c.log.Warn("cannot clear the delivery state of a replayed channel", "installation", id, "err", err)
	}
}

// DropDead deletes the dead letters of installationID (or every one, with
// all) and returns how many it deleted. Dead letters that arrive while it
// runs are kept.
func (c *Conn) DropDead(ctx context.Context, installationID string, all bool) (int, error) {
	filter, err := deadFilter(installationID, all)
	if err != nil {
		return 0, fmt.Errorf("drop dead letters: %w", err)
	}
	stream, err := c.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, fmt.Errorf("drop dead letters: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("drop dead letters: %w", err)
	}
	var n uint64
	for _, count := range info.State.Subjects {
		n += count
	}
	if n == 0 {
		return 0, nil
	}
	// Purge only up to what was counted, so the count is exact.
	err = stream.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(info.State.LastSeq+1))
	if err != nil {
		return 0, fmt.Errorf("drop dead letters: %w", err)
	}
	return int(n), nil
}

// ReportDeadChannel tells the installer, through JAMF_CONTROL, that the
// Slack channel of installationID is gone, and returns once JetStream
// acknowledged it. Reports of the same installation and reason within the
// dedup window (one per dispatcher, say) are stored once.
func (c *Conn) ReportDeadChannel(ctx context.Context, installationID, reason string) error {
	if err := validID(installationID); err != nil {
		return fmt.Errorf("report dead channel: %w", err)
	}
	m := nats.NewMsg(subjectChannelDead + installationID)
	m.Header.Set(headerInstallation, installationID)
	m.Data = []byte(headerSafe(reason, maxReason))
	id := "channel-dead-" + eventMsgID(installationID, m.Data)
	if err := c.publish(ctx, m, StreamControl, id); err != nil {
		return fmt.Errorf("report dead channel of installation %s: %w", installationID, err)
	}
	return nil
}

// deadFilter returns the JAMF_DEAD subject for one installation or for all.
func deadFilter(installationID string, all bool) (string, error) {
	if installationID != "" {
		if err := validID(installationID); err != nil {
			return "", err
		}
		return subjectDead + installationID, nil
	}
	if !all {
		return "", ErrNoScope
	}
	return subjectDead + ">", nil
}

// scanDead calls f for each message of JAMF_DEAD on filter, oldest first,
// up to the last one stored when the scan started.
func (c *Conn) scanDead(ctx context.Context, filter string, f func(*jetstream.RawStreamMsg) error) error {
	stream, err := c.js.Stream(ctx, StreamDead)
	if err != nil {
		return err
	}
	last := stream.CachedInfo().State.LastSeq
	for seq := uint64(1); seq <= last; {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", StreamDead, seq, err)
		}
		if raw.Sequence > last {
			return nil
		}
		if err := f(raw); err != nil {
			return err
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// decodeDead reads a dead letter back. It is lenient: a field it cannot
// parse stays zero, so one odd message does not hide the others.
func decodeDead(raw *jetstream.RawStreamMsg) jamf.DeadLetter {
	h := raw.Header
	id := h.Get(headerInstallation)
	if id == "" {
		id = lastToken(raw.Subject)
	}
	d := jamf.DeadLetter{
		Received: jamf.Received{
			InstallationID: id,
			Event:          h.Get(headerEvent),
			Body:           raw.Data,
		},
		Reason:   h.Get(headerDeadReason),
		LastBody: h.Get(headerLastBody),
		Seq:      raw.Sequence,
	}
	d.ReceivedAt, _ = time.Parse(time.RFC3339Nano, h.Get(headerReceivedAt))
	d.Attempts, _ = strconv.Atoi(h.Get(headerAttempts))
	d.LastStatus, _ = strconv.Atoi(h.Get(headerLastStatus))
	if at, err := time.Parse(time.RFC3339Nano, h.Get(headerDeadAt)); err == nil {
		d.At = at
	} else {
		d.At = raw.Time
	}
	return d
}
