package e2e

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// consoleAdmin is who the console tests without a browser sign in as: a
// Jackalope admin (ADMIN_SLACK_USERS), who sees and changes the channels
// added by hand.
var consoleAdmin = slacktest.Member{UserID: "U0ADMIN", TeamID: "T0ACME", TeamName: "Acme", Name: "Acme Admin"}

// consoleSession is a signed-in member's browser without a browser: it
// keeps the session cookie and does not follow redirects.
type consoleSession struct {
	base string
	http *http.Client
}

// signInConsole signs m in to the console at base through the fake
// Slack's OpenID Connect.
func signInConsole(t *testing.T, fake *slacktest.Server, base string, m slacktest.Member) *consoleSession {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &consoleSession{base: base, http: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	resp, page := s.do(t, http.MethodGet, base+"/admin/login", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /admin/login = %d:\n%s", resp.StatusCode, page)
	}
	back := fake.SignIn(t, resp.Header.Get("Location"), m)
	if resp, page = s.do(t, http.MethodGet, back, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in callback = %d:\n%s", resp.StatusCode, page)
	}
	return s
}

func (s *consoleSession) do(t *testing.T, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// page loads a console page, failing the test unless it answers 200.
func (s *consoleSession) page(t *testing.T, path string) string {
	t.Helper()
	resp, page := s.do(t, http.MethodGet, s.base+path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", path, resp.StatusCode, page)
	}
	return page
}

// act posts a console form: fields and the CSRF token of the channels page.
func (s *consoleSession) act(t *testing.T, path string, fields url.Values) (*http.Response, string) {
	t.Helper()
	form := url.Values{"csrf": {csrfIn(t, s.page(t, "/admin"))}}
	for k, v := range fields {
		form[k] = v
	}
	return s.do(t, http.MethodPost, s.base+path, form)
}

// confirm posts what a confirmation page's form holds, as its button does,
// and fails the test unless the console goes back to the channel.
func (s *consoleSession) confirm(t *testing.T, path, confirmation string) string {
	t.Helper()
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(confirmation, -1) {
		form.Add(m[1], html.UnescapeString(m[2]))
	}
	resp, page := s.do(t, http.MethodPost, s.base+path, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed %s = %d:\n%s", path, resp.StatusCode, page)
	}
	return s.page(t, resp.Header.Get("Location"))
}

// csrfIn finds the CSRF token in a page.
func csrfIn(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// channelIDIn finds the installation ID of the channel named name on the
// channels page.
func channelIDIn(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`/admin/channels/([0-9a-f-]{36})">` + regexp.QuoteMeta(name) + `<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("channel %s is not on the channels page:\n%s", name, page)
	}
	return m[1]
}

// consoleOnInstallerUser drives the console of an installer that signs in
// to NATS with least privilege, as TestNATSPermissions runs it: #jamf has
// a delivered event and #gone a dead letter. Every read and change the
// console makes must be allowed; the caller checks that no service was
// refused anything.
func consoleOnInstallerUser(t *testing.T, fake *slacktest.Server, base, webhook string) {
	t.Helper()
	s := signInConsole(t, fake, base, consoleAdmin)
	page := s.page(t, "/admin")
	jamf, gone := channelIDIn(t, page, "#jamf"), channelIDIn(t, page, "#gone")
	if !strings.Contains(page, "0 waiting · last event 20") {
		t.Errorf("the channels page lacks the delivery figures:\n%s", page)
	}
	if page = s.page(t, "/admin/channels/"+jamf); !regexp.MustCompile(`Last delivery</dt><dd>20`).MatchString(page) {
		t.Errorf("#jamf's page lacks its last delivery:\n%s", page)
	}

	// Resend the delivered event: previewed, then sent again.
	resp, preview := s.act(t, "/admin/channels/"+jamf+"/resend", url.Values{"window": {"1h0m0s"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(preview, "Resend 1 event to #jamf?") {
		t.Fatalf("resend preview = %d:\n%s", resp.StatusCode, preview)
	}
	before := fake.Count(webhook)
	if page = s.confirm(t, "/admin/channels/"+jamf+"/resend", preview); !strings.Contains(page, "Resent 1 event") {
		t.Errorf("after the resend the page lacks its count:\n%s", page)
	}
	fake.WaitFor(t, webhook, before+1, deliveryTimeout)

	// Replay #gone's dead letter: #gone is disabled, so it is parked again.
	page = s.page(t, "/admin/channels/"+gone)
	seq := regexp.MustCompile(`name="seq" value="(\d+)"`).FindStringSubmatch(page)
	if seq == nil || !strings.Contains(page, "channel_not_found") {
		t.Fatalf("#gone's page lacks its dead letter:\n%s", page)
	}
	resp, confirmation := s.act(t, "/admin/channels/"+gone+"/replay", url.Values{"seq": {seq[1]}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("replay = %d:\n%s", resp.StatusCode, confirmation)
	}
	if page = s.confirm(t, "/admin/channels/"+gone+"/replay", confirmation); !strings.Contains(page, "Replayed 1 dead letter") {
		t.Errorf("after the replay the page lacks its count:\n%s", page)
	}
	poll(t, deliveryTimeout, func() (bool, string) {
		page = s.page(t, "/admin/channels/"+gone)
		return strings.Contains(page, "channel_disabled"), fmt.Sprintf("the replayed event was not parked again:\n%s", page)
	})
}
