package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const (
	// natsServerModule is the NATS server the module depends on; the tests
	// build it rather than trust whatever server the machine has.
	natsServerModule = "github.com/nats-io/nats-server/v2"
	// deployNATS is deploy/nats, from this package's directory.
	deployNATS = "../../../deploy/nats"
	// envNATSServer names a nats-server binary the tests use instead of
	// building natsServerModule (make cluster-test builds it once).
	envNATSServer = "JACKALOPE_TEST_NATS_SERVER"
	// refusalTimeout bounds the wait for the server's refusal of one
	// operation (it arrives asynchronously, as an -ERR).
	refusalTimeout = 10 * time.Second
)

// TestNATSPermissions runs the split deployment against a real nats-server
// started with deploy/nats/jackalope.conf, each service signed in as its
// own user with the seed `jackalope nats-creds` wrote: ingest and the
// dispatcher wait until the installer has provisioned, an event goes
// through to Slack, a dead channel is parked, reported and disabled, the
// console (on the installer's user) shows, resends and replays, and the
// admin reads and drops the dead letter. Then each user tries what it must
// not do, and the server refuses: ingest cannot read events or dead
// letters, consume, write the installations or touch the control stream;
// the dispatcher cannot write the installations, forge events or read
// dead letters back; the installer cannot consume events or delete or
// purge the backlog or the history; nobody without a seed gets in.
func TestNATSPermissions(t *testing.T) {
	bins := binaries(t, "installer", "ingest", "dispatcher")
	natsBin := natsServerBinary(t)

	seed, keys := natsUsers(t)

	// The compose file's server configuration is valid as shipped.
	checkNATSConf(t, natsBin, "nats-server.conf", keys)
	natsURL := startNATSServer(t, natsBin, keys)

	fake := slacktest.New(t)
	common := map[string]string{
		"NATS_URL":            natsURL,
		"SECRET_KEY":          randomKey(t),
		"SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"SLACK_WEBHOOK_HOSTS": fakeWebhookHosts,
	}
	with := userEnv(common, seed)

	// Ingest and the dispatcher start first and wait: they may not create
	// the streams.
	ingestAddr, ingestBase := loopback(t)
	ingestOpsAddr, ingestOps := loopback(t)
	ingest := startProcess(t, "ingest", bins["ingest"], with("ingest", map[string]string{"LISTEN_ADDR": ingestAddr, "METRICS_ADDR": ingestOpsAddr}))
	dispatcherAddr, dispatcherBase := loopback(t)
	installerAddr, installerBase := loopback(t)
	installerOpsAddr, installerOps := loopback(t)
	dispatcher := startProcess(t, "dispatcher", bins["dispatcher"], with("dispatcher", map[string]string{
		"METRICS_ADDR": dispatcherAddr, "SERVER_NAME": installerBase, "DISPATCH_WORKERS": "2",
	}))
	for _, s := range []*service{ingest, dispatcher} {
		waitOutput(t, s, "waiting for the installer")
	}
	if status, err := client.Get(ingestOps + "/readyz"); err == nil {
		status.Body.Close()
		if status.StatusCode == http.StatusOK {
			t.Error("ingest is ready before anything is provisioned")
		}
	}

	installerEnv := with("installer", map[string]string{
		"LISTEN_ADDR":  installerAddr,
		"METRICS_ADDR": installerOpsAddr,
		"SERVER_NAME":  installerBase,
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "jackalope.db"),
		// The console, for an admin who sees the channels added by hand.
		"SLACK_CLIENT_ID":     slacktest.ClientID,
		"SLACK_CLIENT_SECRET": slacktest.ClientSecret,
		"SLACK_OIDC_ISSUER":   fake.Issuer(),
		"ADMIN_SLACK_USERS":   consoleAdmin.UserID,
	})
	installer := startProcess(t, "installer", bins["installer"], installerEnv)
	waitReady(t, installer, installerOps+"/readyz")
	waitReady(t, ingest, ingestOps+"/readyz")
	waitReady(t, dispatcher, dispatcherBase+"/readyz")

	// An event goes through, every service on its own user.
	webhook := fake.NewWebhook("#jamf")
	jamfURL := jamfURLIn(t, "channels add", runCommand(t, bins["installer"], installerEnv,
		"channels", "add", "--webhook-url", webhook, "--channel", "#jamf"))
	ingestURL := func(jamfURL string) string { return ingestBase + jamfURL[strings.Index(jamfURL, "/jamf/"):] }
	postEvent(t, ingestURL(jamfURL), "application/json", eventBody(t, "perm-000"))
	waitDelivered(t, fake, webhook, []string{"perm-000"}, deliveryTimeout)

	// A dead channel: the dispatcher parks the event and reports the
	// channel, the installer disables it, ingest then answers 410.
	dead := fake.NewWebhook("#gone")
	deadJamfURL := jamfURLIn(t, "channels add", runCommand(t, bins["installer"], installerEnv,
		"channels", "add", "--webhook-url", dead, "--channel", "#gone"))
	fake.Kill(dead, "channel_not_found")
	postEvent(t, ingestURL(deadJamfURL), "application/json", eventBody(t, "perm-001"))
	waitStatus(t, ingestURL(deadJamfURL), eventBody(t, "perm-002"), http.StatusGone)

	adminEnv := maps.Clone(common)
	adminEnv["NATS_NKEY"] = seed("admin")
	if out := runCommand(t, bins["dispatcher"], adminEnv, "dlq", "list"); !strings.Contains(out, "channel_not_found") {
		t.Errorf("admin's dlq list does not show the dead letter:\n%s", out)
	}
	// The dispatcher's own user cannot read the dead letters back.
	if out, err := commandOutput(t, bins["dispatcher"], with("dispatcher", nil), "dlq", "list"); err == nil {
		t.Errorf("dlq list as the dispatcher's user succeeded; want it refused:\n%s", out)
	}

	// The console, served by the installer on its own user, reads each
	// channel's activity and dead letters, previews and resends the
	// history, and replays a dead letter (parked again: the channel is
	// disabled).
	consoleOnInstallerUser(t, fake, installerBase, webhook)

	refusals := []struct {
		user, what string
		op         func(context.Context, *nats.Conn) error
		subject    string
	}{
		{"ingest", "subscribe to events", subscribe("jamf.events.>"), "jamf.events.>"},
		{"ingest", "read others' replies", subscribe("_INBOX.>"), "_INBOX.>"},
		{"ingest", "read a dead letter", request("$JS.API.STREAM.MSG.GET.JAMF_DEAD", `{"seq":1}`), "$JS.API.STREAM.MSG.GET.JAMF_DEAD"},
		{"ingest", "read a dead letter directly", request("$JS.API.DIRECT.GET.JAMF_DEAD", `{"seq":1}`), "$JS.API.DIRECT.GET.JAMF_DEAD"},
		{"ingest", "consume events", request("$JS.API.CONSUMER.MSG.NEXT.JAMF_EVENTS.dispatch", `{"batch":1}`), "$JS.API.CONSUMER.MSG.NEXT.JAMF_EVENTS.dispatch"},
		{"ingest", "make a consumer of events", request("$JS.API.CONSUMER.CREATE.JAMF_EVENTS", `{"stream_name":"JAMF_EVENTS","config":{}}`), "$JS.API.CONSUMER.CREATE.JAMF_EVENTS"},
		{"ingest", "write an installation", request("$KV.installations.forged", `{}`), "$KV.installations.forged"},
		{"ingest", "disable a channel through the control stream", request("jackalope.control.channel_dead.forged", "gone"), "jackalope.control.channel_dead.forged"},
		{"ingest", "forge a dead letter", request("jamf.dead.forged", "{}"), "jamf.dead.forged"},
		{"ingest", "purge the dead letters", request("$JS.API.STREAM.PURGE.JAMF_DEAD", "{}"), "$JS.API.STREAM.PURGE.JAMF_DEAD"},
		{"ingest", "change the events stream", request("$JS.API.STREAM.UPDATE.JAMF_EVENTS", "{}"), "$JS.API.STREAM.UPDATE.JAMF_EVENTS"},
		{"dispatcher", "write an installation", request("$KV.installations.forged", `{}`), "$KV.installations.forged"},
		{"dispatcher", "forge an event", request("jamf.events.forged", `{}`), "jamf.events.forged"},
		{"dispatcher", "read a dead letter", request("$JS.API.STREAM.MSG.GET.JAMF_DEAD", `{"seq":1}`), "$JS.API.STREAM.MSG.GET.JAMF_DEAD"},
		{"dispatcher", "purge the dead letters", request("$JS.API.STREAM.PURGE.JAMF_DEAD", "{}"), "$JS.API.STREAM.PURGE.JAMF_DEAD"},
		{"dispatcher", "change the events stream", request("$JS.API.STREAM.UPDATE.JAMF_EVENTS", "{}"), "$JS.API.STREAM.UPDATE.JAMF_EVENTS"},
		{"dispatcher", "read ingest's replies", subscribe("_INBOX.jackalope-ingest.>"), "_INBOX.jackalope-ingest.>"},
		{"installer", "delete the events stream", request("$JS.API.STREAM.DELETE.JAMF_EVENTS", ""), "$JS.API.STREAM.DELETE.JAMF_EVENTS"},
		{"installer", "purge the events stream", request("$JS.API.STREAM.PURGE.JAMF_EVENTS", "{}"), "$JS.API.STREAM.PURGE.JAMF_EVENTS"},
		{"installer", "purge the history", request("$JS.API.STREAM.PURGE.JAMF_HISTORY", "{}"), "$JS.API.STREAM.PURGE.JAMF_HISTORY"},
		{"installer", "delete a backlog event", request("$JS.API.STREAM.MSG.DELETE.JAMF_EVENTS", `{"seq":1}`), "$JS.API.STREAM.MSG.DELETE.JAMF_EVENTS"},
		{"installer", "consume events", request("$JS.API.CONSUMER.MSG.NEXT.JAMF_EVENTS.dispatch", `{"batch":1}`), "$JS.API.CONSUMER.MSG.NEXT.JAMF_EVENTS.dispatch"},
		{"installer", "make a consumer of events", request("$JS.API.CONSUMER.CREATE.JAMF_EVENTS", `{"stream_name":"JAMF_EVENTS","config":{}}`), "$JS.API.CONSUMER.CREATE.JAMF_EVENTS"},
		{"installer", "read the dispatcher's replies", subscribe("_INBOX.jackalope-dispatcher.>"), "_INBOX.jackalope-dispatcher.>"},
	}
	for _, r := range refusals {
		t.Run(r.user+" may not "+r.what, func(t *testing.T) {
			nc, refused := connectAs(t, natsURL, r.user, seed(r.user))
			// A refused request is never answered: it ends once the
			// refusal has arrived.
			ctx, cancel := context.WithCancel(t.Context())
			answered := make(chan error, 1)
			go func() { answered <- r.op(ctx, nc) }()
			waitRefused(t, refused, r.subject)
			cancel()
			if err := <-answered; err == nil {
				t.Errorf("%s could %s: the server answered", r.user, r.what)
			}
		})
	}

	// The same harness sees what is allowed: these get their answer.
	allowed := []struct {
		user, what string
		op         func(context.Context, *nats.Conn) error
	}{
		{"ingest", "look at the events stream", request("$JS.API.STREAM.INFO.JAMF_EVENTS", "")},
		{"ingest", "read the installations", request("$JS.API.STREAM.INFO.KV_installations", "")},
		{"dispatcher", "look at its consumer", request("$JS.API.CONSUMER.INFO.JAMF_EVENTS.dispatch", "")},
		{"installer", "look at the dead letters stream", request("$JS.API.STREAM.INFO.JAMF_DEAD", "")},
		{"installer", "read a dead letter, for the console", request("$JS.API.STREAM.MSG.GET.JAMF_DEAD", `{"last_by_subj":"jamf.dead.>"}`)},
		{"admin", "read a dead letter", request("$JS.API.STREAM.MSG.GET.JAMF_DEAD", `{"last_by_subj":"jamf.dead.>"}`)},
	}
	for _, a := range allowed {
		t.Run(a.user+" may "+a.what, func(t *testing.T) {
			nc, refused := connectAs(t, natsURL, a.user, seed(a.user))
			ctx, cancel := context.WithTimeout(t.Context(), refusalTimeout)
			defer cancel()
			if err := a.op(ctx, nc); err != nil {
				t.Errorf("%s cannot %s: %v", a.user, a.what, err)
			}
			select {
			case err := <-refused:
				t.Errorf("%s was refused: %v", a.user, err)
			default:
			}
		})
	}

	// Nobody without a seed of deploy/nats gets in.
	strangers := t.TempDir()
	if err := app.NATSCreds(strangers, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	strangerKey, err := nats.NkeyOptionFromSeed(filepath.Join(strangers, "ingest", "nats.nk"))
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"another seed":   {strangerKey},
	} {
		if nc, err := nats.Connect(natsURL, append(opts, nats.NoReconnect())...); err == nil {
			nc.Close()
			t.Errorf("connect with %s succeeded; want it refused", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect with %s = %v; want an authorization violation", name, err)
		}
	}

	// The admin drops the dead letter: only it may purge JAMF_DEAD.
	if out := runCommand(t, bins["dispatcher"], adminEnv, "dlq", "drop", "--all"); !regexp.MustCompile(`dropped [1-9]`).MatchString(out) {
		t.Errorf("admin's dlq drop --all does not say it dropped the dead letters:\n%s", out)
	}

	// The services did all of the above, and stopped, without a single
	// refusal.
	for _, s := range []*service{ingest, dispatcher, installer} {
		if err := s.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("%s stopped with %v", s.name, err)
		}
		if out := s.output.String(); regexp.MustCompile(`(?i)permissions violation`).MatchString(out) {
			t.Errorf("%s was refused something it needs:\n%s", s.name, lastLines(out, 30))
		}
	}
}

