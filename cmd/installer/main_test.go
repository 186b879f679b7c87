package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const testSecretKey = "cmd-installer-test-secret-key-0123"

// environ returns a getenv over vars.
func environ(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunCommandLine(t *testing.T) {
	dir := t.TempDir()
	withKey := map[string]string{"SECRET_KEY": testSecretKey, "DATA_DIR": dir}
	// An instance in dir: the registry and the embedded NATS store.
	var initOut, initErr bytes.Buffer
	if err := run(t.Context(), []string{"channels", "list", "--init"}, environ(withKey), &initOut, &initErr); err != nil {
		t.Fatalf("channels list --init: %v\n%s", err, &initErr)
	}
	empty := filepath.Join(t.TempDir(), "nothing-here")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "usage: installer [serve]"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "serve with an argument", args: []string{"serve", "now"}, wantCode: 2, wantStderr: `unexpected argument "now"`},
		{name: "channels without a command", args: []string{"channels"}, wantCode: 2, wantStderr: "usage: channels <command>"},
		{name: "channels help", args: []string{"channels", "help"}, wantCode: 0, wantStdout: "set-jamf-url ID URL"},
		{name: "serve without SECRET_KEY", args: nil, wantCode: 1, wantStderr: "SECRET_KEY: required"},
		{name: "channels without SECRET_KEY", args: []string{"channels", "list"}, wantCode: 1, wantStderr: "SECRET_KEY: required"},
		{name: "bad variable", args: nil, env: map[string]string{"SECRET_KEY": testSecretKey, "LISTEN_ADDR": "nowhere"}, wantCode: 1, wantStderr: "LISTEN_ADDR"},
		{name: "unknown channels command", args: []string{"channels", "frobnicate"}, env: withKey, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "channels usage error", args: []string{"channels", "rotate"}, env: withKey, wantCode: 2, wantStderr: "usage: channels rotate ID"},
		{name: "channels list", args: []string{"channels", "list"}, env: withKey, wantCode: 0, wantStdout: "No installations.",
			wantStderr: "acting on DATA_DIR " + dir + ": registry sqlite " + filepath.Join(dir, "jackalope.db") + ", NATS embedded"},
		{name: "channels list without DATABASE_URL", args: []string{"channels", "list"},
			env:      map[string]string{"SECRET_KEY": testSecretKey, "DATA_DIR": empty},
			wantCode: 1, wantStderr: "DATABASE_URL is not set and DATA_DIR (" + empty + ") holds no registry"},
		{name: "channels list with a missing sqlite file", args: []string{"channels", "list"},
			env:      map[string]string{"SECRET_KEY": testSecretKey, "DATA_DIR": dir, "DATABASE_URL": "sqlite:" + filepath.Join(empty, "j.db")},
			wantCode: 1, wantStderr: "DATABASE_URL names an SQLite registry that does not exist"},
		{name: "channels list without NATS_URL", args: []string{"channels", "list"},
			env:      map[string]string{"SECRET_KEY": testSecretKey, "DATA_DIR": empty, "DATABASE_URL": "sqlite:" + filepath.Join(dir, "jackalope.db")},
			wantCode: 1, wantStderr: "NATS_URL is not set and DATA_DIR (" + empty + ") holds no embedded NATS store"},
		{name: "keys help", args: []string{"keys", "help"}, wantCode: 0, wantStdout: "reseal"},
		{name: "keys without a command", args: []string{"keys"}, wantCode: 2, wantStderr: "usage: keys <command>"},
		{name: "unknown keys command", args: []string{"keys", "rotate"}, env: withKey, wantCode: 2, wantStderr: `unknown command "rotate"`},
		{name: "keys reseal of an empty registry", args: []string{"keys", "reseal"}, env: withKey, wantCode: 0,
			wantStdout: "Sealed again under SECRET_KEY: 0 of 0 installations"},
		{name: "keys reseal without DATABASE_URL", args: []string{"keys", "reseal"},
			env:      map[string]string{"SECRET_KEY": testSecretKey, "DATA_DIR": empty},
			wantCode: 1, wantStderr: "DATABASE_URL is not set and DATA_DIR (" + empty + ") holds no registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := exitCode(run(t.Context(), tt.args, environ(tt.env), &stdout, &stderr), &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d; want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q; want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q; want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused command left %s behind (%v); want nothing created", empty, err)
	}
}

