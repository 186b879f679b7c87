package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/jackalope-app/jackalope/internal/bus"
)

// NATSUsers are the users of deploy/nats/jackalope.conf: one per service,
// and admin for the commands (channels, dlq) and provisioning by hand.
var NATSUsers = []string{"ingest", "dispatcher", "installer", "admin"}

// Where NATSCreds writes, under its directory.
const (
	// natsSeedFile is a user's nkey seed, DIR/<user>/nats.nk: the file
	// NATS_NKEY names.
	natsSeedFile = "nats.nk"
	// natsServerDir holds what the server needs: nkeys.env, the users'
	// public keys as the environment variables jackalope.conf names.
	natsServerDir = "server"
	natsKeysEnv   = "nkeys.env"
)

const natsCredsUsage = `usage: jackalope nats-creds DIR

Writes an nkey seed for each NATS user of deploy/nats (ingest, dispatcher,
installer, admin) to DIR/<user>/nats.nk (mode 0600; a seed already there is
kept), and their public keys to DIR/server/nkeys.env: the environment of the
NATS server that includes deploy/nats/jackalope.conf. Give each service its
own seed file as NATS_NKEY. To replace a key, remove its seed, run this
again and restart the NATS server with the new environment.
`

// NATSKeyVariable is the variable of deploy/nats/jackalope.conf that holds
// user's public key: JACKALOPE_INGEST_NKEY, say.
func NATSKeyVariable(user string) string {
	return "JACKALOPE_" + strings.ToUpper(user) + "_NKEY"
}

// natsCreds runs `jackalope nats-creds`.
func natsCreds(args []string, stdout io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		_, err := io.WriteString(stdout, natsCredsUsage)
		return err
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: nats-creds takes one directory\n%s", ErrUsage, natsCredsUsage)
	}
	return NATSCreds(args[0], stdout)
}

func isHelp(s string) bool { return s == "help" || s == "-h" || s == "-help" || s == "--help" }

// NATSCreds makes sure dir holds a seed per NATS user and writes the server's
// nkeys.env from them, then says what it did on stdout. Seeds never reach
// stdout; public keys do (they are not secret).
func NATSCreds(dir string, stdout io.Writer) error {
	var env strings.Builder
	env.WriteString("# Public nkeys of Jackalope's NATS users, written by `jackalope nats-creds`: the\n" +
		"# environment of the NATS server, whose deploy/nats/jackalope.conf names them.\n" +
		"# Not secret (the seeds are).\n")
	// The report is laid out in memory, where writes cannot fail, and
	// written out once.
	var report bytes.Buffer
	tw := tabwriter.NewWriter(&report, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "user\tseed (NATS_NKEY)\tpublic key")
	for _, user := range NATSUsers {
		path := filepath.Join(dir, user, natsSeedFile)
		public, created, err := bus.UserSeed(path)
		if err != nil {
			return fmt.Errorf("nats-creds: %s: %w", user, err)
		}
		state := "kept"
		if created {
			state = "new"
		}
		fmt.Fprintf(&env, "%s=%s\n", NATSKeyVariable(user), public)
		_, _ = fmt.Fprintf(tw, "%s\t%s (%s)\t%s\n", user, path, state, public)
	}
	envPath := filepath.Join(dir, natsServerDir, natsKeysEnv)
	if err := writeFileAtomic(envPath, []byte(env.String()), 0o644); err != nil {
		return fmt.Errorf("nats-creds: %w", err)
	}
	_ = tw.Flush()
	_, _ = fmt.Fprintf(&report, "\nNATS server environment: %s (restart the server after a change)\n", envPath)
	_, err := report.WriteTo(stdout)
	return err
}

// writeFileAtomic replaces path with data (mode perm) so that a reader sees
// the old file or the new one, never part of it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; cleaned up on failure
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