// natsUsers writes the users' seeds as `jackalope nats-creds` does and
// returns where each user's seed is and the server's environment: the
// users' public keys, as nkeys.env has them.
func natsUsers(t *testing.T) (seed func(user string) string, keys map[string]string) {
	t.Helper()
	creds := t.TempDir()
	if err := app.NATSCreds(creds, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	seed = func(user string) string { return filepath.Join(creds, user, "nats.nk") }
	keys = map[string]string{}
	for _, user := range app.NATSUsers {
		public, _, err := bus.UserSeed(seed(user))
		if err != nil {
			t.Fatal(err)
		}
		keys[app.NATSKeyVariable(user)] = public
	}
	return seed, keys
}

// checkNATSConf fails the test unless nats-server (bin) finds
// deploy/nats/<file> valid in env.
func checkNATSConf(t *testing.T, bin, file string, env map[string]string) {
	t.Helper()
	check := exec.Command(bin, "-t", "-c", filepath.Join(deployNATS, file))
	check.Env = environ(env)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("nats-server -t -c deploy/nats/%s: %v\n%s", file, err, out)
	}
}

// userEnv returns a function that makes the environment of a service
// signed in as user (its seed in NATS_NKEY): common with extra.
func userEnv(common map[string]string, seed func(user string) string) func(user string, extra map[string]string) map[string]string {
	return func(user string, extra map[string]string) map[string]string {
		env := maps.Clone(common)
		env["NATS_NKEY"] = seed(user)
		maps.Copy(env, extra)
		return env
	}
}

