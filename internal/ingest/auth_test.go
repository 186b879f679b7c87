package ingest_test

import (
	"bytes"
	"cmp"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/ingest"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

const (
	newKey = "ingest new secret key 0123456789"
	oldKey = "ingest old secret key 0123456789"
)

// lockedLookup is a read model a test changes while ingest serves.
type lockedLookup struct {
	mu sync.Mutex
	m  map[string]registry.Entry
}

func (l *lockedLookup) ByTokenHash(hash string) (registry.Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[hash]
	return e, ok
}

func (l *lockedLookup) set(entries ...registry.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m = map[string]registry.Entry{}
	for _, e := range entries {
		l.m[e.TokenHash] = e
	}
}

// authServer serves ingest over HTTP with keys, from lookup, publishing
// nowhere; adjust, when not nil, changes the options first.
func authServer(t *testing.T, keys *secret.Keys, lookup ingest.Lookup, logs *logtest.Buffer, adjust func(*ingest.Options)) *httptest.Server {
	t.Helper()
	opts := ingest.Options{
		Lookup:           lookup,
		Publisher:        nopPublisher{},
		Hasher:           keys.HashToken,
		CheckInboundAuth: keys.CheckInboundAuth,
		MaxBodyBytes:     testLimit,
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:       prometheus.NewRegistry(),
	}
	if p := keys.Previous(); p != nil {
		opts.PreviousHasher = p.HashToken
	}
	if adjust != nil {
		adjust(&opts)
	}
	h, err := ingest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := httpserver.New(httpserver.Options{})
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// send posts body to token with header set on the request.
func send(t *testing.T, srv *httptest.Server, token, contentType string, body []byte, header func(h http.Header, r *http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/jamf/"+token, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if header != nil {
		header(req.Header, req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	return resp
}

// TestPreviousKeyTokens pins ingest's side of a key rotation: a token hashed
// under SECRET_KEY_PREVIOUS is still found while that key is held, and the
// same token keeps working once its installation is hashed again under the
// new key (the cached old hash does not turn it into a 404).
func TestPreviousKeyTokens(t *testing.T) {
	oldKeys, err := secret.New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	newKeys, err := secret.New(newKey)
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := secret.NewWithPrevious(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	lookup := &lockedLookup{}
	lookup.set(registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: oldKeys.HashToken(tokenActive)})
	body := webhook("ComputerCheckIn", "C02ROT")

	newOnly := authServer(t, newKeys, lookup, &logtest.Buffer{}, nil)
	if resp := send(t, newOnly, tokenActive, "application/json", body, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("new key alone, token hashed under the old key: %d; want 404", resp.StatusCode)
	}
	srv := authServer(t, rotating, lookup, &logtest.Buffer{}, nil)
	steps := []struct {
		name  string
		entry registry.Entry
		token string
		want  int
	}{
		{"hashed under the previous key", registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: oldKeys.HashToken(tokenActive)}, tokenActive, 204},
		{"again, from the cache", registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: oldKeys.HashToken(tokenActive)}, tokenActive, 204},
		{"hashed again under the new key", registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: newKeys.HashToken(tokenActive)}, tokenActive, 204},
		{"unknown token", registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: newKeys.HashToken(tokenActive)}, tokenUnknown, 404},
	}
	for _, st := range steps {
		lookup.set(st.entry)
		if resp := send(t, srv, st.token, "application/json", body, nil); resp.StatusCode != st.want {
			t.Errorf("%s: %d; want %d", st.name, resp.StatusCode, st.want)
		}
	}
}

