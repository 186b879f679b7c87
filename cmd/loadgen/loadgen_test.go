package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

func TestBucketPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<40 + 12345}
	for range 10000 {
		values = append(values, r.Uint64N(1<<40))
	}
	for _, v := range values {
		i := bucketOf(v)
		high := bucketHigh(i)
		if high < v {
			t.Fatalf("bucketHigh(bucketOf(%d)) = %d, below the value", v, high)
		}
		if v >= 128 && float64(high-v)/float64(v) > 1.0/128 {
			t.Fatalf("bucket of %d reaches %d: more than 1/128 off", v, high)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Fatalf("%d also fits the bucket below (high %d)", v, bucketHigh(i-1))
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{1, 10000 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got-tt.want) > float64(tt.want)/128 {
			t.Errorf("quantile(%v) = %s, want %s within 1/128 above", tt.q, got, tt.want)
		}
	}
	if h.max != 10*time.Millisecond {
		t.Errorf("max = %s, want 10ms", h.max)
	}
	var merged histogram
	merged.merge(&h)
	merged.merge(&h)
	if merged.total != 20000 || merged.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merged twice: total %d, p50 %s; want 20000 and %s", merged.total, merged.quantile(0.5), h.quantile(0.5))
	}
}

func TestStampVariesBodies(t *testing.T) {
	xml := []byte(`<JSSEvent><webhook><webhookEvent>ComputerAdded</webhookEvent><eventTimestamp>1732870801234</eventTimestamp></webhook>` +
		`<event><udid>6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42</udid><serialNumber>C02FAKE1Q6L4</serialNumber></event></JSSEvent>`)
	tests := []struct {
		name       string
		body       []byte
		wantVaried string
	}{
		{name: "built-in json", body: checkInBody("ComputerCheckIn"), wantVaried: "udid, serialNumber, eventTimestamp"},
		{name: "xml", body: xml, wantVaried: "udid, serialNumber, eventTimestamp"},
		{name: "nothing to vary", body: []byte(`{"webhook":{"webhookEvent":"JSSStartup"},"event":{}}`), wantVaried: "none (identical bodies: JetStream's dedup stores one per token)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans := findSpans(tt.body, variedKeys)
			if got := describeSpans(spans); got != tt.wantVaried {
				t.Errorf("varied = %q, want %q", got, tt.wantVaried)
			}
			seen := map[string]bool{}
			body := bytes.Clone(tt.body)
			for _, seq := range []uint64{1, 2, 15, 16, 1 << 40, 1<<48 - 1} {
				stamp(body, spans, seq)
				if len(body) != len(tt.body) {
					t.Fatalf("stamp changed the length: %d, want %d", len(body), len(tt.body))
				}
				if tt.body[0] == '{' && !json.Valid(body) {
					t.Fatalf("stamped body is not JSON: %s", body)
				}
				seen[string(body)] = true
			}
			if want := 6; len(spans) > 0 && len(seen) != want {
				t.Errorf("%d distinct bodies from 6 sequence numbers, want %d", len(seen), want)
			}
		})
	}
}

func TestCheckInBodyEvent(t *testing.T) {
	var got struct {
		Webhook struct{ WebhookEvent string }
	}
	if err := json.Unmarshal(checkInBody(`Odd "name"`), &got); err != nil {
		t.Fatal(err)
	}
	if got.Webhook.WebhookEvent != `Odd "name"` {
		t.Errorf("webhookEvent = %q", got.Webhook.WebhookEvent)
	}
}

// recorder is a fake ingest that remembers what it received.
type recorder struct {
	mu     sync.Mutex
	bodies map[string]bool
	paths  map[string]int
	types  map[string]int
}

