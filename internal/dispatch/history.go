package dispatch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// History is the history of delivered events as the history command uses
// it; the bus connection satisfies it.
type History interface {
	// History lists the delivered events of one installation kept,
	// delivered from since to until.
	History(ctx context.Context, installationID string, since, until time.Time) ([]jamf.DeadLetter, error)
	// ResendHistory sends them again.
	ResendHistory(ctx context.Context, installationID string, since, until time.Time) (int, error)
}

// HistoryUsage describes the history command.
const HistoryUsage = `usage:
  history resend --installation ID --since DURATION [--yes]
      deliver again the events delivered to the installation's channel in
      the last DURATION (e.g. 2h), as kept in the history (HISTORY_MAX_AGE);
      without --yes it only says what it would send
`

// HistoryCommand is a parsed history command line.
type HistoryCommand struct {
	Name         string // resend or help
	Installation string
	Since        time.Duration
	Yes          bool
}

// ParseHistoryCommand parses the words after "history". A command line it
// does not take gives an error wrapping ErrUsage, so a main can refuse it
// before it connects to anything.
func ParseHistoryCommand(args []string) (HistoryCommand, error) {
	if len(args) == 0 {
		return HistoryCommand{}, fmt.Errorf("%w: history needs a command\n%s", ErrUsage, HistoryUsage)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return HistoryCommand{Name: "help"}, nil
	case "resend":
	default:
		return HistoryCommand{}, fmt.Errorf("%w: unknown history command %q\n%s", ErrUsage, args[0], HistoryUsage)
	}
	c := HistoryCommand{Name: args[0]}
	fs := flag.NewFlagSet("history "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Installation, "installation", "", "installation `ID`")
	fs.DurationVar(&c.Since, "since", 0, "how far back")
	fs.BoolVar(&c.Yes, "yes", false, "send, rather than say what would be sent")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return HistoryCommand{Name: "help"}, nil
		}
		return HistoryCommand{}, fmt.Errorf("%w: history %s: %w\n%s", ErrUsage, c.Name, err, HistoryUsage)
	}
	switch {
	case fs.NArg() > 0:
		return HistoryCommand{}, fmt.Errorf("%w: history %s: unexpected argument %q\n%s", ErrUsage, c.Name, fs.Arg(0), HistoryUsage)
	case c.Installation == "":
		return HistoryCommand{}, fmt.Errorf("%w: history %s needs --installation ID\n%s", ErrUsage, c.Name, HistoryUsage)
	case c.Since <= 0:
		return HistoryCommand{}, fmt.Errorf("%w: history %s needs --since DURATION, such as 2h\n%s", ErrUsage, c.Name, HistoryUsage)
	}
	return c, nil
}

// Run runs c against h at now and writes what it found or did to stdout:
// counts, event names and times, never a body.
func (c HistoryCommand) Run(ctx context.Context, h History, now time.Time, stdout io.Writer) error {
	if c.Name == "help" {
		_, err := io.WriteString(stdout, HistoryUsage)
		return err
	}
	// The window ends at now, so that --yes sends what was listed and
	// nothing delivered meanwhile.
	since := now.Add(-c.Since)
	events, err := h.History(ctx, c.Installation, since, now)
	if err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	scope := fmt.Sprintf(" delivered to installation %s since %s", c.Installation, stamp(since))
	if len(events) == 0 {
		_, err := fmt.Fprintf(stdout, "no events%s\n", scope)
		return err
	}
	kinds := map[string]int{}
	for _, e := range events {
		kinds[oneLine(e.Event, 48)]++
	}
	found := fmt.Sprintf("%d event%s%s (%s to %s): %s", len(events), plural(len(events)), scope,
		stamp(events[0].At), stamp(events[len(events)-1].At), counts(kinds))
	if !c.Yes {
		_, err := fmt.Fprintf(stdout, "would resend %s\nrun again with --yes to send them\n", found)
		return err
	}
	n, err := h.ResendHistory(ctx, c.Installation, since, now)
	if err != nil {
		return fmt.Errorf("resend: %w (%d sent before the failure)", err, n)
	}
	_, err = fmt.Fprintf(stdout, "resent %s\n", strings.Replace(found, fmt.Sprintf("%d event", len(events)), fmt.Sprintf("%d event", n), 1))
	return err
}
