// Package httpserver is the echo setup every Jackalope HTTP service shares:
// panic recovery, request logging, /healthz, /readyz, /metrics, and a
// graceful shutdown that stops accepting and lets requests in flight finish.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures New.
type Options struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; nil serves no /metrics route.
	Gatherer prometheus.Gatherer
	// Ready is asked by /readyz; a non-nil error answers 503 with its text.
	// Nil means ready as soon as the server runs.
	Ready func() error
	// NoOps leaves /healthz, /readyz and /metrics out (Gatherer and Ready
	// are then unused): the service serves them on a side listener of
	// their own, off the public one, where they answer 404.
	NoOps bool
}

// New returns an echo instance with recovery, debug request logging and,
// unless opts.NoOps, the health, readiness and metrics routes.
func New(opts Options) *echo.Echo {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(logger)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			logger.Error("panic in handler", "route", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	// The log level is fixed at start, so without debug output the request
	// log is left out: it would time and describe every webhook for
	// nothing (2 % of cmd/ingest's CPU under a flood).
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
			LogStatus: true, LogMethod: true, LogLatency: true, LogRoutePath: true,
			LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
				// The route pattern, never the URL: /jamf/{token} carries a secret.
				logger.Debug("request", "method", v.Method, "route", v.RoutePath, "status", v.Status, "latency", v.Latency.String())
				return nil
			},
		}))
	}
	if opts.NoOps {
		return e
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		if opts.Ready != nil {
			if err := opts.Ready(); err != nil {
				return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			}
		}
		return c.String(http.StatusOK, "ready\n")
	})
	if opts.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})))
	}
	return e
}

// errorHandler answers echo's errors as plain text with the status they
// carry; anything else is a 500 whose detail goes to the log only.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code, msg := http.StatusInternalServerError, "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			msg = fmt.Sprint(he.Message)
		} else {
			logger.Error("handler failed", "route", c.Path(), "err", err)
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(code)
		} else {
			err = c.String(code, msg+"\n")
		}
		if err != nil {
			logger.Debug("write error answer", "err", err)
		}
	}
}

// Listen opens addr, so that a caller learns a bad or busy address before
// it reports that it is serving.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// WriteTimeout bounds the time from reading a request's headers to the end
// of writing its answer. A handler that may take longer (the install
// callback) pushes its own write deadline.
const WriteTimeout = 30 * time.Second

// Serve serves h on ln until ctx ends, then stops accepting and waits up to
// grace for requests in flight to finish before it returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
