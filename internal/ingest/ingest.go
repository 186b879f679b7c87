// Package ingest is Jamf Pro's way in: POST /jamf/{token} finds the
// installation by the hash of its URL token in an in-memory read model,
// checks the credentials the installation may require besides the token
// (HTTP Basic or headers, answering 401 before the body is read), checks
// the body, publishes it and answers 204 only once the bus has
// acknowledged it. It never calls a database or Slack, and the token never
// leaves the request: logs, metrics and published messages carry the
// installation ID instead.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
)

// Defaults used when Options leave a field at zero.
const (
	// DefaultMaxBodyBytes is the largest body taken when Options.MaxBodyBytes
	// is not set: 1 MiB, NATS's default max_payload.
	DefaultMaxBodyBytes int64 = 1 << 20
	// DefaultPublishTimeout bounds the wait for the bus's acknowledgement.
	// Jamf Pro gives up on a webhook after 2 seconds by default, so a 503
	// sent at 1.5 s still reaches it.
	DefaultPublishTimeout = 1500 * time.Millisecond
	// HeaderRoom is what MaxBody keeps free below the transport's largest
	// message for the headers the publisher adds (installation, event,
	// received-at, message ID).
	HeaderRoom int64 = 4 << 10
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "5"
)

// Path is the route Register adds; Jamf Pro posts to it.
const Path = "/jamf/:token"

// Lookup finds an installation by the hash of its Jamf URL token. It is
// called on every request, so it must answer from memory.
type Lookup interface {
	ByTokenHash(hash string) (registry.Entry, bool)
}

// Publisher stores an accepted webhook durably. Publish returns nil only
// once the event is stored (a duplicate of one already stored counts as
// stored), and must not keep r.Body after it returns.
type Publisher interface {
	Publish(ctx context.Context, r jamf.Received) error
}

// Options configures New. Lookup, Publisher and Hasher are required.
type Options struct {
	Lookup    Lookup
	Publisher Publisher
	// Hasher turns a URL token into the hash Lookup indexes by (see
	// secret.Keys.HashToken).
	Hasher func(token string) string
	// PreviousHasher hashes with SECRET_KEY_PREVIOUS during a key rotation,
	// for the installations whose token hash was not made again yet. It is
	// tried only when Hasher's hash finds nothing. Nil outside a rotation.
	PreviousHasher func(token string) string
	// CheckInboundAuth reports whether credential (registry.BasicCredential
	// or registry.HeaderCredential of what the request carries) hashes to
	// an installation's InboundAuth.Hash, in constant time (see
	// secret.Keys.CheckInboundAuth). Without it, installations that
	// require inbound auth refuse every request.
	CheckInboundAuth func(credential, hash string) bool
	// MaxBodyBytes is the largest body taken (413 above it), after XML is
	// converted too. DefaultMaxBodyBytes when zero; callers clamp it to
	// what the bus accepts with MaxBody.
	MaxBodyBytes int64
	// PublishTimeout bounds each publish; DefaultPublishTimeout when zero.
	PublishTimeout time.Duration
	// Logger gets one line per refused or failed request (debug for the
	// caller's mistakes, warn for publish failures, at most one a second).
	Logger *slog.Logger
	// Registerer gets the package's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Handler answers POST /jamf/{token}. It is safe for concurrent use.
type Handler struct {
	lookup         Lookup
	publisher      Publisher
	hash           func(string) string
	previousHash   func(string) string
	checkAuth      func(credential, hash string) bool
	hashes         hashCache
	maxBody        int64
	publishTimeout time.Duration
	logger         *slog.Logger
	publishLog     rateLimiter
	metrics        *metrics

	tooLarge []byte // 413 answer, which names the limit

	inFlight atomic.Int64 // requests being served; see InFlight
}

// InFlight is how many webhooks ingest is serving right now. The
// all-in-one's dispatcher holds its posts back while it is high, so that
// ingest, which Jamf Pro waits for, comes first (dispatch.Options.Busy).
func (h *Handler) InFlight() int { return int(h.inFlight.Load()) }

// New returns a Handler, or an error when a required option is missing or
// the metrics cannot be registered.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Lookup == nil:
		return nil, errors.New("ingest: Lookup is required")
	case opts.Publisher == nil:
		return nil, errors.New("ingest: Publisher is required")
	case opts.Hasher == nil:
		return nil, errors.New("ingest: Hasher is required")
	}
	h := &Handler{
		lookup:         opts.Lookup,
		publisher:      opts.Publisher,
		hash:           opts.Hasher,
		previousHash:   opts.PreviousHasher,
		checkAuth:      opts.CheckInboundAuth,
		maxBody:        opts.MaxBodyBytes,
		publishTimeout: opts.PublishTimeout,
		logger:         opts.Logger,
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.publishTimeout <= 0 {
		h.publishTimeout = DefaultPublishTimeout
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	h.metrics = m
	h.tooLarge = []byte("Body too large: the limit is " + strconv.FormatInt(h.maxBody, 10) + " bytes")
	return h, nil
}

// MaxBody returns the body limit to configure: configured (or
// DefaultMaxBodyBytes when not positive), lowered when needed so that a
// body plus its headers fits in transportMax, the largest message the bus
// takes. A transportMax of zero or less means no transport limit.
func MaxBody(configured, transportMax int64) int64 {
	if configured <= 0 {
		configured = DefaultMaxBodyBytes
	}
	if transportMax > 0 {
		ceiling := transportMax - HeaderRoom
		if ceiling < 1 {
			ceiling = 1
		}
		configured = min(configured, ceiling)
	}
	return configured
}

// Register adds POST /jamf/{token} to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(Path, h.serve)
}

