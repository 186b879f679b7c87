package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/retry"
)

// Headers an event carries. The Jamf URL token is never among them.
const (
	headerInstallation = "Jackalope-Installation"
	headerEvent        = "Jackalope-Event"
	headerReceivedAt   = "Jackalope-Received-At"

	// maxEventLen bounds the event name header; Jamf's names are short.
	maxEventLen = 128
)

// ErrInvalidInstallationID is returned for an installation ID that cannot be
// a NATS subject token (empty, or holding '.', '*', '>' or white space).
var ErrInvalidInstallationID = errors.New("invalid installation id")

// ErrNoEvent is returned by Publish for a Received without an event name.
var ErrNoEvent = errors.New("event name is empty")

// Publish stores r in JAMF_EVENTS under jamf.events.<InstallationID> and
// returns only once JetStream acknowledged it, or when ctx ends. A body the
// same installation already published within the dedup window is stored
// once; that repeat is a success. A failure means the event may not be
// stored: the caller should answer so that Jamf retries.
func (c *Conn) Publish(ctx context.Context, r jamf.Received) error {
	if err := validID(r.InstallationID); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	if headerSafe(r.Event, maxEventLen) == "" {
		return fmt.Errorf("publish event for installation %s: %w", r.InstallationID, ErrNoEvent)
	}
	m := eventMsg(r)
	if err := c.publish(ctx, m, StreamEvents, eventMsgID(r.InstallationID, r.Body)); err != nil {
		return fmt.Errorf("publish event for installation %s: %w", r.InstallationID, err)
	}
	return nil
}

// Publishing without the jetstream package's per-call options: publish
// sets the two headers they would, sends a plain request and reads the
// acknowledgement itself, decoding its JSON only when it is not a plain
// success.
const (
	// defaultPublishTimeout bounds a publish whose context has no deadline,
	// as the jetstream package's default API timeout does.
	defaultPublishTimeout = 5 * time.Second
	// noRespondersWait is the pause before a publish that found no stream
	// (JetStream starting, a stream leader being elected after its node
	// went) is sent again; it is, until the context ends, so that a new
	// leader elected within the caller's deadline takes it.
	noRespondersWait = 250 * time.Millisecond
	// resendAfter is how long publish waits for an acknowledgement before
	// it sends the message again, with the same message ID (the stream
	// stores it once): a stream leader that stops (its node restarted in a
	// cluster) drops the publishes it has not stored yet and never answers
	// them, while its successor, elected within moments, answers the same
	// message at once. The context still bounds the whole.
	resendAfter = 500 * time.Millisecond
	// inProcessWait is how long publish waits before it sends again a
	// message the stream says it is storing already (errCodeMsgIDInProcess).
	inProcessWait = 50 * time.Millisecond
	// errCodeMsgIDInProcess is the stream's error code for "duplicate
	// message id is in process".
	errCodeMsgIDInProcess jetstream.ErrorCode = 10158
	// reconnectPoll is how often awaitReconnect looks at the connection.
	reconnectPoll = 5 * time.Millisecond
)

// What publish needs per stream, built once: the start of a success
// acknowledgement (the stream's name comes first; an error answer carries
// an "error" member, wherever it is) and the Nats-Expected-Stream value.
var (
	ackPrefix = map[string][]byte{
		StreamEvents:   []byte(`{"stream":"` + StreamEvents + `",`),
		StreamDead:     []byte(`{"stream":"` + StreamDead + `",`),
		StreamControl:  []byte(`{"stream":"` + StreamControl + `",`),
		streamDelivery: []byte(`{"stream":"` + streamDelivery + `",`),
	}
	expectStream = map[string][]string{
		StreamEvents:   {StreamEvents},
		StreamDead:     {StreamDead},
		StreamControl:  {StreamControl},
		streamDelivery: {streamDelivery},
	}
	ackError     = []byte(`"error"`)
	ackDuplicate = []byte(`"duplicate"`)
	ackSeq       = []byte(`"seq":`)
)

// ErrAckLate is returned by a publish whose acknowledgement did not arrive
// before its context ended. The message may still be stored: its caller
// must answer so that the sender retries, and the message ID folds the
// repeat.
//
// Concurrent publishes already share one pipeline: they go out on the one
// pub connection, whose writes nats.go coalesces, and their answers come
// back through its one reply subscription, so no publish waits for
// another's round trip. The jetstream package's PublishMsgAsync was
// measured against this (docs/benchmarks.md, issue 13's goal 1): no faster,
// 6 µs more CPU and 19 more allocations per publish.
var ErrAckLate = errors.New("publish acknowledgement did not arrive in time")

