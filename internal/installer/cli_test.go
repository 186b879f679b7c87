package installer

import (
	"bytes"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// run runs a channels command and returns its output.
func (e *testEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := e.in.RunChannelsCommand(t.Context(), args, &out)
	return out.String(), err
}

// mustRun runs a channels command that must succeed.
func (e *testEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("channels %s: %v", strings.Join(args, " "), err)
	}
	return out
}

const (
	hookA = "https://hooks.slack.com/services/T000A/B000A/aaaaaaaaaaaaaaaaaaaaaaaa"
	hookB = "https://hooks.slack.com/services/T000B/B000B/bbbbbbbbbbbbbbbbbbbbbbbb"
)

var uuidRE = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

// TestChannelsCommands runs every command in the order an operator would,
// checking output, SQL and KV after each.
func TestChannelsCommands(t *testing.T) {
	env := newEnv(t)
	var secrets []string
	jamfURLRE := regexp.MustCompile(regexp.QuoteMeta(env.srv.URL+"/jamf/") + uuidRE)

	// add
	out := env.mustRun(t, "add", "--webhook-url", hookA, "--channel", "jamf", "--team", "Acme")
	m := regexp.MustCompile(`^Added #jamf \(installation (` + uuidRE + `)\)\.\nJamf URL: (\S+)\n`).FindStringSubmatch(out)
	if m == nil || !jamfURLRE.MatchString(m[2]) {
		t.Fatalf("add printed:\n%s\nwant the installation and its Jamf URL", out)
	}
	idA, jamfA := m[1], m[2]
	if !strings.Contains(out, "Settings > Global > Webhooks > New") || !strings.Contains(out, "JSON") {
		t.Errorf("add does not say how to set the URL in Jamf Pro:\n%s", out)
	}
	inst, err := env.store.Get(t.Context(), idA)
	if err != nil {
		t.Fatal(err)
	}
	tokenA := strings.TrimPrefix(jamfA, env.srv.URL+"/jamf/")
	if inst.TeamID != "" || !strings.HasPrefix(inst.ChannelID, manualChannelPrefix) || strings.Contains(inst.ChannelID, "hooks.slack.com") ||
		inst.TeamName != "Acme" || inst.ChannelName != "#jamf" || inst.TokenHash != env.keys.HashToken(tokenA) {
		t.Errorf("added installation %+v", inst)
	}
	if h, _ := env.keys.OpenWebhook(inst.ID, inst.WebhookURLSealed); h != hookA {
		t.Error("webhook URL not stored sealed")
	}
	secrets = append(secrets, tokenA, inst.TokenHash)
	env.checkKVMatchesSQL(t)

	// add the same webhook again: same installation, same Jamf URL, new name
	out = env.mustRun(t, "add", "--channel=#jamf-alerts", "--webhook-url="+hookA, "--team", "Acme Corp")
	if want := "Updated #jamf-alerts (installation " + idA + "); its Jamf URL is unchanged.\nJamf URL: " + jamfA + "\n"; !strings.HasPrefix(out, want) {
		t.Errorf("second add printed:\n%s\nwant it to start with:\n%s", out, want)
	}
	env.checkKVMatchesSQL(t)

	// add another webhook
	out = env.mustRun(t, "add", "--webhook-url", hookB, "--channel", "@someone")
	m = regexp.MustCompile(`^Added @someone \(installation (` + uuidRE + `)\)`).FindStringSubmatch(out)
	if m == nil || m[1] == idA {
		t.Fatalf("add of another webhook printed:\n%s", out)
	}
	idB := m[1]
	if jamfB := jamfURLRE.FindString(out); jamfB == "" || jamfB == jamfA {
		t.Errorf("second webhook got Jamf URL %q; want a new one", jamfB)
	} else {
		secrets = append(secrets, strings.TrimPrefix(jamfB, env.srv.URL+"/jamf/"))
	}
	env.checkKVMatchesSQL(t)

	// rotate
	out = env.mustRun(t, "rotate", idA)
	newA := jamfURLRE.FindString(out)
	if newA == "" || newA == jamfA || !strings.Contains(out, "old URL no longer works") {
		t.Errorf("rotate printed:\n%s\nwant a new Jamf URL", out)
	}
	en, err := env.kv.GetInstallation(t.Context(), idA)
	if err != nil {
		t.Fatal(err)
	}
	tokenNew := strings.TrimPrefix(newA, env.srv.URL+"/jamf/")
	if en.TokenHash != env.keys.HashToken(tokenNew) || en.TokenHash == env.keys.HashToken(tokenA) {
		t.Error("KV does not index the rotated token (only)")
	}
	secrets = append(secrets, tokenNew)
	env.checkKVMatchesSQL(t)

	// disable, with the flag after the ID
	out = env.mustRun(t, "disable", idA, "--reason", "Slack workspace under review")
	if want := "Disabled #jamf-alerts (installation " + idA + "): Slack workspace under review\n"; out != want {
		t.Errorf("disable printed %q; want %q", out, want)
	}
	out = env.mustRun(t, "disable", idB)
	if !strings.HasSuffix(out, ": "+OperatorReason+"\n") {
		t.Errorf("disable without --reason printed %q; want the default reason", out)
	}
	env.checkKVMatchesSQL(t)

	// list
	out = env.mustRun(t, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %d lines; want a header and 2 rows:\n%s", len(lines), out)
	}
	if got := strings.Fields(lines[0]); !cmp.Equal(got, []string{"ID", "TEAM", "CHANNEL", "STATUS", "REASON", "CREATED", "AUTH", "PACE", "DIGESTS", "EVENTS"}) {
		t.Errorf("list header = %v", got)
	}
	rowA := regexp.MustCompile(`^` + idA + `\s+Acme Corp\s+#jamf-alerts\s+disabled\s+Slack workspace under review\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+-\s+default\s+default\s+all$`)
	rowB := regexp.MustCompile(`^` + idB + `\s+-\s+@someone\s+disabled\s+disabled by an operator\s+\S+Z\s+-\s+default\s+default\s+all$`)
	if !rowA.MatchString(lines[1]) || !rowB.MatchString(lines[2]) {
		t.Errorf("list rows:\n%s\n%s\nwant %s and %s", lines[1], lines[2], rowA, rowB)
	}
	for _, s := range append(secrets, hookA, hookB, "hooks.slack.com", "v1.", "v2.", env.srv.URL) {
		if strings.Contains(out, s) {
			t.Errorf("list shows the secret %q:\n%s", s, out)
		}
	}

	// enable
	out = env.mustRun(t, "enable", idA)
	if want := "Enabled #jamf-alerts (installation " + idA + ").\n"; out != want {
		t.Errorf("enable printed %q; want %q", out, want)
	}
	if inst, _ := env.store.Get(t.Context(), idA); inst.Status != registry.StatusActive || inst.StatusReason != "" {
		t.Errorf("after enable: %s (%q)", inst.Status, inst.StatusReason)
	}
	env.checkKVMatchesSQL(t)

	// set-jamf-url
	out = env.mustRun(t, "set-jamf-url", idA, "https://acme.jamfcloud.com/")
	if want := "Notifications of #jamf-alerts (installation " + idA + ") link to https://acme.jamfcloud.com.\n"; out != want {
		t.Errorf("set-jamf-url printed %q; want %q", out, want)
	}
	if en, _ := env.kv.GetInstallation(t.Context(), idA); en.JamfURL != "https://acme.jamfcloud.com" {
		t.Errorf("KV Jamf Pro URL = %q", en.JamfURL)
	}
	out = env.mustRun(t, "set-jamf-url", idA, "")
	if !strings.HasPrefix(out, "Cleared the Jamf Pro URL") {
		t.Errorf("set-jamf-url \"\" printed %q", out)
	}
	env.checkKVMatchesSQL(t)

	// remove
	out = env.mustRun(t, "remove", idB)
	if want := "Removed @someone (installation " + idB + "); its Jamf URL no longer works.\n"; out != want {
		t.Errorf("remove printed %q; want %q", out, want)
	}
	if _, err := env.store.Get(t.Context(), idB); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("removed installation still in SQL: %v", err)
	}
	env.checkKVMatchesSQL(t)

	env.checkNoSecrets(t, append(secrets, hookA, hookB)...)
}

