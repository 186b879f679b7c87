package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/cmd/internal/app"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

const (
	// modulePath is the module whose commands the tests build.
	modulePath = "github.com/jackalope-app/jackalope"
	// buildTimeout bounds building the binaries on a busy machine.
	buildTimeout = 5 * time.Minute
	// readyTimeout bounds how long a service may take to answer /readyz:
	// starting NATS, migrating the store, the first reconcile, under -race
	// on a shared machine.
	readyTimeout = 60 * time.Second
	// shutdownTimeout is the SHUTDOWN_TIMEOUT of every service the tests
	// start, and stopTimeout how long a graceful stop may take in all.
	shutdownTimeout = 5 * time.Second
	stopTimeout     = shutdownTimeout + 30*time.Second
	// commandTimeout bounds a `channels` or `dlq` command.
	commandTimeout = 60 * time.Second
	// knownTimeout bounds how long ingest may answer 404 to a new channel's
	// Jamf URL: its read model learns the channel from the KV bucket.
	knownTimeout = 15 * time.Second
	// deliveryTimeout bounds how long accepted events may take to reach the
	// fake Slack when nothing has to wait for an AckWait.
	deliveryTimeout = 60 * time.Second
	// outputLines is how much of a service's output a failed test shows.
	outputLines = 150
	// fakeWebhookHosts is SLACK_WEBHOOK_HOSTS of every service the tests
	// start: the fake Slack (slacktest, httptest) and the outage proxy
	// in front of it serve their webhooks over plain http on 127.0.0.1,
	// which the default (hooks.slack.com) refuses.
	fakeWebhookHosts = "127.0.0.1"
)

// client is the tests' HTTP client; every request is bounded.
var client = &http.Client{Timeout: 15 * time.Second}

// binDir holds the binaries the tests build, once per run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jackalope-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir) // a temporary directory; nothing to do if it stays
	os.Exit(code)
}

// built records the commands already built into binDir.
var built struct {
	mu   sync.Mutex
	done map[string]bool
}

// binaries builds the named commands of cmd/ (once per test run, in one go
// build) and returns their paths by name. They are built with -race when
// the tests are. It skips the test under -short.
func binaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped under -short")
	}
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.done == nil {
		built.done = map[string]bool{}
	}
	paths := map[string]string{}
	var missing []string
	for _, name := range names {
		paths[name] = filepath.Join(binDir, name)
		if !built.done[name] {
			missing = append(missing, modulePath+"/cmd/"+name)
		}
	}
	if len(missing) == 0 {
		return paths
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build %v: %v", missing, err)
	}
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, missing...)
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %v in %v (race: %t)", names, time.Since(start).Round(time.Millisecond), raceEnabled)
	for _, name := range names {
		built.done[name] = true
	}
	return paths
}

// freePort returns a loopback TCP port that was free a moment ago and that
// no other call returned. The services take fixed ports because
// SERVER_NAME, which goes into every Jamf URL, must name them before they
// start. The ports come from below the kernel's ephemeral range (32768 and
// up on Linux), from which it picks the local ports of outgoing
// connections and of listeners on port 0: one of those took a port this
// handed out, between its check and the service's bind, once in CI.
func freePort(t *testing.T) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for range 1000 {
		p := portsFrom + rand.IntN(portsUpTo-portsFrom)
		if ports.given[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		ports.given[p] = true
		return p
	}
	t.Fatalf("no free loopback port between %d and %d", portsFrom, portsUpTo)
	return 0
}

// The ports freePort hands out, and those it did.
const portsFrom, portsUpTo = 20000, 32768

