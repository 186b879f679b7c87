// Command ingest is the webhook receiver as a service of its own: Jamf Pro
// posts to /jamf/{token} on LISTEN_ADDR, and ingest answers 204 once the
// event is stored in JetStream. It needs no database: installations come
// from the KV bucket "installations", which the installer keeps and ingest
// watches into memory.
//
// At start it connects to NATS_URL (or, unset, starts an embedded server
// under DATA_DIR, for trying it alone) and provisions the streams and the
// bucket. Provisioning is idempotent and every service reads the same
// settings from the same variables, so ingest can start before the
// installer and the dispatchers, in any order, and its 204 never depends on
// another service having run first.
//
// /healthz answers once the process serves; /readyz once NATS is connected
// and the installations are loaded, and again 503 while NATS is away;
// /metrics serves the ingest series plus the Go runtime's. On SIGINT or
// SIGTERM it stops accepting, lets the requests in flight finish their
// publish (each is bounded by PUBLISH_TIMEOUT), and only then closes NATS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/ingest"
	"github.com/jackalope-app/jackalope/internal/secret"
)

const usage = `usage: ingest

Ingest takes no flags: it is configured by the environment (SECRET_KEY,
NATS_URL, LISTEN_ADDR, MAX_BODY_BYTES, PUBLISH_TIMEOUT, ...); see the README.
`

// startTimeout bounds connecting to NATS and provisioning.
const startTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// run starts ingest with the configuration getenv gives and serves until
// ctx ends. Logs go to stdout; usage to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.RequireSecretKey(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	logger.Info("ingest starting", "config", cfg)

	keys, err := secret.New(cfg.SecretKey)
	if err != nil {
		return fmt.Errorf("SECRET_KEY: %w", err)
	}

	startCtx, cancelStart := context.WithTimeout(ctx, startTimeout)
	defer cancelStart()
	conn, err := bus.Connect(startCtx, busConfig(cfg), logger)
	if err != nil {
		return err
	}
	// Closed last, after the server let the requests in flight finish and
	// after the watch below stopped (its context is cancelled first: defers
	// run in reverse).
	defer conn.Close()
	if err := conn.Provision(startCtx); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	installations, err := conn.WatchInstallations(watchCtx)
	if err != nil {
		return err
	}
	cancelStart()

	maxBody := ingest.MaxBody(cfg.Ingest.MaxBodyBytes, conn.MaxPayload())
	if maxBody < cfg.Ingest.MaxBodyBytes {
		logger.Info("MAX_BODY_BYTES lowered to what NATS accepts", "max_body_bytes", maxBody, "nats_max_payload", conn.MaxPayload())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := ingest.New(ingest.Options{
		Lookup:         installations,
		Publisher:      conn,
		Hasher:         keys.HashToken,
		MaxBodyBytes:   maxBody,
		PublishTimeout: cfg.Ingest.PublishTimeout,
		Logger:         logger,
		Registerer:     reg,
	})
	if err != nil {
		return err
	}
	e := httpserver.New(httpserver.Options{
		Logger:   logger,
		Gatherer: reg,
		Ready: func() error {
			if !conn.Connected() {
				return errors.New("NATS is not connected")
			}
			if !installations.Loaded() {
				return errors.New("installations are not loaded yet")
			}
			return nil
		},
	})
	h.Register(e)

	ln, err := httpserver.Listen(ctx, cfg.ListenAddr)
	if err != nil {
		return err
	}
	logger.Info("ingest listening", "addr", ln.Addr().String(), "installations", installations.Len(), "max_body_bytes", maxBody)
	if err := httpserver.Serve(ctx, ln, e, cfg.ShutdownTimeout); err != nil {
		return err
	}
	logger.Info("ingest stopped accepting; closing NATS")
	return nil
}

// busConfig maps the configuration onto the bus's.
func busConfig(cfg config.Config) bus.Config {
	return bus.Config{
		URL:         cfg.NATS.URL,
		DataDir:     cfg.DataDir,
		Replicas:    cfg.NATS.Replicas,
		MaxAge:      cfg.NATS.MaxAge,
		MaxBytes:    cfg.NATS.MaxBytes,
		DedupWindow: cfg.NATS.DedupWindow,
		DeadMaxAge:  cfg.NATS.DeadMaxAge,
		Name:        "jackalope-ingest",
	}
}
