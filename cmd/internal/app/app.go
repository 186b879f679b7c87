// Package app is the wiring the four mains share: logging, the registry
// store, the bus, metrics, and building each use case from the
// configuration. Only cmd/ imports it; it is the one place that knows every
// adapter and every use case.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/console"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/ingest"
	"github.com/jackalope-app/jackalope/internal/installer"
	"github.com/jackalope-app/jackalope/internal/postgres"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

const (
	// reconcileInterval is how often the installer checks the read model
	// against SQL once the first reconcile succeeded.
	reconcileInterval = 10 * time.Minute
	// restartBase and restartMax bound the backoff of a failed first
	// reconcile and of a background consumer that stopped.
	restartBase = time.Second
	restartMax  = time.Minute
)

// Logger returns the service logger: JSON on w at info (debug with DEBUG).
// Commands (quiet) log text, warnings only, so their report stays readable.
// It also becomes slog's default, so that what libraries log through it
// (the store's migrations) comes out the same way.
func Logger(w io.Writer, cfg config.Config, quiet bool) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	var logger *slog.Logger
	if quiet {
		logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: max(level, slog.LevelWarn)}))
	} else {
		logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	slog.SetDefault(logger)
	return logger
}

// Registry returns a metrics registry with the Go and process collectors.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// BusConfig is the bus part of cfg; name identifies the client to NATS.
// Deliveries in flight at shutdown get SHUTDOWN_TIMEOUT to finish.
func BusConfig(cfg config.Config, name string) bus.Config {
	return bus.Config{
		URL: cfg.NATS.URL,
		Auth: bus.Auth{
			CredsFile: cfg.NATS.Creds,
			NKeyFile:  cfg.NATS.NKey,
			CAFile:    cfg.NATS.CA,
			CertFile:  cfg.NATS.Cert,
			KeyFile:   cfg.NATS.Key,
		},
		DataDir:       cfg.DataDir,
		Replicas:      cfg.NATS.Replicas,
		MaxAge:        cfg.NATS.MaxAge,
		MaxBytes:      cfg.NATS.MaxBytes,
		MaxMsgs:       cfg.NATS.MaxMsgs,
		DedupWindow:   cfg.NATS.DedupWindow,
		DeadMaxAge:    cfg.NATS.DeadMaxAge,
		AckWait:       cfg.Dispatch.AckWait,
		ShutdownGrace: cfg.ShutdownTimeout,
		Name:          name,

		HistoryMaxAge:   cfg.NATS.HistoryMaxAge,
		HistoryMaxBytes: cfg.NATS.HistoryMaxBytes,
	}
}

// Provisioning says what a process does about the streams, consumers and
// buckets once connected. Who creates them: the installer (at start, to
// its settings), the all-in-one and any service on its own embedded
// server, and the commands (what is missing). Ingest and the dispatchers
// on a shared server only wait for them: under least privilege (see
// deploy/nats) they may not create or change a stream.
type Provisioning struct {
	mode  provisionMode
	needs []bus.Need
}

type provisionMode int

const (
	updateSettings provisionMode = iota
	createMissing
	await
)

var (
	// UpdateSettings creates everything and brings it up to this process's
	// settings: what the installer does at start.
	UpdateSettings = Provisioning{mode: updateSettings}
	// CreateMissing creates what is missing and changes nothing else: what
	// commands do, since a shell may lack the services' STREAM_* settings.
	CreateMissing = Provisioning{mode: createMissing}
)

// Await creates nothing and waits until needs exist, which the installer
// creates: what ingest and the dispatchers do on an external server. On an
// embedded server nobody else would, so there it is UpdateSettings.
func Await(needs []bus.Need) Provisioning { return Provisioning{mode: await, needs: needs} }