// publish sends m with message ID id, expecting stream to store it, and
// waits for the stream's acknowledgement or the end of ctx. A duplicate
// within the dedup window is a success.
func (c *Conn) publish(ctx context.Context, m *nats.Msg, stream, id string) error {
	_, err := c.publishAck(ctx, m, stream, id)
	return err
}

// publishAck is publish returning the acknowledgement. id may be empty for
// a message that a compare-and-set header guards instead: a copy resent
// because the first answer was late then fails that check, as a write by
// another would.
func (c *Conn) publishAck(ctx context.Context, m *nats.Msg, stream, id string) (pubAck, error) {
	if m.Header == nil {
		m.Header = make(nats.Header, 2)
	}
	if id != "" {
		m.Header[jetstream.MsgIDHeader] = []string{id}
	}
	expect, ok := expectStream[stream]
	if !ok {
		expect = []string{stream}
	}
	// The server refuses the message unless stream is the one that takes
	// its subject, and says so in its answer.
	m.Header[jetstream.ExpectedStreamHeader] = expect

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPublishTimeout)
		defer cancel()
	}
	for {
		resp, err := c.request(ctx, m)
		// What to wait before sending again, and to answer if ctx ends
		// meanwhile.
		wait, failed := noRespondersWait, error(nil)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			failed = jetstream.ErrNoStreamResponse
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			return pubAck{}, fmt.Errorf("%w: %w", ErrAckLate, err)
		case err != nil:
			return pubAck{}, err
		default:
			ack, err := readAck(resp.Data, stream)
			if !isInProcess(err) {
				if err == nil && ack.duplicate {
					c.log.Debug("duplicate publish ignored", "subject", m.Subject)
				}
				return ack, err
			}
			// A copy sent before is being stored: ask again shortly,
			// when the stream has it (a duplicate, a success) or not.
			wait, failed = inProcessWait, err
		}
		if !retry.Sleep(ctx, wait) {
			return pubAck{}, fmt.Errorf("%w: %w", failed, ctx.Err())
		}
	}
}

// isInProcess reports whether err is the stream's answer that a message
// with the same ID is being stored right now: a copy publish sent before
// (see resendAfter), whose fate is not known yet.
func isInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMsgIDInProcess
}

// request sends m on the publishing connection and waits for the answer,
// sending m again each time resendAfter passes without one, until ctx ends.
// A publish made while the connection is away fails at once, unless
// another server of a cluster is there to take it: then it waits (at most
// resendAfter) for the client to reach one, and sends m there.
//
// Each wait is one of the NATS client's pooled timers, bounded by ctx's
// deadline, rather than a context of its own per attempt (a timer, a
// child registered with ctx and removed again, on every publish). So a
// ctx cancelled before its deadline ends the wait at the next answer or
// resend, within resendAfter; callers cancel only when they stop.
func (c *Conn) request(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := resendAfter
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if wait <= 0 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		resp, err := c.pub.RequestMsg(m, wait)
		switch {
		case ctx.Err() != nil:
			if errors.Is(err, nats.ErrTimeout) {
				err = ctx.Err()
			}
			return resp, err
		case errors.Is(err, nats.ErrTimeout):
			c.log.Debug("no acknowledgement yet; publishing again", "subject", m.Subject, "after", resendAfter)
		case errors.Is(err, nats.ErrReconnectBufExceeded) && len(c.pub.Servers()) > 1 && c.awaitReconnect(ctx):
			c.log.Debug("publishing again on the server reconnected to", "subject", m.Subject)
		default:
			return resp, err
		}
	}
}

// awaitReconnect waits until the publishing connection is connected again,
// for at most resendAfter, and reports whether it is.
func (c *Conn) awaitReconnect(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, resendAfter)
	defer cancel()
	tick := time.NewTicker(reconnectPoll)
	defer tick.Stop()
	for !c.pub.IsConnected() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// pubAck is what a stream's acknowledgement says of a stored message.
type pubAck struct {
	seq       uint64 // its sequence in the stream
	duplicate bool   // the stream had it already (the dedup window)
}

