package installer

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

const testSecretKey = "installer-test-secret-key-0123456789"

// testEnv is an installer served over real HTTP, with a real SQLite store,
// an embedded JetStream for its KV bucket and the fake Slack.
type testEnv struct {
	slack *slacktest.Server
	store *sqlite.Store
	kv    *bus.Conn
	keys  *secret.Keys
	in    *Installer
	srv   *httptest.Server
	reg   *prometheus.Registry
	logs  *logtest.Buffer
	clock *clock
}

// newEnv starts a test environment; opts adjust the installer's options
// before it is built.
func newEnv(t *testing.T, opts ...func(*Options)) *testEnv {
	t.Helper()
	return newEnvWithServer(t, nil, opts...)
}

// newEnvWithServer is newEnv with server adjusting the HTTP server (its
// timeouts, say) before it starts.
func newEnvWithServer(t *testing.T, server func(*http.Server), opts ...func(*Options)) *testEnv {
	t.Helper()
	ctx := t.Context()
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, t.TempDir()+"/jackalope.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := slacktest.New(t)
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	e := httpserver.New(httpserver.Options{Logger: logger, Gatherer: reg})
	srv := httptest.NewUnstartedServer(e)
	if server != nil {
		server(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	fake.SetRedirectURI(srv.URL + "/install")

	env := &testEnv{
		slack: fake,
		store: store,
		kv:    bustest.New(t),
		keys:  keys,
		srv:   srv,
		reg:   reg,
		logs:  logs,
		clock: &clock{now: time.Now()},
	}
	o := Options{
		Store:   store,
		KV:      env.kv,
		Slack:   slack.New(fake.Config()),
		Keys:    keys,
		BaseURL: srv.URL,
		OAuth: OAuth{
			ClientID:        slacktest.ClientID,
			ClientSecretSet: true,
			AuthorizeURL:    "https://slack.test/oauth/v2/authorize?team=T0SLACKTEST",
			Scopes:          []string{"incoming-webhook"},
		},
		Logger:     logger,
		Registerer: reg,
		Now:        env.clock.Now,
		Keyring:    env.kv,
		UsedStates: env.kv,
	}
	for _, f := range opts {
		f(&o)
	}
	env.in, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	env.in.Register(e)
	return env
}

// browser returns an HTTP client that does not follow redirects, with a
// cookie jar when jar is true.
func browser(t *testing.T, jar bool) *http.Client {
	t.Helper()
	c := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if jar {
		j, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Jar = j
	}
	return c
}

// do sends req and returns the answer with its body read.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", req.URL.Path, err)
	}
	return resp, string(body)
}

func get(t *testing.T, c *http.Client, u string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	return do(t, c, req)
}

// begin starts an install as a browser without a jar would, and returns the
// state Slack would send back and the state cookie.
func (e *testEnv) begin(t *testing.T) (string, *http.Cookie) {
	t.Helper()
	resp, _ := get(t, browser(t, false), e.srv.URL+"/install")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /install = %d; want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == stateCookie {
			return loc.Query().Get("state"), ck
		}
	}
	t.Fatal("GET /install set no state cookie")
	return "", nil
}

// callback comes back to /install with q, as Slack's redirect does.
func (e *testEnv) callback(t *testing.T, q url.Values, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	return get(t, browser(t, false), e.srv.URL+"/install?"+q.Encode(), cookies...)
}

// install runs the flow for a code registered on the fake Slack and
// returns the result page's status, body and Jamf URL.
func (e *testEnv) install(t *testing.T, code string) (int, string, string) {
	t.Helper()
	state, ck := e.begin(t)
	resp, body := e.callback(t, url.Values{"code": {code}, "state": {state}}, ck)
	return resp.StatusCode, body, e.jamfURLIn(body)
}

// jamfURLIn finds the Jamf URL a page shows, "" when there is none.
func (e *testEnv) jamfURLIn(page string) string {
	m := regexp.MustCompile(regexp.QuoteMeta(e.srv.URL+"/jamf/") + `[0-9a-f-]{36}`).FindString(page)
	return m
}

// formTokenIn finds the Jamf Pro URL form's token in a page.
func formTokenIn(page string) string {
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// only returns the single installation in the store.
func (e *testEnv) only(t *testing.T) registry.Installation {
	t.Helper()
	all, err := e.store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("store holds %d installations; want 1", len(all))
	}
	return all[0]
}

// count returns how many installations the store holds.
func (e *testEnv) count(t *testing.T) int {
	t.Helper()
	all, err := e.store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

// checkKVMatchesSQL fails the test unless the KV bucket holds exactly the
// read model of every installation in SQL.
func (e *testEnv) checkKVMatchesSQL(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	all, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]registry.Entry{}
	for _, inst := range all {
		want[inst.ID] = inst.Entry()
	}
	got := kvContents(t, ctx, e.kv)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("KV differs from SQL (-sql +kv):\n%s", diff)
	}
}

func kvContents(t *testing.T, ctx context.Context, kv *bus.Conn) map[string]registry.Entry {
	t.Helper()
	keys, err := kv.InstallationKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	got := map[string]registry.Entry{}
	for _, k := range keys {
		en, err := kv.GetInstallation(ctx, k)
		if err != nil {
			t.Fatalf("get KV entry %s: %v", k, err)
		}
		got[k] = en
	}
	return got
}

// checkNoSecrets fails the test if any secret appears in the logs.
func (e *testEnv) checkNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged; the check would prove nothing")
	}
	for _, s := range append(secrets, slacktest.ClientSecret) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("logs contain the secret %q:\n%s", s, logs)
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

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