func newRecorder() *recorder {
	return &recorder{bodies: map[string]bool{}, paths: map[string]int{}, types: map[string]int{}}
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	rec.bodies[string(b)] = true
	rec.paths[r.URL.Path]++
	rec.types[r.Header.Get("Content-Type")]++
	rec.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/unknown-token-000") {
		http.Error(w, "Unknown Jamf URL", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestRunCountsEveryAnswer(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# two tokens, one as a Jamf URL\nhttps://jackalope.example.com/jamf/known-token-00000\n\nunknown-token-000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(t.Context(), []string{"-url", srv.URL, "-tokens", tokens, "-c", "8", "-n", "500"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run = %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{"500 answered", "status       204: 250, 404: 250", "0 transport errors", "latency      p50 "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if diff := cmp.Diff(map[string]int{"/jamf/known-token-00000": 250, "/jamf/unknown-token-000": 250}, rec.paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"application/json": 500}, rec.types); diff != "" {
		t.Errorf("content types (-want +got):\n%s", diff)
	}
	if len(rec.bodies) != 500 {
		t.Errorf("%d distinct bodies in 500 requests, want 500", len(rec.bodies))
	}
	for b := range rec.bodies {
		if !json.Valid([]byte(b)) {
			t.Fatalf("a body is not JSON: %s", b)
		}
	}

	err = run(t.Context(), []string{"-url", srv.URL, "-tokens", tokens, "-c", "2", "-n", "10", "-strict"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "5 of 10 requests failed") {
		t.Errorf("strict run with 404s = %v, want 5 of 10 failed", err)
	}
}

func TestRunForADuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(bareHandler))
	defer srv.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"-url", srv.URL, "-token", "tok-0000000000000", "-c", "4", "-d", "300ms", "-strict"}, &out, io.Discard)
	}()
	if err := testwait.Receive(t, done, 30*time.Second, "a 300ms run to end"); err != nil {
		t.Fatalf("run = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "status       204: ") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestRunReportsTransportErrors(t *testing.T) {
	addr := freeAddr(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"-url", "http://" + addr, "-token", "secret-token-00001", "-c", "2", "-n", "4", "-strict"}, &out, io.Discard)
	if err == nil {
		t.Fatalf("strict run against a closed port succeeded:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "4 transport errors") || !strings.Contains(out.String(), "connection refused") {
		t.Errorf("report:\n%s", out.String())
	}
	if strings.Contains(out.String(), "secret-token-00001") {
		t.Errorf("the report quotes a token:\n%s", out.String())
	}
}

func TestServeBare(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeCert(t, certFile, keyFile)
	tests := []struct {
		name   string
		args   []string
		scheme string
		client *http.Client
	}{
		{name: "http", scheme: "http", client: http.DefaultClient},
		{
			name: "https", args: []string{"-tls-cert", certFile, "-tls-key", keyFile}, scheme: "https",
			client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, stop := serveUntilUp(t, tt.client, tt.scheme, tt.args, "/services/T0/B0/x", "{}")
			out := stop()
			if want := "serving a bare 204 handler on " + tt.scheme + "://" + addr; !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		})
	}
}

