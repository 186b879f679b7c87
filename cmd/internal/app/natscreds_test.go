package app

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus"
)

func TestNATSCreds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	var out bytes.Buffer
	if err := NATSCreds(dir, &out); err != nil {
		t.Fatal(err)
	}
	publics := map[string]string{}
	for _, user := range NATSUsers {
		path := filepath.Join(dir, user, natsSeedFile)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatalf("no seed for %s: %v", user, err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("seed of %s has mode %o; want 600", user, mode)
		}
		seed, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out.Bytes(), bytes.TrimSpace(seed)) {
			t.Errorf("nats-creds printed the seed of %s", user)
		}
		public, _, err := bus.UserSeed(path)
		if err != nil {
			t.Fatal(err)
		}
		publics[user] = public
		if !strings.Contains(out.String(), public) {
			t.Errorf("nats-creds did not print the public key of %s:\n%s", user, out.String())
		}
	}
	env := readEnv(t, filepath.Join(dir, natsServerDir, natsKeysEnv))
	want := map[string]string{}
	for user, public := range publics {
		want[NATSKeyVariable(user)] = public
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("nkeys.env (-want +got):\n%s", diff)
	}

	// A second run keeps every seed; a removed one is made anew.
	if err := os.Remove(filepath.Join(dir, "ingest", natsSeedFile)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := NATSCreds(dir, &out); err != nil {
		t.Fatal(err)
	}
	again := readEnv(t, filepath.Join(dir, natsServerDir, natsKeysEnv))
	for _, user := range NATSUsers {
		changed := again[NATSKeyVariable(user)] != publics[user]
		if changed != (user == "ingest") {
			t.Errorf("second run: key of %s changed %t; want a new key only for the removed ingest seed", user, changed)
		}
	}
	if !strings.Contains(out.String(), "(new)") || !strings.Contains(out.String(), "(kept)") {
		t.Errorf("second run does not say which seeds are new and which kept:\n%s", out.String())
	}
}

func TestNATSCredsUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}, {"--force"}} {
		if err := natsCreds(args, &bytes.Buffer{}); !errors.Is(err, ErrUsage) {
			t.Errorf("nats-creds %q = %v; want a usage error", args, err)
		}
	}
	var out bytes.Buffer
	if err := natsCreds([]string{"help"}, &out); err != nil || !strings.Contains(out.String(), "DIR/<user>/nats.nk") {
		t.Errorf("nats-creds help = %v, %q; want the usage", err, out.String())
	}
}

// TestNATSUsersMatchDeployConfig keeps NATSUsers and the users of
// deploy/nats/jackalope.conf in step: each variable nats-creds writes is one
// the server configuration names, and the other way round.
func TestNATSUsersMatchDeployConfig(t *testing.T) {
	conf, err := os.ReadFile("../../../deploy/nats/jackalope.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range NATSUsers {
		if !bytes.Contains(conf, []byte("nkey: $"+NATSKeyVariable(user))) {
			t.Errorf("deploy/nats/jackalope.conf has no user with nkey $%s", NATSKeyVariable(user))
		}
	}
	if got := bytes.Count(conf, []byte("nkey: $")); got != len(NATSUsers) {
		t.Errorf("deploy/nats/jackalope.conf has %d nkey users; nats-creds makes %d", got, len(NATSUsers))
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}
