package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

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

func (p *parkedLetters) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

// deadReports is an in-memory Reporter that fails while fail is set.
type deadReports struct {
	mu   sync.Mutex
	got  []string // "id reason"
	fail error
}

func (r *deadReports) ReportDeadChannel(_ context.Context, id, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, id+" "+reason)
	return nil
}

func (r *deadReports) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// fixture is one Dispatcher over a fake Slack with one installation.
type fixture struct {
	slack   *slacktest.Server
	keys    *secret.Keys
	model   *readModel
	parked  *parkedLetters
	reports *deadReports
	clock   *clock
	logs    *logCapture
	reg     *prometheus.Registry
	d       *dispatch.Dispatcher
	entry   registry.Entry
	url     string
	urls    []string // every webhook URL the fixture made, for the leak check
}

const (
	testBase        = 10 * time.Millisecond
	testMax         = 80 * time.Millisecond
	testMaxAttempts = 3
)

func newFixture(t *testing.T, configure func(*dispatch.Options)) *fixture {
	t.Helper()
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		slack:   slacktest.New(t),
		keys:    keys,
		model:   &readModel{m: map[string]registry.Entry{}},
		parked:  &parkedLetters{},
		reports: &deadReports{},
		clock:   newClock(),
		logs:    &logCapture{},
		reg:     prometheus.NewRegistry(),
	}
	t.Cleanup(func() { checkNoLeaks(t, f.logs, func() []string { return f.urls }) })
	f.url = f.slack.NewWebhook("jamf")
	f.urls = append(f.urls, f.url)
	const id = "0b8f6a52-3c1d-4e0f-9a7b-2d4c6e8f0a11"
	f.entry = registry.Entry{
		ID:               id,
		Status:           registry.StatusActive,
		TokenHash:        keys.HashToken("token"),
		WebhookURLSealed: keys.Seal(secret.WebhookURL, id, f.url),
		ChannelName:      "jamf",
		JamfURL:          "https://jamf.example.com",
	}
	f.model.put(f.entry)
	opts := dispatch.Options{
		Installations: f.model,
		Poster:        slack.New(f.slack.Config()),
		DeadLetters:   f.parked,
		Reporter:      f.reports,
		Opener:        keys,
		MaxAttempts:   testMaxAttempts,
		IconBaseURL:   iconBase,
		Logger:        f.logs.logger(),
		Registerer:    f.reg,
		Now:           f.clock.Now,
		BackoffBase:   testBase,
		BackoffMax:    testMax,
	}
	if configure != nil {
		configure(&opts)
	}
	f.d, err = dispatch.New(opts)
	if err != nil {
		t.Fatalf("dispatch.New: %v", err)
	}
	return f
}

// reinstall gives the installation a new webhook, as a reinstall does.
func (f *fixture) reinstall() {
	f.url = f.slack.NewWebhook("jamf")
	f.urls = append(f.urls, f.url)
	f.entry.WebhookURLSealed = f.keys.Seal(secret.WebhookURL, f.entry.ID, f.url)
	f.model.put(f.entry)
}

func (f *fixture) setStatus(s registry.Status) {
	f.entry.Status = s
	f.model.put(f.entry)
}

// answer is what Handle returned, reduced to what the consume loop acts on.
type answer struct {
	Class string // ack, retry, term, error
	Delay time.Duration
}

func answerOf(err error) answer {
	if err == nil {
		return answer{Class: "ack"}
	}
	if retry.IsPermanent(err) {
		if !errors.Is(err, dispatch.ErrParked) {
			return answer{Class: "term without ErrParked"}
		}
		return answer{Class: "term"}
	}
	if d, ok := retry.Delay(err); ok {
		return answer{Class: "retry", Delay: d}
	}
	return answer{Class: "error"}
}

// step is one call of Handle.
type step struct {
	before  func(*fixture)
	event   string // which event: "a", "b", ...; each letter is one body
	id      string // installation, the fixture's when empty
	body    []byte // overrides the event's body
	attempt int
	cancel  time.Duration // cancel the handler's context after this long
	want    string        // class
	// minDelay and maxDelay bound the delay of a retry.
	minDelay, maxDelay time.Duration
}

