package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil {
		t.Fatalf("Load(empty) = %v", err)
	}
	want := Config{
		BaseURL:         "http://localhost:5000",
		ListenAddr:      ":5000",
		MetricsAddr:     ":9090",
		DataDir:         "./data",
		ShutdownTimeout: 25 * time.Second,
		Slack: Slack{
			APIURL:       "https://slack.com/api",
			OAuthURL:     "https://slack.com/oauth/v2/authorize",
			Scopes:       []string{"incoming-webhook"},
			Timeout:      10 * time.Second,
			WebhookHosts: []string{"hooks.slack.com"},
			OIDCIssuer:   "https://slack.com",
		},
		Database: Database{Driver: DriverSQLite, Path: "data/jackalope.db"},
		NATS: NATS{Replicas: 1, MaxAge: 168 * time.Hour, MaxBytes: 1 << 30,
			DedupWindow: 2 * time.Minute, DeadMaxAge: 720 * time.Hour, HistoryMaxAge: 24 * time.Hour, HistoryMaxBytes: 1 << 30},
		Ingest: Ingest{MaxBodyBytes: 1 << 20, PublishTimeout: 1500 * time.Millisecond},
		Dispatch: Dispatch{Workers: 256, AckWait: 30 * time.Second, Deadline: 24 * time.Hour, RetryMaxDelay: 5 * time.Minute,
			Interval: time.Second, Burst: 3, Digests: true, DigestAfter: 5 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if got.Slack.Configured() {
		t.Error("Slack.Configured() = true without client id and secret")
	}
}

// TestEveryVariable sets each variable in Variables to a valid value and
// checks that it lands in the Config, so no documented variable is ignored.
func TestEveryVariable(t *testing.T) {
	files := testFiles(t, "user.creds", "user.nk", "ca.pem", "client.pem", "client.key")
	full := map[string]string{
		"SECRET_KEY": "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c",
		// An old key only has to be long enough: it may predate CheckKey.
		"SECRET_KEY_PREVIOUS":   "fedcba9876543210fedc",
		"SERVER_NAME":           "jackalope.example.com",
		"DEBUG":                 "0",
		"LISTEN_ADDR":           "127.0.0.1:8080",
		"METRICS_ADDR":          ":9100",
		"DATA_DIR":              "/var/lib/jackalope",
		"SHUTDOWN_TIMEOUT":      "40s",
		"SLACK_CLIENT_ID":       "123.456",
		"SLACK_CLIENT_SECRET":   "s3cr3t",
		"SLACK_SHAREABLE_URL":   "https://slack.com/oauth/v2/authorize?client_id=123.456&scope=incoming-webhook,chat:write",
		"SLACK_API_URL":         "http://127.0.0.1:9999/api/",
		"SLACK_OAUTH_URL":       "http://127.0.0.1:9999/oauth",
		"SLACK_TIMEOUT":         "3s",
		"SLACK_WEBHOOK_HOSTS":   "Hooks.Slack.com., 127.0.0.1,[::1],,localhost",
		"SLACK_OIDC_ISSUER":     "http://127.0.0.1:9999/",
		"ADMIN_SLACK_USERS":     " U012AB3CD4, W0ADMIN ,",
		"DATABASE_URL":          "db.internal:6432",
		"DATABASE_NAME":         "jackalope",
		"DATABASE_USER":         "jack",
		"DATABASE_PASSWD":       "p@ss:w/rd",
		"NATS_URL":              "nats://n1:4222,nats://n2:4222",
		"NATS_CREDS":            files["user.creds"],
		"NATS_CA":               files["ca.pem"],
		"NATS_CERT":             files["client.pem"],
		"NATS_KEY":              files["client.key"],
		"STREAM_REPLICAS":       "3",
		"STREAM_MAX_AGE":        "24h",
		"STREAM_MAX_BYTES":      "2048000",
		"STREAM_MAX_MSGS":       "100000",
		"HISTORY_MAX_AGE":       "2h",
		"HISTORY_MAX_BYTES":     "4096000",
		"DELIVERY_DEADLINE":     "12h",
		"RETRY_MAX_DELAY":       "2m",
		"CHANNEL_PACE":          "30/min",
		"CHANNEL_BURST":         "5",
		"DIGESTS":               "off",
		"DIGEST_AFTER":          "20s",
		"DEDUP_WINDOW":          "5m",
		"DEAD_MAX_AGE":          "48h",
		"MAX_BODY_BYTES":        "65536",
		"PUBLISH_TIMEOUT":       "800ms",
		"DISPATCH_WORKERS":      "32",
		"DISPATCH_HOLD":         "4000",
		"DISPATCH_MAX_ATTEMPTS": "5",
		"ACK_WAIT":              "45s",
	}
	// NATS_NKEY excludes NATS_CREDS, so it gets a run of its own below.
	for _, v := range Variables {
		if _, ok := full[v.Name]; !ok && v.Name != "NATS_NKEY" {
			t.Errorf("variable %s is documented but not exercised here", v.Name)
		}
	}
	got, err := Load(env(full))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := Config{
		Debug:             true,
		SecretKey:         "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c",
		SecretKeyPrevious: "fedcba9876543210fedc",
		BaseURL:           "https://jackalope.example.com",
		ListenAddr:        "127.0.0.1:8080",
		MetricsAddr:       ":9100",
		MetricsAddrSet:    true,
		DataDir:           "/var/lib/jackalope",
		ShutdownTimeout:   40 * time.Second,
		Slack: Slack{
			ClientID:     "123.456",
			ClientSecret: "s3cr3t",
			ShareableURL: full["SLACK_SHAREABLE_URL"],
			APIURL:       "http://127.0.0.1:9999/api",
			OAuthURL:     "http://127.0.0.1:9999/oauth",
			Scopes:       []string{"incoming-webhook", "chat:write"},
			Timeout:      3 * time.Second,
			WebhookHosts: []string{"hooks.slack.com", "127.0.0.1", "::1", "localhost"},
			OIDCIssuer:   "http://127.0.0.1:9999",
		},
		Console:  Console{Admins: []string{"U012AB3CD4", "W0ADMIN"}},
		Database: Database{Driver: DriverPostgres, URL: "postgres://jack:p%40ss%3Aw%2Frd@db.internal:6432/jackalope"},
		NATS: NATS{URL: "nats://n1:4222,nats://n2:4222",
			Creds: files["user.creds"], CA: files["ca.pem"], Cert: files["client.pem"], Key: files["client.key"],
			Replicas: 3, MaxAge: 24 * time.Hour,
			MaxBytes: 2048000, MaxMsgs: 100000, DedupWindow: 5 * time.Minute, DeadMaxAge: 48 * time.Hour,
			HistoryMaxAge: 2 * time.Hour, HistoryMaxBytes: 4096000},
		Ingest: Ingest{MaxBodyBytes: 65536, PublishTimeout: 800 * time.Millisecond},
		Dispatch: Dispatch{Workers: 32, Hold: 4000, AckWait: 45 * time.Second, Deadline: 12 * time.Hour, RetryMaxDelay: 2 * time.Minute,
			Interval: 2 * time.Second, Burst: 5, Digests: false, DigestAfter: 20 * time.Second},
		Notes: []string{"DISPATCH_MAX_ATTEMPTS is no longer read: events are given up after DELIVERY_DEADLINE (see the README, Upgrading)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	delete(full, "NATS_CREDS")
	full["NATS_NKEY"] = files["user.nk"]
	got, err = Load(env(full))
	if err != nil {
		t.Fatalf("Load with NATS_NKEY = %v", err)
	}
	if got.NATS.NKey != files["user.nk"] || got.NATS.Creds != "" {
		t.Errorf("NATS_NKEY gave NKey %q, Creds %q; want NKey %q", got.NATS.NKey, got.NATS.Creds, files["user.nk"])
	}
}

// testFiles creates empty files with the given names in a temporary
// directory and returns their paths by name.
func testFiles(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{"dir": dir}
	for _, name := range names {
		paths[name] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[name], []byte("contents-never-shown\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func TestForms(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		get  func(Config) any
		want any
	}{
		{"server name with scheme", map[string]string{"SERVER_NAME": "http://10.0.0.5:5000/"},
			func(c Config) any { return c.BaseURL }, "http://10.0.0.5:5000"},
		{"server name with path", map[string]string{"SERVER_NAME": "https://example.com/jackalope"},
			func(c Config) any { return c.BaseURL }, "https://example.com/jackalope"},
		{"base url follows listen port", map[string]string{"LISTEN_ADDR": ":8081"},
			func(c Config) any { return c.BaseURL }, "http://localhost:8081"},
		{"debug empty is off", map[string]string{"DEBUG": ""},
			func(c Config) any { return c.Debug }, false},
		{"debug false is on (set to anything)", map[string]string{"DEBUG": "false"},
			func(c Config) any { return c.Debug }, true},
		{"postgres url as is", map[string]string{"DATABASE_URL": "postgres://u:p@h:5432/d?sslmode=disable"},
			func(c Config) any { return c.Database }, Database{Driver: DriverPostgres, URL: "postgres://u:p@h:5432/d?sslmode=disable"}},
		{"postgresql scheme", map[string]string{"DATABASE_URL": "postgresql://h/d"},
			func(c Config) any { return c.Database.Driver }, DriverPostgres},
		{"dsn as is", map[string]string{"DATABASE_URL": "host=h dbname=d user=u"},
			func(c Config) any { return c.Database }, Database{Driver: DriverPostgres, URL: "host=h dbname=d user=u"}},
		{"original form without password", map[string]string{"DATABASE_URL": "db:5432", "DATABASE_NAME": "jack", "DATABASE_USER": "u"},
			func(c Config) any { return c.Database.URL }, "postgres://u@db:5432/jack"},
		{"original form without port", map[string]string{"DATABASE_URL": "db", "DATABASE_NAME": "jack"},
			func(c Config) any { return c.Database.URL }, "postgres://db:5432/jack"},
		{"sqlite path", map[string]string{"DATABASE_URL": "sqlite:/tmp/j.db"},
			func(c Config) any { return c.Database }, Database{Driver: DriverSQLite, Path: "/tmp/j.db"}},
		{"sqlite under data dir", map[string]string{"DATA_DIR": "/srv/j"},
			func(c Config) any { return c.Database.Path }, "/srv/j/jackalope.db"},
		{"shareable url without scope", map[string]string{"SLACK_SHAREABLE_URL": "https://slack.com/oauth/v2/authorize?client_id=1"},
			func(c Config) any { return c.Slack.Scopes }, []string{"incoming-webhook"}},
		{"configured", map[string]string{"SLACK_CLIENT_ID": "1", "SLACK_CLIENT_SECRET": "2"},
			func(c Config) any { return c.Slack.Configured() }, true},
		{"history off", map[string]string{"HISTORY_MAX_AGE": "0"},
			func(c Config) any { return c.NATS.HistoryMaxAge }, time.Duration(0)},
		{"deadline follows a short max age", map[string]string{"STREAM_MAX_AGE": "2h"},
			func(c Config) any { return c.Dispatch.Deadline }, 110 * time.Minute},
		{"pace per second", map[string]string{"CHANNEL_PACE": "2/s"},
			func(c Config) any { return c.Dispatch.Interval }, 500 * time.Millisecond},
		{"digests true", map[string]string{"DIGESTS": "true"},
			func(c Config) any { return c.Dispatch.Digests }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if diff := cmp.Diff(tt.want, tt.get(c)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorsNameTheirVariable(t *testing.T) {
	files := testFiles(t, "user.nk", "user.creds", "client.pem")
	missing := filepath.Join(files["dir"], "missing.nk")
	nats := "nats://nats.example.com:4222"
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"short secret", map[string]string{"SECRET_KEY": "short"}, []string{"SECRET_KEY: refused", "at least 32"}},
		{"secret of the old minimum length", map[string]string{"SECRET_KEY": "3f1e9a7c0b5d2e8f4a6c"}, []string{"SECRET_KEY: refused", "at least 32"}},
		{"kubernetes placeholder", map[string]string{"SECRET_KEY": "change-me-to-openssl-rand-hex-32"}, []string{"SECRET_KEY: refused", "placeholder"}},
		{"repeated character", map[string]string{"SECRET_KEY": strings.Repeat("x", 40)}, []string{"SECRET_KEY: refused", "repeated"}},
		{"short previous secret", map[string]string{"SECRET_KEY_PREVIOUS": "short"}, []string{"SECRET_KEY_PREVIOUS: must be at least 16"}},
		{"previous secret same as the secret", map[string]string{"SECRET_KEY": "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c", "SECRET_KEY_PREVIOUS": "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c"},
			[]string{"SECRET_KEY_PREVIOUS: is the same as SECRET_KEY"}},
		{"bad server name", map[string]string{"SERVER_NAME": "ftp://x"}, []string{"SERVER_NAME:"}},
		{"bad listen", map[string]string{"LISTEN_ADDR": "5000"}, []string{"LISTEN_ADDR:"}},
		{"bad metrics", map[string]string{"METRICS_ADDR": "localhost"}, []string{"METRICS_ADDR:"}},
		{"bad duration", map[string]string{"STREAM_MAX_AGE": "7 days"}, []string{"STREAM_MAX_AGE:"}},
		{"negative duration", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT:"}},
		{"bad slack timeout", map[string]string{"SLACK_TIMEOUT": "x"}, []string{"SLACK_TIMEOUT:"}},
		{"bad publish timeout", map[string]string{"PUBLISH_TIMEOUT": "0"}, []string{"PUBLISH_TIMEOUT:"}},
		{"bad dead age", map[string]string{"DEAD_MAX_AGE": "1"}, []string{"DEAD_MAX_AGE:"}},
		{"dedup longer than age", map[string]string{"DEDUP_WINDOW": "2h", "STREAM_MAX_AGE": "1h"}, []string{"DEDUP_WINDOW:"}},
		{"replicas out of range", map[string]string{"STREAM_REPLICAS": "7"}, []string{"STREAM_REPLICAS:"}},
		{"bad bytes", map[string]string{"STREAM_MAX_BYTES": "1GB"}, []string{"STREAM_MAX_BYTES:"}},
		{"bad body limit", map[string]string{"MAX_BODY_BYTES": "-5"}, []string{"MAX_BODY_BYTES:"}},
		{"bad workers", map[string]string{"DISPATCH_WORKERS": "0"}, []string{"DISPATCH_WORKERS:"}},
		{"hold too small", map[string]string{"DISPATCH_HOLD": "99"}, []string{"DISPATCH_HOLD:"}},
		{"hold not a number", map[string]string{"DISPATCH_HOLD": "2k"}, []string{"DISPATCH_HOLD:"}},
		{"deadline beyond max age", map[string]string{"DELIVERY_DEADLINE": "200h"}, []string{"DELIVERY_DEADLINE: 200h0m0s must leave"}},
		{"bad pace", map[string]string{"CHANNEL_PACE": "fast"}, []string{"CHANNEL_PACE: pace"}},
		{"zero pace", map[string]string{"CHANNEL_PACE": "0/s"}, []string{"CHANNEL_PACE:"}},
		{"bad digests", map[string]string{"DIGESTS": "maybe"}, []string{"DIGESTS:"}},
		{"bad burst", map[string]string{"CHANNEL_BURST": "0"}, []string{"CHANNEL_BURST:"}},
		{"bad max msgs", map[string]string{"STREAM_MAX_MSGS": "-1"}, []string{"STREAM_MAX_MSGS:"}},
		{"bad history age", map[string]string{"HISTORY_MAX_AGE": "-1h"}, []string{"HISTORY_MAX_AGE:"}},
		{"ack wait too short", map[string]string{"ACK_WAIT": "1s"}, []string{"ACK_WAIT: must be at least 5s"}},
		{"bad api url", map[string]string{"SLACK_API_URL": "slack.com/api"}, []string{"SLACK_API_URL:"}},
		{"bad oauth url", map[string]string{"SLACK_OAUTH_URL": "://"}, []string{"SLACK_OAUTH_URL:"}},
		{"api url over plain http", map[string]string{"SLACK_API_URL": "http://slack.com/api"}, []string{"SLACK_API_URL:", "plain http"}},
		{"api url over plain http to a private address", map[string]string{"SLACK_API_URL": "http://10.0.0.5/api"}, []string{"SLACK_API_URL:", "plain http"}},
		{"oauth url over plain http", map[string]string{"SLACK_OAUTH_URL": "http://slack.com/oauth/v2/authorize"}, []string{"SLACK_OAUTH_URL:", "plain http"}},
		{"api url credentials not echoed", map[string]string{"SLACK_API_URL": "http://u:pw-secret@slack.com/api"}, []string{"SLACK_API_URL:", "u:xxxxx@"}},
		{"webhook host with a scheme", map[string]string{"SLACK_WEBHOOK_HOSTS": "https://hooks.slack.com"}, []string{"SLACK_WEBHOOK_HOSTS:", "not a host name"}},
		{"webhook host with a port", map[string]string{"SLACK_WEBHOOK_HOSTS": "hooks.slack.com:443"}, []string{"SLACK_WEBHOOK_HOSTS:"}},
		{"no webhook host", map[string]string{"SLACK_WEBHOOK_HOSTS": " , "}, []string{"SLACK_WEBHOOK_HOSTS: lists no host"}},
		{"bad oidc issuer", map[string]string{"SLACK_OIDC_ISSUER": "slack.com"}, []string{"SLACK_OIDC_ISSUER:"}},
		{"bad admin user", map[string]string{"ADMIN_SLACK_USERS": "U012AB3CD4,@alice"}, []string{`ADMIN_SLACK_USERS: "@alice"`}},
		{"oidc issuer over plain http", map[string]string{"SLACK_OIDC_ISSUER": "http://slack.com"}, []string{"SLACK_OIDC_ISSUER:", "plain http"}},
		{"bad shareable url", map[string]string{"SLACK_SHAREABLE_URL": "::"}, []string{"SLACK_SHAREABLE_URL:"}},
		{"host:port without name", map[string]string{"DATABASE_URL": "db:5432"}, []string{"DATABASE_NAME: required"}},
		{"name without url", map[string]string{"DATABASE_NAME": "j"}, []string{"DATABASE_URL: required"}},
		{"password without user", map[string]string{"DATABASE_URL": "db:5432", "DATABASE_NAME": "j", "DATABASE_PASSWD": "x"}, []string{"DATABASE_USER:"}},
		{"bad port", map[string]string{"DATABASE_URL": "db:abc", "DATABASE_NAME": "j"}, []string{"DATABASE_URL: port"}},
		{"empty sqlite", map[string]string{"DATABASE_URL": "sqlite:"}, []string{"DATABASE_URL: sqlite"}},
		{"missing nkey file", map[string]string{"NATS_URL": nats, "NATS_NKEY": missing},
			[]string{"NATS_NKEY: cannot read " + missing + ": no such file"}},
		{"unreadable creds file", map[string]string{"NATS_URL": nats, "NATS_CREDS": files["dir"]},
			[]string{"NATS_CREDS: " + files["dir"] + " is a directory"}},
		{"missing CA", map[string]string{"NATS_URL": nats, "NATS_CA": missing}, []string{"NATS_CA: cannot read"}},
		{"creds and nkey", map[string]string{"NATS_URL": nats, "NATS_CREDS": files["user.creds"], "NATS_NKEY": files["user.nk"]},
			[]string{"NATS_NKEY: set NATS_CREDS or NATS_NKEY, not both"}},
		{"cert without key", map[string]string{"NATS_URL": nats, "NATS_CERT": files["client.pem"]}, []string{"NATS_CERT: NATS_CERT and NATS_KEY go together"}},
		{"key without cert", map[string]string{"NATS_URL": nats, "NATS_KEY": files["client.pem"]}, []string{"NATS_CERT: NATS_CERT and NATS_KEY go together"}},
		{"nkey without NATS_URL", map[string]string{"NATS_NKEY": files["user.nk"]}, []string{"NATS_NKEY: only with NATS_URL"}},
		{"CA without NATS_URL", map[string]string{"NATS_CA": files["client.pem"]}, []string{"NATS_CA: only with NATS_URL"}},
		{"all at once", map[string]string{"SECRET_KEY": "x", "LISTEN_ADDR": "nope", "DISPATCH_WORKERS": "0"},
			[]string{"SECRET_KEY:", "LISTEN_ADDR:", "DISPATCH_WORKERS:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env))
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "contents-never-shown") {
				t.Errorf("error %q shows what a file holds", err)
			}
		})
	}
}

func TestSecretsMasked(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		secrets []string // never logged
		shown   []string // logged
	}{
		{
			name: "keys and passwords",
			env: map[string]string{
				"SECRET_KEY":          "super-secret-key-value-0123456789",
				"SECRET_KEY_PREVIOUS": "previous-secret-key-value",
				"SLACK_CLIENT_SECRET": "client-secret-value",
				"DATABASE_URL":        "postgres://jack:db-password-value@db:5432/j",
				"NATS_URL":            "nats://user:nats-password-value@n1:4222",
			},
			secrets: []string{"super-secret-key-value", "previous-secret-key-value", "client-secret-value", "db-password-value", "nats-password-value"},
			shown:   []string{"db:5432/j", "n1:4222", "********"},
		},
		{
			name:    "nats token",
			env:     map[string]string{"NATS_URL": "nats://TOKEN@host:4222"},
			secrets: []string{"TOKEN"},
			shown:   []string{"host:4222"},
		},
		{
			name:    "nats tokens in a cluster list",
			env:     map[string]string{"NATS_URL": "nats://tok-one@a:4222, nats://u:pw-two@b:4222"},
			secrets: []string{"tok-one", "pw-two"},
			shown:   []string{"a:4222", "b:4222"},
		},
		{
			name:    "password as a query parameter",
			env:     map[string]string{"DATABASE_URL": "postgres://u@db/x?password=s3cr3t"},
			secrets: []string{"s3cr3t"},
			shown:   []string{"u@db/x"},
		},
		{
			name:    "sslpassword",
			env:     map[string]string{"DATABASE_URL": "postgres://u@db/x?sslpassword=key-pass&sslmode=require"},
			secrets: []string{"key-pass"},
			shown:   []string{"sslmode=require"},
		},
		{
			name:    "quoted dsn password",
			env:     map[string]string{"DATABASE_URL": "host=db password='a b-secret' dbname=j"},
			secrets: []string{"a b", "b-secret"},
			shown:   []string{"host=db", "dbname=j"},
		},
		{
			name:    "original host:port form",
			env:     map[string]string{"DATABASE_URL": "db:5432", "DATABASE_NAME": "j", "DATABASE_USER": "u", "DATABASE_PASSWD": "p@ss-word"},
			secrets: []string{"p@ss-word", "p%40ss-word"},
			shown:   []string{"u:xxxxx@db:5432/j"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "config", c)
			slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", c)
			out := b.String() + c.Database.Describe()
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("logged config contains secret %q:\n%s", s, out)
				}
			}
			for _, s := range tt.shown {
				if !strings.Contains(out, s) {
					t.Errorf("logged config lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestRequireSecretKey(t *testing.T) {
	c, _ := Load(env(nil))
	if err := c.RequireSecretKey(); err == nil || !strings.Contains(err.Error(), "SECRET_KEY") {
		t.Errorf("RequireSecretKey() = %v; want an error naming SECRET_KEY", err)
	}
	c.SecretKey = "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c"
	if err := c.RequireSecretKey(); err != nil {
		t.Errorf("RequireSecretKey() = %v with a key", err)
	}
}

// TestReadmeDocumentsEveryVariable keeps the README's configuration table
// in step with Variables.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	for _, v := range Variables {
		if !strings.Contains(string(readme), "| `"+v.Name+"` |") {
			t.Errorf("README's configuration table has no row for %s", v.Name)
		}
	}
}