// The fixed answers, as bytes so that writing them allocates nothing.
var (
	msgNotFound     = []byte("Unknown Jamf URL: no Jackalope installation has this token. Check the URL in Jamf Pro against the one Jackalope gave when it was installed.")
	msgNotJSON      = []byte("No JSON found with request")
	msgMediaType    = []byte("Unsupported content type: send application/json, text/xml or application/xml")
	msgBusy         = []byte("Jackalope could not store the event in time, so it may not reach Slack. Retry later.")
	msgUnauthorized = []byte("This Jamf URL requires the credentials set with channels set: " +
		"check the webhook's Authentication Type in Jamf Pro (Basic Authentication or Header Authentication).")
	acceptedTypes = "application/json, text/xml, application/xml"
)

const (
	textPlain      = "text/plain; charset=utf-8"
	basicChallenge = `Basic realm="jackalope"`
	msgNotXML      = "No valid XML found with request: "
)

// serve runs one request through the steps in the order the package
// comment gives, answering at the first that refuses it.
func (h *Handler) serve(c echo.Context) error {
	h.metrics.inFlight.Inc()
	h.inFlight.Add(1)
	defer func() {
		h.inFlight.Add(-1)
		h.metrics.inFlight.Dec()
	}()

	token := c.Param("token")
	if !validToken(token) {
		return h.answer(c, http.StatusNotFound, labelNone, msgNotFound)
	}
	entry, ok := h.find(token)
	if !ok {
		return h.answer(c, http.StatusNotFound, labelNone, msgNotFound)
	}
	if entry.InboundAuth.Enabled() && !h.authenticated(c.Request(), entry.InboundAuth) {
		h.logger.Debug("webhook without the installation's inbound credentials refused", "installation", entry.ID)
		if entry.InboundAuth.Scheme == registry.AuthBasic {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, basicChallenge)
		}
		return h.answer(c, http.StatusUnauthorized, labelNone, msgUnauthorized)
	}
	if entry.Status != registry.StatusActive {
		h.logger.Debug("webhook for a disabled installation refused", "installation", entry.ID, "reason", entry.StatusReason)
		return h.answer(c, http.StatusGone, labelNone, goneMessage(entry))
	}

	req := c.Request()
	kind := mediaKind(req.Header.Get(echo.HeaderContentType))
	if kind == kindUnsupported {
		c.Response().Header().Set("Accept-Post", acceptedTypes)
		return h.answer(c, http.StatusUnsupportedMediaType, labelNone, msgMediaType)
	}

	buf, err := readBody(c.Response().Writer, req, h.maxBody)
	if err != nil {
		putBuffer(buf)
		if errors.Is(err, errTooLarge) {
			return h.refuseTooLarge(c)
		}
		// The client went away or broke the connection mid-body; there is
		// nobody left to answer, but the access log wants a status.
		h.logger.Debug("webhook body unreadable", "installation", entry.ID, "err", err)
		return h.answer(c, http.StatusBadRequest, labelNone, msgNotJSON)
	}
	body := buf.Bytes()
	if kind == kindXML {
		converted, err := jamf.FromXML(body, int(h.maxBody))
		putBuffer(buf)
		buf = nil
		if err != nil {
			if errors.Is(err, jamf.ErrTooLarge) {
				return h.refuseTooLarge(c)
			}
			h.logger.Debug("webhook XML refused", "installation", entry.ID, "err", err)
			return h.answer(c, http.StatusBadRequest, labelNone, []byte(msgNotXML+err.Error()))
		}
		body = converted
	}

	env, err := jamf.Parse(body)
	if err != nil {
		putBuffer(buf)
		var fe *jamf.FieldError
		switch {
		case errors.As(err, &fe):
			h.logger.Debug("webhook of the wrong shape refused", "installation", entry.ID, "err", err)
			return h.answer(c, http.StatusBadRequest, labelNone, []byte("Not a Jamf Pro webhook: "+fe.Error()))
		default:
			h.logger.Debug("webhook without JSON refused", "installation", entry.ID, "err", err)
			return h.answer(c, http.StatusBadRequest, labelNone, msgNotJSON)
		}
	}
	event := jamf.Canonical(env.Webhook.Event)
	label := eventLabel(event)

	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), h.publishTimeout)
	start := time.Now()
	err = h.publisher.Publish(ctx, jamf.Received{
		InstallationID: entry.ID,
		Event:          event,
		ReceivedAt:     start.UTC(),
		Body:           body,
	})
	cancel()
	h.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		// The buffer is not reused: a publisher that gave up waiting may
		// still hold the message for a retry of its own.
		if n, ok := h.publishLog.allow(time.Now()); ok {
			h.logger.Warn("publish failed; answered 503", "installation", entry.ID, "event", event, "err", err, "suppressed", n)
		}
		c.Response().Header().Set("Retry-After", retryAfter)
		return h.answer(c, http.StatusServiceUnavailable, label, msgBusy)
	}
	putBuffer(buf)
	h.metrics.request(http.StatusNoContent, label)
	return c.NoContent(http.StatusNoContent)
}

