package dispatch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// DLQ is the dead-letter stream as the dlq command uses it; the bus
// connection satisfies it.
type DLQ interface {
	// ListDead lists the dead letters of one installation, or of all when
	// installationID is empty.
	ListDead(ctx context.Context, installationID string) ([]jamf.DeadLetter, error)
	// ReplayDead republishes the dead letters of one installation, or of
	// all when all is set, to the event stream and removes them.
	ReplayDead(ctx context.Context, installationID string, all bool) (int, error)
	// DropDead removes the dead letters of one installation, or of all.
	DropDead(ctx context.Context, installationID string, all bool) (int, error)
	// ReplayDeadLetter and DropDeadLetter do the same to one dead letter
	// of installationID, the one at seq; they return 0 when there is none.
	ReplayDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error)
	DropDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error)
}

// ErrUsage is wrapped by the errors RunDLQCommand returns for a command
// line it does not understand; mains exit with status 2 on it.
var ErrUsage = errors.New("usage")

// DLQUsage describes the dlq command.
const DLQUsage = `usage:
  dlq list   [--installation ID]                      list dead letters (all installations by default)
  dlq replay (--installation ID [--seq N] | --all)  republish dead letters for delivery and remove them
  dlq drop   (--installation ID [--seq N] | --all)  remove dead letters for good
`

// DLQCommand is a parsed dlq command line.
type DLQCommand struct {
	Name         string // list, replay, drop or help
	Installation string // one installation's dead letters; empty for all (list) or with All
	All          bool   // replay or drop every installation's dead letters
	Seq          uint64 // replay or drop only the dead letter at this SEQ (see list) of Installation
}

// ParseDLQCommand parses the words after "dlq": list [--installation ID],
// replay (--installation ID | --all), drop (--installation ID | --all), or
// help. A command line it does not take gives an error wrapping ErrUsage,
// so a main can refuse it before it connects to anything.
func ParseDLQCommand(args []string) (DLQCommand, error) {
	if len(args) == 0 {
		return DLQCommand{}, fmt.Errorf("%w: dlq needs a command\n%s", ErrUsage, DLQUsage)
	}
	c := DLQCommand{Name: args[0]}
	switch c.Name {
	case "help", "-h", "-help", "--help":
		return DLQCommand{Name: "help"}, nil
	case "list", "replay", "drop":
	default:
		return DLQCommand{}, fmt.Errorf("%w: unknown dlq command %q\n%s", ErrUsage, c.Name, DLQUsage)
	}
	fs := flag.NewFlagSet("dlq "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Installation, "installation", "", "installation `ID`")
	if c.Name != "list" {
		fs.BoolVar(&c.All, "all", false, "every installation")
		fs.Uint64Var(&c.Seq, "seq", 0, "only the dead letter at `SEQ`")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return DLQCommand{Name: "help"}, nil
		}
		return DLQCommand{}, fmt.Errorf("%w: dlq %s: %w\n%s", ErrUsage, c.Name, err, DLQUsage)
	}
	if fs.NArg() > 0 {
		return DLQCommand{}, fmt.Errorf("%w: dlq %s: unexpected argument %q\n%s", ErrUsage, c.Name, fs.Arg(0), DLQUsage)
	}
	if c.Name != "list" && (c.Installation == "") == !c.All {
		return DLQCommand{}, fmt.Errorf("%w: dlq %s needs exactly one of --installation ID and --all\n%s", ErrUsage, c.Name, DLQUsage)
	}
	if c.Seq != 0 && c.Installation == "" {
		return DLQCommand{}, fmt.Errorf("%w: dlq %s --seq needs --installation ID\n%s", ErrUsage, c.Name, DLQUsage)
	}
	return c, nil
}

// Run runs c against dlq and writes what it found or did to stdout:
// counts, reasons, event names and times, never a webhook URL, a token or
// an event's body.
func (c DLQCommand) Run(ctx context.Context, dlq DLQ, stdout io.Writer) error {
	switch c.Name {
	case "help":
		_, err := io.WriteString(stdout, DLQUsage)
		return err
	case "list":
		return listDead(ctx, dlq, c.Installation, stdout)
	case "replay", "drop":
		if c.Seq != 0 {
			return settleDeadLetter(ctx, dlq, c.Name, c.Installation, c.Seq, stdout)
		}
		return settleDead(ctx, dlq, c.Name, c.Installation, c.All, stdout)
	}
	return fmt.Errorf("%w: unknown dlq command %q\n%s", ErrUsage, c.Name, DLQUsage)
}