var ports = struct {
	mu    sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// loopback returns an address on a free loopback port and its http base URL.
func loopback(t *testing.T) (addr, base string) {
	t.Helper()
	addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	return addr, "http://" + addr
}

// allInOneEnv is the environment of an all-in-one on a free loopback port
// with a data directory of its own, and its base URL.
func allInOneEnv(t *testing.T) (env map[string]string, base string) {
	t.Helper()
	addr, base := loopback(t)
	return map[string]string{
		"LISTEN_ADDR":         addr,
		"SERVER_NAME":         base,
		"DATA_DIR":            t.TempDir(),
		"SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"SLACK_WEBHOOK_HOSTS": fakeWebhookHosts,
	}, base
}

// withSlackApp adds the fake's OAuth client to env, so that "Add to Slack"
// works, and returns the authorize URL the install starts at. Nothing
// serves that URL: the test plays the browser and Slack's consent screen.
func withSlackApp(env map[string]string, fake *slacktest.Server) (authorizeURL string) {
	authorizeURL = fakeBase(fake) + "/oauth/v2/authorize"
	env["SLACK_CLIENT_ID"] = slacktest.ClientID
	env["SLACK_CLIENT_SECRET"] = slacktest.ClientSecret
	env["SLACK_API_URL"] = fake.URL()
	env["SLACK_OAUTH_URL"] = authorizeURL
	return authorizeURL
}

// fakeBase is the fake Slack's scheme and host.
func fakeBase(fake *slacktest.Server) string { return strings.TrimSuffix(fake.URL(), "/api") }

// getenv looks variables up in env only, so that nothing from the
// machine's environment leaks into a service under test.
func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// environ is env in exec.Cmd's form.
func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// service is something the test started that serves until stopped: an
// all-in-one in this process or a process of its own.
type service struct {
	name   string
	output *logtest.Buffer
	exited chan struct{} // closed once it returned or exited; err is set
	err    error
	stopFn func(os.Signal) // asks it to stop: cancel or signal
	pid    int             // a process's ID; 0 for the all-in-one in process
}

// startAllInOne runs app.AllInOne in a goroutine, as cmd/jackalope's main
// does, until the test stops it or ends. Its stdout and stderr are logged
// if the test fails.
func startAllInOne(t *testing.T, env map[string]string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{name: "all-in-one", output: &logtest.Buffer{}, exited: make(chan struct{}), stopFn: func(os.Signal) { cancel() }}
	go func() {
		defer close(s.exited)
		s.err = app.AllInOne(ctx, nil, getenv(env), s.output, s.output)
	}()
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

// startProcess starts bin with args in env (and nothing else of this
// process's environment), its stdout and stderr captured. When the test
// ends it is stopped with SIGTERM, or killed if the test failed; its output
// is logged if the test failed, and a data race it reported fails the test.
func startProcess(t *testing.T, name, bin string, env map[string]string, args ...string) *service {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environ(env)
	cmd.SysProcAttr = dieWithParent()
	s := &service{name: name, output: &logtest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s.pid = cmd.Process.Pid
	s.stopFn = func(sig os.Signal) { _ = cmd.Process.Signal(sig) } // it may have exited already
	go func() {
		defer close(s.exited)
		s.err = cmd.Wait()
	}()
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

// stop sends sig (a process) or cancels the context (the all-in-one in
// process) and returns how it ended, failing the test if it does not end
// within stopTimeout.
func (s *service) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	s.stopFn(sig)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(stopTimeout):
		t.Fatalf("%s did not stop within %v of %v", s.name, stopTimeout, sig)
		return nil
	}
}

// running reports whether the service has not exited yet.
func (s *service) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *service) cleanup(t *testing.T) {
	if s.running() {
		sig := os.Signal(syscall.SIGTERM)
		if t.Failed() {
			sig = syscall.SIGKILL
		}
		s.stopFn(sig)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			t.Errorf("%s did not stop within %v of %v; killing it", s.name, stopTimeout, sig)
			s.stopFn(syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				t.Errorf("%s is still running", s.name) // only the all-in-one in process can be
			}
		}
	}
	out := s.output.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race", s.name)
	}
	if t.Failed() {
		t.Logf("%s ended with %v; the end of its output:\n%s", s.name, s.err, lastLines(out, outputLines))
	}
}

