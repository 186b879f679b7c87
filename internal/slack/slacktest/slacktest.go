// Package slacktest is a fake Slack for tests, served by net/http/httptest:
// the OAuth v2 code exchange (oauth.v2.access), Sign in with Slack (OpenID
// Connect: discovery, key set, authorize page, openid.connect.token) and
// incoming webhooks, with Slack's documented errors, 429s with
// Retry-After, per-webhook rate limits, scripted answers and a record of
// every request.
//
// A test points the code under test at URL() (as SLACK_API_URL), registers
// codes with AddCode or webhooks with NewWebhook, and reads what arrived
// with Messages or WaitFor.
package slacktest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/slack"
)

// The OAuth client credentials the fake accepts until SetClient changes them.
const (
	ClientID     = "slacktest-client-id"
	ClientSecret = "slacktest-client-secret"
)

// Defaults the fake fills into an Install and into its OAuth answers.
const (
	DefaultTeamID   = "T0SLACKTEST"
	DefaultTeamName = "Slacktest"
	DefaultUserID   = "U0SLACKTEST"
	AppID           = "A0SLACKTEST"
	Scope           = "incoming-webhook"
)

// maxBody is the largest request body the fake reads, like Slack's limit on
// an incoming webhook payload.
const maxBody = 1 << 20

// maxAttachments is the most attachments Slack takes in one message.
const maxAttachments = 100

// Install is what a code registered with AddCode grants: the workspace and
// the channel the installing user picked. Empty fields get defaults.
type Install struct {
	TeamID      string // DefaultTeamID when empty
	TeamName    string // DefaultTeamName when empty
	ChannelID   string // a fresh "C..." ID when empty
	ChannelName string // without '#': the fake answers "#"+ChannelName, as Slack does
	UserID      string // the installing user, DefaultUserID when empty
}

// Response is one answer of a webhook or of oauth.v2.access, sent after
// Delay. RetryAfter, when set, goes into the Retry-After header.
type Response struct {
	Status     int
	Body       string
	RetryAfter string
	Delay      time.Duration
}

// OK is Slack's answer to a message it posted.
func OK() Response { return Response{Status: http.StatusOK, Body: "ok"} }

// Ratelimited is a 429 with the given Retry-After header ("" for none).
func Ratelimited(retryAfter string) Response {
	return Response{Status: http.StatusTooManyRequests, Body: "rate_limited", RetryAfter: retryAfter}
}

// ServerError is the 500 Slack answers when it fails on its side.
func ServerError() Response {
	return Response{Status: http.StatusInternalServerError, Body: "rollup_error"}
}

// Dead is the answer of a webhook that will never post again, with the
// status Slack uses for code: "no_service", "channel_not_found",
// "channel_is_archived", "invalid_token", "action_prohibited", ...
func Dead(code string) Response { return Response{Status: deadStatus(code), Body: code} }

// BadPayload is Slack's answer to a body that is not a valid message.
func BadPayload() Response { return Response{Status: http.StatusBadRequest, Body: "invalid_payload"} }

// deadStatus is the status Slack sends with a dead-webhook code.
func deadStatus(code string) int {
	switch code {
	case "channel_is_archived", "team_disabled", "no_active_hooks":
		return http.StatusGone
	case "invalid_token", "action_prohibited", "posting_to_general_channel_denied":
		return http.StatusForbidden
	case "no_service_id":
		return http.StatusBadRequest
	default:
		return http.StatusNotFound
	}
}

// Request is one request a webhook received, and how the fake answered it.
// Message is the decoded body (zero when it did not decode).
type Request struct {
	Time    time.Time
	Body    []byte
	Message slack.Message
	Status  int
}

// Server is the fake Slack. It is safe for concurrent use.
type Server struct {
	t         testing.TB
	srv       *httptest.Server
	done      chan struct{}
	closeOnce sync.Once

	mu            sync.Mutex
	clientID      string
	clientSecret  string
	redirectURI   string
	latency       time.Duration
	now           func() time.Time // the rate limits' clock
	codes         map[string]*grant
	oauthScript   []Response
	oauthFails    []string
	hooks         map[string]*hook   // by URL path
	signIns       map[string]*signIn // Sign in with Slack codes
	member        Member             // who the authorize page signs in
	forgery       Forgery
	discoveryDown bool
	seq           int
	total         int
	changed       chan struct{} // closed and replaced on every delivery
}

// grant is a code registered with AddCode.
type grant struct {
	inst Install
	hook *hook
	used bool
}

// hook is one incoming webhook.
type hook struct {
	id       string // the "B..." ID Slack gives the webhook
	url      string
	channel  string
	script   []Response
	killed   string
	rate     float64
	burst    float64
	tokens   float64
	last     time.Time
	requests []Request
}