// RunDLQCommand parses args (the words after "dlq", see ParseDLQCommand)
// and runs the command against dlq, writing its report to stdout. The
// dispatcher's and the all-in-one's "dlq" subcommands are this function.
func RunDLQCommand(ctx context.Context, args []string, dlq DLQ, stdout io.Writer) error {
	c, err := ParseDLQCommand(args)
	if err != nil {
		return err
	}
	return c.Run(ctx, dlq, stdout)
}

// listDead prints one line per dead letter and a summary by reason.
func listDead(ctx context.Context, dlq DLQ, installation string, w io.Writer) error {
	dead, err := dlq.ListDead(ctx, installation)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	if len(dead) == 0 {
		_, err := fmt.Fprintf(w, "no dead letters%s\n", scope(installation, false))
		return err
	}
	// The table is laid out in memory, where writes cannot fail, and
	// written out once.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "SEQ\tINSTALLATION\tEVENT\tREASON\tATTEMPTS\tRECEIVED\tPARKED\tLAST ANSWER")
	for _, d := range dead {
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			d.Seq, d.InstallationID, oneLine(d.Event, 48), d.Reason, d.Attempts,
			stamp(d.ReceivedAt), stamp(d.At), lastAnswer(d))
	}
	_ = tw.Flush()
	fmt.Fprintf(&table, "%s%s\n", summary(dead), scope(installation, false))
	if _, err := table.WriteTo(w); err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	return nil
}

// settleDead replays or drops dead letters, saying what it found first.
func settleDead(ctx context.Context, dlq DLQ, cmd, installation string, all bool, w io.Writer) error {
	if all {
		installation = ""
	}
	dead, err := dlq.ListDead(ctx, installation)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	if len(dead) > 0 {
		if _, err := fmt.Fprintf(w, "found %s%s\n", summary(dead), scope(installation, all)); err != nil {
			return err
		}
	}
	var n int
	if cmd == "replay" {
		n, err = dlq.ReplayDead(ctx, installation, all)
	} else {
		n, err = dlq.DropDead(ctx, installation, all)
	}
	if err != nil {
		return fmt.Errorf("%s dead letters: %w (%d done before the failure)", cmd, err, n)
	}
	verb := map[string]string{"replay": "replayed", "drop": "dropped"}[cmd]
	_, err = fmt.Fprintf(w, "%s %d dead letter%s%s\n", verb, n, plural(n), scope(installation, all))
	return err
}

// settleDeadLetter replays or drops the one dead letter of installation at
// seq, saying what it found first.
func settleDeadLetter(ctx context.Context, dlq DLQ, cmd, installation string, seq uint64, w io.Writer) error {
	dead, err := dlq.ListDead(ctx, installation)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	for _, d := range dead {
		if d.Seq == seq {
			if _, err := fmt.Fprintf(w, "found %s%s\n", summary([]jamf.DeadLetter{d}), scope(installation, false)); err != nil {
				return err
			}
		}
	}
	var n int
	if cmd == "replay" {
		n, err = dlq.ReplayDeadLetter(ctx, installation, seq)
	} else {
		n, err = dlq.DropDeadLetter(ctx, installation, seq)
	}
	if err != nil {
		return fmt.Errorf("%s dead letter %d: %w", cmd, seq, err)
	}
	verb := map[string]string{"replay": "replayed", "drop": "dropped"}[cmd]
	_, err = fmt.Fprintf(w, "%s %d dead letter%s%s\n", verb, n, plural(n), scope(installation, false))
	return err
}

// summary reads "3 dead letters: channel_dead 2, attempts_spent 1; events:
// ComputerAdded 2, JSSStartup 1", reasons and events by count.
func summary(dead []jamf.DeadLetter) string {
	reasons, events := map[string]int{}, map[string]int{}
	for _, d := range dead {
		reasons[d.Reason]++
		events[oneLine(d.Event, 48)]++
	}
	return fmt.Sprintf("%d dead letter%s: %s; events: %s", len(dead), plural(len(dead)), counts(reasons), counts(events))
}

func counts(m map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", cmp.Or(k, "(none)"), m[k])
	}
	return strings.Join(parts, ", ")
}

func scope(installation string, all bool) string {
	if installation == "" || all {
		return " (all installations)"
	}
	return " (installation " + installation + ")"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// lastAnswer shows Slack's last status and the start of its body.
func lastAnswer(d jamf.DeadLetter) string {
	if d.LastStatus == 0 && d.LastBody == "" {
		return "-"
	}
	if d.LastBody == "" {
		return fmt.Sprint(d.LastStatus)
	}
	return fmt.Sprintf("%d %s", d.LastStatus, oneLine(d.LastBody, 60))
}

// oneLine keeps s on one table line and at most n runes long.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
