package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackalope-app/jackalope/internal/retry"
)

// userAgent names the tool in the target's logs.
var userAgent = []string{"jackalope-loadgen"}

// maxErrorSamples is how many distinct transport errors a report quotes.
const maxErrorSamples = 5

// result is what a run measured.
type result struct {
	elapsed         time.Duration
	requests        int64 // answered, whatever the status
	transportErrors int64
	cutOff          int64 // in flight when the run's time was up; not counted
	statuses        map[int]int64
	latency         histogram
	errorSamples    []string
	varied          string
}

// failed counts transport errors and answers other than 2xx.
func (r *result) failed() int64 {
	n := r.transportErrors
	for code, c := range r.statuses {
		if code < 200 || code > 299 {
			n += c
		}
	}
	return n
}

// worker is one connection's state. Everything a request needs is built
// once, so the loop allocates only what net/http itself does.
type worker struct {
	client   *http.Client
	urls     []*url.URL
	ctype    []string
	body     []byte
	spans    []span
	released chan struct{} // one token per request body closed
	statuses [600]int64
	other    map[int]int64
	lat      histogram
	errs     int64
	cutOff   int64
	samples  map[string]bool
}

// requestBody is one request's body over the worker's shared bytes. The
// transport closes it when it is done writing, which may be after the
// answer arrived; the worker waits for that before it changes the bytes
// for the next request.
type requestBody struct {
	data   []byte
	off    int
	closed atomic.Bool
	done   chan<- struct{}
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

// Close tells the worker, once, that the transport let go of the body.
func (b *requestBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.done <- struct{}{}
	}
	return nil
}

// drive runs the load and returns what it measured.
func drive(ctx context.Context, cfg config) (*result, error) {
	transport := &http.Transport{
		Proxy:               nil, // straight to the target, whatever HTTP_PROXY says
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.concurrency,
		MaxIdleConnsPerHost: cfg.concurrency,
		MaxConnsPerHost:     cfg.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     16 << 10,
		ReadBufferSize:      4 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.timeout}

	urls := make([]*url.URL, len(cfg.tokens))
	for i, t := range cfg.tokens {
		u := cfg.target.JoinPath("jamf", t)
		if !strings.HasPrefix(u.Path, "/") {
			u.Path = "/" + u.Path
		}
		urls[i] = u
	}
	spans := findSpans(cfg.body, variedKeys)

	runCtx := ctx
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	// Bodies of a run differ from those of any earlier run, so a second run
	// inside the dedup window is not folded into the first.
	base := rand.Uint64() >> 16
	var next atomic.Int64

	workers := make([]*worker, cfg.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{
			client:   client,
			urls:     urls,
			ctype:    []string{cfg.contentType},
			body:     slices.Clone(cfg.body),
			spans:    spans,
			released: make(chan struct{}, 1),
			other:    map[int]int64{},
			samples:  map[string]bool{},
		}
		workers[i] = w
		wg.Go(func() { w.loop(runCtx, &next, cfg.requests, base, pacer{start: start, rate: cfg.rate}) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}

	res := &result{elapsed: elapsed, statuses: map[int]int64{}, varied: describeSpans(spans)}
	seen := map[string]bool{}
	for _, w := range workers {
		res.latency.merge(&w.lat)
		res.transportErrors += w.errs
		res.cutOff += w.cutOff
		for code, c := range w.statuses {
			if c > 0 {
				res.statuses[code] += c
			}
		}
		for code, c := range w.other {
			res.statuses[code] += c
		}
		for s := range w.samples {
			if !seen[s] && len(res.errorSamples) < maxErrorSamples {
				seen[s] = true
				res.errorSamples = append(res.errorSamples, s)
			}
		}
	}
	for _, c := range res.statuses {
		res.requests += c
	}
	slices.Sort(res.errorSamples)
	return res, nil
}

// loop sends requests until ctx ends or n (when positive) have been taken.
// The request is built once and reused: the transport is done with it once
// the answer's body is closed and the request body was released.
func (w *worker) loop(ctx context.Context, next *atomic.Int64, n int64, base uint64, p pacer) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.urls[0].String(), nil)
	if err != nil {
		w.errs++
		w.sample(err)
		return
	}
	req.Header["Content-Type"] = w.ctype
	req.Header["User-Agent"] = userAgent
	req.ContentLength = int64(len(w.body))
	for ctx.Err() == nil {
		seq := next.Add(1)
		if n > 0 && seq > n {
			return
		}
		if !p.wait(ctx, seq) {
			return
		}
		stamp(w.body, w.spans, base+uint64(seq))
		req.URL = w.urls[int(seq)%len(w.urls)]
		req.Host = req.URL.Host
		req.Body = &requestBody{data: w.body, done: w.released}

		t0 := time.Now()
		resp, err := w.client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		switch {
		case err == nil:
			w.lat.record(time.Since(t0))
			w.count(resp.StatusCode)
		case ctx.Err() != nil:
			w.cutOff++
		default:
			w.errs++
			w.sample(err)
		}
		select {
		case <-w.released:
		case <-ctx.Done():
			return
		}
	}
}