// TestServe runs the service as main does, installs a channel through it
// and adds one by hand, then stops it with its context.
func TestServe(t *testing.T) {
	fake := slacktest.New(t)
	addr, opsAddr := freeAddr(t), freeAddr(t)
	base, ops := "http://"+addr, "http://"+opsAddr
	fake.SetRedirectURI(base + "/install")
	vars := map[string]string{
		"SECRET_KEY":          testSecretKey,
		"DATA_DIR":            t.TempDir(),
		"LISTEN_ADDR":         addr,
		"METRICS_ADDR":        opsAddr,
		"SERVER_NAME":         base,
		"SLACK_API_URL":       fake.URL(),
		"SLACK_OAUTH_URL":     "https://slack.test/oauth/v2/authorize",
		"SLACK_CLIENT_ID":     slacktest.ClientID,
		"SLACK_CLIENT_SECRET": slacktest.ClientSecret,
		"SLACK_WEBHOOK_HOSTS": "hooks.slack.com," + fake.WebhookHost(),
		"SHUTDOWN_TIMEOUT":    "5s",
	}
	getenv := environ(vars)
	var logs logtest.Buffer

	// A channel added by hand before the service runs.
	const manualHook = "https://hooks.slack.com/services/T0/B0/manualmanualmanual"
	var out bytes.Buffer
	if err := run(t.Context(), []string{"channels", "add", "--init", "--webhook-url", manualHook, "--channel", "ops"}, getenv, &out, &logs); err != nil {
		t.Fatalf("channels add: %v", err)
	}
	manualJamfURL := regexp.MustCompile(regexp.QuoteMeta(base+"/jamf/") + `\S+`).FindString(out.String())
	if manualJamfURL == "" {
		t.Fatalf("channels add printed no Jamf URL:\n%s", out.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, io.Discard, &logs) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := testwait.Receive(t, done, 20*time.Second, "run to return after its context ended"); err != nil {
			t.Errorf("run = %v; want nil after a graceful stop", err)
		}
	}
	t.Cleanup(stop)

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	client.Jar, _ = cookiejar.New(nil)
	waitReady(t, client, ops)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(t, client, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the public listener = %d; want 404: it is served on METRICS_ADDR only", path, code)
		}
	}
	if code, _ := get(t, client, ops+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on METRICS_ADDR = %d; want 200", code)
	}

	if code, page := get(t, client, base+"/"); code != http.StatusOK || !strings.Contains(page, `href="/install"`) {
		t.Errorf("GET / = %d; want the Add to Slack page:\n%s", code, page)
	}
	if code, _ := get(t, client, base+"/static/images/computer.png"); code != http.StatusOK {
		t.Errorf("GET /static/images/computer.png = %d; want 200", code)
	}

	// One refused code, then an install.
	fake.FailOAuth("invalid_code")
	state := begin(t, client, base)
	if code, _ := get(t, client, base+"/install?code=x&state="+url.QueryEscape(state)); code != http.StatusBadRequest {
		t.Errorf("refused code = %d; want 400", code)
	}
	hook := fake.AddCode("code-1", slacktest.Install{ChannelName: "jamf"})
	state = begin(t, client, base)
	code, page := get(t, client, base+"/install?code=code-1&state="+url.QueryEscape(state))
	jamfURL := regexp.MustCompile(regexp.QuoteMeta(base+"/jamf/") + `[0-9a-f-]{36}`).FindString(page)
	if code != http.StatusOK || jamfURL == "" {
		t.Fatalf("install = %d; want 200 with a Jamf URL:\n%s", code, page)
	}
	msgs := fake.WaitFor(t, hook, 1, 5*time.Second)
	if diff := cmp.Diff(render.Welcome(jamfURL), msgs[0]); diff != "" {
		t.Errorf("welcome (-want +got):\n%s", diff)
	}

	_, metrics := get(t, client, ops+"/metrics")
	for _, want := range []string{
		`jackalope_installer_installs_total{outcome="installed"} 1`,
		`jackalope_installer_oauth_errors_total{code="invalid_code"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	stop()

	// The channels commands see both installations.
	out.Reset()
	if err := run(t.Context(), []string{"channels", "list"}, getenv, &out, &logs); err != nil {
		t.Fatalf("channels list: %v", err)
	}
	if !strings.Contains(out.String(), "#ops") || !strings.Contains(out.String(), "#jamf") {
		t.Errorf("channels list:\n%s\nwant #ops and #jamf", out.String())
	}

	all := logs.String()
	if !strings.Contains(all, `"slack_client_secret":"********"`) {
		t.Errorf("start-up log does not show the masked config:\n%s", all)
	}
	for _, secret := range []string{
		slacktest.ClientSecret, testSecretKey, hook, manualHook,
		strings.TrimPrefix(jamfURL, base+"/jamf/"), strings.TrimPrefix(manualJamfURL, base+"/jamf/"),
	} {
		if strings.Contains(all, secret) {
			t.Errorf("logs contain the secret %q:\n%s", secret, all)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// begin starts an install and returns the state; the client's jar keeps
// the cookie.
func begin(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/install", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("GET /install = %d, %v; want 302", resp.StatusCode, err)
	}
	return loc.Query().Get("state")
}

// waitReady polls /readyz until the service is ready.
func waitReady(t *testing.T, c *http.Client, base string) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("the service is not ready: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the service is not ready: /readyz answered %d", resp.StatusCode)
		}
		return nil
	})
}

// TestStartupLogHidesCredentials starts the installer with credentials in
// NATS_URL and DATABASE_URL (a URL, a DSN with a quoted password), the
// database unreachable: neither the start-up log line nor the error shows
// them.
func TestStartupLogHidesCredentials(t *testing.T) {
	dbAddr := freeAddr(t)
	host, port, _ := net.SplitHostPort(dbAddr)
	for _, dbURL := range []string{
		"postgres://u@" + dbAddr + "/x?password=pw-s3cr3t&connect_timeout=5",
		"host=" + host + " port=" + port + " user=u password='a b-s3cr3t' dbname=x connect_timeout=5",
	} {
		var stderr bytes.Buffer
		vars := map[string]string{
			"SECRET_KEY":   testSecretKey,
			"NATS_URL":     "nats://TOKEN-s3cr3t@" + freeAddr(t),
			"DATABASE_URL": dbURL,
			"LISTEN_ADDR":  freeAddr(t),
			"METRICS_ADDR": freeAddr(t),
		}
		err := run(t.Context(), nil, environ(vars), io.Discard, &stderr)
		if err == nil {
			t.Fatal("run succeeded without a database")
		}
		out := stderr.String() + err.Error()
		if !strings.Contains(out, "installer starting") {
			t.Fatalf("no start-up line was logged; the check would prove nothing:\n%s", out)
		}
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "a b") {
			t.Errorf("the start-up log or error shows a credential:\n%s", out)
		}
	}
}

// TestCommandsRefuseAnotherKey pins finding 5 for the commands: a channels
// command that writes, or keys reseal, run with a SECRET_KEY that is not
// the installer's fails loudly instead of making a channel that answers 404
// forever, whether the registry or the published fingerprint tells.
func TestCommandsRefuseAnotherKey(t *testing.T) {
	const otherKey = "cmd-installer-another-secret-key-99"
	run1 := func(t *testing.T, key, dir string, args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := exitCode(run(t.Context(), args, environ(map[string]string{"SECRET_KEY": key, "DATA_DIR": dir}), &stdout, &stderr), &stderr)
		return code, stdout.String(), stderr.String()
	}
	hook := "https://hooks.slack.com/services/T0/B0/cmdtestcmdtestcmdtest"
	other := "https://hooks.slack.com/services/T0/B1/cmdtestcmdtestcmdtest"

	t.Run("registry sealed under another key", func(t *testing.T) {
		dir := t.TempDir()
		if code, out, errOut := run1(t, testSecretKey, dir, "channels", "add", "--init", "--webhook-url", hook, "--channel", "jamf"); code != 0 {
			t.Fatalf("channels add = %d:\n%s%s", code, out, errOut)
		}
		code, _, errOut := run1(t, otherKey, dir, "channels", "add", "--webhook-url", other, "--channel", "other")
		if code != 1 || !strings.Contains(errOut, "SECRET_KEY opens none of the stored installations") {
			t.Errorf("channels add with another key = %d, %q; want 1 saying the key is not the installer's", code, errOut)
		}
		if code, out, _ := run1(t, otherKey, dir, "channels", "list"); code != 0 || strings.Contains(out, "#other") {
			t.Errorf("channels list = %d:\n%s\nwant only the first channel", code, out)
		}
	})
	t.Run("published fingerprint of another key", func(t *testing.T) {
		dir := t.TempDir()
		if code, out, errOut := run1(t, testSecretKey, dir, "keys", "reseal", "--init"); code != 0 {
			t.Fatalf("keys reseal = %d:\n%s%s", code, out, errOut)
		}
		code, _, errOut := run1(t, otherKey, dir, "channels", "add", "--webhook-url", other, "--channel", "other")
		if code != 1 || !strings.Contains(errOut, "SECRET_KEY does not match the installer's key") {
			t.Errorf("channels add with another key = %d, %q; want 1 saying the key does not match", code, errOut)
		}
		code, _, errOut = run1(t, otherKey, dir, "keys", "reseal")
		if code != 1 || !strings.Contains(errOut, "SECRET_KEY is not the key the installer seals with") {
			t.Errorf("keys reseal with another key = %d, %q; want 1", code, errOut)
		}
		if code, out, _ := run1(t, otherKey, dir, "channels", "list"); code != 0 || !strings.Contains(out, "No installations.") {
			t.Errorf("channels list = %d:\n%s\nwant nothing added", code, out)
		}
	})
}
