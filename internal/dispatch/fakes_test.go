package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// These fakes stand in for NATS and Slack in tests that run in a
// testing/synctest bubble, where time is fake and passes only while every
// goroutine waits: an hour of Slack outage takes milliseconds, and no
// assertion depends on how fast the machine is.

// fakeBus is an in-memory JAMF_EVENTS with one shared consumer: events are
// handed out in order to whichever dispatcher asks, come back after the
// delay of a negative ack or at once on a release, and leave on an ack or a
// termination.
type fakeBus struct {
	ready chan *fakeMsg

	mu      sync.Mutex
	seq     uint64
	acked   map[string]int       // event name -> acks
	ackAt   map[string]time.Time // event name -> its last ack
	termed  map[string]int       // event name -> terminations
	skipped map[string]int       // event name -> skips (hidden by a filter)
	naks    int
	rels    int
}

// fakeMsg is one stored event.
type fakeMsg struct {
	ev       jamf.Received
	gen      int         // bumped at each delivery, so that a stale release is ignored
	redirect *time.Timer // the pending redelivery of a delayed nak
	done     bool
}

func newFakeBus() *fakeBus {
	return &fakeBus{ready: make(chan *fakeMsg, 1<<20), acked: map[string]int{}, ackAt: map[string]time.Time{}, termed: map[string]int{}, skipped: map[string]int{}}
}

// publish stores an event for installation id whose body names it.
func (b *fakeBus) publish(id, name string) {
	b.publishBody(id, name, eventBody(name))
}

func (b *fakeBus) publishBody(id, name string, body []byte) {
	b.mu.Lock()
	b.seq++
	b.mu.Unlock()
	now := time.Now()
	b.ready <- &fakeMsg{ev: jamf.Received{InstallationID: id, Event: name, ReceivedAt: now, Queued: now, Body: body}}
}

// consume is the bus's consume loop for dispatch.Run.
func (b *fakeBus) consume(ctx context.Context, take dispatch.Take) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-b.ready:
			b.mu.Lock()
			m.gen++
			m.ev.Attempt++
			dv := &fakeDelivery{b: b, m: m, gen: m.gen, ev: m.ev}
			b.mu.Unlock()
			if err := take(ctx, dv); err != nil {
				return nil
			}
		}
	}
}

// fakeDelivery is one delivery of a fakeMsg.
type fakeDelivery struct {
	b   *fakeBus
	m   *fakeMsg
	gen int
	ev  jamf.Received
}

func (d *fakeDelivery) Event() jamf.Received { return d.ev }

func (d *fakeDelivery) Settle(err error) {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.m.done || d.gen != d.m.gen || d.m.redirect != nil {
		panic(fmt.Sprintf("event %s settled twice", d.ev.Event))
	}
	switch {
	case err == nil:
		d.m.done = true
		b.acked[d.ev.Event]++
		b.ackAt[d.ev.Event] = time.Now()
	case retry.IsPermanent(err):
		d.m.done = true
		b.termed[d.ev.Event]++
	default:
		b.naks++
		wait, _ := retry.Delay(err)
		m := d.m
		m.redirect = time.AfterFunc(wait, func() {
			b.mu.Lock()
			m.redirect = nil
			b.mu.Unlock()
			b.ready <- m
		})
	}
}

func (d *fakeDelivery) Release() {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	m := d.m
	if d.gen != m.gen || m.redirect == nil || !m.redirect.Stop() {
		return
	}
	m.redirect = nil
	b.rels++
	b.ready <- m
}

func (d *fakeDelivery) Progress() {}

func (d *fakeDelivery) Skip() {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.m.done || d.gen != d.m.gen || d.m.redirect != nil {
		panic(fmt.Sprintf("event %s settled twice", d.ev.Event))
	}
	d.m.done = true
	b.skipped[d.ev.Event]++
}

// latest returns the longest time an event of names took from entering
// the bus (ReceivedAt) to its ack.
func (b *fakeBus) latest(names []string, published map[string]time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var worst time.Duration
	for _, n := range names {
		worst = max(worst, b.ackAt[n].Sub(published[n]))
	}
	return worst
}

// settled returns how many events were acked and terminated.
func (b *fakeBus) settled() (acked, termed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.acked {
		acked += n
	}
	for _, n := range b.termed {
		termed += n
	}
	return acked, termed
}

