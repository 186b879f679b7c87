// Command jackalope runs all of Jackalope in one process: the "Add to
// Slack" page and OAuth install, the Jamf webhook receiver on /jamf/{token},
// and a dispatcher pool, on one port (LISTEN_ADDR, :5000), with an embedded
// NATS server and an SQLite file under DATA_DIR (./data) unless NATS_URL and
// DATABASE_URL point elsewhere. Without SECRET_KEY it generates one, once,
// in DATA_DIR.
//
//	jackalope                      serve until SIGINT or SIGTERM
//	jackalope channels <command>   add, list, rotate, disable, enable, remove channels
//	jackalope dlq <command>        list, replay or drop dead letters
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/installer"
)

const usage = `usage:
  jackalope                       serve everything until SIGINT or SIGTERM
  jackalope channels <command>    manage channels by hand (jackalope channels help)
  jackalope dlq <command>         inspect, replay or drop dead letters (jackalope dlq help)

Settings come from the environment; see the README.
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
	_, _ = fmt.Fprintln(stderr, "jackalope:", err)
	var ue *installer.UsageError
	switch {
	case errors.As(err, &ue):
		if ue.Usage != "" {
			_, _ = fmt.Fprint(stderr, "\n"+ue.Usage)
		}
		return 2
	case errors.Is(err, dispatch.ErrUsage), errors.Is(err, errUsage):
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

// run reads the configuration through getenv and serves, or runs the
// command in args. Logs go to stderr; start-up notes and command output to
// stdout.
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
			return fmt.Errorf("%w: serve takes no arguments\n%s", errUsage, usage)
		}
	case "channels", "dlq":
	default:
		return fmt.Errorf("%w: unknown command %q\n%s", errUsage, command, usage)
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
		return channels(ctx, cfg, args[1:], stdout, stderr)
	case "dlq":
		return dlq(ctx, cfg, args[1:], stdout, stderr)
	}
	return serve(ctx, cfg, keySource, stdout, stderr)
}