// New starts a fake Slack that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:            t,
		done:         make(chan struct{}),
		clientID:     ClientID,
		clientSecret: ClientSecret,
		codes:        map[string]*grant{},
		hooks:        map[string]*hook{},
		signIns:      map[string]*signIn{},
		changed:      make(chan struct{}),
		now:          time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/oauth.v2.access", s.serveOAuth)
	mux.HandleFunc(pathToken, s.serveToken)
	mux.HandleFunc("GET "+pathDiscovery, s.serveDiscovery)
	mux.HandleFunc("GET "+pathKeys, s.serveKeys)
	mux.HandleFunc("GET "+pathAuthorize, s.serveAuthorize)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"})
	})
	mux.HandleFunc("/services/", s.serveWebhook)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// URL returns the Web API base, to use as SLACK_API_URL.
func (s *Server) URL() string { return s.srv.URL + "/api" }

// WebhookHost is the host of the fake's webhook URLs (a loopback address,
// reached over plain http), to put in SLACK_WEBHOOK_HOSTS: without it a
// service refuses them.
func (s *Server) WebhookHost() string {
	u, err := url.Parse(s.srv.URL)
	if err != nil {
		panic("slacktest: the fake's own URL does not parse: " + err.Error()) // httptest makes it
	}
	return u.Hostname()
}

// Config returns a slack.Config for a client of this fake, with its
// current client credentials, whose webhook policy allows the fake's
// webhook URLs.
func (s *Server) Config() slack.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slack.Config{APIURL: s.URL(), ClientID: s.clientID, ClientSecret: s.clientSecret, Timeout: 5 * time.Second,
		Webhooks: slack.NewWebhookPolicy(s.WebhookHost())}
}

// Close shuts the fake down, so that every later call fails to connect, as
// when Slack cannot be reached. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done) // wake requests waiting out a delay
		s.srv.Close()
	})
}

// SetClient changes the client ID and secret oauth.v2.access accepts.
func (s *Server) SetClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientID, s.clientSecret = id, secret
}

// SetRedirectURI makes oauth.v2.access answer bad_redirect_uri unless the
// exchange sends exactly uri. The empty string switches the check off.
func (s *Server) SetRedirectURI(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirectURI = uri
}

// SetLatency delays every answer, OAuth and webhook, by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// AddCode registers an authorization code that oauth.v2.access exchanges,
// once, for inst. It mints the installation's incoming webhook on the fake
// right away and returns its URL.
func (s *Server) AddCode(code string, inst Install) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inst.TeamID == "" {
		inst.TeamID = DefaultTeamID
	}
	if inst.TeamName == "" {
		inst.TeamName = DefaultTeamName
	}
	if inst.UserID == "" {
		inst.UserID = DefaultUserID
	}
	s.seq++
	if inst.ChannelID == "" {
		inst.ChannelID = fmt.Sprintf("C%08d", s.seq)
	}
	h := s.newHookLocked(inst.TeamID, inst.ChannelName)
	s.codes[code] = &grant{inst: inst, hook: h}
	return h.url
}

// FailOAuth makes the next exchange (at oauth.v2.access or
// openid.connect.token) answer {"ok":false,"error":errCode}, whatever it
// sends: "invalid_code", "access_denied", "internal_error"... Calls queue
// up, one failure per exchange.
func (s *Server) FailOAuth(errCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauthFails = append(s.oauthFails, errCode)
}

// ScriptOAuth queues raw HTTP answers (a 500, say) for the next exchanges,
// one per exchange, before FailOAuth's and the normal answers.
func (s *Server) ScriptOAuth(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauthScript = append(s.oauthScript, rs...)
}

// NewWebhook creates an incoming webhook for channel and returns its URL.
func (s *Server) NewWebhook(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.newHookLocked(DefaultTeamID, channel).url
}

func (s *Server) newHookLocked(teamID, channel string) *hook {
	id := fmt.Sprintf("B%08d", s.seq)
	path := fmt.Sprintf("/services/%s/%s/%s", teamID, id, rand.Text()[:24])
	h := &hook{id: id, url: s.srv.URL + path, channel: channel}
	s.hooks[path] = h
	return h
}

// Script queues answers for the webhook at url, used one per request, in
// order, before the webhook falls back to its normal behaviour.
func (s *Server) Script(url string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hookLocked(url); h != nil {
		h.script = append(h.script, rs...)
	}
}

// SetRateLimit makes the webhook at url take perSecond messages a second
// with bursts of burst, like Slack's limit of about one a second, and
// answer 429 with Retry-After beyond that. perSecond <= 0 switches it off.
func (s *Server) SetRateLimit(url string, perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hookLocked(url)
	if h == nil {
		return
	}
	h.rate, h.burst = perSecond, float64(max(burst, 1))
	h.tokens, h.last = h.burst, s.now()
}