// runCommand runs bin with args in env to completion and returns its
// stdout, failing the test if it fails.
func runCommand(t *testing.T, bin string, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = environ(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

// runAllInOne runs one app.AllInOne command (channels, dlq) in env to
// completion and returns its stdout, failing the test if it fails.
func runAllInOne(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	var stdout, stderr logtest.Buffer
	if err := app.AllInOne(ctx, args, getenv(env), &stdout, &stderr); err != nil {
		t.Fatalf("jackalope %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

// waitReady polls url until it answers 200, failing the test after
// readyTimeout or as soon as s exits.
func waitReady(t *testing.T, s *service, url string) {
	t.Helper()
	var last string
	testwait.Until(t, readyTimeout, func() error {
		if !s.running() {
			t.Fatalf("%s exited (%v) before %s answered 200 (last: %s)", s.name, s.err, url, last)
		}
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			return fmt.Errorf("%s: %s not ready (last: %s)", s.name, url, last)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			return fmt.Errorf("%s: %s not ready (last: %s)", s.name, url, last)
		}
		return nil
	})
}

// get fetches url and returns the status, the content type and the body,
// failing the test if there is no answer.
func get(t *testing.T, url string) (status int, contentType string, body []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// postEvent posts a Jamf webhook body to jamfURL, as Jamf Pro does, and
// fails the test unless it is accepted (204). A 404 is tried again for up
// to knownTimeout: ingest's read model learns a new channel from the KV
// bucket a moment after the installer stored it. Each of opts adjusts the
// request (credentials, say).
func postEvent(t *testing.T, jamfURL, contentType string, body []byte, opts ...func(*http.Request)) {
	t.Helper()
	testwait.Until(t, knownTimeout, func() error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, jamfURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		for _, o := range opts {
			o(req)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", jamfURL, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent:
			return nil
		case http.StatusNotFound:
			return fmt.Errorf("POST %s (%s): %d %q, want 204", jamfURL, contentType, resp.StatusCode, answer)
		}
		t.Fatalf("POST %s (%s): %d %q, want 204", jamfURL, contentType, resp.StatusCode, answer)
		return nil
	})
}

// jamfURLPattern matches a Jamf URL: base URL, /jamf/, a UUID token.
var jamfURLPattern = regexp.MustCompile(`https?://[^\s"'<>]+/jamf/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// jamfURLIn finds the one Jamf URL in text (a page, a command's output),
// failing the test if there is none.
func jamfURLIn(t *testing.T, what, text string) string {
	t.Helper()
	u := jamfURLPattern.FindString(text)
	if u == "" {
		t.Fatalf("no Jamf URL in %s:\n%s", what, text)
	}
	return u
}

// installThroughSlack plays the Slack admin's browser through "Add to
// Slack" at base: GET /install (redirects not followed) must send it to
// authorizeURL with the app's client ID, the incoming-webhook scope, the
// redirect URI and a state, and set the state cookie; Slack's consent is
// played by registering a code with the fake, which mints the channel's
// webhook; the redirect back, with the cookie, must answer the result page.
// It returns the Jamf URL on that page and the channel's webhook.
func installThroughSlack(t *testing.T, fake *slacktest.Server, base, authorizeURL, channel string) (jamfURL, webhook string) {
	t.Helper()
	return installThroughSlackAs(t, fake, base, authorizeURL, slacktest.Install{ChannelName: channel})
}

// installThroughSlackAs is installThroughSlack with the workspace, the
// channel and the installing member of inst.
func installThroughSlackAs(t *testing.T, fake *slacktest.Server, base, authorizeURL string, inst slacktest.Install) (jamfURL, webhook string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{
		Jar:           jar,
		Timeout:       client.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	resp, err := browser.Get(base + "/install")
	if err != nil {
		t.Fatalf("GET /install: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /install = %d, want 302 to Slack", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), authorizeURL+"?") {
		t.Fatalf("GET /install redirects to %q, want %s?...", resp.Header.Get("Location"), authorizeURL)
	}
	q := loc.Query()
	redirectURI := base + "/install"
	if q.Get("client_id") != slacktest.ClientID || q.Get("redirect_uri") != redirectURI ||
		!slices.Contains(strings.Split(q.Get("scope"), ","), "incoming-webhook") || q.Get("state") == "" {
		t.Fatalf("authorize query = %v, want client_id %s, redirect_uri %s, scope incoming-webhook and a state",
			q, slacktest.ClientID, redirectURI)
	}
	if len(jar.Cookies(resp.Request.URL)) == 0 {
		t.Fatal("GET /install set no state cookie")
	}

	code := "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	webhook = fake.AddCode(code, inst)
	callback := redirectURI + "?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	resp, err = browser.Get(callback)
	if err != nil {
		t.Fatalf("GET /install?code=…: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /install?code=… = %d, want 200\n%s", resp.StatusCode, page)
	}
	return jamfURLIn(t, "the install result page", string(page)), webhook
}

// checkWelcome waits for the welcome message at webhook and checks that it
// gives the Jamf URL.
func checkWelcome(t *testing.T, fake *slacktest.Server, webhook, jamfURL string) {
	t.Helper()
	msgs := fake.WaitFor(t, webhook, 1, deliveryTimeout)
	if len(msgs[0].Attachments) == 0 || !strings.Contains(msgs[0].Attachments[0].Text, jamfURL) {
		t.Errorf("first message at the channel = %+v, want the welcome message with the Jamf URL %s", msgs[0], jamfURL)
	}
}

// eventIDs names n events: prefix-000, prefix-001, ...
func eventIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return ids
}

// eventBody is the ComputerAdded sample with id as the computer's name:
// distinct bodies are distinct events to JetStream's dedup, and the name
// shows in the message, so each message is told apart.
func eventBody(t *testing.T, id string) []byte {
	t.Helper()
	return renamedSample(t, "ComputerAdded.json", id)
}

// renamedSample is the sample file with id as the computer's name.
func renamedSample(t *testing.T, file, id string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	const name = `"MBP-JRIVERA-01"`
	if bytes.Count(raw, []byte(name)) != 1 {
		t.Fatalf("%s does not name the computer %s exactly once", file, name)
	}
	return bytes.Replace(raw, []byte(name), []byte(strconv.Quote(id)), 1)
}

// idsPattern finds event names made by eventIDs in a message.
var idsPattern = regexp.MustCompile(`\b[a-z0-9]+-\d{3}\b`)

// countIDs counts, per event name, the messages that name it: once for a
// message of its own, once for a digest that lists it among others.
func countIDs(msgs []slack.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		b, err := json.Marshal(m)
		if err != nil {
			continue
		}
		seen := map[string]bool{}
		for _, id := range idsPattern.FindAllString(string(b), -1) {
			if !seen[id] {
				seen[id] = true
				n[id]++
			}
		}
	}
	return n
}

// waitDelivered waits until every event in ids has reached webhook at
// least once and returns how many times each event name arrived. It fails
// the test, listing what is missing, after timeout.
func waitDelivered(t *testing.T, fake *slacktest.Server, webhook string, ids []string, timeout time.Duration) map[string]int {
	t.Helper()
	var got map[string]int
	testwait.Until(t, timeout, func() error {
		got = countIDs(fake.Messages(webhook))
		var missing []string
		for _, id := range ids {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d accepted events never reached Slack: %v", len(missing), len(ids), head(missing, 20))
		}
		return nil
	})
	return got
}

// duplicates is how many messages beyond the first arrived for the events
// in ids.
func duplicates(got map[string]int, ids []string) int {
	n := 0
	for _, id := range ids {
		n += max(got[id]-1, 0)
	}
	return n
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		return fmt.Sprintf("[… %d lines before]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "")
	}
	return s
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… (%d more)", len(s)-n))
	}
	return s
}

// outage stands between the dispatchers and the fake Slack, for a Slack
// that is down: while down it answers every post itself with the 500 Slack
// sends when it fails, so the fake records nothing; while up it passes
// every request on to the fake.
type outage struct {
	srv     *httptest.Server
	down    atomic.Bool
	refused atomic.Int64
}

func newOutage(t *testing.T, fake *slacktest.Server) *outage {
	t.Helper()
	target, err := url.Parse(fakeBase(fake))
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			o.refused.Add(1)
			http.Error(w, "rollup_error", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// url is webhook (a URL of the fake) reached through the outage.
func (o *outage) url(t *testing.T, webhook string) string {
	t.Helper()
	u, err := url.Parse(webhook)
	if err != nil {
		t.Fatal(err)
	}
	return o.srv.URL + u.Path
}

// waitRefused waits until the outage has turned n posts away: the
// dispatcher is trying and failing.
func (o *outage) waitRefused(t *testing.T, n int64) {
	t.Helper()
	testwait.Until(t, deliveryTimeout, func() error {
		if got := o.refused.Load(); got < n {
			return fmt.Errorf("the dispatcher tried only %d posts during the outage, want %d", got, n)
		}
		return nil
	})
}

// scrapeCounter reads one series, such as
// `jackalope_dispatch_deliveries_total{outcome="delivered"}`, from the
// Prometheus text at metricsURL, failing the test if it is not there.
func scrapeCounter(t *testing.T, metricsURL, series string) float64 {
	t.Helper()
	status, _, body := get(t, metricsURL)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d", metricsURL, status)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", metricsURL, sc.Text(), err)
		}
		return v
	}
	t.Fatalf("%s has no series %s", metricsURL, series)
	return 0
}

// exitedBySignal reports whether err is a process's exit by sig.
func exitedBySignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
