package installer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
)

// ChannelsUsage describes the `channels` commands.
const ChannelsUsage = `usage: channels <command> [arguments]

Commands:
  add --webhook-url URL --channel NAME [--team NAME]
        add a Slack incoming webhook made by hand and print its Jamf URL;
        adding the same webhook again keeps its Jamf URL and replaces the names
  list
        list installations: id, team, channel, status, reason, created,
        the inbound auth Jamf Pro must send (never its secret), pace, digests
        and the events shown
  rotate ID
        give an installation a new Jamf URL; the old one stops working
  disable ID [--reason TEXT]
        stop posting to an installation's channel
  enable ID
        post to an installation's channel again
  remove ID
        delete an installation; its Jamf URL stops working
  set-jamf-url ID URL
        set the Jamf Pro address that notifications link to ("" clears it)
  set ID [--basic-auth USER:PASSWORD | --header-auth 'NAME: VALUE' ... | --no-inbound-auth]
        require credentials from Jamf Pro besides the token in the Jamf URL:
        HTTP Basic, or headers (--header-auth again for each header);
        --no-inbound-auth goes back to the token alone
  set ID [--pace N/s|N/min|N/h|default] [--burst N|default] [--digest on|off|default]
         [--digest-after DURATION|default]
        the channel's own pace and digests (default: CHANNEL_PACE, CHANNEL_BURST,
        DIGESTS, DIGEST_AFTER)
  set ID [--events all|TYPE,...] [--failures-only none|all|TYPE,...]
        which Jamf Pro events the channel shows (default all), and the types
        (ComputerPolicyFinished, ComputerPatchPolicyCompleted, RestAPIOperation)
        of which it shows only the events that did not succeed; the others are
        settled without a post
  test ID
        post a test message to an installation's channel and print Slack's answer
`

// UsageError is a mistake on the command line. Mains print it with the
// usage and exit with status 2.
type UsageError struct {
	Msg   string
	Usage string // the usage of the command at fault
}

func (e *UsageError) Error() string { return e.Msg }

// channelCommand is one `channels` (or `keys`) command.
type channelCommand struct {
	usage string
	run   func(in *Installer, ctx context.Context, args []string, stdout io.Writer) error
}

var channelCommands = map[string]channelCommand{
	"add":          {"channels add --webhook-url URL --channel NAME [--team NAME]", (*Installer).cmdAdd},
	"list":         {"channels list", (*Installer).cmdList},
	"rotate":       {"channels rotate ID", (*Installer).cmdRotate},
	"disable":      {"channels disable ID [--reason TEXT]", (*Installer).cmdDisable},
	"enable":       {"channels enable ID", (*Installer).cmdEnable},
	"remove":       {"channels remove ID", (*Installer).cmdRemove},
	"set-jamf-url": {"channels set-jamf-url ID URL", (*Installer).cmdSetJamfURL},
	"set":          {setUsage, (*Installer).cmdSet},
	"test":         {"channels test ID", (*Installer).cmdTest},
}

// RunChannelsCommand runs one `channels` command; args are what follows
// "channels" on the command line. It writes its report to stdout and never
// prints a webhook URL; only add and rotate print the Jamf URL they make.
// Command-line mistakes are *UsageError; "help" prints ChannelsUsage.
func (in *Installer) RunChannelsCommand(ctx context.Context, args []string, stdout io.Writer) error {
	return in.runCommand(ctx, channelsGroup, args, stdout)
}

// commandGroup is a word of the command line (channels, keys) and the
// commands that follow it.
type commandGroup struct {
	name     string
	usage    string
	commands map[string]channelCommand
}

var channelsGroup = commandGroup{"channels", ChannelsUsage, channelCommands}

