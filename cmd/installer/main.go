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
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/installer"
)

const usage = `usage: installer [serve]
       installer channels <command> [arguments]
       installer keys reseal

Without a command (or with serve) the installer serves the "Add to Slack"
page on LISTEN_ADDR. "installer channels help" lists the channels commands;
they act on DATABASE_URL and NATS_URL (or an SQLite file and the embedded
NATS store in DATA_DIR, which they do not create unless given --init).
"installer keys reseal" seals everything again under SECRET_KEY after a key
rotation ("installer keys help").
Configuration comes from the environment (see the README).
`

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
	case "channels", "keys":
		// Answered before the configuration is read, so that help needs
		// no SECRET_KEY.
		help := installer.ChannelsHelp
		if command == "keys" {
			help = installer.KeysHelp
		}
		rest, _ := app.CommandArgs(args[1:])
		if done, err := help(rest, stdout); done || err != nil {
			return err
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
	switch command {
	case "channels":
		return app.Channels(ctx, cfg, args[1:], stdout, stderr)
	case "keys":
		return app.KeysCommand(ctx, cfg, args[1:], stdout, stderr)
	}
	return serve(ctx, cfg, app.Logger(stderr, cfg, false))
}

// serve runs the installer service until ctx ends, then shuts down in
// order: stop accepting requests and let those in flight finish, stop the
// background work, close NATS, close the store.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	logger.Info("installer starting", "config", cfg)
	keys, err := app.Keys(cfg)
	if err != nil {
		return err
	}
	store, conn, err := app.Open(ctx, cfg, "jackalope-installer", logger, app.UpdateSettings)
	if err != nil {
		return err
	}
	defer app.CloseStore(store, logger)
	defer conn.Close()

	reg := app.Registry()
	inst, err := app.Installer(cfg, keys, store, conn, logger, reg)
	if err != nil {
		return err
	}
	if err := app.PublishKeys(ctx, inst, logger); err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	agreement, keysWatched := app.WatchKeys(bg, conn, keys, logger)
	var reconciled atomic.Bool
	con, err := app.Console(cfg, keys, store, conn, inst, logger.With("component", "console"), reg)
	if err != nil {
		return err
	}
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}
	h, err := app.ListenHTTP(ctx, cfg, false, logger, reg,
		app.Ready(conn, app.Condition{OK: reconciled.Load, Why: "the read model is not reconciled yet"},
			agreement.Condition(), app.StoreReachable(store, logger)))
	if err != nil {
		return err
	}
	inst.Register(h.Public)
	con.Register(h.Public)
	h.Public.StaticFS("/static", app.Static())
	logger.Info("installer listening", "addr", h.Addr(), "metrics_addr", h.OpsAddr(), "base_url", cfg.BaseURL,
		"add_to_slack", cfg.Slack.Configured())

	var wg sync.WaitGroup
	wg.Go(func() { app.RunInstallerBackground(bg, inst, conn, logger, &reconciled) })
	err = h.Serve(ctx, cfg.ShutdownTimeout)
	stop()
	wg.Wait()
	<-keysWatched
	logger.Info("installer stopped")
	return err
}