// natsServerBinary builds the NATS server of the module's dependency once
// per run and returns its path, or returns JACKALOPE_TEST_NATS_SERVER's
// binary when that is set. It skips the test when the go command is
// missing.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(envNATSServer); bin != "" {
		return bin
	}
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.done == nil {
		built.done = map[string]bool{}
	}
	path := filepath.Join(binDir, "nats-server")
	if built.done["nats-server"] {
		return path
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is needed to build %s: %v", natsServerModule, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", path, natsServerModule).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", natsServerModule, err, out)
	}
	built.done["nats-server"] = true
	return path
}

// startNATSServer starts bin with deploy/nats/jackalope.conf on a free
// loopback port, its store in a temporary directory and the users' public
// keys in its environment, and returns its URL once the admin can sign in.
// With keys nil it starts a server without users and permissions: anyone
// may connect and do anything.
func startNATSServer(t *testing.T, bin string, keys map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	confPath := writeNATSConf(t, dir, port, "", keys != nil)
	srv := startProcess(t, "nats-server", bin, keys, "-c", confPath)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	poll(t, readyTimeout, func() (bool, string) {
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
		}
		// Answering at all, even "authorization violation", means it runs.
		if err == nil || errors.Is(err, nats.ErrAuthorization) {
			return true, ""
		}
		if !srv.running() {
			t.Fatalf("nats-server exited (%v)", srv.err)
		}
		return false, fmt.Sprintf("nats-server never took connections at %s (last: %v)", url, err)
	})
	return url
}

