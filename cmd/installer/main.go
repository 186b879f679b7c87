// Command installer is Jackalope's installer service: the "Add to Slack"
// page and OAuth flow, the channel registry in SQL (migrated on start), and
// its read model in the KV bucket "installations", which ingest and the
// dispatchers watch. It also disables channels that dispatchers report gone.
//
// `installer channels …` manages channels by hand with the same store and
// KV bucket; run `installer channels help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/installer"
	"github.com/jackalope-app/jackalope/internal/postgres"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

const usage = `usage: installer [serve]
       installer channels <command> [arguments]

Without a command (or with serve) the installer serves the "Add to Slack"
page on LISTEN_ADDR. "installer channels help" lists the channels commands.
Configuration comes from the environment (see the README).
`

const (
	// reconcileInterval is how often the read model is checked against SQL
	// once the first reconcile succeeded.
	reconcileInterval = 10 * time.Minute
	// restartBase and restartMax bound the backoff of a failed first
	// reconcile and of a dead channel consumer that stopped.
	restartBase = time.Second
	restartMax  = time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr and returns the exit status: 0 without an
// error, 2 for a command-line mistake, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	// Nothing is left to tell if stderr itself fails.
	_, _ = fmt.Fprintln(stderr, "installer:", err)
	var ue *installer.UsageError
	if errors.As(err, &ue) {
		if ue.Usage != "" {
			_, _ = fmt.Fprint(stderr, "\n"+ue.Usage)
		}
		return 2
	}
	return 1
}

