// Command loadgen drives Jamf-like webhook traffic at a running ingest (or
// all-in-one) and reports what it measured: requests per second, latency
// percentiles and the answers' status counts. It is where the figures in
// docs/benchmarks.md come from.
//
//	loadgen -url http://127.0.0.1:5000 -tokens tokens.txt -c 64 -d 20s
//	loadgen -url http://127.0.0.1:5000 -token T1 -token T2 -n 100000 -event ComputerCheckIn
//	loadgen -url http://127.0.0.1:5000 -token T -body webhook.xml
//
// Every request carries a distinct body (the udid, serial number and event
// timestamp are rewritten per request), so JetStream's dedup window does
// not fold them into one message. Requests go round-robin across the
// tokens, to /jamf/{token} under -url; a token may be given as the whole
// Jamf URL that "channels add" prints.
//
// With -serve-bare ADDR it instead serves a bare net/http handler that reads
// the body and answers 204: the ceiling a Go HTTP server reaches on the
// same machine, for a back-to-back comparison with the same client. With
// -tls-cert and -tls-key it serves HTTPS, and then also stands in for
// Slack's incoming webhooks when an all-in-one is measured with its
// dispatcher delivering (see docs/benchmarks.md). With -publish NATS_URL as
// well (or -publish embedded: a NATS server started in this process), it
// serves plain JetStream instead (internal/plainjs): a handler that
// publishes each body and answers 204 once the stream acknowledged it; with
// -deliver WEBHOOK_URL it also consumes, renders, posts and acks each
// event, -c at once, as a dispatcher must at the least; with -group N it
// stores the requests in flight several to a stream message instead (N
// publishers), to measure that design.
//
// A run is always bounded: by -n requests, by -d (10s when neither is set),
// and by the limits on both. Aim it only at servers you run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// errUsage marks a command-line mistake; the flag package has printed it.
var errUsage = errors.New("usage")

// run parses args and either serves the bare handler or runs the load.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.serveBare != "" {
		return serveBare(ctx, cfg, stdout)
	}
	res, err := drive(ctx, cfg)
	if err != nil {
		return err
	}
	if err := res.print(stdout, cfg); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if cfg.strict && res.failed() > 0 {
		return fmt.Errorf("strict: %d of %d requests failed", res.failed(), res.requests+res.transportErrors)
	}
	return nil
}
