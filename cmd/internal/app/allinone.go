package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/installer"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// serve runs the installer, ingest and the dispatcher pool until ctx ends,
// then shuts down in order: stop accepting requests and let those in flight
// finish their publish; stop pulling and let deliveries in flight finish or
// hand them back; stop the background work; close NATS (the embedded
// server flushes its store); close the database.
func serve(ctx context.Context, cfg config.Config, key keyNote, stdout, stderr io.Writer) error {
	logger := Logger(stderr, cfg, false)
	logger.Info("jackalope starting", "config", cfg)
	key.warn(logger)
	LogNotes(logger, cfg)
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
	// Ingest comes first: Jamf Pro waits 2 s for its answer and does not
	// send again, while Slack can wait. While ingest serves a burst, the
	// dispatcher in the same process takes an event from the bus only now
	// and then, and catches up after it.
	ingestBusy := func() bool { return ing.InFlight() >= ingestBusyAt }
	cfg.Dispatch.Hold = cmp.Or(cfg.Dispatch.Hold, allInOneHold)
	disp, err := Dispatcher(cfg, keys, conn, installations, ingestBusy, logger.With("component", "dispatch"), reg)
	if err != nil {
		return err
	}
	if err := PublishKeys(ctx, inst, logger); err != nil {
		return err
	}
	agreement, keysWatched := WatchKeys(bg, conn, keys, logger)
	defer func() { stopBG(); <-keysWatched }()

	var reconciled atomic.Bool
	con, err := Console(cfg, keys, store, conn, inst, logger.With("component", "console"), reg)
	if err != nil {
		return err
	}
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}
	h, err := ListenHTTP(ctx, cfg, true, logger, reg, Ready(conn,
		Condition{OK: installations.Loaded, Why: "installations are not loaded yet"},
		Condition{OK: reconciled.Load, Why: "the read model is not reconciled yet"},
		agreement.Condition(), StoreReachable(store, logger), BacklogHasRoom(conn, logger)))
	if err != nil {
		return err
	}
	inst.Register(h.Public)
	con.Register(h.Public)
	ing.Register(h.Public)
	h.Public.StaticFS("/static", Static())
	if h.OpsAddr() != "" {
		logger.Info("health and metrics on METRICS_ADDR, not on the public port", "metrics_addr", h.OpsAddr(), "addr", h.Addr())
	} else {
		logger.Info("health and metrics on the public port; set METRICS_ADDR to serve them apart", "addr", h.Addr())
	}

	var wg sync.WaitGroup
	wg.Go(func() { RunInstallerBackground(bg, inst, conn, logger, &reconciled) })
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		Forever(ctx, logger, "dispatcher", func(ctx context.Context) error {
			return Deliver(ctx, cfg, conn, disp)
		})
	}()

	if err := banner(stdout, cfg, key.banner(), h.Addr(), h.OpsAddr(), conn.Server(), installations.Len()); err != nil {
		logger.Warn("print start-up notes", "err", err)
	}
	serveErr := h.Serve(ctx, cfg.ShutdownTimeout)
	logger.Info("stopped accepting requests; settling deliveries in flight")
	<-consumed
	stopBG()
	wg.Wait()
	logger.Info("jackalope stopped")
	return serveErr
}

// allInOneHold is the all-in-one's DISPATCH_HOLD unless it is set: the
// events its dispatcher holds in memory. Each costs 1–2 KiB, and the heap
// grows to twice what is live between collections, so the split
// dispatcher's 20000 made about 40 MiB of the all-in-one's peak under a
// flood, and under ingest first its dispatcher pulled them through the
// embedded server during the burst. A digest then carries at most 1500
// events (three quarters): one channel keeps up with a storm of 1500
// events a second at the default pace: a 10,000-event storm at 1,000 a
// second into one channel went out in 10 digests, the last 0.05 s after
// the storm ended; with 500 a digest it took 26–27, the last 16 s after
// (BENCH_ONLY=storm make bench).
const allInOneHold = 2000

// ingestBusyAt is how many webhooks ingest must be serving at once for the
// all-in-one's dispatcher to hold back: a steady few hundred a second keep
// one or two in flight, a burst at the machine's limit tens.
const ingestBusyAt = 8