// run parses the command line and the environment, then serves or runs a
// channels command until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	command := "serve"
	if len(args) > 0 {
		command = args[0]
	}
	switch command {
	case "help", "-h", "-help", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "serve":
		if len(args) > 1 {
			return &installer.UsageError{Msg: fmt.Sprintf("serve: unexpected argument %q", args[1]), Usage: usage}
		}
	case "channels":
		if len(args) > 1 && isHelp(args[1]) {
			_, err := io.WriteString(stdout, installer.ChannelsUsage)
			return err
		}
		if len(args) == 1 {
			return &installer.UsageError{Msg: "channels: a command is required", Usage: installer.ChannelsUsage}
		}
	default:
		return &installer.UsageError{Msg: fmt.Sprintf("unknown command %q", command), Usage: usage}
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.RequireSecretKey(); err != nil {
		return err
	}
	keys, err := secret.New(cfg.SecretKey)
	if err != nil {
		return fmt.Errorf("SECRET_KEY: %w", err)
	}
	if command == "channels" {
		// Commands log warnings only, as text, so that their report on
		// stdout stays readable.
		level := slog.LevelWarn
		if cfg.Debug {
			level = slog.LevelDebug
		}
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		return channels(ctx, cfg, keys, logger, args[1:], stdout)
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	return serve(ctx, cfg, keys, logger)
}

func isHelp(s string) bool {
	return s == "help" || s == "-h" || s == "-help" || s == "--help"
}

// serve runs the installer service until ctx ends, then shuts down in
// order: stop accepting requests and let those in flight finish, stop the
// background work, close NATS, close the store.
func serve(ctx context.Context, cfg config.Config, keys *secret.Keys, logger *slog.Logger) error {
	logger.Info("installer starting", "config", cfg)
	store, conn, err := open(ctx, cfg, logger, "jackalope-installer")
	if err != nil {
		return err
	}
	defer closeStore(store, logger)
	defer conn.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	inst, err := installer.New(installer.Options{
		Store: store,
		KV:    conn,
		Slack: slack.New(slack.Config{
			APIURL:       cfg.Slack.APIURL,
			Timeout:      cfg.Slack.Timeout,
			ClientID:     cfg.Slack.ClientID,
			ClientSecret: cfg.Slack.ClientSecret,
		}),
		Keys:       keys,
		BaseURL:    cfg.BaseURL,
		OAuth:      oauth(cfg.Slack),
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	var reconciled atomic.Bool
	e := httpserver.New(httpserver.Options{
		Logger:   logger,
		Gatherer: reg,
		Ready: func() error {
			switch {
			case !conn.Connected():
				return errors.New("NATS is not connected")
			case !reconciled.Load():
				return errors.New("the read model is not reconciled yet")
			}
			return nil
		},
	})
	inst.Register(e)
	static, err := fs.Sub(render.Static, "static")
	if err != nil {
		return fmt.Errorf("static files: %w", err)
	}
	e.StaticFS("/static", static)

	ln, err := httpserver.Listen(ctx, cfg.ListenAddr)
	if err != nil {
		return err
	}
	logger.Info("installer listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL,
		"add_to_slack", len(cfg.Slack.ClientID) > 0 && len(cfg.Slack.ClientSecret) > 0)

	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if reconcile(bg, inst, logger) {
			reconciled.Store(true)
			inst.ReconcileEvery(bg, reconcileInterval)
		}
	})
	wg.Go(func() { consumeDeadChannels(bg, conn, inst, logger) })

	err = httpserver.Serve(ctx, ln, e, cfg.ShutdownTimeout)
	stop()
	wg.Wait()
	logger.Info("installer stopped")
	return err
}

// reconcile runs the first Reconcile, trying again with backoff until it
// succeeds (true) or ctx ends (false). The service is not ready before.
func reconcile(ctx context.Context, inst *installer.Installer, logger *slog.Logger) bool {
	for attempt := 1; ; attempt++ {
		err := inst.Reconcile(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := retry.Backoff(attempt, restartBase, restartMax)
		logger.Error("reconcile failed; trying again", "err", err, "attempt", attempt, "wait", wait)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// consumeDeadChannels passes the dispatchers' dead channel reports to
// DisableDeadChannel until ctx ends, restarting the consumer with backoff
// when it stops (NATS gone for a while, say).
func consumeDeadChannels(ctx context.Context, conn *bus.Conn, inst *installer.Installer, logger *slog.Logger) {
	for attempt := 1; ; attempt++ {
		err := conn.ConsumeDeadChannels(ctx, inst.DisableDeadChannel)
		if ctx.Err() != nil {
			return
		}
		wait := retry.Backoff(attempt, restartBase, restartMax)
		logger.Error("dead channel consumer stopped; restarting", "err", err, "attempt", attempt, "wait", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits d, or less when ctx ends first, which it reports as false.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// channels runs one `channels` command against the store and KV bucket.
func channels(ctx context.Context, cfg config.Config, keys *secret.Keys, logger *slog.Logger, args []string, stdout io.Writer) error {
	store, conn, err := open(ctx, cfg, logger, "jackalope-installer-channels")
	if err != nil {
		return err
	}
	defer closeStore(store, logger)
	defer conn.Close()
	inst, err := installer.New(installer.Options{
		Store:   store,
		KV:      conn,
		Keys:    keys,
		BaseURL: cfg.BaseURL,
		OAuth:   oauth(cfg.Slack),
		Logger:  logger,
	})
	if err != nil {
		return err
	}
	return inst.RunChannelsCommand(ctx, args, stdout)
}

// oauth is the installer's view of the Slack app: whether the secret is
// set, never the secret.
func oauth(s config.Slack) installer.OAuth {
	return installer.OAuth{
		ClientID:        s.ClientID,
		ClientSecretSet: s.ClientSecret != "",
		AuthorizeURL:    s.OAuthURL,
		Scopes:          s.Scopes,
	}
}

// open opens the registry store (applying migrations) and connects to NATS
// (starting the embedded server when NATS_URL is empty), provisioning the
// streams and the KV bucket.
func open(ctx context.Context, cfg config.Config, logger *slog.Logger, name string) (registry.Store, *bus.Conn, error) {
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
		return nil, nil, fmt.Errorf("open registry store: %w", err)
	}
	conn, err := bus.Connect(ctx, bus.Config{
		URL:           cfg.NATS.URL,
		DataDir:       cfg.DataDir,
		Replicas:      cfg.NATS.Replicas,
		MaxAge:        cfg.NATS.MaxAge,
		MaxBytes:      cfg.NATS.MaxBytes,
		DedupWindow:   cfg.NATS.DedupWindow,
		DeadMaxAge:    cfg.NATS.DeadMaxAge,
		ShutdownGrace: cfg.ShutdownTimeout,
		Name:          name,
	}, logger)
	if err != nil {
		closeStore(store, logger)
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if err := conn.Provision(ctx); err != nil {
		conn.Close()
		closeStore(store, logger)
		return nil, nil, fmt.Errorf("provision NATS: %w", err)
	}
	return store, conn, nil
}

// closeStore closes the store, logging a failure: at that point there is
// nothing else to do about it.
func closeStore(store registry.Store, logger *slog.Logger) {
	if err := store.Close(); err != nil {
		logger.Warn("close registry store", "err", err)
	}
}
