// Command dispatcher delivers the Jamf Pro events waiting in JetStream to
// their Slack channels. Any number of dispatchers share the durable
// consumer "dispatch" and keep each channel to one pace between them;
// each posts up to DISPATCH_WORKERS messages at once and serves /healthz,
// /readyz and /metrics on METRICS_ADDR.
//
//	dispatcher                 deliver events until SIGINT or SIGTERM
//	dispatcher dlq list|replay|drop ...
//	                           inspect, replay or drop dead letters
//	dispatcher history resend ...
//	                           deliver again what a channel got lately
//
// Every setting comes from the environment (see the README). On a shared
// NATS server the dispatcher creates no stream: it waits until the
// installer has created JAMF_EVENTS with its consumer "dispatch",
// JAMF_DEAD, JAMF_CONTROL and the buckets "installations", "delivery" and
// "keyring".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/httpserver"
)

const usage = `usage:
  dispatcher                 deliver events to Slack until SIGINT or SIGTERM
  dispatcher dlq ...         inspect, replay or drop dead letters (dispatcher dlq help)
  dispatcher history ...     deliver again what a channel got lately (dispatcher history help)
dlq acts on NATS_URL (or the embedded store in DATA_DIR, which it does not
create unless given --init).
Settings come from the environment; see the README.
`

// httpGrace is how long the side port lets a scrape in flight finish.
const httpGrace = 2 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		if errors.Is(err, dispatch.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole dispatcher: it reads the configuration through getenv
// and either delivers events until ctx ends or runs the dlq subcommand in
// args. Logs go to stderr, command output to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		cmd  dispatch.DLQCommand
		hist dispatch.HistoryCommand
		init bool
	)
	if len(args) > 0 {
		switch args[0] {
		case "dlq":
			var (
				rest []string
				err  error
			)
			rest, init = app.CommandArgs(args[1:])
			if cmd, err = dispatch.ParseDLQCommand(rest); err != nil {
				return err
			}
		case "history":
			var (
				rest []string
				err  error
			)
			rest, init = app.CommandArgs(args[1:])
			if hist, err = dispatch.ParseHistoryCommand(rest); err != nil {
				return err
			}
			if hist.Name == "help" {
				return hist.Run(ctx, nil, time.Now(), stdout)
			}
		case "help", "-h", "-help", "--help":
			_, err := io.WriteString(stdout, usage)
			return err
		default:
			return fmt.Errorf("%w: unknown command %q\n%s", dispatch.ErrUsage, args[0], usage)
		}
	}
	if cmd.Name == "help" {
		return cmd.Run(ctx, nil, stdout)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := app.Logger(stderr, cfg, cmd.Name != "" || hist.Name != "")
	switch {
	case cmd.Name != "":
		return app.DLQ(ctx, cfg, logger, cmd, init, stdout, stderr)
	case hist.Name != "":
		return app.History(ctx, cfg, logger, hist, init, stdout, stderr)
	}
	return serve(ctx, cfg, logger)
}

// serve delivers events until ctx ends, then stops pulling, lets the
// deliveries in flight finish or hands them back within SHUTDOWN_TIMEOUT,
// closes the side port and NATS, and returns.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := cfg.RequireSecretKey(); err != nil {
		return err
	}
	keys, err := app.Keys(cfg)
	if err != nil {
		return err
	}
	logger.Info("dispatcher starting", "config", cfg)
	app.LogNotes(logger, cfg)
	conn, err := app.ConnectBus(ctx, cfg, "jackalope-dispatcher", logger, app.Await(bus.DispatchNeeds))
	if err != nil {
		return err
	}
	defer conn.Close()

	// The read model and the side port outlive ctx: deliveries in flight
	// still look installations up during the shutdown grace, and health
	// and metrics answer until the end.
	bg, stopBG, installations, err := app.WatchInBackground(ctx, conn)
	if err != nil {
		return err
	}
	defer stopBG()

	reg := app.Registry()
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}
	d, err := app.Dispatcher(cfg, keys, conn, installations, nil, logger, reg)
	if err != nil {
		return err
	}
	ln, err := httpserver.Listen(ctx, cfg.MetricsAddr)
	if err != nil {
		return err
	}
	agreement, keysWatched := app.WatchKeys(bg, conn, keys, logger)
	defer func() { stopBG(); <-keysWatched }()
	var consuming atomic.Bool
	e := httpserver.New(httpserver.Options{
		Logger:   logger,
		Gatherer: reg,
		Ready:    app.Ready(conn, agreement.Condition(), app.Condition{OK: consuming.Load, Why: "not consuming yet"}),
	})
	served := make(chan error, 1)
	go func() { served <- httpserver.Serve(bg, ln, e, httpGrace) }()

	// A dispatcher whose keys do not match the installer's would park
	// every event it cannot open; it waits, not ready, for the right keys.
	if err := agreement.Wait(ctx); err != nil {
		stopBG()
		return <-served
	}
	consuming.Store(true)
	logger.Info("dispatcher consuming", "workers", cfg.Dispatch.Workers, "delivery_deadline", cfg.Dispatch.Deadline.String(),
		"installations", installations.Len(), "metrics_addr", ln.Addr().String())
	consumeErr := app.Deliver(ctx, cfg, conn, d)
	consuming.Store(false)
	if consumeErr == nil {
		logger.Info("dispatcher stopped pulling; deliveries in flight are settled")
	}
	stopBG()
	serveErr := <-served
	if consumeErr != nil {
		return fmt.Errorf("consume: %w", consumeErr)
	}
	return serveErr
}