// runCommand runs the command args[0] of g with the rest of args, prints
// usage for "help", and completes the *UsageError a command returns with
// its name and usage.
func (in *Installer) runCommand(ctx context.Context, g commandGroup, args []string, stdout io.Writer) error {
	if done, err := g.help(args, stdout); done || err != nil {
		return err
	}
	cmd := g.commands[args[0]]
	err := cmd.run(in, ctx, args[1:], stdout)
	var ue *UsageError
	if errors.As(err, &ue) && ue.Usage == "" {
		ue.Msg = g.name + " " + args[0] + ": " + ue.Msg
		ue.Usage = "usage: " + cmd.usage + "\n"
	}
	if errors.Is(err, flag.ErrHelp) {
		_, err = fmt.Fprintf(stdout, "usage: %s\n", cmd.usage)
	}
	return err
}

// help answers, before anything is opened, the command lines of g that
// need no registry: it prints g's usage for "help" (done is then true) and
// returns a *UsageError for a missing or unknown command.
func (g commandGroup) help(args []string, stdout io.Writer) (done bool, err error) {
	if len(args) == 0 {
		return false, &UsageError{Msg: g.name + ": a command is required", Usage: g.usage}
	}
	if IsHelp(args[0]) {
		_, err := io.WriteString(stdout, g.usage)
		return true, err
	}
	if _, ok := g.commands[args[0]]; !ok {
		return false, &UsageError{Msg: fmt.Sprintf("%s: unknown command %q", g.name, args[0]), Usage: g.usage}
	}
	return false, nil
}

// IsHelp reports whether a command-line word asks for help.
func IsHelp(word string) bool {
	switch word {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// ChannelsHelp answers, before anything is opened, the `channels` command
// lines that need no registry: it prints ChannelsUsage for "help" (done is
// then true) and returns a *UsageError for a missing or unknown command.
func ChannelsHelp(args []string, stdout io.Writer) (done bool, err error) {
	return channelsGroup.help(args, stdout)
}

// parse parses flags and positional arguments in any order and checks
// that there are exactly want positional ones.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < want:
		return nil, &UsageError{Msg: fmt.Sprintf("%d argument(s) missing", want-len(pos))}
	case len(pos) > want:
		return nil, &UsageError{Msg: fmt.Sprintf("unexpected argument %q", pos[want])}
	}
	return pos, nil
}

// notFound makes a store's ErrNotFound say which ID and where to look.
func notFound(id string, err error) error {
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("%w: %q (see: channels list)", registry.ErrNotFound, id)
	}
	return err
}

func (in *Installer) cmdAdd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("add", flag.ContinueOnError)
	webhook := fs.String("webhook-url", "", "the incoming webhook URL Slack made for the channel")
	channel := fs.String("channel", "", "the channel's name, e.g. #jamf")
	team := fs.String("team", "", "the workspace's name")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	var problems []string
	if strings.TrimSpace(*webhook) == "" {
		problems = append(problems, "--webhook-url is required")
	} else if _, err := in.checkWebhookURL(*webhook); err != nil {
		problems = append(problems, err.Error())
	}
	if strings.TrimSpace(*channel) == "" {
		problems = append(problems, "--channel is required")
	}
	if len(problems) > 0 {
		return &UsageError{Msg: strings.Join(problems, "; ")}
	}
	hook, _ := in.checkWebhookURL(*webhook)
	done, err := in.addChannel(ctx, hook, *channel, strings.TrimSpace(*team))
	if err != nil {
		return err
	}
	in.logger.Info("channel added by hand", "installation", done.inst.ID, "channel", done.inst.ChannelName, "created", done.created)
	what := fmt.Sprintf("Added %s (installation %s).", done.inst.ChannelName, done.inst.ID)
	if !done.created {
		what = fmt.Sprintf("Updated %s (installation %s); its Jamf URL is unchanged.", done.inst.ChannelName, done.inst.ID)
	}
	_, err = fmt.Fprintf(stdout, "%s\nJamf URL: %s\n\nIn Jamf Pro, open Settings > Global > Webhooks > New, paste the Jamf URL as the Webhook URL,\n"+
		"set Content Type to JSON and pick the event; make one webhook per event.\n", what, in.jamfURL(done.token))
	return err
}

