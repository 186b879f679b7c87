package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// activityLookups bounds the reads of one Activity call under way at once.
const activityLookups = 8

// Activity is what NATS knows of one channel's traffic, for the console:
// read from the streams' subject counts, the newest message of the
// channel's subject in each stream, and the delivery state every
// dispatcher shares; never from a scan of a stream.
type Activity struct {
	// Waiting counts the channel's events in the backlog (JAMF_EVENTS).
	Waiting int
	// LastReceived and LastEvent are the receive time and the event name
	// of the newest event ingest accepted for the channel that is still
	// kept: waiting, delivered (in the history) or parked. Zero when none
	// is.
	LastReceived time.Time
	LastEvent    string
	// LastDelivered is when Slack took the channel's newest delivered
	// event, as the history recorded it; zero without one (or without the
	// history, HISTORY_MAX_AGE=0).
	LastDelivered time.Time
	// State is the channel's shared delivery state (the KV bucket
	// "delivery"): its pace, a 429's pause, failures, a dead mark,
	// digests.
	State registry.DeliveryState
}

// Activity returns the activity of each of ids, by installation ID. It
// reads the backlog's and the dead letters' counts per subject (a request
// each, whatever the number of channels), then, for each
// channel, its delivery state and the newest message of its subject in
// JAMF_EVENTS (when events wait), JAMF_HISTORY and JAMF_DEAD (when dead
// letters wait), a few at a time. A channel whose reads fail is left with
// what could be read.
func (c *Conn) Activity(ctx context.Context, ids []string) (map[string]Activity, error) {
	for _, id := range ids {
		if err := validID(id); err != nil {
			return nil, fmt.Errorf("activity: %w", err)
		}
	}
	out := make(map[string]Activity, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	streams := map[string]jetstream.Stream{}
	for _, name := range []string{StreamEvents, StreamHistory, StreamDead} {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) && name == StreamHistory {
			continue // the history is off
		}
		if err != nil {
			return nil, fmt.Errorf("activity: stream %s: %w", name, err)
		}
		streams[name] = s
	}
	waiting, err := subjectCounts(ctx, streams[StreamEvents], subjectEvents, ids)
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	dead, err := subjectCounts(ctx, streams[StreamDead], subjectDead, ids)
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		slot = make(chan struct{}, activityLookups)
	)
	for _, id := range ids {
		slot <- struct{}{}
		wg.Go(func() {
			defer func() { <-slot }()
			a := Activity{Waiting: waiting[id]}
			if st, _, err := c.DeliveryState(ctx, id); err == nil {
				a.State = st
			} else {
				c.log.Debug("activity: delivery state unreadable", "installation", id, "err", err)
			}
			newest := func(stream, subject string, delivered bool) {
				s := streams[stream]
				if s == nil {
					return
				}
				m, err := s.GetLastMsgForSubject(ctx, subject)
				if err != nil {
					if !errors.Is(err, jetstream.ErrMsgNotFound) {
						c.log.Debug("activity: newest message unreadable", "installation", id, "stream", stream, "err", err)
					}
					return
				}
				if delivered {
					a.LastDelivered = m.Time
				}
				at, err := time.Parse(time.RFC3339Nano, m.Header.Get(headerReceivedAt))
				if err == nil && at.After(a.LastReceived) {
					a.LastReceived, a.LastEvent = at, m.Header.Get(headerEvent)
				}
			}
			if a.Waiting > 0 {
				newest(StreamEvents, subjectEvents+id, false)
			}
			newest(StreamHistory, subjectHistory+id, true)
			if dead[id] > 0 {
				newest(StreamDead, subjectDead+id, false)
			}
			mu.Lock()
			out[id] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	return out, nil
}

// subjectCounts counts the messages of stream on prefix+id, by id: for
// the one subject of one id, or for every subject (nil ids, or more than
// one), in one request either way.
func subjectCounts(ctx context.Context, stream jetstream.Stream, prefix string, ids []string) (map[string]int, error) {
	filter := prefix + ">"
	if len(ids) == 1 {
		filter = prefix + ids[0]
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	out := make(map[string]int, len(info.State.Subjects))
	for subject, n := range info.State.Subjects {
		out[strings.TrimPrefix(subject, prefix)] += int(n)
	}
	return out, nil
}
