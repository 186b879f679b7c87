// Package plainjs is the plain JetStream pipeline that Jackalope's
// benchmarks put beside it: the least any service must do to take Jamf
// webhooks into JetStream and to deliver them from there, written plainly
// with the jetstream package and none of Jackalope's rules — no tokens,
// validation, pace, shared state, read model, sealed URLs, history or
// batched acks. Where Jackalope is measured against a bare 204 handler or
// a bare posting loop, this says how much of the gap JetStream itself
// takes (docs/benchmarks.md).
package plainjs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// The plain pipeline's stream and its one consumer.
const (
	Stream   = "PLAINJS"
	Subject  = "plainjs.events"
	Consumer = "deliver"
)

// publishTimeout bounds a publish, as ingest's default PUBLISH_TIMEOUT.
const publishTimeout = 2 * time.Second

// Provision makes the plain pipeline's stream as JAMF_EVENTS is made — file
// storage, one replica, 1 GiB, a two-minute dedup window, interest
// retention with one durable consumer with explicit acks — and empties it,
// so that each run starts alike; with keep it leaves what the stream holds,
// a backlog for the consumer to drain.
func Provision(ctx context.Context, js jetstream.JetStream, keep bool) (jetstream.Consumer, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       Stream,
		Subjects:   []string{Subject},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.InterestPolicy,
		MaxBytes:   1 << 30,
		Discard:    jetstream.DiscardNew,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   Consumer,
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", Consumer, err)
	}
	if keep {
		return cons, nil
	}
	if err := s.Purge(ctx); err != nil {
		return nil, fmt.Errorf("purge %s: %w", Stream, err)
	}
	return cons, nil
}

// Handler reads the body, publishes it to Subject with a message ID (a
// hash of the body, for the dedup window, as ingest does), waits for the
// stream's acknowledgement and answers 204; 503 when the publish fails.
func Handler(js jetstream.JetStream) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body unreadable: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := publish(r.Context(), js, body); err != nil {
			http.Error(w, "publish: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// publish stores data under Subject with a hash of it as message ID (for
// the dedup window, as ingest does) and waits for the stream's
// acknowledgement, at most publishTimeout.
func publish(ctx context.Context, js jetstream.JetStream, data []byte) error {
	sum := sha256.Sum256(data)
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err := js.PublishMsg(ctx, &nats.Msg{Subject: Subject, Data: data}, jetstream.WithMsgID(base64.RawURLEncoding.EncodeToString(sum[:12])))
	return err
}

// Deliver takes the messages of cons, up to inFlight at once, and for each
// parses the Jamf event, renders it and hands it to post with its subject,
// then acks it; a message that is not a Jamf event is terminated. fail
// hears of each event that could not be parsed or posted (a post that
// failed is acked all the same: the plain pipeline does not retry). It
// runs until the returned stop is called, which waits for the posts in
// flight.
func Deliver(cons jetstream.Consumer, inFlight int, opts render.Options,
	post func(ctx context.Context, subject string, m slack.Message) error, fail func(error)) (stop func(), err error) {
	iter, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	work := make(chan jetstream.Msg, inFlight)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(work)
		for {
			m, err := iter.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					fail(fmt.Errorf("consume: %w", err))
				}
				return
			}
			work <- m
		}
	})
	for range max(inFlight, 1) {
		wg.Go(func() {
			for m := range work {
				env, err := jamf.Parse(m.Data())
				if err != nil {
					fail(fmt.Errorf("parse: %w", err))
					_ = m.Term()
					continue
				}
				if err := post(context.Background(), m.Subject(), render.Message(env, opts)); err != nil {
					fail(fmt.Errorf("post: %w", err))
				}
				if err := m.Ack(); err != nil {
					fail(fmt.Errorf("ack: %w", err))
				}
			}
		})
	}
	return func() {
		iter.Stop()
		wg.Wait()
	}, nil
}

// maxGroup bounds how many webhooks GroupHandler stores in one message.
const maxGroup = 256

// groupMember is a request waiting in GroupHandler's queue.
type groupMember struct {
	body []byte
	done chan error
}

// GroupHandler is Handler with a group commit: the requests in flight
// share stream messages. Each request queues its body; the publishers (so
// many goroutines) each take every body queued (up to 256), publish them
// as one message (each body prefixed with its length as a uvarint, see
// SplitGroup; the message ID a hash of the group) and answer all of them
// once its ack arrives, 503 for all when it fails (or when ctx ended
// first). It measures what storing several webhooks per JetStream message
// would buy ingest (docs/benchmarks.md); nothing delivers such messages.
// The publishers run until ctx ends.
func GroupHandler(ctx context.Context, js jetstream.JetStream, publishers int) http.HandlerFunc {
	queue := make(chan groupMember, maxGroup*max(publishers, 1))
	for range max(publishers, 1) {
		go publishGroups(ctx, js, queue)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body unreadable: "+err.Error(), http.StatusBadRequest)
			return
		}
		done := make(chan error, 1)
		select {
		case queue <- groupMember{body: body, done: done}:
		case <-r.Context().Done():
			return
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			http.Error(w, "publish: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// publishGroups publishes the bodies queued, as many at a time as wait,
// until ctx ends.
func publishGroups(ctx context.Context, js jetstream.JetStream, queue chan groupMember) {
	for {
		var group []groupMember
		select {
		case <-ctx.Done():
			return
		case m := <-queue:
			group = append(group, m)
		}
	more:
		for len(group) < maxGroup {
			select {
			case m := <-queue:
				group = append(group, m)
			default:
				break more
			}
		}
		var data []byte
		for _, m := range group {
			data = binary.AppendUvarint(data, uint64(len(m.body)))
			data = append(data, m.body...)
		}
		err := publish(ctx, js, data)
		for _, m := range group {
			m.done <- err
		}
	}
}

// SplitGroup returns the bodies of a message GroupHandler published.
func SplitGroup(data []byte) ([][]byte, error) {
	var bodies [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errors.New("not a group: a length runs past the end")
		}
		bodies = append(bodies, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return bodies, nil
}