// Kill disables the webhook at url for good: from now on it answers
// Dead(code) ("no_service" when code is empty).
func (s *Server) Kill(url, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		code = "no_service"
	}
	if h := s.hookLocked(url); h != nil {
		h.killed = code
	}
}

// Revive undoes Kill: the webhook at url posts again.
func (s *Server) Revive(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hookLocked(url); h != nil {
		h.killed = ""
	}
}

// hookLocked finds the webhook at u, reporting a test error when there is
// none.
func (s *Server) hookLocked(u string) *hook {
	if h := s.lookupLocked(u); h != nil {
		return h
	}
	s.t.Errorf("slacktest: no webhook at %s", u)
	return nil
}

func (s *Server) lookupLocked(u string) *hook {
	p, err := url.Parse(u)
	if err != nil {
		return nil
	}
	return s.hooks[p.Path]
}

// Requests returns every request the webhook at url received, whatever
// the answer, oldest first.
func (s *Server) Requests(url string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.lookupLocked(url)
	if h == nil {
		return nil
	}
	out := make([]Request, len(h.requests))
	for i, r := range h.requests {
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// Messages returns the messages the webhook at url posted (answered 2xx),
// oldest first.
func (s *Server) Messages(url string) []slack.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messagesLocked(url)
}

func (s *Server) messagesLocked(url string) []slack.Message {
	h := s.lookupLocked(url)
	if h == nil {
		return nil
	}
	var out []slack.Message
	for _, r := range h.requests {
		if delivered(r.Status) {
			out = append(out, r.Message)
		}
	}
	return out
}

// Count returns how many messages the webhook at url posted.
func (s *Server) Count(url string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messagesLocked(url))
}

// Total returns how many messages all webhooks posted together.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// WaitFor waits until the webhook at url has posted at least n messages and
// returns them all. It fails the test if that takes longer than timeout.
func (s *Server) WaitFor(t testing.TB, url string, n int, timeout time.Duration) []slack.Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs := s.messagesLocked(url)
		changed := s.changed
		var statuses []int
		if h := s.lookupLocked(url); h != nil {
			for _, r := range h.requests {
				statuses = append(statuses, r.Status)
			}
		}
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("slacktest: after %v, webhook %s has posted %d messages, want %d (answers so far: %v)", timeout, url, len(msgs), n, statuses)
			return nil
		}
	}
}

// WaitTotal waits until all webhooks together have posted at least n
// messages. It fails the test if that takes longer than timeout.
func (s *Server) WaitTotal(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		total, changed := s.total, s.changed
		s.mu.Unlock()
		if total >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("slacktest: after %v, %d messages posted in all, want %d", timeout, total, n)
			return
		}
	}
}

// serveOAuth answers oauth.v2.access like Slack: client credentials by
// HTTP Basic authentication or form fields, single-use codes, the redirect
// URI checked when one is expected.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	s.serveExchange(w, r, s.exchangeLocked)
}

// serveExchange answers a code exchange (oauth.v2.access or
// openid.connect.token) after the fake's latency: a ScriptOAuth answer
// first, then a FailOAuth failure, then a refusal of the client's
// credentials or grant type, then what decide says.
func (s *Server) serveExchange(w http.ResponseWriter, r *http.Request, decide func(*http.Request) (int, any)) {
	_ = r.ParseForm()
	s.mu.Lock()
	latency := s.latency
	if len(s.oauthScript) > 0 {
		resp := s.oauthScript[0]
		s.oauthScript = s.oauthScript[1:]
		s.mu.Unlock()
		s.sleep(latency + resp.Delay)
		writeResponse(w, resp)
		return
	}
	var (
		status int
		ans    any
	)
	if code := s.refuseClientLocked(r); code != "" {
		status, ans = oauthFailure(code)
	} else {
		status, ans = decide(r)
	}
	s.mu.Unlock()
	s.sleep(latency)
	writeJSON(w, status, ans)
}

