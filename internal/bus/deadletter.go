package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ReplayDeadLetter replays one dead letter of installationID, the one at
// seq in JAMF_DEAD, as ReplayDead replays each. It returns 1, or 0 when
// installationID has no dead letter at seq (it was replayed or dropped
// already, or is another installation's).
func (c *Conn) ReplayDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error) {
	stream, raw, err := c.deadLetterAt(ctx, installationID, seq)
	if err != nil || raw == nil {
		return 0, wrapNonNil("replay dead letter", err)
	}
	id, replayed, err := c.replay(ctx, stream, raw)
	if err != nil || !replayed {
		return 0, wrapNonNil("replay dead letter", err)
	}
	c.clearReplayed(ctx, id)
	return 1, nil
}

// DropDeadLetter removes one dead letter of installationID, the one at seq
// in JAMF_DEAD. It returns 1, or 0 when installationID has no dead letter
// at seq.
func (c *Conn) DropDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error) {
	stream, raw, err := c.deadLetterAt(ctx, installationID, seq)
	if err != nil || raw == nil {
		return 0, wrapNonNil("drop dead letter", err)
	}
	if err := stream.DeleteMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("drop dead letter %d: %w", seq, err)
	}
	c.log.Info("dead letter dropped", "installation", installationID, "seq", seq)
	return 1, nil
}

// DeadCounts returns how many dead letters each installation has, by
// installation ID, from the stream's count per subject: it reads no
// message, so it is cheap enough for every page view.
func (c *Conn) DeadCounts(ctx context.Context) (map[string]int, error) {
	stream, err := c.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	counts, err := subjectCounts(ctx, stream, subjectDead, nil)
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	return counts, nil
}

// deadLetterAt reads the message at seq in JAMF_DEAD if it is a dead letter
// of installationID, and nil otherwise.
func (c *Conn) deadLetterAt(ctx context.Context, installationID string, seq uint64) (jetstream.Stream, *jetstream.RawStreamMsg, error) {
	if err := validID(installationID); err != nil {
		return nil, nil, err
	}
	stream, err := c.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, nil, err
	}
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return stream, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s at %d: %w", StreamDead, seq, err)
	}
	if raw.Subject != subjectDead+installationID {
		return stream, nil, nil
	}
	return stream, raw, nil
}

// wrapNonNil prefixes err with op, and leaves nil alone.
func wrapNonNil(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
