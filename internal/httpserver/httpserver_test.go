package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/testwait"
)

func TestRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "jackalope_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	ready := errors.New("read model loading")
	e := New(Options{Gatherer: reg, Ready: func() error { return ready }})
	e.GET("/boom", func(echo.Context) error { panic("boom") })
	e.GET("/teapot", func(echo.Context) error { return echo.NewHTTPError(http.StatusTeapot, "short and stout") })

	tests := []struct {
		name     string
		path     string
		ready    error
		wantCode int
		wantBody string
	}{
		{name: "healthz", path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "not ready", path: "/readyz", ready: ready, wantCode: 503, wantBody: "read model loading"},
		{name: "ready", path: "/readyz", wantCode: 200, wantBody: "ready"},
		{name: "metrics", path: "/metrics", wantCode: 200, wantBody: "jackalope_test_total 1"},
		{name: "panic recovered", path: "/boom", wantCode: 500, wantBody: "internal error"},
		{name: "http error kept", path: "/teapot", wantCode: 418, wantBody: "short and stout"},
		{name: "unknown route", path: "/nope", wantCode: 404, wantBody: "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready = tt.ready
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET %s = %d %q; want %d containing %q", tt.path, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestNoOps(t *testing.T) {
	e := New(Options{Gatherer: prometheus.NewRegistry(), NoOps: true})
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "page") })
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404 on a server without the ops routes", path, rec.Code)
		}
	}
}

func TestServeWaitsForRequestsInFlight(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, 5*time.Second) }()

	resc := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			resc <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resc <- resp.StatusCode
	}()
	<-started
	cancel()
	// The request is answered only once the shutdown has begun: the
	// listener refuses new connections while Serve waits for it.
	testwait.Until(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("Serve = %v with a request in flight; want it to wait", err)
		default:
		}
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil
		}
		conn.Close()
		return errors.New("the listener still accepts after cancel")
	})
	close(release)
	if got := <-resc; got != http.StatusNoContent {
		t.Errorf("request in flight during shutdown got %d; want 204", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v; want nil after a graceful shutdown", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Error("server still accepts after shutdown")
	}
}
