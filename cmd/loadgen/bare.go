package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bareHandler is the ceiling: it reads the body, as ingest must, and
// answers 204 with nothing else in the way.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// The stream the publishing handler stores into: file storage, one
// replica, 1 GiB and a dedup window of two minutes, as JAMF_EVENTS.
const (
	publishStream  = "LOADGEN_BARE"
	publishSubject = "loadgen.bare"
)

// publishingHandler is the floor of any ingest that answers only once
// JetStream holds the event, written as the jetstream package's
// documentation would have it: it reads the body, publishes it with a
// message ID (a hash of the body, for the dedup window, as ingest does),
// waits for the stream's acknowledgement and answers 204, or 503 when the
// publish fails. Nothing else: no token, no validation, no metrics.
func publishingHandler(js jetstream.JetStream) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body unreadable: "+err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		m := &nats.Msg{Subject: publishSubject, Data: body}
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(base64.RawURLEncoding.EncodeToString(sum[:12]))); err != nil {
			http.Error(w, "publish: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// connectPublish connects to the NATS server at url and makes the
// publishing handler's stream (emptied, when it exists from a run before).
func connectPublish(ctx context.Context, url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("loadgen"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       publishStream,
		Subjects:   []string{publishSubject},
		Storage:    jetstream.FileStorage,
		MaxBytes:   1 << 30,
		Discard:    jetstream.DiscardNew,
		Duplicates: 2 * time.Minute,
	})
	if err == nil {
		err = s.Purge(ctx)
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("stream %s: %w", publishStream, err)
	}
	return nc, js, nil
}

// serveBare serves bareHandler on addr until ctx ends, over HTTPS when
// certFile and keyFile are set; with natsURL set it serves
// publishingHandler instead, storing into a stream on that server.
func serveBare(ctx context.Context, addr, certFile, keyFile, natsURL string, stdout io.Writer) error {
	handler, what := http.HandlerFunc(bareHandler), "a bare 204 handler"
	if natsURL != "" {
		nc, js, err := connectPublish(ctx, natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		handler, what = publishingHandler(js), "a bare handler publishing to JetStream"
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
