package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/template"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/httpserver"
)

// serve runs the installer, ingest and the dispatcher pool until ctx ends,
// then shuts down in order: stop accepting requests and let those in flight
// finish their publish; stop pulling and let deliveries in flight finish or
// hand them back; stop the background work; close NATS (the embedded
// server flushes its store); close the database.
func serve(ctx context.Context, cfg config.Config, keySource string, stdout, stderr io.Writer) error {
	logger := Logger(stderr, cfg, false)
	logger.Info("jackalope starting", "config", cfg)
	keys, err := Keys(cfg)
	if err != nil {
		return err
	}
	store, conn, err := Open(ctx, cfg, "jackalope", logger, UpdateSettings)
	if err != nil {
		return err
	}
	defer CloseStore(store, logger)
	defer conn.Close()

	bg, stopBG, installations, err := WatchInBackground(ctx, conn)
	if err != nil {
		return err
	}
	defer stopBG()

	reg := Registry()
	inst, err := Installer(cfg, keys, store, conn, logger.With("component", "installer"), reg)
	if err != nil {
		return err
	}
	ing, err := Ingest(cfg, keys, conn, installations, logger.With("component", "ingest"), reg)
	if err != nil {
		return err
	}
	disp, err := Dispatcher(cfg, keys, conn, installations, logger.With("component", "dispatch"), reg)
	if err != nil {
		return err
	}

	var reconciled atomic.Bool
	e := httpserver.New(httpserver.Options{
		Logger:   logger,
		Gatherer: reg,
		Ready: Ready(conn,
			Condition{OK: installations.Loaded, Why: "installations are not loaded yet"},
			Condition{OK: reconciled.Load, Why: "the read model is not reconciled yet"}),
	})
	con, err := Console(cfg, keys, store, conn, inst, logger.With("component", "console"), reg)
	if err != nil {
		return err
	}
	inst.Register(e)
	con.Register(e)
	ing.Register(e)
	e.StaticFS("/static", Static())

	ln, err := httpserver.Listen(ctx, cfg.ListenAddr)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	wg.Go(func() { RunInstallerBackground(bg, inst, conn, logger, &reconciled) })
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		Forever(ctx, logger, "dispatcher", func(ctx context.Context) error {
			return conn.Consume(ctx, cfg.Dispatch.Workers, cfg.Dispatch.MaxAttempts, disp.Handle)
		})
	}()

	if err := banner(stdout, cfg, keySource, ln.Addr().String(), conn.Server(), installations.Len()); err != nil {
		logger.Warn("print start-up notes", "err", err)
	}
	serveErr := httpserver.Serve(ctx, ln, e, cfg.ShutdownTimeout)
	logger.Info("stopped accepting requests; settling deliveries in flight")
	<-consumed
	stopBG()
	wg.Wait()
	logger.Info("jackalope stopped")
	return serveErr
}

var bannerTemplate = template.Must(template.New("banner").Parse(`
Jackalope is running.
  page and webhooks  {{.BaseURL}}/  (listening on {{.Addr}})
  data directory     {{.DataDir}}
  registry           {{.Store}}
  NATS               {{.NATS}}
  secret key         {{.Key}}
  channels           {{.Channels}}

Next:
{{- if .SlackReady}}
  - open {{.BaseURL}}/ and click "Add to Slack" to install into a channel;
{{- else}}
  - to offer "Add to Slack", set {{.Missing}} (see the README, "Slack app setup");
{{- end}}
  - or add a channel from a Slack incoming webhook by hand:
      go run ./cmd/jackalope channels add --webhook-url https://hooks.slack.com/services/... --channel '#jamf'
  - then create webhooks in Jamf Pro (Settings > Global > Webhooks, content type JSON) with the Jamf URL it prints.

`))