// refuseClientLocked returns the error code of a queued FailOAuth failure
// or of wrong client credentials or grant type; "" lets the exchange go on.
// Credentials come by HTTP Basic authentication or as form fields.
func (s *Server) refuseClientLocked(r *http.Request) string {
	if len(s.oauthFails) > 0 {
		code := s.oauthFails[0]
		s.oauthFails = s.oauthFails[1:]
		return code
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	switch {
	case id != s.clientID:
		return "invalid_client_id"
	case secret != s.clientSecret:
		return "bad_client_secret"
	case r.Form.Has("grant_type") && r.Form.Get("grant_type") != "authorization_code":
		return "invalid_grant_type"
	}
	return ""
}

// oauthFailure is the Web API's answer to a refused exchange.
func oauthFailure(code string) (int, any) {
	return http.StatusOK, map[string]any{"ok": false, "error": code}
}

// exchangeLocked decides the answer to one oauth.v2.access exchange whose
// client was accepted.
func (s *Server) exchangeLocked(r *http.Request) (int, any) {
	fail := oauthFailure
	g := s.codes[r.Form.Get("code")]
	switch {
	case g == nil:
		return fail("invalid_code")
	case g.used:
		return fail("code_already_used")
	case s.redirectURI != "" && r.Form.Get("redirect_uri") != s.redirectURI:
		return fail("bad_redirect_uri")
	}
	g.used = true
	channel := g.inst.ChannelName
	if !strings.HasPrefix(channel, "#") {
		channel = "#" + channel
	}
	return http.StatusOK, map[string]any{
		"ok":           true,
		"app_id":       AppID,
		"authed_user":  map[string]any{"id": g.inst.UserID},
		"scope":        Scope,
		"token_type":   "bot",
		"access_token": "xoxb-slacktest-" + rand.Text(),
		"bot_user_id":  "U0SLACKBOT",
		"team":         map[string]any{"id": g.inst.TeamID, "name": g.inst.TeamName},
		"enterprise":   nil,
		"incoming_webhook": map[string]any{
			"channel":           channel,
			"channel_id":        g.inst.ChannelID,
			"configuration_url": s.srv.URL + "/services/" + g.hook.id,
			"url":               g.hook.url,
		},
	}
}

// serveWebhook answers a post to an incoming webhook like Slack.
func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.Method != http.MethodPost {
		writeResponse(w, Response{Status: http.StatusMethodNotAllowed, Body: "invalid_method"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return
	}
	s.mu.Lock()
	h := s.hooks[r.URL.Path]
	if h == nil {
		s.mu.Unlock()
		writeResponse(w, Dead("no_service"))
		return
	}
	var scripted *Response
	if len(h.script) > 0 {
		next := h.script[0]
		scripted = &next
		h.script = h.script[1:]
	}
	delay := s.latency
	if scripted != nil {
		delay += scripted.Delay
	}
	s.mu.Unlock()

	// The answer is decided after the delay, as Slack would: a client that
	// gave up meanwhile may still see its message posted.
	s.sleep(delay)
	s.mu.Lock()
	msg, resp := s.answerLocked(h, scripted, body)
	h.requests = append(h.requests, Request{Time: arrived, Body: body, Message: msg, Status: resp.Status})
	if delivered(resp.Status) {
		s.total++
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	writeResponse(w, resp)
}

// answerLocked decides a webhook's answer to body: a killed webhook stays
// dead, a scripted answer comes next, then the rate limit, then Slack's
// checks of the message.
func (s *Server) answerLocked(h *hook, scripted *Response, body []byte) (slack.Message, Response) {
	var msg slack.Message
	decodeErr := json.Unmarshal(body, &msg)
	switch {
	case h.killed != "":
		return msg, Dead(h.killed)
	case scripted != nil:
		return msg, *scripted
	}
	if wait, ok := h.take(s.now()); !ok {
		return msg, Ratelimited(strconv.Itoa(wait))
	}
	switch {
	case len(body) > maxBody, decodeErr != nil:
		return slack.Message{}, BadPayload()
	case msg.Text == "" && len(msg.Attachments) == 0:
		return msg, Response{Status: http.StatusBadRequest, Body: "no_text"}
	case len(msg.Attachments) > maxAttachments:
		return msg, Response{Status: http.StatusBadRequest, Body: "too_many_attachments"}
	}
	return msg, OK()
}

// take takes a token from the webhook's rate limit bucket. When there is
// none, it returns the whole seconds until there will be one.
func (h *hook) take(now time.Time) (int, bool) {
	if h.rate <= 0 {
		return 0, true
	}
	h.tokens = min(h.burst, h.tokens+now.Sub(h.last).Seconds()*h.rate)
	h.last = now
	if h.tokens >= 1 {
		h.tokens--
		return 0, true
	}
	return max(1, int(math.Ceil((1-h.tokens)/h.rate))), false
}

// sleep waits d. If the fake closes meanwhile, it aborts the request (the
// client sees the connection drop, never an answer), so that Close does not
// wait out long delays.
func (s *Server) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.done:
		panic(http.ErrAbortHandler)
	}
}

func delivered(status int) bool { return status >= 200 && status < 300 }

func writeResponse(w http.ResponseWriter, r Response) {
	w.Header().Set("Content-Type", "text/html")
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	w.WriteHeader(r.Status)
	_, _ = io.WriteString(w, r.Body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
