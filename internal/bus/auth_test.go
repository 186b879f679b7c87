package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
)

// TestEmbeddedServerRefusesStrangers is finding 1 of issue 12: a local
// process that reads DATA_DIR/nats/client.url must not be able to read the
// installations or forge a Jamf event without the seed kept beside it.
func TestEmbeddedServerRefusesStrangers(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	c, err := Connect(ctx, Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	const id = "0b0c2a5e-8c5e-4f43-9a49-3f0f3c6f0b11"
	if err := c.PutInstallation(ctx, registry.Entry{ID: id, Status: registry.StatusActive, TokenHash: "h"}); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "nats", urlFileName))
	if err != nil {
		t.Fatal(err)
	}
	url, _, _ := strings.Cut(strings.TrimSpace(string(raw)), " ")
	seedPath := filepath.Join(dir, "nats", embeddedSeedFile)
	if !strings.Contains(c.Server(), seedPath) {
		t.Errorf("Server() = %q does not say which seed clients need (%s)", c.Server(), seedPath)
	}
	info, err := os.Stat(seedPath)
	if err != nil {
		t.Fatalf("no seed beside the store: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("seed file mode = %o; want 600", mode)
	}

	otherSeed := filepath.Join(t.TempDir(), "other.nk")
	if _, _, err := UserSeed(otherSeed); err != nil {
		t.Fatal(err)
	}
	otherKey, err := nats.NkeyOptionFromSeed(otherSeed)
	if err != nil {
		t.Fatal(err)
	}
	ownKey, err := nats.NkeyOptionFromSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []nats.Option
		ok   bool
	}{
		{name: "no credentials", opts: nil},
		{name: "a user and password", opts: []nats.Option{nats.UserInfo("jackalope", "jackalope")}},
		{name: "a token", opts: []nats.Option{nats.Token("jackalope")}},
		{name: "another nkey", opts: []nats.Option{otherKey}},
		{name: "the data directory's nkey", opts: []nats.Option{ownKey}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, tt.opts...)
			nc, err := nats.Connect(url, opts...)
			if !tt.ok {
				if err == nil {
					nc.Close()
					t.Fatalf("connect to %s with %s succeeded; want it refused", url, tt.name)
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("connect with %s = %v; want an authorization violation", tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect with the seed: %v", err)
			}
			defer nc.Close()
			// The one who holds the seed can do what the all-in-one does:
			// read the bucket and publish an event.
			msg, err := nc.Request("$JS.API.DIRECT.GET.KV_"+BucketInstallations+".$KV."+BucketInstallations+"."+id, nil, 5*time.Second)
			if err != nil || len(msg.Data) == 0 {
				t.Errorf("read the installation with the seed: %v", err)
			}
		})
	}

	// The seed is kept: a restart signs in with the same key.
	before, _, err := UserSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	again, err := Connect(ctx, Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatalf("reconnect after a restart: %v", err)
	}
	defer again.Close()
	after, created, err := UserSeed(seedPath)
	if err != nil || created || after != before {
		t.Errorf("seed after a restart: %s (created %t, %v); want %s kept", after, created, err, before)
	}
}

