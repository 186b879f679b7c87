// Package bus is Jackalope's one door to NATS JetStream. It connects to a
// NATS server (or embeds one), provisions the streams, consumers and the KV
// bucket the services share, publishes accepted Jamf webhooks, runs the
// consume loop that turns a handler's error class into Ack, NakWithDelay or
// Term, keeps dead letters, and serves the installations read model.
//
// Nothing outside this package imports nats.go: the use cases declare the
// small interfaces they need and cmd/ wires a *Conn into them.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/redact"
)

// Names of what Provision creates. They are fixed: every service of one
// deployment must agree on them.
const (
	StreamEvents        = "JAMF_EVENTS"
	StreamDead          = "JAMF_DEAD"
	StreamControl       = "JAMF_CONTROL"
	StreamHistory       = "JAMF_HISTORY"
	BucketInstallations = "installations"
	BucketDelivery      = "delivery"
	ConsumerDispatch    = "dispatch"
	ConsumerInstaller   = "installer"
)

// Subject prefixes; the installation ID is the last token.
const (
	subjectEvents      = "jamf.events."
	subjectDead        = "jamf.dead."
	subjectHistory     = "jamf.history."
	subjectDelivery    = "jackalope.delivery."
	subjectControl     = "jackalope.control."
	subjectChannelDead = "jackalope.control.channel_dead."
)

// The delivery bucket's stream, and the subject its keys are written to
// (a KV bucket is a stream named KV_<bucket> on $KV.<bucket>.<key>).
const (
	streamDelivery  = "KV_" + BucketDelivery
	deliverySubject = "$KV." + BucketDelivery + "."
)

// Defaults for the zero fields of Config.
const (
	DefaultReplicas      = 1
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultMaxBytes      = 1 << 30
	DefaultDedupWindow   = 2 * time.Minute
	DefaultDeadMaxAge    = 30 * 24 * time.Hour
	DefaultAckWait       = 60 * time.Second
	DefaultShutdownGrace = 10 * time.Second
	DefaultName          = "jackalope"

	// controlMaxAge bounds how long an unhandled control message (a dead
	// channel report nobody consumed) is kept.
	controlMaxAge = 7 * 24 * time.Hour
	// embeddedMaxPayload lets a 1 MiB Jamf body plus headers fit in one
	// message on the embedded server (the NATS default is exactly 1 MiB).
	embeddedMaxPayload = 8 << 20
	// reconnectWait is the pause between reconnect attempts to an external
	// server.
	reconnectWait = time.Second
	// closeTimeout bounds how long Close waits for the connection to drain.
	closeTimeout = 10 * time.Second
)