// checkAckedOnce fails t unless every event in names was acked exactly
// once and none was terminated.
func (b *fakeBus) checkAckedOnce(t *testing.T, names []string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		if b.acked[n] != 1 || b.termed[n] != 0 {
			t.Errorf("event %s: acked %d times, terminated %d times; want acked once", n, b.acked[n], b.termed[n])
		}
	}
}

// fakeStates is an in-memory KV bucket "delivery" with compare-and-set,
// shared by the dispatchers of a test; NotifyDelivery reaches every
// dispatcher that listens.
type fakeStates struct {
	mu        sync.Mutex
	m         map[string]registry.DeliveryState
	rev       map[string]uint64
	next      uint64
	listeners []func(string)
	writes    int
}

func newFakeStates() *fakeStates {
	return &fakeStates{m: map[string]registry.DeliveryState{}, rev: map[string]uint64{}}
}

func (s *fakeStates) DeliveryState(_ context.Context, id string) (registry.DeliveryState, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id], s.rev[id], nil
}

func (s *fakeStates) SetDeliveryState(_ context.Context, id string, st registry.DeliveryState, rev uint64) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev[id] != rev {
		return 0, false, nil
	}
	s.next++
	s.m[id], s.rev[id] = st, s.next
	s.writes++
	return s.next, true, nil
}

func (s *fakeStates) NotifyDelivery(_ context.Context, id string) error {
	s.mu.Lock()
	ls := slices.Clone(s.listeners)
	s.mu.Unlock()
	for _, f := range ls {
		go f(id)
	}
	return nil
}

// clear is what the installer does on `channels enable`.
func (s *fakeStates) clear(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.next++
	s.rev[id] = 0
	s.mu.Unlock()
	_ = s.NotifyDelivery(context.Background(), id)
}

func (s *fakeStates) get(id string) registry.DeliveryState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *fakeStates) listen(f func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, f)
}

// post is one message a fake webhook received.
type post struct {
	at     time.Time
	msg    slack.Message
	status int
}

// fakeSlack is an in-memory Slack that answers posts like slacktest does,
// classified as slack.Client.Post classifies them: per webhook, a rate limit
// (token bucket) answered with 429, scripted answers, an outage.
type fakeSlack struct {
	mu      sync.Mutex
	hooks   map[string]*fakeHook
	latency time.Duration
	// inFlight counts the posts under way (waiting out latency), and
	// mostInFlight the most there were at once.
	inFlight, mostInFlight int
}

type fakeHook struct {
	posts        []post
	rate         float64
	burst        float64
	tokens       float64
	last         time.Time
	script       []error
	down         bool   // answers 500 while set
	dead         string // answers this gone code while set
	limited      int    // 429s answered
	refusedWhole bool   // refuses messages of more than one event
}

func newFakeSlack() *fakeSlack { return &fakeSlack{hooks: map[string]*fakeHook{}} }

func (s *fakeSlack) hook(url string) *fakeHook {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooks[url]
	if h == nil {
		h = &fakeHook{}
		s.hooks[url] = h
	}
	return h
}

// with runs f on url's hook under the fake's lock.
func (s *fakeSlack) with(url string, f func(h *fakeHook)) {
	h := s.hook(url)
	s.mu.Lock()
	defer s.mu.Unlock()
	f(h)
}

func (s *fakeSlack) setRateLimit(url string, perSecond float64, burst int) {
	s.with(url, func(h *fakeHook) {
		h.rate, h.burst, h.tokens, h.last = perSecond, float64(burst), float64(burst), time.Now()
	})
}

