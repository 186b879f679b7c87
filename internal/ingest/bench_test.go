package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/benchcpu"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/ingest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// benchBody is a ComputerCheckIn of realistic size; %012d makes each
// request's serial number unique, so JetStream's dedup stores every one.
const benchBody = `{"webhook":{"id":12,"name":"Slack - Computer Check-In","webhookEvent":"ComputerCheckIn","eventTimestamp":1732871702117},` +
	`"event":{"computer":{"alternateMacAddress":"3E:A6:F6:12:4B:7F","building":"HQ","department":"Engineering",` +
	`"deviceName":"MBP-JRIVERA-01","emailAddress":"jordan.rivera@example.com","ipAddress":"203.0.113.45","jssID":1322,` +
	`"macAddress":"3C:A6:F6:12:4B:7E","model":"MacBook Pro (14-inch, 2023)","osBuild":"23G93","osVersion":"14.6.1",` +
	`"phone":"555-0142","position":"Software Engineer","realName":"Jordan Rivera","reportedIpAddress":"192.168.10.23",` +
	`"room":"3A-101","serialNumber":"%012d","udid":"6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42","userDirectoryID":"-1",` +
	`"username":"jrivera","managementId":"8f5c2d9e-1b3a-4e7f-9a6c-2d4b8e0f1a37"},"trigger":"CLIENT_CHECKIN","username":"jrivera"}}`

// parallelism times GOMAXPROCS is the number of requests in flight, as
// with 64 connections on this 2-core machine: each request waits for its
// acknowledgement, so fewer would measure latency rather than throughput.
const parallelism = 32

// BenchmarkIngest measures POST /jamf/{token} end to end against an
// embedded JetStream: every 204 is a stored message. "handler" calls the
// echo instance directly; "http" goes through a loopback HTTP server and
// client as Jamf Pro would. cpu-ns/op is the process's CPU time per request
// (handler, client and the embedded server), which varies much less than
// ns/op when other work shares the cores.
func BenchmarkIngest(b *testing.B) {
	// The stream must hold every message of the run: a full one answers 503.
	conn := bustest.New(b, func(c *bus.Config) { c.MaxBytes = 4 << 30 })
	keys, err := secret.New("benchmark secret key for ingest")
	if err != nil {
		b.Fatal(err)
	}
	const tokens = 16
	paths := make([]string, tokens)
	for i := range tokens {
		token := fmt.Sprintf("5f0c8a4e-2b7d-4c1e-9a3f-%012d", i)
		id := fmt.Sprintf("11111111-aaaa-4bbb-8ccc-%012d", i)
		if err := conn.PutInstallation(b.Context(), registry.Entry{ID: id, Status: registry.StatusActive, TokenHash: keys.HashToken(token)}); err != nil {
			b.Fatal(err)
		}
		paths[i] = "/jamf/" + token
	}
	installations, err := conn.WatchInstallations(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	h, err := ingest.New(ingest.Options{Lookup: installations, Publisher: conn, Hasher: keys.HashToken, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	e := httpserver.New(httpserver.Options{})
	h.Register(e)
	var seq atomic.Int64

	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		defer benchcpu.Start(b)()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				req := httptest.NewRequest(http.MethodPost, paths[n%tokens], bytes.NewReader(fmt.Appendf(nil, benchBody, n)))
				req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("POST = %d %s", rec.Code, rec.Body)
				}
			}
		})
		reportRate(b)
	})

	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(e)
		defer srv.Close()
		client := srv.Client()
		client.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
		b.ReportAllocs()
		defer benchcpu.Start(b)()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				req, err := http.NewRequest(http.MethodPost, srv.URL+paths[n%tokens], bytes.NewReader(fmt.Appendf(nil, benchBody, n)))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					b.Fatalf("POST = %d", resp.StatusCode)
				}
			}
		})
		reportRate(b)
	})
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "req/s")
	}
}