// TestServePlain serves plain JetStream with an embedded NATS server:
// delivering to a fake Slack, a Jamf event posted to it answers 204 and
// reaches the webhook rendered, and GET /delivered counts it; with a group
// commit it answers 204; interrupted, it stops, and it said what it
// served.
func TestServePlain(t *testing.T) {
	fake := slacktest.New(t)
	hook := fake.NewWebhook("plain")
	tests := []struct {
		name    string
		args    []string
		serving string
		posted  bool // the fake Slack gets the event
	}{
		{name: "deliver", args: []string{"-deliver", hook, "-c", "2"}, serving: "plain JetStream (publish, consume, render, post, ack)", posted: true},
		{name: "group commit", args: []string{"-group", "2"}, serving: "plain JetStream with a group commit (2 publishers)"},
	}
	body := `{"webhook": {"id": 1, "name": "w", "webhookEvent": "ComputerAdded", "eventTimestamp": 1732870801234},
 "event": {"udid": "U-1", "deviceName": "MBP-PLAIN", "serialNumber": "C02X", "jssID": 1}}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, stop := serveUntilUp(t, http.DefaultClient, "http", append([]string{"-publish", "embedded"}, tt.args...), "/jamf/t", body)
			if tt.posted {
				msgs := fake.WaitFor(t, hook, 1, 30*time.Second)
				if b, _ := json.Marshal(msgs[0]); !strings.Contains(string(b), "MBP-PLAIN") {
					t.Errorf("posted message %s does not name the computer", b)
				}
				testwait.Until(t, 30*time.Second, func() error {
					if got := getText(t, "http://"+addr+"/delivered"); got != "1\n" {
						return fmt.Errorf("GET /delivered = %q, want 1", got)
					}
					return nil
				})
			}
			out := stop()
			if want := "serving " + tt.serving + " on http://" + addr; !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		})
	}
}

// getText GETs url and returns the body of its 200 answer.
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// serveUntilUp runs loadgen -serve-bare on a free address with args, and
// waits until a POST of body to path, through client, answers 204. stop
// interrupts it, checks that it returned nil and returns what it printed.
func serveUntilUp(t *testing.T, client *http.Client, scheme string, args []string, path, body string) (addr string, stop func() string) {
	t.Helper()
	addr = freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	out := &logtest.Buffer{}
	go func() { done <- run(ctx, append([]string{"-serve-bare", addr}, args...), out, io.Discard) }()
	testwait.Until(t, 30*time.Second, func() error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, scheme+"://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("server not up: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("server answered %d, want 204", resp.StatusCode)
		}
		return nil
	})
	return addr, func() string {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v, want nil once interrupted", err)
		}
		return out.String()
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns a pool that trusts it.
func writeCert(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "loadgen test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no token", args: []string{}, want: "no token"},
		{name: "bad url", args: []string{"-token", "t", "-url", "ftp://x"}, want: "not an http(s) URL"},
		{name: "no connections", args: []string{"-token", "t", "-c", "0"}, want: "-c must be"},
		{name: "too long", args: []string{"-token", "t", "-d", "2h"}, want: "-d must be"},
		{name: "too many", args: []string{"-token", "t", "-n", "1000000000"}, want: "-n must be"},
		{name: "token with a slash", args: []string{"-token", "a/b"}, want: "not allowed"},
		{name: "missing body file", args: []string{"-token", "t", "-body", "/nonexistent/body.json"}, want: "-body"},
		{name: "stray argument", args: []string{"-token", "t", "go"}, want: "unexpected arguments"},
		{name: "certificate without key", args: []string{"-serve-bare", "127.0.0.1:0", "-tls-cert", "c.pem"}, want: "go together"},
		{name: "tls when sending", args: []string{"-token", "t", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, want: "only apply to -serve-bare"},
		{name: "publish when sending", args: []string{"-token", "t", "-publish", "nats://127.0.0.1:4222"}, want: "-publish, -deliver, -group and -keep only apply to -serve-bare"},
		{name: "deliver without publish", args: []string{"-serve-bare", "127.0.0.1:0", "-deliver", "http://127.0.0.1:1/x"}, want: "-deliver, -group and -keep go with -publish"},
		{name: "keep without publish", args: []string{"-serve-bare", "127.0.0.1:0", "-keep"}, want: "-deliver, -group and -keep go with -publish"},
		{name: "group and deliver", args: []string{"-serve-bare", "127.0.0.1:0", "-publish", "embedded", "-group", "2", "-deliver", "http://127.0.0.1:1/x"}, want: "nothing delivers grouped messages"},
		{name: "too many publishers", args: []string{"-serve-bare", "127.0.0.1:0", "-publish", "embedded", "-group", "65"}, want: "-group must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tt.args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run = %v, stderr %q; want a usage error mentioning %q", err, stderr.String(), tt.want)
			}
		})
	}
}

// TestPacer checks the schedule -rate keeps: the first request is due at
// once, a later one waits, and a run that ends stops the wait.
func TestPacer(t *testing.T) {
	p := pacer{start: time.Now(), rate: 0.001} // one request every 1,000 s
	if !p.wait(t.Context(), 1) {
		t.Error("wait(1) = false; the first request is due at the start")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if p.wait(ctx, 2) {
		t.Error("wait(2) = true with the run over; the second request is due 1,000 s in")
	}
	if !(pacer{}).wait(ctx, 1000) {
		t.Error("wait without a rate = false; without -rate requests go as fast as answered")
	}
}