// TestChannelsAddWebhookPolicy lets in only the webhook URLs that
// SLACK_WEBHOOK_HOSTS allows: https to hooks.slack.com by default, plain
// http to a loopback host (a local fake of Slack) only when it is listed.
// A refused URL stores nothing and never shows in the error.
func TestChannelsAddWebhookPolicy(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string // SLACK_WEBHOOK_HOSTS; nil is the default
		hook  string
		why   string // in the error; "" means accepted
	}{
		{name: "slack", hook: "https://hooks.slack.com/services/T1/B1/policypolicypolicy"},
		{name: "loopback listed", hosts: []string{"127.0.0.1"}, hook: "http://127.0.0.1:9/services/x"},
		{name: "localhost listed", hosts: []string{"localhost"}, hook: "http://localhost:9/services/y"},
		{name: "ipv6 loopback listed", hosts: []string{"::1"}, hook: "http://[::1]:9/services/z"},
		{name: "loopback by default", hook: "http://127.0.0.1:9/services/x", why: "host 127.0.0.1 is not in SLACK_WEBHOOK_HOSTS"},
		{name: "private address", hook: "https://192.168.1.20/services/T1/B1/secretsecret", why: "host 192.168.1.20 is not in SLACK_WEBHOOK_HOSTS"},
		{name: "another host", hook: "https://hooks.example.com/services/T1/B1/secretsecret", why: "not in SLACK_WEBHOOK_HOSTS (hooks.slack.com)"},
		{name: "plain http to slack", hook: "http://hooks.slack.com/services/T1/B1/secretsecret", why: "plain http"},
		{name: "odd port", hook: "https://hooks.slack.com:8443/services/T1/B1/secretsecret", why: "port 8443"},
		{name: "user info", hook: "https://u:p@hooks.slack.com/services/T1/B1/secretsecret", why: "user name or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(o *Options) { o.Webhooks = slack.NewWebhookPolicy(tt.hosts...) })
			out, err := env.run(t, "add", "--webhook-url", tt.hook, "--channel", "local")
			if tt.why == "" {
				if err != nil || !strings.Contains(out, "Jamf URL: ") {
					t.Errorf("add = %v, printed:\n%s\nwant a Jamf URL", err, out)
				}
				return
			}
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("add = %v; want a usage error saying %q", err, tt.why)
			}
			if err != nil && strings.Contains(err.Error(), tt.hook) {
				t.Errorf("the error %q shows the webhook URL", err)
			}
			if n := env.count(t); n != 0 {
				t.Errorf("store holds %d installations after a refused webhook", n)
			}
		})
	}
}