func (s *fakeSlack) Post(ctx context.Context, url string, m slack.Message) error {
	h := s.hook(url)
	s.mu.Lock()
	s.inFlight++
	s.mostInFlight = max(s.mostInFlight, s.inFlight)
	s.mu.Unlock()
	if s.latency > 0 {
		select {
		case <-time.After(s.latency):
		case <-ctx.Done():
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
			return &slack.Error{Err: fmt.Errorf("%w: %w", slack.ErrUnavailable, ctx.Err())}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	now := time.Now()
	answer := func(status int, err error) error {
		h.posts = append(h.posts, post{at: now, msg: m, status: status})
		return err
	}
	switch {
	case h.dead != "":
		return answer(http.StatusNotFound, retry.Permanent(&slack.Error{Status: http.StatusNotFound, Body: h.dead, Err: slack.ErrChannelGone}))
	case len(h.script) > 0:
		err := h.script[0]
		h.script = h.script[1:]
		status := http.StatusOK
		var se *slack.Error
		if errors.As(err, &se) {
			status = se.Status
		}
		return answer(status, err)
	case h.down:
		return answer(http.StatusInternalServerError, &slack.Error{Status: http.StatusInternalServerError, Body: "rollup_error", Err: slack.ErrUnavailable})
	case h.refusedWhole && len(m.Attachments) > 0 && m.Text != "":
		return answer(http.StatusBadRequest, retry.Permanent(&slack.Error{Status: http.StatusBadRequest, Body: "invalid_blocks", Err: slack.ErrBadMessage}))
	}
	if h.rate > 0 {
		h.tokens = min(h.burst, h.tokens+now.Sub(h.last).Seconds()*h.rate)
		h.last = now
		if h.tokens < 1 {
			h.limited++
			wait := time.Duration((1 - h.tokens) / h.rate * float64(time.Second))
			return answer(http.StatusTooManyRequests, rateLimited(max(time.Second, wait.Round(time.Second))))
		}
		h.tokens--
	}
	return answer(http.StatusOK, nil)
}

// rateLimited is the class slack.Client.Post gives a 429.
func rateLimited(wait time.Duration) error {
	return retry.After(wait, &slack.Error{Status: http.StatusTooManyRequests, Body: "rate_limited", Err: slack.ErrRateLimited})
}

// most returns the most posts that were under way at once.
func (s *fakeSlack) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mostInFlight
}

// posts returns what url received.
func (s *fakeSlack) posts(url string) []post {
	h := s.hook(url)
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]post(nil), h.posts...)
}

// delivered returns the posts url answered 2xx.
func (s *fakeSlack) delivered(url string) []post {
	var out []post
	for _, p := range s.posts(url) {
		if p.status < 300 {
			out = append(out, p)
		}
	}
	return out
}

// opener opens "sealed:<id>:<url>" values, sealed for installation id:
// the fakes need no real keys.
type opener struct{}

func (opener) OpenWebhook(id, sealed string) (string, error) {
	prefix := "sealed:" + id + ":"
	if !strings.HasPrefix(sealed, prefix) {
		return "", errors.New("not a test seal for this installation")
	}
	return sealed[len(prefix):], nil
}

// readModel is an in-memory Installations.
type readModel struct {
	mu sync.Mutex
	m  map[string]registry.Entry
}

func (r *readModel) ByID(id string) (registry.Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	return e, ok
}

func (r *readModel) put(e registry.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[e.ID] = e
}

// parkedLetters is an in-memory DeadLetters that fails while fail is set.
type parkedLetters struct {
	mu   sync.Mutex
	got  []jamf.DeadLetter
	fail error
}

func (p *parkedLetters) DeadLetter(_ context.Context, d jamf.DeadLetter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.got = append(p.got, d)
	return nil
}

func (p *parkedLetters) all() []jamf.DeadLetter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]jamf.DeadLetter(nil), p.got...)
}

// reasons counts the parked events by reason.
func (p *parkedLetters) reasons() map[string]int {
	out := map[string]int{}
	for _, d := range p.all() {
		out[d.Reason]++
	}
	return out
}

// deadReports is an in-memory Reporter.
type deadReports struct {
	mu  sync.Mutex
	got []string // "id reason"
}

func (r *deadReports) ReportDeadChannel(_ context.Context, id, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, id+" "+reason)
	return nil
}

func (r *deadReports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// eventBody is a ComputerAdded webhook whose computer is called name, so
// that each event is told apart in the messages.
func eventBody(name string) []byte {
	return fmt.Appendf(nil, `{"webhook": {"id": 11, "name": "Computer Added", "webhookEvent": "ComputerAdded", "eventTimestamp": 1732870801234},
 "event": {"udid": "6F2B9C1E-4A7D-5B3E-9C21-0123456789AB", "deviceName": %q, "model": "MacBook Pro", "serialNumber": "C02TEST", "osVersion": "14.6.1", "username": "jrivera", "jssID": 7}}`, name)
}
