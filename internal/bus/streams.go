package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamState is what a stream holds against its limits.
type StreamState struct {
	Name     string
	Msgs     uint64
	Bytes    uint64
	MaxMsgs  int64 // -1: no limit
	MaxBytes int64 // -1: no limit
	// Oldest is when the oldest message was stored; zero when empty. For
	// the backlog it is the oldest waiting event.
	Oldest time.Time
}

// Fill is how full the stream is: the larger of its fractions of MaxBytes
// and MaxMsgs, 0 when it has no limit.
func (s StreamState) Fill() float64 {
	f := 0.0
	if s.MaxBytes > 0 {
		f = float64(s.Bytes) / float64(s.MaxBytes)
	}
	if s.MaxMsgs > 0 {
		f = max(f, float64(s.Msgs)/float64(s.MaxMsgs))
	}
	return f
}

// Full reports whether a message of size bytes would not fit.
func (s StreamState) Full(size int64) bool {
	return s.MaxBytes > 0 && int64(s.Bytes)+size > s.MaxBytes || s.MaxMsgs > 0 && int64(s.Msgs) >= s.MaxMsgs
}

// Backlog returns the state of JAMF_EVENTS: the events that wait for
// delivery.
func (c *Conn) Backlog(ctx context.Context) (StreamState, error) {
	return c.streamState(ctx, StreamEvents)
}

// StreamStates returns the state of every stream Jackalope provisions that
// exists.
func (c *Conn) StreamStates(ctx context.Context) ([]StreamState, error) {
	var out []StreamState
	for _, name := range c.streamNames() {
		s, err := c.streamState(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *Conn) streamState(ctx context.Context, name string) (StreamState, error) {
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return StreamState{}, fmt.Errorf("stream %s: %w", name, err)
	}
	info := s.CachedInfo()
	st := StreamState{
		Name:     name,
		Msgs:     info.State.Msgs,
		Bytes:    info.State.Bytes,
		MaxMsgs:  info.Config.MaxMsgs,
		MaxBytes: info.Config.MaxBytes,
	}
	if st.Msgs > 0 {
		st.Oldest = info.State.FirstTime
	}
	return st, nil
}