func TestChannelsCommandErrors(t *testing.T) {
	env := newEnv(t)
	const unknown = "00000000-0000-4000-8000-000000000000"
	tests := []struct {
		name      string
		args      []string
		wantUsage bool   // a *UsageError
		wantFound bool   // wraps registry.ErrNotFound
		wantMsg   string // in the error
		wantOut   string // in the output
	}{
		{name: "no command", args: nil, wantUsage: true, wantMsg: "a command is required"},
		{name: "unknown command", args: []string{"frobnicate"}, wantUsage: true, wantMsg: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, wantOut: "set-jamf-url ID URL"},
		{name: "add help", args: []string{"add", "-h"}, wantOut: "usage: channels add --webhook-url URL --channel NAME [--team NAME]"},
		{name: "add without anything", args: []string{"add"}, wantUsage: true, wantMsg: "--webhook-url is required; --channel is required"},
		{name: "add http webhook on another host", args: []string{"add", "--webhook-url", "http://hooks.slack.com/services/x", "--channel", "c"}, wantUsage: true, wantMsg: "plain http"},
		{name: "add not a url", args: []string{"add", "--webhook-url", "hooks.slack.com/services/x", "--channel", "c"}, wantUsage: true, wantMsg: "must be an https URL"},
		{name: "add with user info", args: []string{"add", "--webhook-url", "https://u:p@hooks.example/x", "--channel", "c"}, wantUsage: true, wantMsg: "user name or password"},
		{name: "add unknown flag", args: []string{"add", "--hook", hookA}, wantUsage: true, wantMsg: "flag provided but not defined: -hook"},
		{name: "add extra argument", args: []string{"add", "--webhook-url", hookA, "--channel", "c", "extra"}, wantUsage: true, wantMsg: `unexpected argument "extra"`},
		{name: "list extra argument", args: []string{"list", "all"}, wantUsage: true, wantMsg: `channels list: unexpected argument "all"`},
		{name: "rotate without id", args: []string{"rotate"}, wantUsage: true, wantMsg: "1 argument(s) missing"},
		{name: "rotate unknown", args: []string{"rotate", unknown}, wantFound: true, wantMsg: unknown},
		{name: "disable unknown", args: []string{"disable", unknown}, wantFound: true},
		{name: "disable two ids", args: []string{"disable", unknown, unknown}, wantUsage: true},
		{name: "enable unknown", args: []string{"enable", "not-a-uuid"}, wantFound: true, wantMsg: "channels list"},
		{name: "remove unknown", args: []string{"remove", unknown}, wantFound: true},
		{name: "set-jamf-url without url", args: []string{"set-jamf-url", unknown}, wantUsage: true, wantMsg: "1 argument(s) missing"},
		{name: "set-jamf-url ftp", args: []string{"set-jamf-url", unknown, "ftp://jamf.example.com"}, wantUsage: true, wantMsg: "http or https"},
		{name: "set-jamf-url unknown", args: []string{"set-jamf-url", unknown, "https://jamf.example.com"}, wantFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := env.run(t, tt.args...)
			var ue *UsageError
			if got := errors.As(err, &ue); got != tt.wantUsage {
				t.Errorf("err = %v; usage error %v, want %v", err, got, tt.wantUsage)
			}
			if tt.wantUsage && ue != nil && !strings.Contains(ue.Usage, "usage: ") {
				t.Errorf("usage error carries no usage: %#v", ue)
			}
			if got := errors.Is(err, registry.ErrNotFound); got != tt.wantFound {
				t.Errorf("err = %v; not found %v, want %v", err, got, tt.wantFound)
			}
			if !tt.wantUsage && !tt.wantFound && err != nil {
				t.Errorf("err = %v; want none", err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q; want it to contain %q", err, tt.wantMsg)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output %q; want it to contain %q", out, tt.wantOut)
			}
			if n := env.count(t); n != 0 {
				t.Errorf("store holds %d installations after a failed command", n)
			}
		})
	}
	if out := env.mustRun(t, "list"); out != "No installations.\n" {
		t.Errorf("list of nothing printed %q", out)
	}
}