// writeNATSConf writes dir/server.conf, a server listening on port with
// its store in dir/store, extra (a cluster block, say) and, when users is
// true, deploy/nats/jackalope.conf's account and users; it returns the
// file's path.
func writeNATSConf(t *testing.T, dir string, port int, extra string, users bool) string {
	t.Helper()
	conf := "listen: 127.0.0.1:" + strconv.Itoa(port) + "\n" +
		"jetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "store")) + " }\n" +
		"max_payload: 8MB\n" + extra
	if users {
		perms, err := os.ReadFile(filepath.Join(deployNATS, "jackalope.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "jackalope.conf"), perms, 0o600); err != nil {
			t.Fatal(err)
		}
		conf += "include ./jackalope.conf\n"
	}
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectAs connects as user with its seed, taking replies under the
// user's inbox as the services do, and returns the connection and the
// server's refusals.
func connectAs(t *testing.T, url, user, seed string) (*nats.Conn, <-chan error) {
	t.Helper()
	key, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 16)
	nc, err := nats.Connect(url, key, nats.NoReconnect(),
		nats.CustomInboxPrefix("_INBOX.jackalope-"+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case refused <- err:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, refused
}

// request returns an operation that sends data to subject and waits for an
// answer: JetStream's, for the API, a stream's publish acknowledgement, or
// nothing when the server refused it.
func request(subject, data string) func(context.Context, *nats.Conn) error {
	return func(ctx context.Context, nc *nats.Conn) error {
		_, err := nc.RequestWithContext(ctx, subject, []byte(data))
		return err
	}
}

// subscribe returns an operation that subscribes to subject and makes sure
// the server has seen it; the server's refusal arrives asynchronously.
func subscribe(subject string) func(context.Context, *nats.Conn) error {
	return func(_ context.Context, nc *nats.Conn) error {
		if _, err := nc.SubscribeSync(subject); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		return errors.New("subscriptions are not answered; the refusal tells")
	}
}

// waitRefused waits for the server's refusal of subject.
func waitRefused(t *testing.T, refused <-chan error, subject string) {
	t.Helper()
	timeout := time.After(refusalTimeout)
	for {
		select {
		case err := <-refused:
			if strings.Contains(err.Error(), strconv.Quote(subject)) {
				return
			}
		case <-timeout:
			t.Errorf("no permissions violation for %q within %v", subject, refusalTimeout)
			return
		}
	}
}

// waitOutput waits until s has written want, failing the test after
// readyTimeout or when s exits.
func waitOutput(t *testing.T, s *service, want string) {
	t.Helper()
	poll(t, readyTimeout, func() (bool, string) {
		if strings.Contains(s.output.String(), want) {
			return true, ""
		}
		if !s.running() {
			t.Fatalf("%s exited (%v) before it said %q", s.name, s.err, want)
		}
		return false, fmt.Sprintf("%s did not say %q within %v", s.name, want, readyTimeout)
	})
}

// waitStatus posts body to jamfURL until ingest answers want, failing the
// test after deliveryTimeout.
func waitStatus(t *testing.T, jamfURL string, body []byte, want int) {
	t.Helper()
	poll(t, deliveryTimeout, func() (bool, string) {
		resp, err := client.Post(jamfURL, "application/json", bytes.NewReader(body))
		if err != nil {
			return false, fmt.Sprintf("POST %s never answered %d (last: %v)", jamfURL, want, err)
		}
		resp.Body.Close()
		return resp.StatusCode == want, fmt.Sprintf("POST %s never answered %d (last: %d)", jamfURL, want, resp.StatusCode)
	})
}

// poll asks done until it reports true, and fails the test with what done
// last said once timeout has passed.
func poll(t *testing.T, timeout time.Duration, done func() (ok bool, why string)) {
	t.Helper()
	testwait.Until(t, timeout, func() error {
		if ok, why := done(); !ok {
			return errors.New(why)
		}
		return nil
	})
}

// commandOutput runs bin with args in env to completion and returns its
// combined output and how it ended.
func commandOutput(t *testing.T, bin string, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = environ(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
