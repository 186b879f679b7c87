package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/httpserver"
)

// opsGrace is how long the side listener lets a scrape or probe in flight
// finish once the public listener has stopped.
const opsGrace = 2 * time.Second

// HTTP is a service's public listener (LISTEN_ADDR) and, when the
// operational endpoints /healthz, /readyz and /metrics live apart, their
// side listener (METRICS_ADDR), so that a reverse proxy sending "/" to the
// service never exposes them.
type HTTP struct {
	// Public takes the service's routes.
	Public *echo.Echo
	ln     net.Listener
	ops    *echo.Echo
	opsLn  net.Listener // nil: the ops endpoints are on Public
}

// OpsApart reports whether a service keeps /healthz, /readyz and /metrics
// off its public listener: a split service always does (on METRICS_ADDR,
// :9090 by default), the all-in-one only when METRICS_ADDR is set. Setting
// METRICS_ADDR to LISTEN_ADDR keeps them on the public listener.
func OpsApart(cfg config.Config, allInOne bool) bool {
	if allInOne && !cfg.MetricsAddrSet {
		return false
	}
	return cfg.MetricsAddr != cfg.ListenAddr
}

// ListenHTTP opens the public listener and, when OpsApart, the side one,
// with the ops endpoints (ready answering /readyz, reg serving /metrics)
// on whichever OpsApart says.
func ListenHTTP(ctx context.Context, cfg config.Config, allInOne bool, logger *slog.Logger, reg prometheus.Gatherer, ready func() error) (*HTTP, error) {
	apart := OpsApart(cfg, allInOne)
	opts := httpserver.Options{Logger: logger, Gatherer: reg, Ready: ready}
	public := opts
	public.NoOps = apart
	h := &HTTP{Public: httpserver.New(public)}
	ln, err := httpserver.Listen(ctx, cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	h.ln = ln
	if apart {
		opsLn, err := httpserver.Listen(ctx, cfg.MetricsAddr)
		if err != nil {
			_ = ln.Close() // nothing was served on it yet
			return nil, err
		}
		h.ops, h.opsLn = httpserver.New(opts), opsLn
	}
	return h, nil
}

// Addr is the public listener's address.
func (h *HTTP) Addr() string { return h.ln.Addr().String() }

// OpsAddr is the side listener's address, or "" when the ops endpoints are
// on the public listener.
func (h *HTTP) OpsAddr() string {
	if h.opsLn == nil {
		return ""
	}
	return h.opsLn.Addr().String()
}

// Serve serves until ctx ends, then stops accepting on the public listener
// and lets the requests in flight finish within grace. The side listener
// keeps answering probes and scrapes until then, and stops last.
func (h *HTTP) Serve(ctx context.Context, grace time.Duration) error {
	if h.opsLn == nil {
		return httpserver.Serve(ctx, h.ln, h.Public, grace)
	}
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	opsDone := make(chan error, 1)
	go func() { opsDone <- httpserver.Serve(opsCtx, h.opsLn, h.ops, opsGrace) }()
	err := httpserver.Serve(ctx, h.ln, h.Public, grace)
	stopOps()
	return errors.Join(err, <-opsDone)
}