// parkedSummary is the part of a dead letter the table checks.
type parkedSummary struct {
	Reason     string
	Attempts   int
	LastStatus int
	LastBody   string
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*dispatch.Options)
		setup     func(*fixture)
		steps     []step
		requests  int
		parked    []parkedSummary
		reports   []string // reasons
	}{
		{
			name:     "2xx is acked",
			steps:    []step{{event: "a", attempt: 1, want: "ack"}},
			requests: 1,
		},
		{
			name:     "5xx is retried with backoff",
			setup:    func(f *fixture) { f.slack.Script(f.url, slacktest.ServerError()) },
			steps:    []step{{event: "a", attempt: 1, want: "retry", maxDelay: testBase}},
			requests: 1,
		},
		{
			name:  "backoff grows with the attempt and stops at the cap",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.ServerError(), slacktest.ServerError()) },
			configure: func(o *dispatch.Options) {
				o.MaxAttempts = 10
			},
			steps: []step{
				{event: "a", attempt: 2, want: "retry", maxDelay: 2 * testBase},
				{event: "a", attempt: 9, want: "retry", maxDelay: testMax},
			},
			requests: 2,
		},
		{
			name:     "unreachable slack is retried",
			setup:    func(f *fixture) { f.slack.Close() },
			steps:    []step{{event: "a", attempt: 1, want: "retry", maxDelay: testBase}},
			requests: 0,
		},
		{
			name:     "5xx on the last attempt is parked with the last answer",
			setup:    func(f *fixture) { f.slack.Script(f.url, slacktest.ServerError()) },
			steps:    []step{{event: "a", attempt: testMaxAttempts, want: "term"}},
			requests: 1,
			parked:   []parkedSummary{{"attempts_spent", testMaxAttempts, 500, "rollup_error"}},
		},
		{
			name:  "429 pauses the channel and the next event waits its turn without a post",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.Ratelimited("7")) },
			steps: []step{
				{event: "a", attempt: 1, want: "retry", minDelay: 7 * time.Second, maxDelay: 7 * time.Second},
				{event: "b", attempt: 1, want: "retry", minDelay: 8 * time.Second, maxDelay: 8 * time.Second},
				{event: "c", attempt: 1, want: "retry", minDelay: 9 * time.Second, maxDelay: 9 * time.Second},
			},
			requests: 1,
		},
		{
			name:  "paced events post one per turn",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.Ratelimited("3")) },
			steps: []step{
				{event: "a", attempt: 1, want: "retry", minDelay: 3 * time.Second, maxDelay: 3 * time.Second},
				{event: "b", attempt: 1, want: "retry", minDelay: 4 * time.Second, maxDelay: 4 * time.Second},
				{before: func(f *fixture) { f.clock.Advance(3 * time.Second) }, event: "a", attempt: 2, want: "ack"},
				{event: "b", attempt: 2, want: "retry", minDelay: time.Second, maxDelay: time.Second},
				{event: "c", attempt: 1, want: "retry", minDelay: 2 * time.Second, maxDelay: 2 * time.Second},
				{before: func(f *fixture) { f.clock.Advance(time.Second) }, event: "b", attempt: 3, want: "ack"},
				{before: func(f *fixture) { f.clock.Advance(time.Second) }, event: "c", attempt: 2, want: "ack"},
				{before: func(f *fixture) { f.clock.Advance(time.Second) }, event: "d", attempt: 1, want: "ack"},
			},
			requests: 5,
		},
		{
			name:     "429 on the last attempt is parked with the 429",
			setup:    func(f *fixture) { f.slack.Script(f.url, slacktest.Ratelimited("1")) },
			steps:    []step{{event: "a", attempt: testMaxAttempts, want: "term"}},
			requests: 1,
			parked:   []parkedSummary{{"attempts_spent", testMaxAttempts, 429, "rate_limited"}},
		},
		{
			name:  "dead channel is parked, reported once and never posted to again",
			setup: func(f *fixture) { f.slack.Kill(f.url, "channel_is_archived") },
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{event: "b", attempt: 1, want: "term"},
				{event: "c", attempt: 2, want: "term"},
			},
			requests: 1,
			parked: []parkedSummary{
				{"channel_dead", 1, 410, "channel_is_archived"},
				{"channel_dead", 1, 410, "channel_is_archived"},
				{"channel_dead", 2, 410, "channel_is_archived"},
			},
			reports: []string{"channel_is_archived"},
		},
		{
			name: "webhook outside SLACK_WEBHOOK_HOSTS is parked, never posted to, and the channel stays",
			setup: func(f *fixture) {
				f.url = "https://hooks.evil.example/services/T0/B0/refusedrefusedrefused"
				f.urls = append(f.urls, f.url)
				f.entry.WebhookURLSealed = f.keys.Seal(secret.WebhookURL, f.entry.ID, f.url)
				f.model.put(f.entry)
			},
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{event: "b", attempt: 1, want: "term"},
			},
			requests: 0,
			parked:   []parkedSummary{{"webhook_refused", 1, 0, ""}, {"webhook_refused", 1, 0, ""}},
		},
		{
			name:  "dead channel posts again after a reinstall",
			setup: func(f *fixture) { f.slack.Kill(f.url, "no_service") },
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{before: (*fixture).reinstall, event: "b", attempt: 1, want: "ack"},
			},
			requests: 1, // on the new webhook; the dead one saw one too
			parked:   []parkedSummary{{"channel_dead", 1, 404, "no_service"}},
			reports:  []string{"no_service"},
		},
		{
			name:  "dead channel posts again once disabled and re-enabled",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.Dead("channel_not_found")) },
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{before: func(f *fixture) { f.setStatus(registry.StatusDisabled) }, event: "b", attempt: 1, want: "term"},
				{before: func(f *fixture) { f.setStatus(registry.StatusActive) }, event: "c", attempt: 1, want: "ack"},
			},
			requests: 2,
			parked:   []parkedSummary{{"channel_dead", 1, 404, "channel_not_found"}, {"channel_disabled", 1, 0, ""}},
			reports:  []string{"channel_not_found"},
		},
		{
			name:  "dead channel is tried again when the hold ends and the installation is still active",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.Dead("no_service")) },
			configure: func(o *dispatch.Options) {
				o.DeadChannelHold = time.Minute
			},
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{before: func(f *fixture) { f.clock.Advance(30 * time.Second) }, event: "b", attempt: 1, want: "term"},
				{before: func(f *fixture) { f.clock.Advance(31 * time.Second) }, event: "c", attempt: 1, want: "ack"},
			},
			requests: 2,
			parked:   []parkedSummary{{"channel_dead", 1, 404, "no_service"}, {"channel_dead", 1, 404, "no_service"}},
			reports:  []string{"no_service"},
		},
		{
			name:  "bad message is parked and the channel keeps receiving",
			setup: func(f *fixture) { f.slack.Script(f.url, slacktest.BadPayload()) },
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{event: "b", attempt: 1, want: "ack"},
			},
			requests: 2,
			parked:   []parkedSummary{{"bad_message", 1, 400, "invalid_payload"}},
		},
		{
			name:     "a body that cannot be parsed is parked without a post",
			steps:    []step{{event: "a", body: []byte(`{"webhook": {}}`), attempt: 1, want: "term"}},
			requests: 0,
			parked:   []parkedSummary{{"bad_message", 1, 0, ""}},
		},
		{
			name: "unknown installation is retried, then parked",
			steps: []step{
				{event: "a", id: "unknown", attempt: 1, want: "retry", minDelay: testBase, maxDelay: testBase},
				{event: "a", id: "unknown", attempt: 2, want: "retry", minDelay: 2 * testBase, maxDelay: 2 * testBase},
				{event: "a", id: "unknown", attempt: testMaxAttempts, want: "term"},
			},
			requests: 0,
			parked:   []parkedSummary{{"unknown_installation", testMaxAttempts, 0, ""}},
		},
		{
			name: "installation that reaches the read model late is delivered",
			setup: func(f *fixture) {
				f.model.mu.Lock()
				delete(f.model.m, f.entry.ID)
				f.model.mu.Unlock()
			},
			steps: []step{
				{event: "a", attempt: 1, want: "retry", minDelay: testBase, maxDelay: testBase},
				{before: func(f *fixture) { f.model.put(f.entry) }, event: "a", attempt: 2, want: "ack"},
			},
			requests: 1,
		},
		{
			name:     "disabled installation is parked without a post",
			setup:    func(f *fixture) { f.setStatus(registry.StatusDisabled) },
			steps:    []step{{event: "a", attempt: 1, want: "term"}},
			requests: 0,
			parked:   []parkedSummary{{"channel_disabled", 1, 0, ""}},
		},
		{
			name: "webhook sealed under another SECRET_KEY is parked without a post",
			setup: func(f *fixture) {
				other, err := secret.New("another-secret-key-0123456789")
				if err != nil {
					panic(err)
				}
				f.entry.WebhookURLSealed = other.Seal(secret.WebhookURL, f.entry.ID, f.url)
				f.model.put(f.entry)
			},
			steps:    []step{{event: "a", attempt: 1, want: "term"}},
			requests: 0,
			parked:   []parkedSummary{{"unreadable_webhook", 1, 0, ""}},
		},
		{
			name: "webhook sealed for another installation is parked without a post",
			setup: func(f *fixture) {
				f.entry.WebhookURLSealed = f.keys.Seal(secret.WebhookURL, "7a1d9b0f-2e3c-4d4e-9f50-1b2c3d4e5f60", f.url)
				f.model.put(f.entry)
			},
			steps:    []step{{event: "a", attempt: 1, want: "term"}},
			requests: 0,
			parked:   []parkedSummary{{"unreadable_webhook", 1, 0, ""}},
		},
		{
			name: "webhook sealed before seals were bound is delivered",
			setup: func(f *fixture) {
				f.entry.WebhookURLSealed = f.keys.SealLegacy(f.url)
				f.model.put(f.entry)
			},
			steps:    []step{{event: "a", attempt: 1, want: "ack"}},
			requests: 1,
		},
		{
			name: "webhook sealed under SECRET_KEY_PREVIOUS is delivered while rotating",
			setup: func(f *fixture) {
				other, err := secret.New("another-secret-key-0123456789")
				if err != nil {
					panic(err)
				}
				f.entry.WebhookURLSealed = other.Seal(secret.WebhookURL, f.entry.ID, f.url)
				f.model.put(f.entry)
			},
			configure: func(o *dispatch.Options) {
				rotating, err := secret.NewWithPrevious(testSecretKey+"-rotated", "another-secret-key-0123456789")
				if err != nil {
					panic(err)
				}
				o.Opener = rotating
			},
			steps:    []step{{event: "a", attempt: 1, want: "ack"}},
			requests: 1,
		},
		{
			name: "a failing dead letter is neither acked nor terminated, and the event is delivered later",
			setup: func(f *fixture) {
				f.slack.Script(f.url, slacktest.ServerError())
				f.parked.setFail(errors.New("jetstream unavailable"))
			},
			steps: []step{
				{event: "a", attempt: testMaxAttempts, want: "retry", maxDelay: testMax},
				{before: func(f *fixture) { f.parked.setFail(nil) }, event: "a", attempt: testMaxAttempts + 1, want: "ack"},
			},
			requests: 2,
		},
		{
			name: "a dead channel whose dead letter fails is parked on the next delivery without a post",
			setup: func(f *fixture) {
				f.slack.Kill(f.url, "no_service")
				f.parked.setFail(errors.New("jetstream unavailable"))
			},
			steps: []step{
				{event: "a", attempt: 1, want: "retry", maxDelay: testBase},
				{before: func(f *fixture) { f.parked.setFail(nil) }, event: "a", attempt: 2, want: "term"},
			},
			requests: 1,
			parked:   []parkedSummary{{"channel_dead", 2, 404, "no_service"}},
			reports:  []string{"no_service"},
		},
		{
			name: "a failed report is sent again with the channel's next event",
			setup: func(f *fixture) {
				f.slack.Kill(f.url, "no_service")
				f.reports.setFail(errors.New("jetstream unavailable"))
			},
			steps: []step{
				{event: "a", attempt: 1, want: "term"},
				{before: func(f *fixture) { f.reports.setFail(nil) }, event: "b", attempt: 1, want: "term"},
				{event: "c", attempt: 1, want: "term"},
			},
			requests: 1,
			parked: []parkedSummary{
				{"channel_dead", 1, 404, "no_service"},
				{"channel_dead", 1, 404, "no_service"},
				{"channel_dead", 1, 404, "no_service"},
			},
			reports: []string{"no_service"},
		},
		{
			name: "a post cut short by shutdown goes back at once, even on the last attempt",
			setup: func(f *fixture) {
				f.slack.Script(f.url, slacktest.Response{Status: 500, Body: "rollup_error", Delay: 2 * time.Second})
			},
			steps:    []step{{event: "a", attempt: testMaxAttempts, cancel: 50 * time.Millisecond, want: "retry", maxDelay: 0}},
			requests: 0, // the fake records the request only when it answers
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.configure)
			if tt.setup != nil {
				tt.setup(f)
			}
			bodies := map[string][]byte{}
			received := map[string]time.Time{}
			for i, s := range tt.steps {
				if s.before != nil {
					s.before(f)
				}
				if bodies[s.event] == nil {
					bodies[s.event] = computerAdded()
					received[s.event] = f.clock.Now()
				}
				ev := jamf.Received{
					InstallationID: f.entry.ID,
					Event:          "ComputerAdded",
					ReceivedAt:     received[s.event],
					Body:           bodies[s.event],
					Attempt:        s.attempt,
				}
				if s.id != "" {
					ev.InstallationID = s.id
				}
				if s.body != nil {
					ev.Body = s.body
				}
				ctx := t.Context()
				if s.cancel > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, s.cancel)
					defer cancel()
				}
				got := answerOf(f.d.Handle(ctx, ev))
				if got.Class != s.want {
					t.Fatalf("step %d (event %s, attempt %d): Handle answered %s, want %s", i, s.event, s.attempt, got.Class, s.want)
				}
				if got.Class == "retry" && (got.Delay < s.minDelay || got.Delay > s.maxDelay) {
					t.Errorf("step %d (event %s, attempt %d): retry after %v, want %v to %v", i, s.event, s.attempt, got.Delay, s.minDelay, s.maxDelay)
				}
			}
			if got := len(f.slack.Requests(f.url)); got != tt.requests {
				t.Errorf("slack requests to the webhook = %d, want %d", got, tt.requests)
			}
			var parked []parkedSummary
			for _, d := range f.parked.got {
				parked = append(parked, parkedSummary{d.Reason, d.Attempts, d.LastStatus, d.LastBody})
				if d.At.IsZero() || len(d.Body) == 0 || d.InstallationID == "" {
					t.Errorf("dead letter %+v lacks its time, body or installation", d)
				}
			}
			if diff := cmp.Diff(tt.parked, parked); diff != "" {
				t.Errorf("dead letters (-want +got):\n%s", diff)
			}
			var reports []string
			for _, r := range f.reports.got {
				id, reason, _ := strings.Cut(r, " ")
				if id != f.entry.ID {
					t.Errorf("report for installation %q, want %q", id, f.entry.ID)
				}
				reports = append(reports, reason)
			}
			if diff := cmp.Diff(tt.reports, reports); diff != "" {
				t.Errorf("dead channel reports (-want +got):\n%s", diff)
			}
			if got, want := counter(t, f.reg, "jackalope_dispatch_deliveries_total", "outcome", "dead_lettered"), float64(len(tt.parked)); got != want {
				t.Errorf("deliveries_total{outcome=dead_lettered} = %v, want %v", got, want)
			}
		})
	}
}