var bannerTemplate = template.Must(template.New("banner").Parse(`
Jackalope is running.
  page and webhooks  {{.BaseURL}}/  (listening on {{.Addr}})
{{- if .OpsAddr}}
  health, metrics    /healthz, /readyz, /metrics on {{.OpsAddr}} (METRICS_ADDR), not on the public port
{{- else}}
  health, metrics    /healthz, /readyz, /metrics on the public port; set METRICS_ADDR to move them off it
{{- end}}
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
// opsAddr is where /healthz, /readyz and /metrics are served apart, or ""
// when they are on addr.
func banner(w io.Writer, cfg config.Config, keySource, addr, opsAddr, nats string, channels int) error {
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
		"OpsAddr":    opsAddr,
		"DataDir":    cfg.DataDir,
		"Store":      cfg.Database.Describe(),
		"NATS":       nats,
		"Key":        keySource,
		"Channels":   channels,
		"SlackReady": cfg.Slack.Configured(),
		"Missing":    missing,
	})
}

// Channels runs one `channels` command against the store and KV bucket;
// args are what follows "channels", --init included. It refuses to start a
// new, empty registry or NATS store unless --init is given (see
// CheckInstance), and says on stderr what it acts on before it does. Every
// command but list first checks that SECRET_KEY is the installer's: a
// channel added with another key would show active and answer 404
// forever.
func Channels(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	args, init := CommandArgs(args)
	if done, err := installer.ChannelsHelp(args, stdout); done || err != nil {
		return err
	}
	return withInstaller(ctx, cfg, "jackalope-channels", init, stderr, func(inst *installer.Installer, conn *bus.Conn, keys *secret.Keys) error {
		if args[0] != "list" {
			if err := CheckCommandKeys(ctx, inst, conn, keys); err != nil {
				return err
			}
		}
		return inst.RunChannelsCommand(ctx, args, stdout)
	})
}

// KeysCommand runs one `keys` command (reseal) against the store and KV
// bucket, as Channels does. Resealing takes the keys the installer
// publishes: with another SECRET_KEY it would seal everything under a key
// nobody else holds.
func KeysCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	args, init := CommandArgs(args)
	if done, err := installer.KeysHelp(args, stdout); done || err != nil {
		return err
	}
	return withInstaller(ctx, cfg, "jackalope-keys", init, stderr, func(inst *installer.Installer, conn *bus.Conn, keys *secret.Keys) error {
		if args[0] == "reseal" {
			pub, ok, err := conn.KeyFingerprints(ctx)
			if err != nil {
				return err
			}
			if ok && pub.Current != keys.Fingerprint() {
				return fmt.Errorf("SECRET_KEY is not the key the installer seals with (installer fingerprint %s, this one %s): "+
					"start the installer (or jackalope) with the new SECRET_KEY and the old one as SECRET_KEY_PREVIOUS first, "+
					"then run keys reseal with the same two", pub.Current, keys.Fingerprint())
			}
		}
		return inst.RunKeysCommand(ctx, args, stdout)
	})
}

// withInstaller opens the store and NATS for a command, builds the
// installer and runs f with it. Unless init, it refuses to start a new,
// empty registry or NATS store (see CheckInstance), and it says on stderr
// what it acts on before it does.
func withInstaller(ctx context.Context, cfg config.Config, name string, init bool, stderr io.Writer,
	f func(inst *installer.Installer, conn *bus.Conn, keys *secret.Keys) error) error {
	needs := Needs{Store: true, NATS: true}
	if err := CheckInstance(cfg, needs, init); err != nil {
		return err
	}
	logger := Logger(stderr, cfg, true)
	keys, err := Keys(cfg)
	if err != nil {
		return err
	}
	announce(stderr, cfg, needs)
	store, conn, err := Open(ctx, cfg, name, logger, CreateMissing)
	if err != nil {
		return err
	}
	defer CloseStore(store, logger)
	defer conn.Close()
	inst, err := Installer(cfg, keys, store, conn, logger, nil)
	if err != nil {
		return err
	}
	return f(inst, conn, keys)
}

// dlq runs one `dlq` command against the dead-letter stream.
func dlq(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	args, init := CommandArgs(args)
	cmd, err := dispatch.ParseDLQCommand(args)
	if err != nil {
		return err
	}
	if cmd.Name == "help" {
		return cmd.Run(ctx, nil, stdout)
	}
	return DLQ(ctx, cfg, Logger(stderr, cfg, true), cmd, init, stdout, stderr)
}

// history runs one `history` command against the history stream.
func history(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	args, init := CommandArgs(args)
	cmd, err := dispatch.ParseHistoryCommand(args)
	if err != nil {
		return err
	}
	if cmd.Name == "help" {
		return cmd.Run(ctx, nil, time.Now(), stdout)
	}
	return History(ctx, cfg, Logger(stderr, cfg, true), cmd, init, stdout, stderr)
}

// DLQ connects to NATS and runs a parsed dlq command (see onBus).
func DLQ(ctx context.Context, cfg config.Config, logger *slog.Logger, cmd dispatch.DLQCommand, init bool, stdout, stderr io.Writer) error {
	return onBus(ctx, cfg, logger, "jackalope-dlq", init, stderr, func(conn *bus.Conn) error {
		return cmd.Run(ctx, conn, stdout)
	})
}

// History connects to NATS and runs a parsed history command (see onBus).
func History(ctx context.Context, cfg config.Config, logger *slog.Logger, cmd dispatch.HistoryCommand, init bool, stdout, stderr io.Writer) error {
	return onBus(ctx, cfg, logger, "jackalope-history", init, stderr, func(conn *bus.Conn) error {
		return cmd.Run(ctx, conn, time.Now(), stdout)
	})
}

// onBus runs a command that needs only NATS. Like every command it only
// creates what is missing, so it never changes the services' stream
// limits, and without init it refuses to start a new, empty embedded NATS
// store (see CheckInstance). It says on stderr which NATS it acts on before
// it does.
func onBus(ctx context.Context, cfg config.Config, logger *slog.Logger, client string, init bool, stderr io.Writer, run func(*bus.Conn) error) error {
	needs := Needs{NATS: true}
	if err := CheckInstance(cfg, needs, init); err != nil {
		return err
	}
	announce(stderr, cfg, needs)
	conn, err := ConnectBus(ctx, cfg, client, logger, CreateMissing)
	if err != nil {
		return err
	}
	defer conn.Close()
	return run(conn)
}

const allInOneUsage = `usage:
  jackalope                       serve everything until SIGINT or SIGTERM
  jackalope channels <command>    manage channels by hand (jackalope channels help)
  jackalope dlq <command>         inspect, replay or drop dead letters (jackalope dlq help)
  jackalope history resend ...    deliver again what a channel got lately (jackalope history help)
  jackalope keys reseal           seal everything again under SECRET_KEY after a key rotation (jackalope keys help)
  jackalope nats-creds DIR        write nkey seeds for the NATS users of deploy/nats

The commands act on the instance in DATA_DIR (or NATS_URL, DATABASE_URL)
and refuse to start a new, empty one there unless given --init.
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
	case "channels", "dlq", "history", "keys":
	case "nats-creds":
		// It makes files only: no configuration, no NATS.
		return natsCreds(args[1:], stdout)
	default:
		return fmt.Errorf("%w: unknown command %q\n%s", ErrUsage, command, allInOneUsage)
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch command {
	case "dlq":
		// Dead letters and the history need no key: none is generated
		// for them.
		return dlq(ctx, cfg, args[1:], stdout, stderr)
	case "history":
		return history(ctx, cfg, args[1:], stdout, stderr)
	}
	if command != "serve" {
		// channels and keys: checked before a key is generated into a new
		// directory.
		help := installer.ChannelsHelp
		if command == "keys" {
			help = installer.KeysHelp
		}
		rest, init := CommandArgs(args[1:])
		if done, err := help(rest, stdout); done || err != nil {
			return err
		}
		if err := CheckInstance(cfg, Needs{Store: true, NATS: true, DataDirKey: true}, init); err != nil {
			return err
		}
	}
	key := keyNote{source: "from SECRET_KEY"}
	if cfg.SecretKey == "" {
		var generated bool
		if cfg.SecretKey, generated, key.weak, err = dataDirSecretKey(cfg.DataDir); err != nil {
			return err
		}
		key.path = filepath.Join(cfg.DataDir, secretKeyFile)
		key.source = "from " + key.path
		if generated {
			key.source = "generated in " + key.path + " (keep it: the Jamf URLs depend on it)"
		}
	}
	switch command {
	case "channels":
		key.warn(Logger(stderr, cfg, true))
		return Channels(ctx, cfg, args[1:], stdout, stderr)
	case "keys":
		key.warn(Logger(stderr, cfg, true))
		return KeysCommand(ctx, cfg, args[1:], stdout, stderr)
	}
	if getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(allInOneGCPercent))
	}
	return serve(ctx, cfg, key, stdout, stderr)
}