// TestChannelsTest posts a test message through the fake Slack and reports
// Slack's answer, taken or not. The channel is installed through Slack, so
// that its webhook is on the fake's host, which the Slack client's webhook
// policy (SLACK_WEBHOOK_HOSTS) lists.
func TestChannelsTest(t *testing.T) {
	env := newEnv(t)
	hook := env.slack.AddCode("c-test", slacktest.Install{ChannelName: "#jamf"})
	if status, page, _ := env.install(t, "c-test"); status != http.StatusOK {
		t.Fatalf("install = %d:\n%s", status, page)
	}
	all, err := env.store.List(t.Context())
	if err != nil || len(all) != 1 {
		t.Fatalf("store holds %d installations (%v); want the one installed", len(all), err)
	}
	id := all[0].ID
	welcomed := env.slack.Count(hook)

	out := env.mustRun(t, "test", id)
	if want := "Slack took the test message for #jamf (installation " + id + ").\n"; out != want {
		t.Errorf("test printed %q; want %q", out, want)
	}
	msgs := env.slack.Messages(hook)[welcomed:]
	if len(msgs) != 1 || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].Title != "Jackalope test message" {
		t.Errorf("channel got %+v after the welcome; want one test message", msgs)
	}

	env.slack.Kill(hook, "channel_is_archived")
	_, err = env.run(t, "test", id)
	if err == nil || !strings.Contains(err.Error(), "channel_is_archived") || strings.Contains(err.Error(), hook) {
		t.Errorf("test of an archived channel = %v; want Slack's answer, without the webhook URL", err)
	}
	if inst, _ := env.store.Get(t.Context(), id); inst.Status != registry.StatusActive {
		t.Errorf("after a refused test message the installation is %s; want it unchanged", inst.Status)
	}
	if _, err := env.run(t, "test", "00000000-0000-0000-0000-000000000000"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("test of an unknown installation = %v; want ErrNotFound", err)
	}
	env.checkNoSecrets(t, hook)
}