// TestHandleDeliversTheRenderedMessage checks the message that reaches
// Slack: the rendering of the event with the installation's Jamf URL and
// the icon base.
func TestHandleDeliversTheRenderedMessage(t *testing.T) {
	f := newFixture(t, nil)
	body, n := numberedComputerAdded()
	ev := jamf.Received{InstallationID: f.entry.ID, Event: "ComputerAdded", ReceivedAt: f.clock.Now(), Body: body, Attempt: 1}
	if err := f.d.Handle(t.Context(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	msgs := f.slack.Messages(f.url)
	if len(msgs) != 1 || len(msgs[0].Attachments) != 1 {
		t.Fatalf("slack got %+v, want one message with one attachment", msgs)
	}
	a := msgs[0].Attachments[0]
	got := struct{ Title, Color, ThumbPrefix string }{a.Title, a.Color, a.ThumbURL[:min(len(a.ThumbURL), len(iconBase))]}
	want := struct{ Title, Color, ThumbPrefix string }{"Computer Added", "#008000", iconBase}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendered attachment (-want +got):\n%s", diff)
	}
	for _, s := range []string{fmt.Sprintf("C02TEST%05d", n), fmt.Sprintf("MBP-TEST-%d", n)} {
		if !strings.Contains(a.Text+a.Fallback, s) {
			t.Errorf("attachment text %q lacks %q", a.Text, s)
		}
	}
	if a.Ts != (1732870801234+n)/1000 {
		t.Errorf("attachment ts = %d, want the event's timestamp in seconds", a.Ts)
	}
	if got := counter(t, f.reg, "jackalope_dispatch_deliveries_total", "outcome", "delivered"); got != 1 {
		t.Errorf("deliveries_total{outcome=delivered} = %v, want 1", got)
	}
}

func TestNewNeedsItsDependencies(t *testing.T) {
	_, err := dispatch.New(dispatch.Options{Poster: slack.New(slack.Config{})})
	if err == nil || !strings.Contains(err.Error(), "DeadLetters, Installations, Opener, Reporter") {
		t.Errorf("New without dependencies: err = %v, want one naming DeadLetters, Installations, Opener, Reporter", err)
	}
}