func (in *Installer) cmdList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	all, err := in.Installations(ctx)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		_, err := io.WriteString(stdout, "No installations.\n")
		return err
	}
	// The table is laid out in memory, so the only write that can fail is
	// the last one.
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tTEAM\tCHANNEL\tSTATUS\tREASON\tCREATED\tAUTH\tPACE\tDIGESTS\tEVENTS")
	for _, inst := range all {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inst.ID, cell(inst.TeamName), cell(inst.ChannelName),
			inst.Status, cell(inst.StatusReason), inst.CreatedAt.UTC().Format(time.RFC3339), cell(describeInboundAuth(inst.InboundAuth)),
			inst.Delivery.DescribePace(), inst.Delivery.DescribeDigests(), render.DescribeFilter(inst.Filter))
	}
	_ = tw.Flush()
	_, err = stdout.Write(buf.Bytes())
	return err
}

// cell shows an empty value as "-" and keeps a value on one line and one
// column.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

func (in *Installer) cmdRotate(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("rotate", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	inst, jamfURL, err := in.Rotate(ctx, pos[0])
	if err != nil {
		return notFound(pos[0], err)
	}
	_, err = fmt.Fprintf(stdout, "New Jamf URL for %s (installation %s):\n%s\n\nUpdate the webhooks in Jamf Pro: the old URL no longer works.\n",
		cell(inst.ChannelName), inst.ID, jamfURL)
	return err
}

func (in *Installer) cmdDisable(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("disable", flag.ContinueOnError)
	reason := fs.String("reason", OperatorReason, "why, shown by channels list and to Jamf Pro")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	inst, err := in.Disable(ctx, pos[0], *reason)
	if err != nil {
		return notFound(pos[0], err)
	}
	_, err = fmt.Fprintf(stdout, "Disabled %s (installation %s): %s\n", cell(inst.ChannelName), inst.ID, inst.StatusReason)
	return err
}

func (in *Installer) cmdEnable(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("enable", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	inst, err := in.Enable(ctx, pos[0])
	if err != nil {
		return notFound(pos[0], err)
	}
	_, err = fmt.Fprintf(stdout, "Enabled %s (installation %s).\n", cell(inst.ChannelName), inst.ID)
	return err
}

func (in *Installer) cmdRemove(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("remove", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	inst, err := in.remove(ctx, pos[0])
	if err != nil {
		return notFound(pos[0], err)
	}
	_, err = fmt.Fprintf(stdout, "Removed %s (installation %s); its Jamf URL no longer works.\n", cell(inst.ChannelName), inst.ID)
	return err
}

func (in *Installer) cmdSetJamfURL(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("set-jamf-url", flag.ContinueOnError), args, 2)
	if err != nil {
		return err
	}
	jamfPro, err := registry.CheckJamfURL(pos[1])
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	inst, err := in.SetJamfURL(ctx, pos[0], jamfPro)
	if err != nil {
		return notFound(pos[0], err)
	}
	if inst.JamfURL == "" {
		_, err = fmt.Fprintf(stdout, "Cleared the Jamf Pro URL of %s (installation %s).\n", cell(inst.ChannelName), inst.ID)
		return err
	}
	_, err = fmt.Fprintf(stdout, "Notifications of %s (installation %s) link to %s.\n", cell(inst.ChannelName), inst.ID, inst.JamfURL)
	return err
}

func (in *Installer) cmdTest(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("test", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	inst, err := in.Installation(ctx, pos[0])
	if err != nil {
		return notFound(pos[0], err)
	}
	if err := in.SendTestMessage(ctx, inst.ID, ""); err != nil {
		return fmt.Errorf("slack did not take the test message for %s (installation %s): %w", cell(inst.ChannelName), inst.ID, err)
	}
	_, err = fmt.Fprintf(stdout, "Slack took the test message for %s (installation %s).\n", cell(inst.ChannelName), inst.ID)
	return err
}