// readAck reads a stream's answer to a publish: the acknowledgement when
// stream stored the message or already had it, the server's
// *jetstream.APIError when it refused it, and jetstream.ErrInvalidJSAck when
// the answer is not an acknowledgement of stream. A plain success (the
// stream's name first, no "error" member) is read without decoding the
// JSON; anything else is decoded in full.
func readAck(data []byte, stream string) (pubAck, error) {
	prefix, ok := ackPrefix[stream]
	if ok && bytes.HasPrefix(data, prefix) && data[len(data)-1] == '}' && !bytes.Contains(data, ackError) {
		if seq, ok := seqOf(data); ok {
			return pubAck{seq: seq, duplicate: bytes.Contains(data, ackDuplicate)}, nil
		}
	}
	var ack struct {
		Error     *jetstream.APIError `json:"error"`
		Stream    string              `json:"stream"`
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return pubAck{}, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return pubAck{}, ack.Error
	}
	if ack.Stream != stream {
		return pubAck{}, jetstream.ErrInvalidJSAck
	}
	return pubAck{seq: ack.Sequence, duplicate: ack.Duplicate}, nil
}

// seqOf reads the "seq" member of a success acknowledgement.
func seqOf(data []byte) (uint64, bool) {
	i := bytes.Index(data, ackSeq)
	if i < 0 {
		return 0, false
	}
	digits := data[i+len(ackSeq):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(digits[:n]), 10, 64)
	return seq, err == nil
}

// eventMsg builds the message for r: the Jamf body and the headers that
// decodeReceived reads back, with room for the two publish adds.
func eventMsg(r jamf.Received) *nats.Msg {
	at := r.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	// One allocation holds the three values; the map is built directly
	// rather than through Header.Set.
	v := [...]string{r.InstallationID, headerSafe(r.Event, maxEventLen), at.UTC().Format(time.RFC3339Nano)}
	vals := v[:]
	h := make(nats.Header, 5)
	h[headerInstallation] = vals[0:1:1]
	h[headerEvent] = vals[1:2:2]
	h[headerReceivedAt] = vals[2:3:3]
	return &nats.Msg{Subject: subjectEvents + r.InstallationID, Header: h, Data: r.Body}
}

// msgIDBytes is how much of the SHA-256 an event's message ID keeps: 96
// bits, 16 characters of base64url.
const msgIDBytes = 12

// eventMsgID is the dedup key of an event: a hash of the installation and
// the body, so that Jamf retrying a delivery stores it once. It is the
// first 96 bits of SHA-256(installation, 0, body) in base64url, 16
// characters. The stream keeps every ID of its dedup window in memory
// (about 120 bytes each: 1.8 million at 15,000 events a second for 2
// minutes), and 16 characters take the smallest allocation that fits
// them, 8 bytes less than the 22 of 128 bits. Collisions stay out of reach:
// about 2^-55 for a whole window of 1.8 million IDs (a collision would
// store the second event as a repeat of the first).
func eventMsgID(installationID string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(installationID))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:msgIDBytes])
}

// decodeReceived reads an event back from its subject, headers and body.
// Attempt is left to the caller.
func decodeReceived(subject string, h nats.Header, body []byte) (jamf.Received, error) {
	var r jamf.Received
	id := h.Get(headerInstallation)
	if id == "" {
		return r, fmt.Errorf("missing header %s", headerInstallation)
	}
	if err := validID(id); err != nil {
		return r, fmt.Errorf("header %s: %w", headerInstallation, err)
	}
	if tok := lastToken(subject); tok != id {
		return r, fmt.Errorf("header %s does not match subject %s", headerInstallation, subject)
	}
	event := h.Get(headerEvent)
	if event == "" {
		return r, fmt.Errorf("missing header %s", headerEvent)
	}
	at, err := time.Parse(time.RFC3339Nano, h.Get(headerReceivedAt))
	if err != nil {
		return r, fmt.Errorf("header %s: %w", headerReceivedAt, err)
	}
	return jamf.Received{InstallationID: id, Event: event, ReceivedAt: at, Body: body}, nil
}

// validID checks that id can be the last token of a subject.
func validID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidInstallationID)
	}
	if len(id) > 256 {
		return fmt.Errorf("%w: too long", ErrInvalidInstallationID)
	}
	for _, r := range id {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: %q", ErrInvalidInstallationID, id)
		}
	}
	return nil
}

func lastToken(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// headerSafe makes s fit in a header value: valid UTF-8, no control
// characters (a newline would end the header), at most max bytes.
func headerSafe(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