// allInOneGCPercent is the garbage collector's target in the all-in-one
// when GOGC is not set. Its live heap under a flood is mostly the embedded
// NATS server's file store block buffers (8 MiB each, without pointers, so
// they cost the collector nothing to mark), and at the default of 100 the
// heap grows to twice that between collections. At 50 the peak under the
// flood benchmark fell by another 35 MiB, for about a tenth of the
// requests answered (docs/benchmarks.md); a memory limit (GOMEMLIMIT)
// instead made the collector run so often that it halved them.
const allInOneGCPercent = 50

// keyNote says where the all-in-one's secret key comes from, and why it
// should be rotated when it is weak.
type keyNote struct {
	source string
	path   string // the key file in DATA_DIR, if the key comes from there
	weak   error  // secret.CheckKey's answer for a key file kept from before
}

// warn logs, loudly, that a key file kept from before is weak. It is used
// all the same: every Jamf URL and stored webhook depends on it.
func (k keyNote) warn(logger *slog.Logger) {
	if k.weak != nil {
		logger.Warn("the secret key in DATA_DIR is weak: rotate it (see the README, Rotating SECRET_KEY)", "path", k.path, "err", k.weak)
	}
}

// banner is what the start-up notes say of the key.
func (k keyNote) banner() string {
	if k.weak != nil {
		return k.source + "; WEAK (" + k.weak.Error() + "): rotate it, see the README (Rotating SECRET_KEY)"
	}
	return k.source
}
