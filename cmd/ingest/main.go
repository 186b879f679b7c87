// Command ingest is the webhook receiver as a service of its own: Jamf Pro
// posts to /jamf/{token} on LISTEN_ADDR, and ingest answers 204 once the
// event is stored in JetStream. It needs no database: installations come
// from the KV bucket "installations", which the installer keeps and ingest
// watches into memory.
//
// At start it connects to NATS_URL and waits until the stream JAMF_EVENTS
// and the bucket "installations" exist: the installer creates them, and
// ingest's NATS user may only publish events and read (deploy/nats), so
// ingest can start in any order and takes no request until they are there.
// Without NATS_URL it starts an embedded server under DATA_DIR, for trying
// it alone, and creates them itself.
//
// /healthz answers once the process serves; /readyz once NATS is connected,
// the installations are loaded and SECRET_KEY matches the installer's
// (the key fingerprints it publishes), and again 503 while NATS is away;
// /metrics serves the ingest series plus the Go runtime's. The three are
// served on METRICS_ADDR (:9090), never on the public LISTEN_ADDR. On SIGINT or
// SIGTERM it stops accepting, lets the requests in flight finish their
// publish (each is bounded by PUBLISH_TIMEOUT), and only then closes NATS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
)

const usage = `usage: ingest

Ingest takes no flags: it is configured by the environment (SECRET_KEY,
NATS_URL, LISTEN_ADDR, MAX_BODY_BYTES, PUBLISH_TIMEOUT, ...); see the README.
`

// gcPercent is the garbage collector's target when GOGC is not set and NATS
// runs elsewhere. Ingest's live heap is then a few megabytes (body buffers
// are pooled), so at the default of 100 the collector runs dozens of times
// a second under load; at 400 ingest spends about a tenth less CPU per
// request (docs/benchmarks.md) for a heap of a few tens of megabytes. With
// the embedded server JetStream's dedup index shares the heap, and the
// default stays.
const gcPercent = 400

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
// ctx ends. Logs go to stderr, as JSON; stdout is unused.
func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
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
	logger := app.Logger(stderr, cfg, false)
	logger.Info("ingest starting", "config", cfg)
	if cfg.NATS.URL != "" && getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	}
	keys, err := app.Keys(cfg)
	if err != nil {
		return err
	}

	conn, err := app.ConnectBus(ctx, cfg, "jackalope-ingest", logger, app.Await(bus.IngestNeeds))
	if err != nil {
		return err
	}
	// Closed last: after the server let the requests in flight finish their
	// publish, and after the watch below stopped (defers run in reverse).
	defer conn.Close()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	installations, err := conn.WatchInstallations(watchCtx)
	if err != nil {
		return fmt.Errorf("watch installations: %w", err)
	}

	reg := app.Registry()
	h, err := app.Ingest(cfg, keys, conn, installations, logger, reg)
	if err != nil {
		return err
	}
	agreement, keysWatched := app.WatchKeys(watchCtx, conn, keys, logger)
	defer func() { stopWatch(); <-keysWatched }()
	srv, err := app.ListenHTTP(ctx, cfg, false, logger, reg,
		app.Ready(conn, app.Condition{OK: installations.Loaded, Why: "installations are not loaded yet"},
			agreement.Condition(), app.BacklogHasRoom(conn, logger)))
	if err != nil {
		return err
	}
	h.Register(srv.Public)
	logger.Info("ingest listening", "addr", srv.Addr(), "metrics_addr", srv.OpsAddr(), "installations", installations.Len())
	if err := srv.Serve(ctx, cfg.ShutdownTimeout); err != nil {
		return err
	}
	logger.Info("ingest stopped accepting; closing NATS")
	return nil
}