func TestEmbeddedRefusesExternalAuth(t *testing.T) {
	_, err := Connect(t.Context(), Config{DataDir: t.TempDir(), Auth: Auth{NKeyFile: "/etc/nats/x.nk"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "external server") {
		t.Errorf("Connect with an embedded server and an nkey file = %v; want an error saying they are for an external server", err)
	}
}

func TestUserSeed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "user.nk")
	public, created, err := UserSeed(path)
	if err != nil || !created || !nkeys.IsValidPublicUserKey(public) {
		t.Fatalf("first UserSeed = %q, %t, %v; want a new user key", public, created, err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("seed file: %v, %v; want mode 600", info.Mode(), err)
	}
	again, created, err := UserSeed(path)
	if err != nil || created || again != public {
		t.Errorf("second UserSeed = %q, %t, %v; want %q kept", again, created, err, public)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only the seed (no temporary file left)", len(entries))
	}

	// Processes racing on a new data directory agree on one seed.
	racePath := filepath.Join(dir, "race.nk")
	keys := make([]string, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, _, err := UserSeed(racePath)
			if err != nil {
				t.Errorf("UserSeed in a race: %v", err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] {
			t.Fatalf("racing UserSeed gave different keys: %v", keys)
		}
	}

	account, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	accountSeed, err := account.Seed()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"garbage":      []byte("SUnot-a-seed\n"),
		"account seed": accountSeed,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := UserSeed(p)
		if err == nil || !strings.Contains(err.Error(), "not a user nkey seed") {
			t.Errorf("UserSeed on %s = %v; want 'not a user nkey seed'", name, err)
		}
		if err != nil && strings.Contains(err.Error(), string(content[:6])) {
			t.Errorf("UserSeed on %s quotes the file: %v", name, err)
		}
	}
}

func TestAuthOptions(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "user.nk")
	if _, _, err := UserSeed(seed); err != nil {
		t.Fatal(err)
	}
	secretSeed, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	notSeed := filepath.Join(dir, "not-a-seed")
	if err := os.WriteFile(notSeed, []byte("hunter2-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		auth    Auth
		wantErr string // empty: no error
	}{
		{name: "nothing", auth: Auth{}},
		{name: "nkey seed", auth: Auth{NKeyFile: seed}},
		{name: "creds and nkey", auth: Auth{CredsFile: seed, NKeyFile: seed}, wantErr: "exclude each other"},
		{name: "missing creds", auth: Auth{CredsFile: missing}, wantErr: missing},
		{name: "missing nkey", auth: Auth{NKeyFile: missing}, wantErr: missing},
		{name: "not a seed", auth: Auth{NKeyFile: notSeed}, wantErr: "not a user nkey seed"},
		{name: "missing CA", auth: Auth{CAFile: missing}, wantErr: "rootCA"},
		{name: "cert without key", auth: Auth{CertFile: seed}, wantErr: "both"},
		{name: "key without cert", auth: Auth{KeyFile: seed}, wantErr: "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.auth.options()
			if err == nil {
				// Options that read files do so when applied.
				var o nats.Options
				for _, opt := range opts {
					if err = opt(&o); err != nil {
						break
					}
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("options() = %v; want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("options() = %v; want an error containing %q", err, tt.wantErr)
			}
			if err != nil {
				for _, secret := range []string{strings.TrimSpace(string(secretSeed)), "hunter2"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("options() error quotes a file's contents: %v", err)
					}
				}
			}
		})
	}
}

func TestInboxPrefix(t *testing.T) {
	tests := []struct{ name, want string }{
		{"jackalope-ingest", "_INBOX.jackalope-ingest"},
		{"a.b c*>", "_INBOX.a_b_c__"},
	}
	for _, tt := range tests {
		if got := inboxPrefix(tt.name); got != tt.want {
			t.Errorf("inboxPrefix(%q) = %q; want %q", tt.name, got, tt.want)
		}
	}
}

// TestCredentialsInURLNeverLogged connects with a token and with a user and
// password in the URL, as NATS_URL may carry them, and checks that neither
// reaches the log or the description of the connection.
func TestCredentialsInURLNeverLogged(t *testing.T) {
	tests := []struct {
		name   string
		opts   server.Options
		url    func(port int) string
		secret string
	}{
		{
			name:   "token",
			opts:   server.Options{Authorization: "t0ken-never-logged"},
			url:    func(port int) string { return fmt.Sprintf("nats://t0ken-never-logged@127.0.0.1:%d", port) },
			secret: "t0ken-never-logged",
		},
		{
			name:   "user and password",
			opts:   server.Options{Username: "jackalope", Password: "passw0rd-never-logged"},
			url:    func(port int) string { return fmt.Sprintf("nats://jackalope:passw0rd-never-logged@127.0.0.1:%d", port) },
			secret: "passw0rd-never-logged",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoSigs, opts.NoLog =
				"127.0.0.1", server.RANDOM_PORT, true, t.TempDir(), true, true
			srv, err := startServer(t.Context(), &opts, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
			port := srv.Addr().(*net.TCPAddr).Port

			var logs logtest.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := Connect(t.Context(), Config{URL: tt.url(port)}, logger)
			if err != nil {
				t.Fatalf("connect with the %s: %v", tt.name, err)
			}
			if err := c.Provision(t.Context()); err != nil {
				t.Fatal(err)
			}
			described := c.Server()
			c.Close()

			// A wrong credential fails without showing it either.
			_, wrong := Connect(t.Context(), Config{URL: strings.Replace(tt.url(port), "never", "wrong", 1)}, logger)
			if wrong == nil {
				t.Fatal("connect with a wrong credential succeeded")
			}
			for what, text := range map[string]string{"log": logs.String(), "Server()": described, "error": wrong.Error()} {
				if strings.Contains(text, "never-logged") || strings.Contains(text, "wrong-logged") {
					t.Errorf("the %s shows the %s:\n%s", what, tt.name, text)
				}
			}
			if !strings.Contains(logs.String(), fmt.Sprintf("127.0.0.1:%d", port)) {
				t.Errorf("the log does not say where it connected:\n%s", logs.String())
			}
		})
	}
}