// banner prints where Jackalope listens, where its data lives, what it uses
// and what to do next.
func banner(w io.Writer, cfg config.Config, keySource, addr, nats string, channels int) error {
	missing := ""
	switch {
	case cfg.Slack.ClientID == "" && cfg.Slack.ClientSecret == "":
		missing = "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"
	case cfg.Slack.ClientID == "":
		missing = "SLACK_CLIENT_ID"
	case cfg.Slack.ClientSecret == "":
		missing = "SLACK_CLIENT_SECRET"
	}
	return bannerTemplate.Execute(w, map[string]any{
		"BaseURL":    cfg.BaseURL,
		"Addr":       addr,
		"DataDir":    cfg.DataDir,
		"Store":      cfg.Database.Describe(),
		"NATS":       nats,
		"Key":        keySource,
		"Channels":   channels,
		"SlackReady": cfg.Slack.Configured(),
		"Missing":    missing,
	})
}

// Channels runs one `channels` command against the store and KV bucket.
func Channels(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	logger := Logger(stderr, cfg, true)
	keys, err := Keys(cfg)
	if err != nil {
		return err
	}
	store, conn, err := Open(ctx, cfg, "jackalope-channels", logger, CreateMissing)
	if err != nil {
		return err
	}
	defer CloseStore(store, logger)
	defer conn.Close()
	inst, err := Installer(cfg, keys, store, conn, logger, nil)
	if err != nil {
		return err
	}
	return inst.RunChannelsCommand(ctx, args, stdout)
}

// dlq runs one `dlq` command against the dead-letter stream.
func dlq(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	cmd, err := dispatch.ParseDLQCommand(args)
	if err != nil {
		return err
	}
	if cmd.Name == "help" {
		return cmd.Run(ctx, nil, stdout)
	}
	return DLQ(ctx, cfg, Logger(stderr, cfg, true), cmd, stdout)
}

// DLQ connects to NATS and runs a parsed dlq command. Like every command
// it only creates what is missing, so it never changes the services'
// stream limits.
func DLQ(ctx context.Context, cfg config.Config, logger *slog.Logger, cmd dispatch.DLQCommand, stdout io.Writer) error {
	conn, err := ConnectBus(ctx, cfg, "jackalope-dlq", logger, CreateMissing)
	if err != nil {
		return err
	}
	defer conn.Close()
	return cmd.Run(ctx, conn, stdout)
}

const allInOneUsage = `usage:
  jackalope                       serve everything until SIGINT or SIGTERM
  jackalope channels <command>    manage channels by hand (jackalope channels help)
  jackalope dlq <command>         inspect, replay or drop dead letters (jackalope dlq help)

Settings come from the environment; see the README.
`

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")

// AllInOne is the whole of cmd/jackalope: it reads the configuration
// through getenv and serves, or runs the command in args. Logs go to stderr; start-up notes and command output to
// stdout.
func AllInOne(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	command := "serve"
	if len(args) > 0 {
		command = args[0]
	}
	switch command {
	case "help", "-h", "-help", "--help":
		_, err := io.WriteString(stdout, allInOneUsage)
		return err
	case "serve":
		if len(args) > 1 {
			return fmt.Errorf("%w: serve takes no arguments\n%s", ErrUsage, allInOneUsage)
		}
	case "channels", "dlq":
	default:
		return fmt.Errorf("%w: unknown command %q\n%s", ErrUsage, command, allInOneUsage)
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	keySource := "from SECRET_KEY"
	if cfg.SecretKey == "" {
		var generated bool
		if cfg.SecretKey, generated, err = dataDirSecretKey(cfg.DataDir); err != nil {
			return err
		}
		path := filepath.Join(cfg.DataDir, secretKeyFile)
		keySource = "from " + path
		if generated {
			keySource = "generated in " + path + " (keep it: the Jamf URLs depend on it)"
		}
	}
	switch command {
	case "channels":
		return Channels(ctx, cfg, args[1:], stdout, stderr)
	case "dlq":
		return dlq(ctx, cfg, args[1:], stdout, stderr)
	}
	return serve(ctx, cfg, keySource, stdout, stderr)
}