// ConnectBus connects to NATS (or starts the embedded server) and
// provisions the streams, consumers and bucket as p says. Awaiting is
// bounded by ctx only.
func ConnectBus(ctx context.Context, cfg config.Config, name string, logger *slog.Logger, p Provisioning) (*bus.Conn, error) {
	conn, err := bus.Connect(ctx, BusConfig(cfg, name), logger.With("component", "bus"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if p.mode == await && cfg.NATS.URL == "" {
		p = UpdateSettings
	}
	switch p.mode {
	case await:
		err = conn.Await(ctx, p.needs)
	case createMissing:
		err = conn.ProvisionMissing(ctx)
	default:
		err = conn.Provision(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("provision NATS: %w", err)
	}
	return conn, nil
}

// OpenStore opens the registry store cfg names, applying migrations.
func OpenStore(ctx context.Context, cfg config.Config) (registry.Store, error) {
	var (
		store registry.Store
		err   error
	)
	switch cfg.Database.Driver {
	case config.DriverPostgres:
		store, err = postgres.Open(ctx, cfg.Database.URL)
	case config.DriverSQLite:
		store, err = sqlite.Open(ctx, cfg.Database.Path)
	default:
		err = fmt.Errorf("unknown database driver %q", cfg.Database.Driver)
	}
	if err != nil {
		return nil, fmt.Errorf("open registry store: %w", err)
	}
	return store, nil
}

// Open opens the registry store and connects to NATS, provisioned: what
// the installer and the all-in-one need before anything else.
func Open(ctx context.Context, cfg config.Config, name string, logger *slog.Logger, p Provisioning) (registry.Store, *bus.Conn, error) {
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	conn, err := ConnectBus(ctx, cfg, name, logger, p)
	if err != nil {
		CloseStore(store, logger)
		return nil, nil, err
	}
	return store, conn, nil
}

// CloseStore closes store, logging a failure: at that point there is
// nothing else to do about it.
func CloseStore(store registry.Store, logger *slog.Logger) {
	if err := store.Close(); err != nil {
		logger.Warn("close registry store", "err", err)
	}
}

// Keys derives the secret keys from SECRET_KEY and, during a rotation,
// SECRET_KEY_PREVIOUS, naming the variable that is unusable.
func Keys(cfg config.Config) (*secret.Keys, error) {
	if _, err := secret.New(cfg.SecretKey); err != nil {
		return nil, fmt.Errorf("SECRET_KEY: %w", err)
	}
	keys, err := secret.NewWithPrevious(cfg.SecretKey, cfg.SecretKeyPrevious)
	if err != nil {
		return nil, fmt.Errorf("SECRET_KEY_PREVIOUS: %w", err)
	}
	return keys, nil
}

// Static is the tree served under /static: the icons messages link to.
func Static() fs.FS {
	static, err := fs.Sub(render.Static, "static")
	if err != nil {
		panic("render.Static has no static directory: " + err.Error()) // a build mistake, caught by any test
	}
	return static
}

// OAuth is the installer's view of the Slack app: whether the secret is
// set, never the secret.
func OAuth(s config.Slack) installer.OAuth {
	return installer.OAuth{
		ClientID:        s.ClientID,
		ClientSecretSet: s.ClientSecret != "",
		AuthorizeURL:    s.OAuthURL,
		Scopes:          s.Scopes,
	}
}

// Webhooks is where Slack incoming webhook URLs may point
// (SLACK_WEBHOOK_HOSTS).
func Webhooks(cfg config.Config) slack.WebhookPolicy {
	return slack.NewWebhookPolicy(cfg.Slack.WebhookHosts...)
}

// Installer builds the installer use case; reg may be nil (commands).
func Installer(cfg config.Config, keys *secret.Keys, store registry.Store, conn *bus.Conn, logger *slog.Logger, reg prometheus.Registerer) (*installer.Installer, error) {
	return installer.New(installer.Options{
		Store: store,
		KV:    conn,
		Slack: slack.New(slack.Config{
			APIURL:       cfg.Slack.APIURL,
			Timeout:      cfg.Slack.Timeout,
			ClientID:     cfg.Slack.ClientID,
			ClientSecret: cfg.Slack.ClientSecret,
			Webhooks:     Webhooks(cfg),
		}),
		Webhooks:   Webhooks(cfg),
		Keys:       keys,
		BaseURL:    cfg.BaseURL,
		OAuth:      OAuth(cfg.Slack),
		Logger:     logger,
		Registerer: reg,
		Keyring:    conn,
		UsedStates: conn,
	})
}

// Console builds the Slack admin's console on the installer's use cases,
// the dead-letter stream, the history, each channel's activity in NATS and
// the registry's audit log, so that it calls what the `channels`, `dlq` and
// `history` commands call.
func Console(cfg config.Config, keys *secret.Keys, store registry.Store, conn *bus.Conn, inst *installer.Installer, logger *slog.Logger, reg prometheus.Registerer) (*console.Console, error) {
	digests := registry.DigestsOn
	if !cfg.Dispatch.Digests {
		digests = registry.DigestsOff
	}
	return console.New(console.Options{
		Channels:      inst,
		DeadLetters:   conn,
		Audit:         store,
		Delivery:      consoleDelivery{conn},
		History:       conn,
		HistoryMaxAge: cfg.NATS.HistoryMaxAge,
		Defaults: registry.DeliverySettings{
			Interval:    cfg.Dispatch.Interval,
			Burst:       cfg.Dispatch.Burst,
			Digests:     digests,
			DigestAfter: cfg.Dispatch.DigestAfter,
		},
		IconBaseURL: cfg.BaseURL + "/static/images",
		Keys:        keys,
		BaseURL:     cfg.BaseURL,
		OIDC: console.OIDC{
			Issuer:       cfg.Slack.OIDCIssuer,
			ClientID:     cfg.Slack.ClientID,
			ClientSecret: cfg.Slack.ClientSecret,
			HTTPClient:   &http.Client{Timeout: cfg.Slack.Timeout},
		},
		Admins:     cfg.Console.Admins,
		Logger:     logger,
		Registerer: reg,
	})
}

// consoleDelivery is the console's view of the delivery engine: each
// channel's activity as the bus reads it from the streams and the shared
// delivery state.
type consoleDelivery struct{ conn *bus.Conn }

func (d consoleDelivery) DeliveryStates(ctx context.Context, ids []string) (map[string]console.DeliveryState, error) {
	activity, err := d.conn.Activity(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]console.DeliveryState, len(activity))
	for id, a := range activity {
		out[id] = console.DeliveryState{
			Waiting:       a.Waiting,
			LastReceived:  a.LastReceived,
			LastEvent:     a.LastEvent,
			LastDelivered: a.LastDelivered,
			Shared:        a.State,
		}
	}
	return out, nil
}

// RunInstallerBackground reconciles the read model (retrying until it
// succeeds, then every reconcileInterval) and disables the channels that
// dispatchers report gone, until ctx ends. reconciled turns true after the
// first reconcile.
func RunInstallerBackground(ctx context.Context, inst *installer.Installer, conn *bus.Conn, logger *slog.Logger, reconciled *atomic.Bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Forever(ctx, logger, "dead channel consumer", func(ctx context.Context) error {
			return conn.ConsumeDeadChannels(ctx, inst.DisableDeadChannel)
		})
	}()
	for attempt := 1; ; attempt++ {
		err := inst.Reconcile(ctx)
		if err == nil {
			reconciled.Store(true)
			inst.ReconcileEvery(ctx, reconcileInterval)
			break
		}
		if ctx.Err() != nil {
			break
		}
		wait := retry.Backoff(attempt, restartBase, restartMax)
		logger.Error("reconcile failed; trying again", "err", err, "attempt", attempt, "wait", wait.String())
		if !retry.Sleep(ctx, wait) {
			break
		}
	}
	<-done
}

// Forever runs f until ctx ends, restarting it with backoff when it stops
// early (NATS gone for a while, say).
func Forever(ctx context.Context, logger *slog.Logger, what string, f func(context.Context) error) {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := retry.Backoff(attempt, restartBase, restartMax)
		logger.Error(what+" stopped; restarting", "err", err, "attempt", attempt, "wait", wait.String())
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// WatchInBackground returns a context that outlives ctx and the function
// that ends it, with the installations read model watched under it: work in
// flight at shutdown (deliveries, health answers) still needs the read
// model during the grace. A signal during the initial load still stops it.
// The caller must call stop.
func WatchInBackground(ctx context.Context, conn *bus.Conn) (bg context.Context, stop context.CancelFunc, installations *bus.Installations, err error) {
	bg, stop = context.WithCancel(context.WithoutCancel(ctx))
	stopEarly := context.AfterFunc(ctx, stop)
	installations, err = conn.WatchInstallations(bg)
	stopEarly()
	if err != nil {
		stop()
		return nil, nil, nil, fmt.Errorf("watch installations: %w", err)
	}
	return bg, stop, installations, nil
}

// Ingest builds the webhook handler, its body limit kept under what NATS
// accepts.
func Ingest(cfg config.Config, keys *secret.Keys, conn *bus.Conn, installations *bus.Installations, logger *slog.Logger, reg prometheus.Registerer) (*ingest.Handler, error) {
	maxBody := ingest.MaxBody(cfg.Ingest.MaxBodyBytes, conn.MaxPayload())
	if maxBody < cfg.Ingest.MaxBodyBytes {
		logger.Info("MAX_BODY_BYTES lowered to what NATS accepts", "max_body_bytes", maxBody, "nats_max_payload", conn.MaxPayload())
	}
	opts := ingest.Options{
		Lookup:           installations,
		Publisher:        conn,
		Hasher:           keys.HashToken,
		CheckInboundAuth: keys.CheckInboundAuth,
		MaxBodyBytes:     maxBody,
		PublishTimeout:   cfg.Ingest.PublishTimeout,
		Logger:           logger,
		Registerer:       reg,
	}
	if p := keys.Previous(); p != nil {
		opts.PreviousHasher = p.HashToken
	}
	return ingest.New(opts)
}

// Dispatcher builds the delivery use case; busy, when not nil, is
// dispatch.Options.Busy (the all-in-one gives its ingest precedence).
func Dispatcher(cfg config.Config, keys *secret.Keys, conn *bus.Conn, installations *bus.Installations, busy func() bool, logger *slog.Logger, reg prometheus.Registerer) (*dispatch.Dispatcher, error) {
	return dispatch.New(dispatch.Options{
		Installations: installations,
		Poster: slack.New(slack.Config{
			APIURL:     cfg.Slack.APIURL,
			Timeout:    cfg.Slack.Timeout,
			HTTPClient: slack.PostingClient(cfg.Dispatch.Workers),
			Webhooks:   Webhooks(cfg),
		}),
		DeadLetters: conn,
		Reporter:    conn,
		Opener:      keys,
		States:      conn,
		Deadline:    cfg.Dispatch.Deadline,
		RetryMax:    cfg.Dispatch.RetryMaxDelay,
		Interval:    cfg.Dispatch.Interval,
		Burst:       cfg.Dispatch.Burst,
		DigestsOff:  !cfg.Dispatch.Digests,
		DigestAfter: cfg.Dispatch.DigestAfter,
		MaxInFlight: cfg.Dispatch.Workers,
		Busy:        busy,
		AckWait:     cfg.Dispatch.AckWait,
		ProbeLease:  cfg.Slack.Timeout + 5*time.Second,
		IconBaseURL: cfg.BaseURL + "/static/images",
		Logger:      logger,
		Registerer:  reg,

		HoldTotal:      cfg.Dispatch.Hold,
		HoldPerChannel: holdPerChannel(cfg.Dispatch.Hold),
	})
}

// holdPerChannel is what one channel may hold of DISPATCH_HOLD, in the
// ratio of the dispatch defaults: three quarters. 0 (not set) takes those
// defaults.
func holdPerChannel(hold int) int { return hold - hold/4 }

// consumeBuffer is how many events a dispatcher pulls ahead of those it
// takes.
const consumeBuffer = 256

// Deliver runs disp on the events of conn until ctx ends: it follows the
// other dispatchers' notices that a channel answers again, and, when ctx
// ends, hands back what it holds and gives posts under way
// SHUTDOWN_TIMEOUT to finish.
func Deliver(ctx context.Context, cfg config.Config, conn *bus.Conn, disp *dispatch.Dispatcher) error {
	notices, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	if err := conn.WatchDeliveryNotices(notices, disp.Recovered); err != nil {
		return err
	}
	return disp.Run(ctx, cfg.ShutdownTimeout, func(ctx context.Context, take dispatch.Take) error {
		return conn.Consume(ctx, consumeBuffer, func(ctx context.Context, d *bus.Delivery) error { return take(ctx, d) })
	})
}

// Ready is a readiness check for httpserver: NATS connected and every
// condition true.
func Ready(conn *bus.Conn, conditions ...Condition) func() error {
	return func() error {
		if !conn.Connected() {
			return errors.New("NATS is not connected")
		}
		for _, c := range conditions {
			if !c.OK() {
				if c.Reason != nil {
					return errors.New(c.Reason())
				}
				return errors.New(c.Why)
			}
		}
		return nil
	}
}

// Condition is one readiness condition and what to say while it is false:
// Why, or what Reason returns when it is set.
type Condition struct {
	OK     func() bool
	Why    string
	Reason func() string
}

// LogNotes logs what the configuration noted that is not an error (a
// variable no longer read, say).
func LogNotes(logger *slog.Logger, cfg config.Config) {
	for _, n := range cfg.Notes {
		logger.Warn(n)
	}
}

// healthCheckInterval is how long readiness keeps what it last saw of
// what it cannot see from events (the database, the backlog's room) before
// it looks again, and how long one look may take.
const healthCheckInterval = 2 * time.Second

// onDemand is a readiness condition looked at when readiness is asked, at
// most once per healthCheckInterval: a process no one asks does no work
// for it (an idle all-in-one woke twice a second for these). check says
// what is wrong, "" when nothing is; an error leaves the last answer as it
// was. changed hears each change of the answer.
func onDemand(check func(ctx context.Context) (problem string, err error), changed func(problem string)) Condition {
	var (
		mu      sync.Mutex
		checked time.Time
		problem string
	)
	look := func() string {
		mu.Lock()
		defer mu.Unlock()
		if !checked.IsZero() && time.Since(checked) < healthCheckInterval {
			return problem
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthCheckInterval)
		defer cancel()
		p, err := check(ctx)
		checked = time.Now()
		if err == nil && p != problem {
			problem = p
			changed(p)
		}
		return problem
	}
	return Condition{OK: func() bool { return look() == "" }, Reason: look}
}

// StoreReachable is the installer's readiness condition on its database:
// not ready while it does not answer, saying why. It has nothing to do
// while the database is down (installs, the console and commands fail),
// and the delivery path never needs it.
func StoreReachable(store registry.Store, logger *slog.Logger) Condition {
	return onDemand(func(ctx context.Context) (string, error) {
		if err := store.Ping(ctx); err != nil {
			return "the registry database does not answer: " + err.Error(), nil
		}
		return "", nil
	}, func(problem string) {
		if problem != "" {
			logger.Error("registry database unreachable; not ready", "err", problem)
			return
		}
		logger.Info("registry database answers again")
	})
}

// typicalEvent is the size of a typical stored event, with room to spare:
// a check-in is about 1 KB of JSON and 200 bytes of headers.
const typicalEvent = 4 << 10

// BacklogHasRoom is ingest's readiness condition on the backlog: not
// ready while a typical event would not fit in it (the stream itself
// refuses what does not fit), saying why. A backlog that cannot be read
// leaves the answer as it was: NATS being down is readiness's other
// condition.
func BacklogHasRoom(conn *bus.Conn, logger *slog.Logger) Condition {
	return onDemand(func(ctx context.Context) (string, error) {
		s, err := conn.Backlog(ctx)
		if err != nil || !s.Full(typicalEvent) {
			return "", err
		}
		return fmt.Sprintf("the backlog is full: %d events, %d of %d bytes (STREAM_MAX_BYTES), limit of events %d (STREAM_MAX_MSGS; -1 none); ingest answers 503 until dispatchers deliver",
			s.Msgs, s.Bytes, s.MaxBytes, s.MaxMsgs), nil
	}, func(problem string) {
		if problem != "" {
			logger.Warn("backlog full; ingest refuses events", "why", problem)
			return
		}
		logger.Info("backlog has room again")
	})
}