// pacer holds a run to a fixed rate: request seq is due at
// start + seq/rate. A zero rate sends as fast as the target answers.
type pacer struct {
	start time.Time
	rate  float64
}

// wait waits until request seq is due, and reports false when ctx ended
// first.
func (p pacer) wait(ctx context.Context, seq int64) bool {
	if p.rate <= 0 {
		return true
	}
	d := time.Until(p.start.Add(time.Duration(float64(seq-1) / p.rate * float64(time.Second))))
	return d <= 0 || retry.Sleep(ctx, d)
}

func (w *worker) count(code int) {
	if code >= 0 && code < len(w.statuses) {
		w.statuses[code]++
		return
	}
	w.other[code]++
}

// sample keeps the text of a transport error, without the URL: it holds a
// token.
func (w *worker) sample(err error) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if len(w.samples) < maxErrorSamples {
		w.samples[err.Error()] = true
	}
}

// print writes the report.
func (r *result) print(out io.Writer, cfg config) error {
	secs := r.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.requests) / secs
	}
	var b []byte
	b = fmt.Appendf(b, "target       %s/jamf/{token}  (%d tokens)\n", strings.TrimRight(cfg.target.String(), "/"), len(cfg.tokens))
	b = fmt.Appendf(b, "body         %s, %d bytes, %s; varied per request: %s\n", cfg.bodySource, len(cfg.body), cfg.contentType, r.varied)
	b = fmt.Appendf(b, "connections  %d\n", cfg.concurrency)
	b = fmt.Appendf(b, "elapsed      %.2fs\n", secs)
	b = fmt.Appendf(b, "requests     %d answered, %.0f/s\n", r.requests, rate)
	if r.requests > 0 {
		b = fmt.Appendf(b, "latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			round(r.latency.quantile(0.50)), round(r.latency.quantile(0.90)),
			round(r.latency.quantile(0.99)), round(r.latency.quantile(0.999)), round(r.latency.max))
	}
	codes := make([]int, 0, len(r.statuses))
	for code := range r.statuses {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes))
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", code, r.statuses[code]))
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	b = fmt.Appendf(b, "status       %s\n", strings.Join(parts, ", "))
	b = fmt.Appendf(b, "errors       %d transport errors", r.transportErrors)
	if r.cutOff > 0 {
		b = fmt.Appendf(b, " (%d requests in flight at the end not counted)", r.cutOff)
	}
	b = append(b, '\n')
	for _, s := range r.errorSamples {
		b = fmt.Appendf(b, "  error: %s\n", s)
	}
	_, err := out.Write(b)
	return err
}

// round shortens a latency for the report: microseconds under 10 ms,
// tenths of a millisecond above.
func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
