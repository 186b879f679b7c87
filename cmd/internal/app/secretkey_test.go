package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/secret"
)

func TestDataDirSecretKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, created, weak, err := dataDirSecretKey(dir)
	if err != nil || !created || len(key) != 64 || weak != nil {
		t.Fatalf("first call = %q, %v, %v, %v; want a new 64-character key, strong", key, created, weak, err)
	}
	info, err := os.Stat(filepath.Join(dir, secretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o; want 600", mode)
	}
	again, created, weak, err := dataDirSecretKey(dir)
	if err != nil || created || again != key || weak != nil {
		t.Errorf("second call = %q, %v, %v, %v; want the same key, not created, strong", again, created, weak, err)
	}

	// A key of 16 to 31 characters, as an older version accepted, is kept:
	// every Jamf URL depends on it. It comes back marked weak.
	const older = "0123456789abcdefghijk"
	if err := os.WriteFile(filepath.Join(dir, secretKeyFile), []byte(older+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, created, weak, err := dataDirSecretKey(dir)
	if err != nil || created || got != older || !errors.Is(weak, secret.ErrWeakKey) {
		t.Errorf("older key on disk = %q, %v, %v, %v; want it kept, not created, weak", got, created, weak, err)
	}

	if err := os.WriteFile(filepath.Join(dir, secretKeyFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := dataDirSecretKey(dir); err == nil || !strings.Contains(err.Error(), "SECRET_KEY") {
		t.Errorf("short key on disk: err = %v; want an error naming SECRET_KEY", err)
	}
}

func TestBanner(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		opsAddr string
		want    []string
		notWant []string
	}{
		{
			name: "no slack app",
			env:  map[string]string{"DATA_DIR": "/srv/j"},
			want: []string{"http://localhost:5000/", "/srv/j", "sqlite /srv/j/jackalope.db", "embedded nats://127.0.0.1:4444",
				"set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET", "channels add --webhook-url",
				"/metrics on the public port; set METRICS_ADDR"},
			notWant: []string{"Add to Slack\" to install"},
		},
		{
			name:    "ops endpoints apart",
			env:     map[string]string{"METRICS_ADDR": "127.0.0.1:9191"},
			opsAddr: "127.0.0.1:9191",
			want:    []string{"/metrics on 127.0.0.1:9191 (METRICS_ADDR), not on the public port"},
			notWant: []string{"on the public port;"},
		},
		{
			name:    "slack app configured",
			env:     map[string]string{"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "very-secret-value"},
			want:    []string{`click "Add to Slack"`},
			notWant: []string{"very-secret-value", "set SLACK_"},
		},
		{
			name: "only the secret missing",
			env:  map[string]string{"SLACK_CLIENT_ID": "1.2"},
			want: []string{"set SLACK_CLIENT_SECRET ("},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := banner(&b, cfg, "generated in x", "[::]:5000", tt.opsAddr, "embedded nats://127.0.0.1:4444 (store x)", 3); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("banner lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("banner contains %q:\n%s", w, b.String())
				}
			}
		})
	}
}