// find looks the installation of token up: by the cached hash of a token
// seen before, else by its hash under SECRET_KEY, else (during a key
// rotation) under SECRET_KEY_PREVIOUS. A cached hash that no longer finds
// anything (the installation was hashed again under a new key) is
// replaced, so a rotation never turns a known token into a 404.
func (h *Handler) find(token string) (registry.Entry, bool) {
	if hash, ok := h.hashes.get(token); ok {
		if entry, ok := h.lookup.ByTokenHash(hash); ok {
			return entry, true
		}
	}
	for _, hasher := range [2]func(string) string{h.hash, h.previousHash} {
		if hasher == nil {
			continue
		}
		hash := hasher(token)
		if entry, ok := h.lookup.ByTokenHash(hash); ok {
			h.hashes.put(token, hash)
			return entry, true
		}
	}
	return registry.Entry{}, false
}

// authenticated reports whether r carries the credentials auth requires:
// HTTP Basic, or each of the headers with its value. The comparison is of
// keyed hashes, in constant time, before the body is read.
func (h *Handler) authenticated(r *http.Request, auth registry.InboundAuth) bool {
	if h.checkAuth == nil {
		return false
	}
	var credential string
	switch auth.Scheme {
	case registry.AuthBasic:
		user, password, ok := r.BasicAuth()
		if !ok {
			return false
		}
		credential = registry.BasicCredential(user, password)
	case registry.AuthHeader:
		names := strings.Split(auth.Headers, ",")
		values := make([]string, len(names))
		for i, name := range names {
			v := r.Header.Values(name)
			if len(v) != 1 {
				return false
			}
			values[i] = v[0]
		}
		credential = registry.HeaderCredential(names, values)
	default:
		return false
	}
	return h.checkAuth(credential, auth.Hash)
}

// answer writes a plain-text answer and counts it.
func (h *Handler) answer(c echo.Context, code int, label string, msg []byte) error {
	h.metrics.request(code, label)
	return c.Blob(code, textPlain, msg)
}

// refuseTooLarge answers 413 and closes the connection, so the rest of an
// oversized body is never read.
func (h *Handler) refuseTooLarge(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderConnection, "close")
	return h.answer(c, http.StatusRequestEntityTooLarge, labelNone, h.tooLarge)
}

// goneMessage tells the Jamf admin why the installation takes no events
// and what to do about it.
func goneMessage(e registry.Entry) []byte {
	reason := e.StatusReason
	if reason == "" {
		reason = "disabled by an administrator"
	}
	return []byte("This Jackalope installation is disabled (" + reason + "). " +
		"Add Jackalope to the Slack channel again and put the new Jamf URL in Jamf Pro, " +
		"or ask your Slack admin to enable it again.")
}

// rateLimiter lets one log line through per second and counts the rest.
type rateLimiter struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now, and how many were
// suppressed since the last one that was.
func (l *rateLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.suppressed = 0
	l.next = now.Add(time.Second)
	return n, true
}

// bufPool holds request body buffers. Buffers that grew past maxPooled are
// left to the garbage collector, so one large webhook does not pin memory.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooled = 64 << 10

func getBuffer() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooled {
		return
	}
	b.Reset()
	bufPool.Put(b)
}
