package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/ingest"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// Tokens of the test installations. They look like what the installer
// hands out (UUID v4), so a leak would be easy to spot in any output.
const (
	tokenActive   = "5f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7a90"
	tokenDisabled = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	tokenUnknown  = "00000000-1111-4222-8333-444455556666"
	idActive      = "11111111-aaaa-4bbb-8ccc-000000000001"
	idDisabled    = "11111111-aaaa-4bbb-8ccc-000000000002"
	testLimit     = 8 << 10
)

// testEnv is ingest served by the shared echo setup over real HTTP, backed
// by a standalone JetStream server and the real read model.
type testEnv struct {
	nats *bustest.NATS
	conn *bus.Conn
	keys *secret.Keys
	reg  *prometheus.Registry
	logs *logtest.Buffer
	srv  *httptest.Server
	js   jetstream.JetStream
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return newEnvVia(t, nil)
}

// newEnvVia is newEnv with ingest's connection to NATS going through the
// proxy that via starts for the server's URL, when via is not nil, and
// opts applied to the bus configuration.
func newEnvVia(t *testing.T, via func(url string) *bustest.Proxy, opts ...func(*bus.Config)) *testEnv {
	t.Helper()
	n := bustest.Server(t)
	if via != nil {
		proxy := via(n.URL())
		opts = append(opts, func(c *bus.Config) { c.URL = proxy.URL(); c.Name = "ingest" })
	}
	conn := n.Connect(t, opts...)
	keys, err := secret.New("test secret key for ingest tests")
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{nats: n, conn: conn, keys: keys, reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}}
	env.put(t, registry.Entry{ID: idActive, Status: registry.StatusActive, TokenHash: keys.HashToken(tokenActive), ChannelName: "mac-alerts"})
	env.put(t, registry.Entry{
		ID: idDisabled, Status: registry.StatusDisabled, TokenHash: keys.HashToken(tokenDisabled),
		StatusReason: "Slack says the channel was archived (channel_is_archived)",
	})
	installations, err := conn.WatchInstallations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := ingest.New(ingest.Options{
		Lookup:         installations,
		Publisher:      conn,
		Hasher:         keys.HashToken,
		MaxBodyBytes:   testLimit,
		PublishTimeout: 500 * time.Millisecond,
		Logger:         logger,
		Registerer:     env.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := httpserver.New(httpserver.Options{Logger: logger, Gatherer: env.reg})
	h.Register(e)
	env.srv = httptest.NewServer(e)
	t.Cleanup(env.srv.Close)

	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if env.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return env
}

func (env *testEnv) put(t *testing.T, e registry.Entry) {
	t.Helper()
	if err := env.conn.PutInstallation(t.Context(), e); err != nil {
		t.Fatal(err)
	}
}

// answer is what a test looks at in a response.
type answer struct {
	Code       int
	Body       string
	RetryAfter string
}

func (env *testEnv) post(t *testing.T, token, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.srv.URL+"/jamf/"+token, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{Code: resp.StatusCode, Body: string(b), RetryAfter: resp.Header.Get("Retry-After")}
}

// stored returns every message stored in JAMF_EVENTS, oldest first.
func (env *testEnv) stored(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := env.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// webhook returns a Jamf Pro JSON webhook of event whose device serial is
// serial, so that bodies differ.
func webhook(event, serial string) []byte {
	return fmt.Appendf(nil, `{"webhook":{"id":12,"name":"Slack","webhookEvent":%q,"eventTimestamp":1732871702117},`+
		`"event":{"computer":{"deviceName":"MBP-01","serialNumber":%q,"udid":"6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42"},"trigger":"CLIENT_CHECKIN","username":"jrivera"}}`,
		event, serial)
}

const checkInXML = `<?xml version="1.0" encoding="UTF-8"?>
<JSSEvent>
  <webhook>
    <id>12</id>
    <name>Slack - Computer Check-In</name>
    <webhookEvent>ComputerCheckIn</webhookEvent>
    <eventTimestamp>1732871702117</eventTimestamp>
  </webhook>
  <event>
    <computer>
      <deviceName>MBP-JRIVERA-01</deviceName>
      <serialNumber>C02FAKEXML01</serialNumber>
      <jssID>1322</jssID>
    </computer>
    <trigger>CLIENT_CHECKIN</trigger>
    <username>jrivera</username>
  </event>
</JSSEvent>
`

func TestStatuses(t *testing.T) {
	env := newEnv(t)
	tests := []struct {
		name        string
		token       string
		contentType string
		body        []byte
		want        answer
		// wantIn is a part the body must contain when want.Body is empty.
		wantIn []string
	}{
		{name: "json", token: tokenActive, contentType: "application/json", body: webhook("ComputerCheckIn", "S1"), want: answer{Code: 204}},
		{name: "json with charset", token: tokenActive, contentType: "application/json; charset=UTF-8", body: webhook("ComputerCheckIn", "S2"), want: answer{Code: 204}},
		{name: "no content type", token: tokenActive, body: webhook("ComputerCheckIn", "S3"), want: answer{Code: 204}},
		{name: "event outside the catalog", token: tokenActive, contentType: "application/json", body: webhook("SomethingNew", "S4"), want: answer{Code: 204}},
		{name: "xml", token: tokenActive, contentType: "text/xml", body: []byte(checkInXML), want: answer{Code: 204}},
		{name: "application/xml", token: tokenActive, contentType: "application/xml; charset=utf-8", body: []byte(strings.Replace(checkInXML, "C02FAKEXML01", "C02FAKEXML02", 1)), want: answer{Code: 204}},
		{name: "not json", token: tokenActive, contentType: "application/json", body: []byte("computer checked in"), want: answer{Code: 400, Body: "No JSON found with request"}},
		{name: "empty body", token: tokenActive, contentType: "application/json", body: nil, want: answer{Code: 400, Body: "No JSON found with request"}},
		{name: "json array", token: tokenActive, contentType: "application/json", body: []byte(`[{"webhook":{}}]`), want: answer{Code: 400, Body: "No JSON found with request"}},
		{name: "no webhookEvent", token: tokenActive, contentType: "application/json", body: []byte(`{"webhook":{"id":1},"event":{}}`), want: answer{Code: 400}, wantIn: []string{"webhook.webhookEvent", "missing"}},
		{name: "webhookEvent not a string", token: tokenActive, contentType: "application/json", body: []byte(`{"webhook":{"webhookEvent":7},"event":{}}`), want: answer{Code: 400}, wantIn: []string{"webhook.webhookEvent", "string"}},
		{name: "event not an object", token: tokenActive, contentType: "application/json", body: []byte(`{"webhook":{"webhookEvent":"ComputerAdded"},"event":[]}`), want: answer{Code: 400}, wantIn: []string{"event", "object"}},
		{name: "bad xml", token: tokenActive, contentType: "text/xml", body: []byte("<JSSEvent><webhook>"), want: answer{Code: 400}, wantIn: []string{"No valid XML found with request"}},
		{
			name: "hostile xml", token: tokenActive, contentType: "text/xml",
			body:   []byte(`<?xml version="1.0"?><!DOCTYPE JSSEvent [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><JSSEvent><webhook><webhookEvent>&b;</webhookEvent></webhook><event/></JSSEvent>`),
			want:   answer{Code: 400},
			wantIn: []string{"No valid XML found with request"},
		},
		{
			name: "deeply nested xml", token: tokenActive, contentType: "text/xml",
			body:   []byte("<JSSEvent>" + strings.Repeat("<a>", 200) + strings.Repeat("</a>", 200) + "</JSSEvent>"),
			want:   answer{Code: 400},
			wantIn: []string{"No valid XML found with request"},
		},
		{name: "unknown token", token: tokenUnknown, contentType: "application/json", body: webhook("ComputerCheckIn", "S5"), want: answer{Code: 404}, wantIn: []string{"Unknown Jamf URL"}},
		{name: "malformed token", token: "not-a-token", contentType: "application/json", body: webhook("ComputerCheckIn", "S6"), want: answer{Code: 404}, wantIn: []string{"Unknown Jamf URL"}},
		{name: "token with odd characters", token: "5f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7a9%21", contentType: "application/json", body: webhook("ComputerCheckIn", "S7"), want: answer{Code: 404}, wantIn: []string{"Unknown Jamf URL"}},
		{name: "disabled", token: tokenDisabled, contentType: "application/json", body: webhook("ComputerCheckIn", "S8"), want: answer{Code: 410}, wantIn: []string{"disabled", "channel_is_archived", "Add Jackalope to the Slack channel again", "Slack admin"}},
		{name: "unsupported type", token: tokenActive, contentType: "application/x-www-form-urlencoded", body: []byte("a=b"), want: answer{Code: 415}, wantIn: []string{"application/json", "text/xml", "application/xml"}},
		{name: "too large", token: tokenActive, contentType: "application/json", body: bytes.Repeat([]byte(" "), testLimit+1), want: answer{Code: 413}, wantIn: []string{"8192 bytes"}},
		{name: "at the limit", token: tokenActive, contentType: "application/json", body: append(webhook("ComputerCheckIn", "S9"), bytes.Repeat([]byte(" "), testLimit-len(webhook("ComputerCheckIn", "S9")))...), want: answer{Code: 204}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := env.post(t, tt.token, tt.contentType, tt.body)
			want := tt.want
			if len(tt.wantIn) > 0 && want.Body == "" {
				want.Body = got.Body
				for _, part := range tt.wantIn {
					if !strings.Contains(got.Body, part) {
						t.Errorf("body %q does not contain %q", got.Body, part)
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("POST answer mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTooLargeChunked sends a body without Content-Length: the limit holds
// while reading too.
func TestTooLargeChunked(t *testing.T) {
	env := newEnv(t)
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte(" "), 1024)
		for range 64 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.srv.URL+"/jamf/"+tokenActive, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: status %d, want 413", resp.StatusCode)
	}
}

func TestPublishedMessage(t *testing.T) {
	env := newEnv(t)
	tests := []struct {
		name        string
		contentType string
		body        []byte
		wantEvent   string
		wantBody    map[string]any
	}{
		{
			name: "json kept as sent", contentType: "application/json", body: webhook("ComputerCheckIn", "C02PUB000001"),
			wantEvent: "ComputerCheckIn",
		},
		{
			name: "old spelling canonical", contentType: "application/json", body: webhook("ComputerCheckin", "C02PUB000002"),
			wantEvent: "ComputerCheckIn",
		},
		{
			name: "xml published as json", contentType: "text/xml", body: []byte(strings.Replace(checkInXML, "C02FAKEXML01", "C02PUB000003", 1)),
			wantEvent: "ComputerCheckIn",
			wantBody: map[string]any{
				"webhook": map[string]any{"id": float64(12), "name": "Slack - Computer Check-In", "webhookEvent": "ComputerCheckIn", "eventTimestamp": float64(1732871702117)},
				"event": map[string]any{
					"computer": map[string]any{"deviceName": "MBP-JRIVERA-01", "serialNumber": "C02PUB000003", "jssID": float64(1322)},
					"trigger":  "CLIENT_CHECKIN", "username": "jrivera",
				},
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			if got := env.post(t, tokenActive, tt.contentType, tt.body); got.Code != 204 {
				t.Fatalf("POST = %d %q, want 204", got.Code, got.Body)
			}
			msgs := env.stored(t)
			if len(msgs) != i+1 {
				t.Fatalf("stream holds %d messages, want %d", len(msgs), i+1)
			}
			m := msgs[i]
			if want := "jamf.events." + idActive; m.Subject != want {
				t.Errorf("subject = %q, want %q", m.Subject, want)
			}
			if got := m.Header.Get("Jackalope-Event"); got != tt.wantEvent {
				t.Errorf("event header = %q, want %q", got, tt.wantEvent)
			}
			if got := m.Header.Get("Jackalope-Installation"); got != idActive {
				t.Errorf("installation header = %q, want %q", got, idActive)
			}
			at, err := time.Parse(time.RFC3339Nano, m.Header.Get("Jackalope-Received-At"))
			if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("received-at header = %q (%v), want a time around now", m.Header.Get("Jackalope-Received-At"), err)
			}
			if tt.wantBody == nil {
				if !bytes.Equal(m.Data, tt.body) {
					t.Errorf("stored body = %s, want the body as sent %s", m.Data, tt.body)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(m.Data, &got); err != nil {
				t.Fatalf("stored body is not JSON: %v\n%s", err, m.Data)
			}
			if diff := cmp.Diff(tt.wantBody, got); diff != "" {
				t.Errorf("stored body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDuplicateStoredOnce(t *testing.T) {
	env := newEnv(t)
	body := webhook("ComputerCheckIn", "C02DUP000001")
	for i := range 3 {
		if got := env.post(t, tokenActive, "application/json", body); got.Code != 204 {
			t.Fatalf("POST #%d = %d %q, want 204", i+1, got.Code, got.Body)
		}
	}
	if got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02DUP000002")); got.Code != 204 {
		t.Fatalf("POST of another body = %d %q, want 204", got.Code, got.Body)
	}
	if n := len(env.stored(t)); n != 2 {
		t.Errorf("stream holds %d messages after the same body three times and another once, want 2", n)
	}
}

func TestUnavailableWhileJetStreamIsDown(t *testing.T) {
	env := newEnv(t)
	if got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02OUT000001")); got.Code != 204 {
		t.Fatalf("before the outage: %d %q, want 204", got.Code, got.Body)
	}
	env.nats.Stop()
	got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02OUT000002"))
	if got.Code != 503 || got.RetryAfter != "5" || !strings.Contains(got.Body, "could not store") {
		t.Errorf("during the outage: %+v, want 503 with Retry-After 5 saying the event was not accepted", got)
	}
	if got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02OUT000002")); got.Code != 503 {
		t.Errorf("still down: %d, want 503", got.Code)
	}

	env.nats.Start()
	testwait.Until(t, 15*time.Second, func() error {
		got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02OUT000003"))
		if got.Code != 204 && got.Code != 503 {
			t.Fatalf("while reconnecting: %d %q, want 503 or 204", got.Code, got.Body)
		}
		if got.Code != 204 {
			return errors.New("still 503 after JetStream came back")
		}
		return nil
	})
	// Every 204 is stored, and an event answered 503 while JetStream was
	// down is not: the publisher keeps nothing to send on reconnecting.
	// (A 503 for an ack lost on the way back promises nothing either way.)
	var serials []string
	for _, m := range env.stored(t) {
		var body struct {
			Event struct {
				Computer struct{ SerialNumber string }
			}
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, body.Event.Computer.SerialNumber)
	}
	for _, want := range []string{"C02OUT000001", "C02OUT000003"} {
		if !slices.Contains(serials, want) {
			t.Errorf("stream holds %v; the event %s answered 204 is missing", serials, want)
		}
	}
	if slices.Contains(serials, "C02OUT000002") {
		t.Errorf("stream holds %v; the event C02OUT000002, answered 503 while JetStream was down, was stored after all", serials)
	}
}

// TestUnavailableWhenAckLostOrLate drops, then holds back, JetStream's
// acknowledgements to ingest's publish connection: ingest must answer 503
// with Retry-After, never 204, and 204 again once they flow.
func TestUnavailableWhenAckLostOrLate(t *testing.T) {
	var proxy *bustest.Proxy
	env := newEnvVia(t, func(url string) *bustest.Proxy {
		proxy = bustest.NewProxy(t, url)
		return proxy
	})
	for i, rule := range []bustest.Rule{bustest.Drop, bustest.Hold} {
		proxy.Set("ingest-publish", rule)
		got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", fmt.Sprintf("C02ACK%06d", i)))
		if got.Code != 503 || got.RetryAfter != "5" {
			t.Errorf("acknowledgement %s: %d (Retry-After %q), want 503 with Retry-After 5",
				map[bustest.Rule]string{bustest.Drop: "lost", bustest.Hold: "late"}[rule], got.Code, got.RetryAfter)
		}
		proxy.Set("ingest-publish", bustest.Pass)
		if got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", fmt.Sprintf("C02ACK1%05d", i))); got.Code != 204 {
			t.Errorf("acknowledgements flowing again: %d %q, want 204", got.Code, got.Body)
		}
	}
}

// TestUnavailableWhenStreamFull fills a small stream: the event that does
// not fit is answered 503 with Retry-After, and every 204 was stored.
func TestUnavailableWhenStreamFull(t *testing.T) {
	env := newEnvVia(t, nil, func(c *bus.Config) { c.MaxBytes = 8 << 10 })
	accepted := 0
	for i := range 40 {
		got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", fmt.Sprintf("C02FULL%05d", i)))
		if got.Code == 503 {
			if got.RetryAfter != "5" {
				t.Errorf("full stream: Retry-After %q, want 5", got.RetryAfter)
			}
			break
		}
		if got.Code != 204 {
			t.Fatalf("POST #%d = %d %q, want 204 or 503", i+1, got.Code, got.Body)
		}
		accepted++
	}
	if accepted == 40 {
		t.Fatal("40 events fitted in an 8 KiB stream; it never answered 503")
	}
	if n := len(env.stored(t)); n != accepted {
		t.Errorf("stream holds %d messages, want the %d answered 204", n, accepted)
	}
}

// TestPublishIsBounded pins why ingest answers before Jamf Pro gives up on
// a webhook (2s): each publish runs under PublishTimeout, by default
// DefaultPublishTimeout, which is shorter. The publisher reports the
// deadline it was given, so the test times nothing.
func TestPublishIsBounded(t *testing.T) {
	if ingest.DefaultPublishTimeout >= 2*time.Second {
		t.Errorf("DefaultPublishTimeout = %v; Jamf Pro gives up after 2s", ingest.DefaultPublishTimeout)
	}
	keys, err := secret.New("test secret key for ingest tests")
	if err != nil {
		t.Fatal(err)
	}
	lookup := mapLookup{keys.HashToken(tokenActive): {ID: idActive, Status: registry.StatusActive, TokenHash: keys.HashToken(tokenActive)}}
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{name: "default", want: ingest.DefaultPublishTimeout},
		{name: "set", timeout: 300 * time.Millisecond, want: 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := deadlinePublisher{left: make(chan time.Duration, 1)}
			srv := authServer(t, keys, lookup, &logtest.Buffer{}, func(o *ingest.Options) {
				o.Publisher, o.PublishTimeout = p, tt.timeout
			})
			resp := send(t, srv, tokenActive, "application/json", webhook("ComputerCheckIn", "C02BOUND0001"), nil)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("failed publish answered %d, want 503", resp.StatusCode)
			}
			if left := <-p.left; left == noDeadline || left > tt.want {
				t.Errorf("publish called with %v left before its deadline, want at most %v", left, tt.want)
			}
		})
	}
}

// deadlinePublisher fails every publish and sends how long its context
// had left before its deadline (noDeadline for none) to left.
type deadlinePublisher struct{ left chan time.Duration }

const noDeadline = time.Duration(math.MaxInt64)

func (p deadlinePublisher) Publish(ctx context.Context, _ jamf.Received) error {
	left := noDeadline
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	p.left <- left
	return errors.New("bus down")
}

// TestReadModelChanges checks that each kind of change the installer makes
// in the KV bucket reaches ingest.
func TestReadModelChanges(t *testing.T) {
	env := newEnv(t)
	const (
		id      = "22222222-aaaa-4bbb-8ccc-000000000009"
		first   = "9b2e6f1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
		rotated = "7c8d9e0f-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
		timeout = 15 * time.Second
	)
	steps := []struct {
		name  string
		entry *registry.Entry // nil deletes id
		want  map[string]int  // token -> status
	}{
		{
			name:  "new installation",
			entry: &registry.Entry{ID: id, Status: registry.StatusActive, TokenHash: env.keys.HashToken(first)},
			want:  map[string]int{first: 204, rotated: 404},
		},
		{
			name:  "token rotated",
			entry: &registry.Entry{ID: id, Status: registry.StatusActive, TokenHash: env.keys.HashToken(rotated)},
			want:  map[string]int{first: 404, rotated: 204},
		},
		{
			name:  "disabled",
			entry: &registry.Entry{ID: id, Status: registry.StatusDisabled, StatusReason: "channel_not_found", TokenHash: env.keys.HashToken(rotated)},
			want:  map[string]int{first: 404, rotated: 410},
		},
		{
			name:  "enabled again",
			entry: &registry.Entry{ID: id, Status: registry.StatusActive, TokenHash: env.keys.HashToken(rotated)},
			want:  map[string]int{first: 404, rotated: 204},
		},
		{
			name: "removed",
			want: map[string]int{first: 404, rotated: 404},
		},
	}
	serial := 0
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.entry != nil {
				env.put(t, *step.entry)
			} else if err := env.conn.DeleteInstallation(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, timeout, func() error {
				got := map[string]int{}
				for token := range step.want {
					serial++
					got[token] = env.post(t, token, "application/json", webhook("ComputerCheckIn", fmt.Sprintf("C02KV%07d", serial))).Code
				}
				if !cmp.Equal(step.want, got) {
					return fmt.Errorf("statuses %v after the change, want %v", got, step.want)
				}
				return nil
			})
		})
	}
}

// TestTokenNeverLeaks sends every kind of request and looks for the tokens
// in the logs (at debug level), the stored subjects and headers, and the
// metrics.
func TestTokenNeverLeaks(t *testing.T) {
	env := newEnv(t)
	env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02LEAK00001"))
	env.post(t, tokenActive, "application/json", []byte("nope"))
	env.post(t, tokenActive, "application/json", []byte(`{"webhook":{},"event":{}}`))
	env.post(t, tokenActive, "text/xml", []byte("<nope"))
	env.post(t, tokenActive, "text/plain", []byte("nope"))
	env.post(t, tokenActive, "application/json", bytes.Repeat([]byte("x"), testLimit+1))
	env.post(t, tokenDisabled, "application/json", webhook("ComputerCheckIn", "C02LEAK00002"))
	env.post(t, tokenUnknown, "application/json", webhook("ComputerCheckIn", "C02LEAK00003"))
	env.nats.Stop()
	if got := env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02LEAK00004")); got.Code != 503 {
		t.Fatalf("with JetStream down: %d, want 503", got.Code)
	}
	env.nats.Start()

	metrics := gatherText(t, env.reg)
	var stored strings.Builder
	for _, m := range env.stored(t) {
		fmt.Fprintf(&stored, "%s %v\n", m.Subject, m.Header)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, idActive) || !strings.Contains(logs, idDisabled) {
		t.Errorf("logs name no installation; the test would not see a leak:\n%s", logs)
	}
	for _, token := range []string{tokenActive, tokenDisabled, tokenUnknown} {
		for where, text := range map[string]string{"logs": logs, "stored subjects and headers": stored.String(), "metrics": metrics} {
			if strings.Contains(text, token) {
				t.Errorf("token %s appears in the %s:\n%s", token, where, text)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	env := newEnv(t)
	env.post(t, tokenActive, "application/json", webhook("ComputerCheckIn", "C02MET000001"))
	env.post(t, tokenActive, "application/json", webhook("ComputerCheckin", "C02MET000002"))
	env.post(t, tokenActive, "application/json", webhook("NoSuchEvent", "C02MET000003"))
	env.post(t, tokenActive, "application/json", webhook("<script>", "C02MET000004"))
	env.post(t, tokenUnknown, "application/json", webhook("ComputerCheckIn", "C02MET000005"))
	env.post(t, tokenDisabled, "application/json", webhook("ComputerCheckIn", "C02MET000006"))
	env.post(t, tokenActive, "application/json", []byte("nope"))
	env.post(t, tokenActive, "text/plain", []byte("nope"))

	got := map[string]float64{}
	families, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				got[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"jackalope_ingest_requests_total{code=204,event=ComputerCheckIn}": 2,
		"jackalope_ingest_requests_total{code=204,event=other}":           2,
		"jackalope_ingest_requests_total{code=404,event=none}":            1,
		"jackalope_ingest_requests_total{code=410,event=none}":            1,
		"jackalope_ingest_requests_total{code=400,event=none}":            1,
		"jackalope_ingest_requests_total{code=415,event=none}":            1,
		"jackalope_ingest_publish_seconds_count":                          4,
		"jackalope_ingest_in_flight":                                      0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics mismatch (-want +got):\n%s", diff)
	}
}

func TestNewRequiresItsParts(t *testing.T) {
	keys, err := secret.New("test secret key for ingest tests")
	if err != nil {
		t.Fatal(err)
	}
	lookup := mapLookup{}
	tests := []struct {
		name string
		opts ingest.Options
		want string
	}{
		{name: "no lookup", opts: ingest.Options{Publisher: nopPublisher{}, Hasher: keys.HashToken}, want: "Lookup"},
		{name: "no publisher", opts: ingest.Options{Lookup: lookup, Hasher: keys.HashToken}, want: "Publisher"},
		{name: "no hasher", opts: ingest.Options{Lookup: lookup, Publisher: nopPublisher{}}, want: "Hasher"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	reg := prometheus.NewRegistry()
	opts := ingest.Options{Lookup: lookup, Publisher: nopPublisher{}, Hasher: keys.HashToken, Registerer: reg}
	if _, err := ingest.New(opts); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.New(opts); err == nil {
		t.Error("a second Handler on the same registry: no error, want the registration conflict")
	}
}

func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintln(&b, f.String())
	}
	return b.String()
}

type mapLookup map[string]registry.Entry

func (m mapLookup) ByTokenHash(hash string) (registry.Entry, bool) {
	e, ok := m[hash]
	return e, ok
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, jamf.Received) error { return nil }