// Config says where NATS is and how the streams are sized. Zero fields take
// the Default* values.
type Config struct {
	// URL of an external NATS server with JetStream. Empty starts an
	// embedded server that keeps its store under DataDir/nats and takes
	// only clients with the nkey seed it keeps there.
	URL string
	// Auth holds the credentials and TLS files for an external server.
	Auth Auth
	// DataDir holds the embedded server's JetStream store. Required when
	// URL is empty.
	DataDir string
	// Replicas of every stream and the KV bucket. The embedded server is a
	// single node and always uses 1.
	Replicas int
	// MaxAge of JAMF_EVENTS: how long an event may wait for delivery, and
	// the replay window.
	MaxAge time.Duration
	// MaxBytes of JAMF_EVENTS and of JAMF_DEAD. JAMF_EVENTS holds only
	// the events that wait for delivery, so this bounds the backlog; a
	// full stream refuses new messages (publish fails) and never drops
	// accepted ones.
	MaxBytes int64
	// MaxMsgs bounds the number of events waiting in JAMF_EVENTS as
	// MaxBytes bounds their size; zero or less is no limit.
	MaxMsgs int64
	// HistoryMaxAge is how long delivered events are kept in JAMF_HISTORY
	// for resending; zero keeps none (the stream is not written to).
	// HistoryMaxBytes bounds that stream, whose oldest events make room
	// for new ones: a full history never refuses anything.
	HistoryMaxAge   time.Duration
	HistoryMaxBytes int64
	// DedupWindow during which a repeated Jamf delivery of the same body to
	// the same installation is stored once.
	DedupWindow time.Duration
	// DeadMaxAge of JAMF_DEAD.
	DeadMaxAge time.Duration
	// AckWait is how long the server waits for an ack before it redelivers
	// a message. Handlers that run longer are kept alive with progress
	// acks, so this only matters when a consumer dies mid-message.
	AckWait time.Duration
	// ShutdownGrace is how long in-flight handlers may run after the
	// context given to Consume is cancelled before their own context is
	// cancelled too.
	ShutdownGrace time.Duration
	// Name of the client connection as the server shows it. Replies to
	// its requests arrive under _INBOX.<Name>, so a server can confine
	// each service to its own replies (deploy/nats).
	Name string
}

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = DefaultReplicas
	}
	if c.URL == "" {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DeadMaxAge <= 0 {
		c.DeadMaxAge = DefaultDeadMaxAge
	}
	if c.MaxMsgs <= 0 {
		c.MaxMsgs = -1
	}
	if c.HistoryMaxAge < 0 {
		c.HistoryMaxAge = 0
	}
	if c.HistoryMaxBytes <= 0 {
		c.HistoryMaxBytes = DefaultMaxBytes
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	return c
}

// Conn is a connection to NATS JetStream, and the embedded server when there
// is one. It is safe for concurrent use.
type Conn struct {
	cfg Config
	log *slog.Logger
	srv *server.Server // nil when connected to an external server
	// auth authenticates both connections: the embedded server's seed or
	// Config.Auth.
	auth []nats.Option
	// urlFile names the file that tells other processes on this data
	// directory where the embedded server listens; empty without one.
	urlFile string
	// nc carries consumers and their acks, the KV bucket and stream
	// management. It keeps the client's default buffer while reconnecting,
	// so an ack a dispatcher makes during a server restart still lands
	// and the event is not delivered twice.
	nc *nats.Conn
	// pub carries the publishes that wait for an acknowledgement (events,
	// dead letters, control reports) and keeps nothing while reconnecting:
	// a publish made then fails at once (ingest answers 503 without
	// waiting for its deadline), and a publish that failed is never sent
	// later, so nothing is stored after its caller reported it failed.
	pub       *nats.Conn
	js        jetstream.JetStream
	closed    chan struct{} // closed by nc's closed handler
	pubClosed chan struct{} // closed by pub's closed handler

	closeOnce sync.Once

	kvMu sync.Mutex
	kv   map[string]jetstream.KeyValue // buckets by name, once looked up

	acks ackBatch // acks of delivered events waiting for ackDelay
}

// Connect connects to cfg.URL or, when it is empty, starts an embedded NATS
// server with JetStream and connects to it in-process. The embedded server
// also listens on a random loopback port (never 4222) for debugging; the
// address is logged. Connect does not provision anything; see Provision.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	c := &Conn{cfg: cfg, log: logger, closed: make(chan struct{}), pubClosed: make(chan struct{})}

	var extra []nats.Option // what both connections need to reach the server
	target := "embedded"
	if cfg.URL == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("connect nats: an embedded server needs a data directory")
		}
		if !cfg.Auth.IsZero() {
			return nil, errors.New("connect nats: credentials and TLS files are for an external server; the embedded one makes its own")
		}
		storeDir := filepath.Join(cfg.DataDir, "nats")
		user, auth, err := embeddedAuth(storeDir)
		if err != nil {
			return nil, fmt.Errorf("connect nats: embedded server credentials: %w", err)
		}
		c.auth = []nats.Option{auth}
		// Another process (a running all-in-one) may already serve this
		// store: a second server cannot open it, so share the first.
		if nc := attachEmbedded(storeDir, c.auth, c.options(false), logger); nc != nil {
			return c.finish(nc, nc.ConnectedUrl(), nil, "embedded (shared)")
		}
		srv, err := startEmbedded(ctx, storeDir, user, logger)
		if err != nil {
			return nil, fmt.Errorf("connect nats: %w", err)
		}
		c.srv = srv
		c.urlFile = writeURLFile(storeDir, srv, logger)
		extra = append(extra, nats.InProcessServer(srv))
	} else {
		target = redact.URL(cfg.URL)
		auth, err := cfg.Auth.options()
		if err != nil {
			return nil, fmt.Errorf("connect nats %s: %w", target, err)
		}
		c.auth = auth
	}

	nc, err := nats.Connect(cfg.URL, append(c.options(false), extra...)...)
	if err != nil {
		c.shutdownServer()
		// A URL the client cannot parse comes back quoted in the error.
		return nil, fmt.Errorf("connect nats %s: %w", target, redact.Error(err, redact.Credentials(cfg.URL)...))
	}
	return c.finish(nc, cfg.URL, extra, target)
}

