// Command jackalope runs all of Jackalope in one process: the "Add to
// Slack" page and OAuth install, the Jamf webhook receiver on /jamf/{token},
// and a dispatcher pool, on one port (LISTEN_ADDR, :5000), with an embedded
// NATS server and an SQLite file under DATA_DIR (./data) unless NATS_URL and
// DATABASE_URL point elsewhere. Without SECRET_KEY it generates one, once,
// in DATA_DIR.
//
//	jackalope                      serve until SIGINT or SIGTERM
//	jackalope channels <command>   add, list, rotate, disable, enable, remove, set channels
//	jackalope dlq <command>        list, replay or drop dead letters
//	jackalope keys reseal          seal everything again under SECRET_KEY after a rotation
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/installer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.AllInOne(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
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
	case errors.Is(err, dispatch.ErrUsage), errors.Is(err, app.ErrUsage):
		return 2
	}
	return 1
}
