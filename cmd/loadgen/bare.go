package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/plainjs"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// bareHandler is the ceiling: it reads the body, as ingest must, and
// answers 204 with nothing else in the way.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// plain is the plain JetStream pipeline that serveBare serves with
// -publish: a NATS server (one it started in this process for
// "embedded"), the connection to it, and the delivery loop when -deliver
// is set.
type plain struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	server    *server.Server // the embedded one, or nil
	dir       string         // its store, removed on close
	stop      func()         // the delivery loop's, or nil
	delivered atomic.Int64   // events the delivery loop posted
	failed    atomic.Int64   // events the delivery loop could not post
}

// startPlain connects to natsURL ("embedded": a NATS server with JetStream
// started here, on a loopback port, as the all-in-one starts its own),
// provisions the plain pipeline's stream (emptied unless keep) and, when
// deliverURL is set, delivers its events to that webhook with posts in
// flight.
func startPlain(ctx context.Context, natsURL, deliverURL string, posts int, keep bool) (*plain, error) {
	p := &plain{}
	if natsURL == "embedded" {
		if err := p.embed(); err != nil {
			return nil, err
		}
		natsURL = p.server.ClientURL()
	}
	nc, err := nats.Connect(natsURL, nats.Name("loadgen"))
	if err != nil {
		p.close()
		return nil, fmt.Errorf("connect to %s: %w", natsURL, err)
	}
	p.nc = nc
	if p.js, err = jetstream.New(nc); err != nil {
		p.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cons, err := plainjs.Provision(ctx, p.js, keep)
	if err != nil {
		p.close()
		return nil, err
	}
	if deliverURL != "" {
		client := slack.New(slack.Config{Webhooks: slack.NewWebhookPolicy(hostOf(deliverURL)), Timeout: 10 * time.Second, HTTPClient: slack.PostingClient(posts)})
		post := func(ctx context.Context, _ string, m slack.Message) error {
			err := client.Post(ctx, deliverURL, m)
			if err == nil {
				p.delivered.Add(1)
			}
			return err
		}
		if p.stop, err = plainjs.Deliver(cons, posts, render.Options{}, post, func(error) { p.failed.Add(1) }); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// embed starts a NATS server with JetStream in this process, storing in a
// new temporary directory.
func (p *plain) embed() error {
	dir, err := os.MkdirTemp("", "loadgen-nats-")
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	p.dir = dir
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		p.close()
		return fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	p.server = s
	if !s.ReadyForConnections(30 * time.Second) {
		p.close()
		return errors.New("embedded nats: not ready in 30s")
	}
	return nil
}

// close stops the delivery loop, the connection and the embedded server,
// and removes its store.
func (p *plain) close() {
	if p.stop != nil {
		p.stop()
	}
	if p.nc != nil {
		p.nc.Close()
	}
	if p.server != nil {
		p.server.Shutdown()
		p.server.WaitForShutdown()
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// withDelivered serves h, and the count of delivered events as text on
// GET /delivered, for a benchmark to tell when a backlog is drained.
func withDelivered(h http.Handler, delivered *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /delivered", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, "%d\n", delivered.Load())
	})
	return mux
}

// hostOf is the host of a URL, for the Slack client's webhook policy;
// empty (refused by the policy) when rawURL does not parse.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// serveBare serves bareHandler on addr until ctx ends, over HTTPS when
// certFile and keyFile are set. With cfg.publish set it serves the
// plain JetStream pipeline's handler instead (plainjs.Handler), and with
// cfg.deliver also delivers what it stores to that webhook.
func serveBare(ctx context.Context, cfg config, stdout io.Writer) error {
	addr, certFile, keyFile := cfg.serveBare, cfg.tlsCert, cfg.tlsKey
	var handler http.Handler = http.HandlerFunc(bareHandler)
	what := "a bare 204 handler"
	if cfg.publish != "" {
		p, err := startPlain(ctx, cfg.publish, cfg.deliver, cfg.concurrency, cfg.keep)
		if err != nil {
			return err
		}
		defer func() {
			p.close()
			if n := p.failed.Load(); n > 0 {
				_, _ = fmt.Fprintf(stdout, "the plain pipeline failed to deliver %d events\n", n)
			}
		}()
		handler, what = plainjs.Handler(p.js), "plain JetStream (publish)"
		switch {
		case cfg.deliver != "":
			handler, what = withDelivered(handler, &p.delivered), "plain JetStream (publish, consume, render, post, ack)"
		case cfg.group > 0:
			handler, what = plainjs.GroupHandler(ctx, p.js, cfg.group), fmt.Sprintf("plain JetStream with a group commit (%d publishers)", cfg.group)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	scheme := "http"
	if certFile != "" {
		scheme = "https"
	}
	if _, err := fmt.Fprintf(stdout, "serving %s on %s://%s until interrupted\n", what, scheme, ln.Addr()); err != nil {
		_ = ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