// options returns the options of nc, or of pub when publish is true.
func (c *Conn) options(publish bool) []nats.Option {
	logger, name, closed := c.log, c.cfg.Name, c.closed
	if publish {
		logger, name, closed = c.log.With("connection", "publish"), c.cfg.Name+"-publish", c.pubClosed
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.DrainTimeout(closeTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// ConnectedUrlRedacted keeps a token (nats://TOKEN@host).
			logger.Info("nats reconnected", "server", redact.URL(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("nats asynchronous error", "subject", subject, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	}
	if publish {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	opts = append(opts, nats.CustomInboxPrefix(inboxPrefix(c.cfg.Name)))
	return append(opts, c.auth...)
}

// finish completes Connect once nc is connected: it opens pub to the same
// server (url with extra) and the JetStream context.
func (c *Conn) finish(nc *nats.Conn, url string, extra []nats.Option, target string) (*Conn, error) {
	c.nc = nc
	if url == "" && len(extra) == 0 {
		// nats.Connect would take the default URL, which is not ours.
		c.Close()
		return nil, fmt.Errorf("connect nats %s: publish connection: no server address", target)
	}
	// Publishes coalesce their writes (see coalesceWindow); an option
	// given later takes precedence over extra's in-process server.
	coalesce := nats.SetCustomDialer(&coalescingDialer{net.Dialer{Timeout: nats.DefaultTimeout}})
	if c.srv != nil {
		coalesce = nats.InProcessServer(coalescingServer{c.srv})
	}
	pub, err := nats.Connect(url, append(append(c.options(true), extra...), coalesce)...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect nats %s: publish connection: %w", target, redact.Error(err, redact.Credentials(url)...))
	}
	c.pub = pub
	js, err := jetstream.New(nc)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect nats %s: jetstream: %w", target, err)
	}
	c.js = js
	if c.srv == nil {
		c.log.Info("nats connected", "server", redact.URL(nc.ConnectedUrl()), "target", target)
	}
	return c, nil
}

// Server says where the connection goes, for start-up messages: the
// embedded server's loopback URL, store and the seed its clients need, or
// the external server's URL without credentials.
func (c *Conn) Server() string {
	if c.srv != nil {
		store := filepath.Join(c.cfg.DataDir, "nats")
		return "embedded " + c.srv.ClientURL() + " (store " + store + "; clients sign in with " + filepath.Join(store, embeddedSeedFile) + ")"
	}
	if c.cfg.URL == "" {
		return "embedded, shared with another process (" + redact.URL(c.nc.ConnectedUrl()) + ")"
	}
	return redact.URL(c.cfg.URL)
}

// Connected reports whether the connections to NATS are up right now.
func (c *Conn) Connected() bool { return c.nc.IsConnected() && c.pub.IsConnected() }

// MaxPayload is the largest message, headers included, the server accepts.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Close drains both connections (subscriptions finish what they hold, pending
// publishes are flushed) and then shuts the embedded server down and waits
// for it, so its store is flushed to disk. Cancel the contexts of Consume
// and WatchInstallations first. Close is safe to call more than once.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		// The acks that wait go out before nc drains.
		c.sendAcks(c.acks.take(true))
		// Both start draining before Close waits for either.
		drain(c.pub)
		drain(c.nc)
		c.waitClosed(c.pub, c.pubClosed)
		c.waitClosed(c.nc, c.closed)
		c.shutdownServer()
	})
}

// drain starts draining nc, or closes it when it cannot drain.
func drain(nc *nats.Conn) {
	if nc == nil {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
}

// waitClosed waits for the closed handler of nc to run, closing nc when
// draining takes too long.
func (c *Conn) waitClosed(nc *nats.Conn, closed chan struct{}) {
	if nc == nil {
		return
	}
	select {
	case <-closed:
	case <-time.After(closeTimeout + time.Second):
		c.log.Warn("nats connection did not drain in time; closing", "connection", nc.Opts.Name)
		nc.Close()
	}
}

func (c *Conn) shutdownServer() {
	if c.srv == nil {
		return
	}
	removeURLFile(c.urlFile, c.srv)
	c.srv.Shutdown()
	c.srv.WaitForShutdown()
	c.log.Info("embedded nats server stopped")
}
