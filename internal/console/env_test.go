package console_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/console"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/installer"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

const testSecretKey = "console-test-secret-key-0123456789"

// Members of the two workspaces the tests install channels in.
var (
	ada   = slacktest.Member{UserID: "U0ADA", TeamID: "T0ACME", TeamName: "Acme", Name: "Ada Lovelace"}
	bob   = slacktest.Member{UserID: "U0BOB", TeamID: "T0ACME", TeamName: "Acme", Name: "Bob"}
	admin = slacktest.Member{UserID: "U0ADMIN", TeamID: "T0ACME", TeamName: "Acme", Name: "Acme Admin"}
	eve   = slacktest.Member{UserID: "U0EVE", TeamID: "T0OTHER", TeamName: "Other Corp", Name: "Eve"}
)

// testEnv is the console served over real HTTP beside the installer it
// drives, with a real SQLite store, an embedded JetStream and the fake
// Slack.
type testEnv struct {
	slack   *slacktest.Server
	store   *sqlite.Store
	bus     *bus.Conn
	keys    *secret.Keys
	in      *installer.Installer
	console *console.Console
	srv     *httptest.Server
	reg     *prometheus.Registry
	logs    *logtest.Buffer
	clock   *clock
}

// newEnv starts a test environment; opts adjust the console's options
// before it is built.
func newEnv(t *testing.T, opts ...func(*console.Options)) *testEnv {
	t.Helper()
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(t.Context(), t.TempDir()+"/jackalope.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := slacktest.New(t)
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	e := httpserver.New(httpserver.Options{Logger: logger, Gatherer: reg})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	env := &testEnv{slack: fake, store: store, bus: bustest.New(t), keys: keys, srv: srv, reg: reg, logs: logs, clock: &clock{now: time.Now()}}

	env.in, err = installer.New(installer.Options{
		Store:   store,
		KV:      env.bus,
		Slack:   slack.New(fake.Config()),
		Keys:    keys,
		BaseURL: srv.URL,
		OAuth: installer.OAuth{
			ClientID:        slacktest.ClientID,
			ClientSecretSet: true,
			AuthorizeURL:    "https://slack.test/oauth/v2/authorize",
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := console.Options{
		Channels:    env.in,
		DeadLetters: env.bus,
		Audit:       store,
		Keys:        keys,
		BaseURL:     srv.URL,
		OIDC:        console.OIDC{Issuer: fake.Issuer(), ClientID: slacktest.ClientID, ClientSecret: slacktest.ClientSecret},
		Admins:      []string{admin.UserID},
		Logger:      logger,
		Registerer:  reg,
		Now:         env.clock.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	env.console, err = console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	env.in.Register(e)
	env.console.Register(e)
	return env
}

// install installs a channel through "Add to Slack" and the fake's OAuth,
// as inst's member, and returns it with its webhook on the fake.
func (e *testEnv) install(t *testing.T, inst slacktest.Install) (registry.Installation, string) {
	t.Helper()
	b := browser(t)
	resp, _ := b.get(t, e.srv.URL+"/install")
	state := mustParse(t, resp.Header.Get("Location")).Query().Get("state")
	code := "code-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	hook := e.slack.AddCode(code, inst)
	if resp, page := b.get(t, e.srv.URL+"/install?"+url.Values{"code": {code}, "state": {state}}.Encode()); resp.StatusCode != http.StatusOK {
		t.Fatalf("install of %s = %d:\n%s", inst.ChannelName, resp.StatusCode, page)
	}
	all, err := e.store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range all {
		if in.ChannelName == "#"+inst.ChannelName && in.TeamID == inst.TeamID {
			return in, hook
		}
	}
	t.Fatalf("installed channel %s not in the store", inst.ChannelName)
	return registry.Installation{}, ""
}

// kill parks a dead letter for installation id, as a dispatcher would.
func (e *testEnv) deadLetter(t *testing.T, id, event, body string) {
	t.Helper()
	err := e.bus.DeadLetter(t.Context(), jamf.DeadLetter{
		Received:   jamf.Received{InstallationID: id, Event: event, ReceivedAt: time.Now(), Body: []byte(body)},
		Reason:     "bad_message",
		Attempts:   1,
		LastStatus: http.StatusBadRequest,
		LastBody:   "invalid_payload",
	})
	if err != nil {
		t.Fatal(err)
	}
}

// signIn signs m in through the fake's OpenID Connect and returns their
// browser, holding the session cookie.
func (e *testEnv) signIn(t *testing.T, m slacktest.Member) *client {
	t.Helper()
	b := browser(t)
	resp, page := b.get(t, e.srv.URL+"/admin/login")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /admin/login = %d:\n%s", resp.StatusCode, page)
	}
	back := e.slack.SignIn(t, resp.Header.Get("Location"), m)
	resp, page = b.get(t, back)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin" {
		t.Fatalf("callback = %d to %q; want 303 to /admin:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	return b
}

// client is a browser that keeps cookies and does not follow redirects.
type client struct {
	http *http.Client
}

func browser(t *testing.T) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{http: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *client) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (b *client) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

func (b *client) post(t *testing.T, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// csrf finds the CSRF token in a page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// act posts action on channel id with fields, the member's CSRF token and,
// when confirmed, the confirmation.
func (e *testEnv) act(t *testing.T, b *client, id, action string, confirmed bool, fields url.Values) (*http.Response, string) {
	t.Helper()
	_, page := b.get(t, e.srv.URL+"/admin")
	form := url.Values{"csrf": {csrf(t, page)}}
	for k, v := range fields {
		form[k] = v
	}
	if confirmed {
		form.Set("confirmed", "yes")
	}
	return b.post(t, e.srv.URL+"/admin/channels/"+id+"/"+action, form)
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// checkNoSecrets fails the test if any secret appears in the logs.
func (e *testEnv) checkNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged; the check would prove nothing")
	}
	for _, s := range append(secrets, slacktest.ClientSecret, testSecretKey) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("logs contain the secret %q", s)
		}
	}
}

// clock is a test clock that only moves when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