// TestInboundAuth pins item 9: an installation that requires Basic or
// header credentials answers 401 without them, before looking at the body
// (an oversized body or a wrong content type still gets 401), and 204 with
// them; credentials hashed under SECRET_KEY_PREVIOUS work during a
// rotation; and no credential reaches the logs.
func TestInboundAuth(t *testing.T) {
	oldKeys, err := secret.New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewWithPrevious(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	const (
		tokenBasic  = "0a0b0c0d-1111-4222-8333-000000000001"
		tokenHeader = "0a0b0c0d-1111-4222-8333-000000000002"
		tokenOld    = "0a0b0c0d-1111-4222-8333-000000000003"
		password    = "pa55-w0rd-s3cret"
		headerValue = "h3ader-s3cret"
	)
	names := []string{"X-Jamf-Secret", "X-Other"}
	lookup := &lockedLookup{}
	lookup.set(
		registry.Entry{ID: "id-basic", Status: registry.StatusActive, TokenHash: keys.HashToken(tokenBasic),
			InboundAuth: registry.InboundAuth{Scheme: registry.AuthBasic, Hash: keys.HashInboundAuth(registry.BasicCredential("jamf", password))}},
		registry.Entry{ID: "id-header", Status: registry.StatusActive, TokenHash: keys.HashToken(tokenHeader),
			InboundAuth: registry.InboundAuth{Scheme: registry.AuthHeader, Headers: strings.Join(names, ","),
				Hash: keys.HashInboundAuth(registry.HeaderCredential(names, []string{headerValue, "other"}))}},
		registry.Entry{ID: "id-old", Status: registry.StatusActive, TokenHash: keys.HashToken(tokenOld),
			InboundAuth: registry.InboundAuth{Scheme: registry.AuthBasic, Hash: oldKeys.HashInboundAuth(registry.BasicCredential("jamf", password))}},
	)
	logs := &logtest.Buffer{}
	srv := authServer(t, keys, lookup, logs, nil)
	body := webhook("ComputerCheckIn", "C02AUTH")
	basic := func(user, pass string) func(http.Header, *http.Request) {
		return func(_ http.Header, r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	headers := func(kv ...string) func(http.Header, *http.Request) {
		return func(h http.Header, _ *http.Request) {
			for i := 0; i < len(kv); i += 2 {
				h.Add(kv[i], kv[i+1])
			}
		}
	}
	tests := []struct {
		name        string
		token       string
		contentType string
		body        []byte
		header      func(http.Header, *http.Request)
		want        int
		challenge   bool
	}{
		{name: "basic: none", token: tokenBasic, header: nil, want: 401, challenge: true},
		{name: "basic: wrong password", token: tokenBasic, header: basic("jamf", "wrong"), want: 401, challenge: true},
		{name: "basic: wrong user", token: tokenBasic, header: basic("admin", password), want: 401, challenge: true},
		{name: "basic: right", token: tokenBasic, header: basic("jamf", password), want: 204},
		{name: "basic: none, body too large", token: tokenBasic, body: bytes.Repeat([]byte("x"), 2*testLimit), want: 401, challenge: true},
		{name: "basic: none, wrong content type", token: tokenBasic, contentType: "text/plain", want: 401, challenge: true},
		{name: "basic: right, body too large", token: tokenBasic, header: basic("jamf", password), body: bytes.Repeat([]byte("x"), 2*testLimit), want: 413},
		{name: "header: none", token: tokenHeader, want: 401},
		{name: "header: one of two", token: tokenHeader, header: headers("X-Jamf-Secret", headerValue), want: 401},
		{name: "header: wrong value", token: tokenHeader, header: headers("X-Jamf-Secret", "nope", "X-Other", "other"), want: 401},
		{name: "header: repeated", token: tokenHeader, header: headers("X-Jamf-Secret", headerValue, "X-Jamf-Secret", headerValue, "X-Other", "other"), want: 401},
		{name: "header: right, any case", token: tokenHeader, header: headers("x-jamf-secret", headerValue, "x-other", "other"), want: 204},
		{name: "header: basic credentials instead", token: tokenHeader, header: basic("X-Jamf-Secret", headerValue), want: 401},
		{name: "hash under the previous key", token: tokenOld, header: basic("jamf", password), want: 204},
		{name: "unknown token is still 404", token: tokenUnknown, header: basic("jamf", password), want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, b := cmp.Or(tt.contentType, "application/json"), tt.body
			if b == nil {
				b = body
			}
			resp := send(t, srv, tt.token, ct, b, tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("POST = %d; want %d", resp.StatusCode, tt.want)
			}
			challenge := resp.Header.Get("WWW-Authenticate")
			if tt.challenge && challenge != `Basic realm="jackalope"` {
				t.Errorf("WWW-Authenticate = %q; want Basic realm=\"jackalope\"", challenge)
			}
			if !tt.challenge && challenge != "" {
				t.Errorf("WWW-Authenticate = %q; want none", challenge)
			}
		})
	}
	for _, s := range []string{password, headerValue, tokenBasic, tokenHeader} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs show the secret %q", s)
		}
	}
	if !strings.Contains(logs.String(), "inbound credentials refused") {
		t.Error("nothing was logged about refused credentials; the leak check proves nothing")
	}
}

// TestInboundAuthWithoutChecker pins that an ingest built without
// CheckInboundAuth refuses installations that require credentials instead
// of letting everything in.
func TestInboundAuthWithoutChecker(t *testing.T) {
	keys, err := secret.New(newKey)
	if err != nil {
		t.Fatal(err)
	}
	lookup := &lockedLookup{}
	lookup.set(registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: keys.HashToken(tokenActive),
		InboundAuth: registry.InboundAuth{Scheme: registry.AuthBasic, Hash: keys.HashInboundAuth(registry.BasicCredential("u", "p"))}})
	srv := authServer(t, keys, lookup, &logtest.Buffer{}, func(o *ingest.Options) { o.CheckInboundAuth = nil })
	resp := send(t, srv, tokenActive, "application/json", webhook("ComputerCheckIn", "S"), func(_ http.Header, r *http.Request) { r.SetBasicAuth("u", "p") })
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST = %d; want 401", resp.StatusCode)
	}
}
