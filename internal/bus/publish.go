package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
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

// publish sends m with message ID id and waits for the ack of stream.
func (c *Conn) publish(ctx context.Context, m *nats.Msg, stream, id string) error {
	ack, err := c.js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(stream))
	if err != nil {
		return err
	}
	if ack.Duplicate {
		c.log.Debug("duplicate publish ignored", "subject", m.Subject, "seq", ack.Sequence)
	}
	return nil
}

// eventMsg builds the message for r: the Jamf body and the headers that
// decodeReceived reads back.
func eventMsg(r jamf.Received) *nats.Msg {
	m := nats.NewMsg(subjectEvents + r.InstallationID)
	m.Header.Set(headerInstallation, r.InstallationID)
	m.Header.Set(headerEvent, headerSafe(r.Event, maxEventLen))
	at := r.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	m.Header.Set(headerReceivedAt, at.UTC().Format(time.RFC3339Nano))
	m.Data = r.Body
	return m
}

// eventMsgID is the dedup key of an event: a hash of the installation and
// the body, so that Jamf retrying a delivery stores it once.
func eventMsgID(installationID string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(installationID))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
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
