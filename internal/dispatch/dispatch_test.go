package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// harness is dispatchers sharing a fake bus, a fake delivery state bucket
// and a fake Slack, in a synctest bubble.
type harness struct {
	t       *testing.T
	bus     *fakeBus
	states  *fakeStates
	slack   *fakeSlack
	model   *readModel
	parked  *parkedLetters
	reports *deadReports
	logs    *logCapture
}

func newHarness(t *testing.T) *harness {
	h := &harness{
		t: t, bus: newFakeBus(), states: newFakeStates(), slack: newFakeSlack(),
		model: &readModel{m: map[string]registry.Entry{}}, parked: &parkedLetters{}, reports: &deadReports{},
		logs: &logCapture{},
	}
	return h
}

// channel adds an active installation whose webhook is a fake URL.
func (h *harness) channel(name string, settings registry.DeliverySettings) (registry.Entry, string) {
	url := "https://hooks.slack.com/services/T0/B" + name + "/secret" + name
	e := registry.Entry{
		ID:               "id-" + name,
		Status:           registry.StatusActive,
		WebhookURLSealed: "sealed:id-" + name + ":" + url,
		ChannelName:      name,
		Delivery:         settings,
	}
	h.model.put(e)
	return e, url
}

// dispatcher starts a dispatcher on the harness; it stops when the test's
// bubble ends or when the returned stop is called.
func (h *harness) dispatcher(configure func(*dispatch.Options)) (stop func(), reg *prometheus.Registry) {
	h.t.Helper()
	reg = prometheus.NewRegistry()
	opts := dispatch.Options{
		Installations: h.model, Poster: h.slack, DeadLetters: h.parked, Reporter: h.reports, Opener: opener{},
		States: h.states, Logger: h.logs.logger(), Registerer: reg,
	}
	if configure != nil {
		configure(&opts)
	}
	d, err := dispatch.New(opts)
	if err != nil {
		h.t.Fatalf("dispatch.New: %v", err)
	}
	h.states.listen(d.Recovered)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, 5*time.Second, h.bus.consume) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
	h.t.Cleanup(stop)
	return stop, reg
}

// names makes n event names prefix-000, prefix-001, ...
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// namePattern finds names made by names in a message.
var namePattern = regexp.MustCompile(`\b[a-z]+-\d{3}\b`)

// namedIn counts, for each event name, the messages of posts that name it.
func namedIn(posts []post) map[string]int {
	got := map[string]int{}
	for _, p := range posts {
		b, _ := json.Marshal(p.msg)
		seen := map[string]bool{}
		for _, n := range namePattern.FindAllString(string(b), -1) {
			if !seen[n] {
				seen[n] = true
				got[n]++
			}
		}
	}
	return got
}

// waitUntil lets fake time pass in steps of step until cond holds, failing
// the test after limit of fake time.
func waitUntil(t *testing.T, limit, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v of fake time: %s", limit, what)
		}
		pass(step)
	}
}

// pass lets d of fake time pass in the test's synctest bubble: it returns
// once every goroutine of the bubble waits and the fake clock reached d
// later. It takes no real time.
func pass(d time.Duration) { <-time.After(d) }

func TestPaceSpacesPostsOfABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("paced", registry.DeliverySettings{Digests: registry.DigestsOff})
		h.slack.setRateLimit(url, 1, 3)
		h.dispatcher(nil)
		evs := names("burst", 20)
		start := time.Now()
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, time.Minute, 100*time.Millisecond, "all events delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(evs)
		})
		h.bus.checkAckedOnce(t, evs)
		posts := h.slack.posts(url)
		if len(posts) != len(evs) {
			t.Errorf("Slack got %d posts, want %d (one per event, no 429)", len(posts), len(evs))
		}
		for i, p := range posts {
			// Three go at once (the burst), then one a second.
			want := time.Duration(max(i-2, 0)) * time.Second
			if got := p.at.Sub(start); got < want {
				t.Errorf("post %d at +%v, want at +%v or later", i, got, want)
			}
			if p.status != http.StatusOK {
				t.Errorf("post %d answered %d", i, p.status)
			}
		}
		if got := namedIn(posts); len(got) != len(evs) {
			t.Errorf("messages name %d events, want %d", len(got), len(evs))
		}
	})
}

func TestPaceIsSharedByDispatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("shared", registry.DeliverySettings{Digests: registry.DigestsOff})
		h.slack.setRateLimit(url, 1, 3)
		for range 3 {
			h.dispatcher(nil)
		}
		evs := names("shared", 60)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, 5*time.Minute, time.Second, "all events delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(evs)
		})
		h.bus.checkAckedOnce(t, evs)
		var limited int
		h.slack.with(url, func(hk *fakeHook) { limited = hk.limited })
		if limited != 0 {
			t.Errorf("Slack answered 429 %d times, want 0: the pace is shared", limited)
		}
		if got := h.parked.all(); len(got) != 0 {
			t.Errorf("parked %d events, want none", len(got))
		}
	})
}

func TestRateLimitPausesTheChannelWithoutSpendingEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("limited", registry.DeliverySettings{Digests: registry.DigestsOff})
		// Slack allows less than the pace thinks: one a second, no burst.
		h.slack.setRateLimit(url, 1, 1)
		h.slack.with(url, func(hk *fakeHook) { hk.script = []error{nil, rateLimited(30 * time.Second)} })
		h.dispatcher(nil)
		evs := names("limited", 10)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, 5*time.Minute, time.Second, "all events delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(evs)
		})
		h.bus.checkAckedOnce(t, evs)
		posts := h.slack.posts(url)
		var firstAfter time.Time
		for i, p := range posts {
			if p.status == http.StatusTooManyRequests && i == 1 && i+1 < len(posts) {
				firstAfter = posts[i+1].at
				if gap := firstAfter.Sub(p.at); gap < 30*time.Second {
					t.Errorf("after a 429 asking for 30s the next post came %v later", gap)
				}
			}
		}
		if firstAfter.IsZero() {
			t.Fatalf("posts %v: want the scripted 429 second", statuses(posts))
		}
		var limited int
		h.slack.with(url, func(hk *fakeHook) { limited = hk.limited })
		if limited > 2 {
			t.Errorf("Slack's own limit answered 429 %d times; want at most 2", limited)
		}
	})
}

func TestDigestWhenBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("storm", registry.DeliverySettings{})
		h.slack.setRateLimit(url, 1, 3)
		quiet, quietURL := h.channel("quiet", registry.DeliverySettings{})
		_, reg := h.dispatcher(nil)
		storm := names("storm", 600)
		start := time.Now()
		for i, n := range storm {
			h.bus.publish(e.ID, n)
			if i%10 == 9 {
				pass(time.Second) // 10 a second
			}
			if i == 300 {
				h.bus.publish(quiet.ID, "quiet-000")
			}
		}
		stormEnd := time.Now()
		waitUntil(t, time.Minute, time.Second, "every storm event delivered", func() bool {
			return len(namedIn(h.slack.delivered(url))) == len(storm)
		})
		if late := time.Since(stormEnd); late > 5*time.Second {
			t.Errorf("the last storm event reached Slack %v after the storm ended", late)
		}
		h.bus.checkAckedOnce(t, storm)
		posts := h.slack.posts(url)
		if limited := countStatus(posts, http.StatusTooManyRequests); limited != 0 {
			t.Errorf("Slack answered 429 %d times", limited)
		}
		// One message per turn: the burst, then one a second over the
		// storm, then the tail. Events that can all go out at the pace
		// within DigestAfter go one by one, so a tail of up to
		// DigestAfter/Interval+1 events taken after the last digest posts
		// singly (seen: a digest of 14 at 59s, then one a second to 1m4s).
		tail := int(dispatch.DefaultDigestAfter/dispatch.DefaultInterval) + 1
		if n, most := len(posts), dispatch.DefaultBurst+int(stormEnd.Sub(start)/dispatch.DefaultInterval)+tail; n > most {
			t.Errorf("%d messages for the storm, want at most %d", n, most)
		}
		q := h.slack.delivered(quietURL)
		if len(q) != 1 || q[0].at.Sub(start) > 31*time.Second {
			t.Errorf("quiet channel: %d posts, first at %v; want it at once (+30s)", len(q), q)
		}
		if digests := counterValue(t, reg, "jackalope_dispatch_digests_total", "", ""); digests < 10 {
			t.Errorf("digests posted = %v, want the storm in digests", digests)
		}
	})
}

func TestDigestRefusedGoesOutOneByOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("picky", registry.DeliverySettings{Burst: 1})
		h.slack.with(url, func(hk *fakeHook) { hk.refusedWhole = true })
		h.dispatcher(nil)
		evs := names("picky", 12)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, 2*time.Minute, time.Second, "all events delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(evs)
		})
		h.bus.checkAckedOnce(t, evs)
		if got := h.parked.all(); len(got) != 0 {
			t.Errorf("parked %d events; a refused digest must be split, not parked", len(got))
		}
	})
}

func TestOutageRecoversPromptlyWithoutDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("outage", registry.DeliverySettings{})
		other, otherURL := h.channel("fine", registry.DeliverySettings{})
		h.slack.with(url, func(hk *fakeHook) { hk.down = true })
		for range 2 {
			h.dispatcher(nil)
		}
		evs := names("outage", 180)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
			h.bus.publish(other.ID, strings.Replace(n, "outage", "fine", 1))
			pass(time.Second)
		}
		// Three minutes of outage, then Slack answers again.
		h.slack.with(url, func(hk *fakeHook) { hk.down = false })
		waitUntil(t, 10*time.Minute, time.Second, "a post succeeds after the outage", func() bool {
			return len(h.slack.delivered(url)) > 0
		})
		first := h.slack.delivered(url)[0].at
		// A digest names some and counts the rest: the acks say which
		// events Slack took.
		waitUntil(t, 2*time.Minute, time.Second, "every event delivered", func() bool {
			a, _ := h.bus.settled()
			return a == 2*len(evs)
		})
		if late := time.Since(first); late > 60*time.Second {
			t.Errorf("the last event arrived %v after the first success, want within 60s", late)
		}
		if got := h.parked.all(); len(got) != 0 {
			t.Errorf("parked %d events during a 3-minute outage, want none", len(got))
		}
		h.bus.checkAckedOnce(t, evs)
		if got := len(h.slack.delivered(otherURL)); got != len(evs) {
			t.Errorf("the channel that worked got %d messages, want %d", got, len(evs))
		}
		if st := h.states.get(e.ID); st.Failing() {
			t.Errorf("state after recovery = %+v, want not failing", st)
		}
	})
}

func TestDeadlinePassedParksOnlyAfterTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("down", registry.DeliverySettings{})
		h.slack.with(url, func(hk *fakeHook) { hk.down = true })
		h.dispatcher(func(o *dispatch.Options) { o.Deadline = time.Hour })
		start := time.Now()
		evs := names("down", 5)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, 2*time.Hour, time.Minute, "every event parked", func() bool {
			return len(h.parked.all()) == len(evs)
		})
		for _, d := range h.parked.all() {
			if d.Reason != dispatch.ReasonDeadlinePassed {
				t.Errorf("parked %s as %s, want %s", d.Event, d.Reason, dispatch.ReasonDeadlinePassed)
			}
			if d.At.Sub(start) < time.Hour {
				t.Errorf("parked %s after %v, before its 1h deadline", d.Event, d.At.Sub(start))
			}
			if d.LastStatus != http.StatusInternalServerError || d.LastBody != "rollup_error" {
				t.Errorf("dead letter's last answer = %d %q, want Slack's 500", d.LastStatus, d.LastBody)
			}
		}
		// A handful of tries an hour, not one per event per backoff.
		if n := len(h.slack.posts(url)); n > 60 {
			t.Errorf("%d posts during an hour of outage, want the channel tried with backoff", n)
		}
	})
}

func TestDeadChannelEverywhereUntilEnabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("gone", registry.DeliverySettings{})
		h.slack.with(url, func(hk *fakeHook) { hk.dead = "channel_is_archived" })
		h.dispatcher(nil)
		h.dispatcher(nil)
		for _, n := range names("gone", 10) {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, time.Minute, time.Second, "every event parked", func() bool {
			return len(h.parked.all()) == 10
		})
		if got := h.parked.reasons(); got[dispatch.ReasonChannelDead] != 10 {
			t.Errorf("parked by reason %v, want 10 channel_dead", got)
		}
		// Posts already under way when the first answer came may hit the
		// dead channel too; none after it.
		posted := len(h.slack.posts(url))
		if posted > 2 {
			t.Errorf("%d posts to a dead channel, want at most one per dispatcher", posted)
		}
		for _, n := range names("later", 5) {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, time.Minute, time.Second, "the later events parked", func() bool {
			return len(h.parked.all()) == 15
		})
		if n := len(h.slack.posts(url)); n != posted {
			t.Errorf("%d more posts to a channel known dead; the mark is shared", n-posted)
		}
		if got := h.reports.all(); len(got) == 0 || got[0] != e.ID+" channel_is_archived" {
			t.Errorf("reports = %v, want the channel reported", got)
		}

		// The admin fixes the channel and enables it: the mark goes
		// everywhere at once, and a new event is delivered.
		h.slack.with(url, func(hk *fakeHook) { hk.dead = "" })
		h.states.clear(e.ID)
		h.bus.publish(e.ID, "again-000")
		waitUntil(t, 5*time.Second, 100*time.Millisecond, "the event after enabling delivered", func() bool {
			return namedIn(h.slack.delivered(url))["again-000"] == 1
		})
	})
}

func TestQuietChannelIsNotHeldUpByAPausedOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		busy, busyURL := h.channel("busy", registry.DeliverySettings{Digests: registry.DigestsOff})
		quiet, quietURL := h.channel("calm", registry.DeliverySettings{})
		h.slack.with(busyURL, func(hk *fakeHook) { hk.script = []error{rateLimited(10 * time.Minute)} })
		h.dispatcher(func(o *dispatch.Options) { o.HoldTotal, o.HoldPerChannel = 100, 50 })
		for _, n := range names("busy", 5000) {
			h.bus.publish(busy.ID, n)
		}
		h.bus.publish(quiet.ID, "calm-000")
		start := time.Now()
		waitUntil(t, 30*time.Second, 100*time.Millisecond, "the quiet channel's event delivered", func() bool {
			return len(h.slack.delivered(quietURL)) == 1
		})
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the quiet channel waited %v behind a paused one", took)
		}
		if got := h.parked.all(); len(got) != 0 {
			t.Errorf("parked %d events", len(got))
		}
	})
}

func TestStopHandsEventsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("slow", registry.DeliverySettings{Digests: registry.DigestsOff})
		h.slack.setRateLimit(url, 1, 3)
		stop, _ := h.dispatcher(nil)
		evs := names("slow", 20)
		for _, n := range evs {
			h.bus.publish(e.ID, n)
		}
		pass(2500 * time.Millisecond)
		stop()
		acked, termed := h.bus.settled()
		if acked == 0 || acked == len(evs) || termed != 0 {
			t.Fatalf("after stopping: %d acked, %d terminated; want some acked, none terminated", acked, termed)
		}
		// A new dispatcher delivers the rest.
		h.dispatcher(nil)
		waitUntil(t, time.Minute, time.Second, "every event delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(evs)
		})
		h.bus.checkAckedOnce(t, evs)
	})
}

func TestDisabledAndUnknownAreParked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, _ := h.channel("off", registry.DeliverySettings{})
		e.Status, e.StatusReason = registry.StatusDisabled, "channel_is_archived"
		h.model.put(e)
		h.dispatcher(nil)
		h.bus.publish(e.ID, "off-000")
		h.bus.publish("id-nobody", "nobody-000")
		h.bus.publishBody(e.ID, "junk-000", []byte("not json"))
		waitUntil(t, 10*time.Minute, 10*time.Second, "all three parked", func() bool {
			return len(h.parked.all()) == 3
		})
		want := map[string]int{dispatch.ReasonChannelDisabled: 1, dispatch.ReasonUnknownInstallation: 1, dispatch.ReasonBadMessage: 1}
		if diff := cmp.Diff(want, h.parked.reasons()); diff != "" {
			t.Errorf("parked by reason (-want +got):\n%s", diff)
		}
	})
}

func TestLogsShowNoWebhookURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("secret", registry.DeliverySettings{})
		h.slack.with(url, func(hk *fakeHook) {
			hk.script = []error{
				&slack.Error{Status: 500, Body: "rollup_error", Err: slack.ErrUnavailable},
				rateLimited(2 * time.Second),
				retry.Permanent(&slack.Error{Status: 404, Body: "no_service", Err: slack.ErrChannelGone}),
			}
		})
		h.dispatcher(func(o *dispatch.Options) { o.Logger = h.logs.logger() })
		for _, n := range names("secret", 3) {
			h.bus.publish(e.ID, n)
		}
		waitUntil(t, 10*time.Minute, time.Second, "all settled", func() bool {
			a, tm := h.bus.settled()
			return a+tm == 3
		})
		checkNoLeaks(t, h.logs, func() []string { return []string{url} })
	})
}

func statuses(posts []post) []int {
	out := make([]int, len(posts))
	for i, p := range posts {
		out[i] = p.status
	}
	return out
}

func countStatus(posts []post, status int) int {
	n := 0
	for _, p := range posts {
		if p.status == status {
			n++
		}
	}
	return n
}

// counterValue reads a counter, a gauge or a histogram's count from reg:
// name with no label, or name{label=value}.
func counterValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" {
				match := false
				for _, l := range m.GetLabel() {
					match = match || l.GetName() == label && l.GetValue() == value
				}
				if !match {
					continue
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// TestSlackBackWakesFailingChannels: after an outage of all of Slack, the
// first success on one channel brings the others' next try forward, so none
// waits out a backoff of minutes once Slack is back.
func TestSlackBackWakesFailingChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		const n = 5
		var urls []string
		var ids []string
		for i := range n {
			e, url := h.channel(fmt.Sprintf("ch%d", i), registry.DeliverySettings{})
			h.slack.with(url, func(hk *fakeHook) { hk.down = true })
			urls, ids = append(urls, url), append(ids, e.ID)
		}
		h.dispatcher(nil)
		// Half an hour of outage: every channel backs off to minutes.
		for m := range 30 {
			for i, id := range ids {
				h.bus.publish(id, fmt.Sprintf("ch%d-%03d", i, m))
			}
			pass(time.Minute)
		}
		for _, url := range urls {
			h.slack.with(url, func(hk *fakeHook) { hk.down = false })
		}
		waitUntil(t, 10*time.Minute, time.Second, "a first success", func() bool {
			for _, url := range urls {
				if len(h.slack.delivered(url)) > 0 {
					return true
				}
			}
			return false
		})
		first := time.Now()
		waitUntil(t, 10*time.Minute, time.Second, "every event delivered", func() bool {
			a, _ := h.bus.settled()
			return a == 30*n
		})
		if took := time.Since(first); took > 30*time.Second {
			t.Errorf("every channel was through %v after the first success, want within 30s", took)
		}
	})
}

// TestStormIsFairBetweenDispatchers: three dispatchers share a storm into
// one channel at 1 message a second; whichever holds an event, it waits no
// longer than the digests' rhythm allows: no dispatcher starves while the
// others win the race for turns.
func TestStormIsFairBetweenDispatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		e, url := h.channel("fair", registry.DeliverySettings{})
		h.slack.setRateLimit(url, 1, 3)
		for range 3 {
			h.dispatcher(nil)
		}
		storm := names("fair", 600)
		published := map[string]time.Time{}
		for i, n := range storm {
			published[n] = time.Now()
			h.bus.publish(e.ID, n)
			if i%10 == 9 {
				pass(time.Second)
			}
		}
		waitUntil(t, 2*time.Minute, time.Second, "every event delivered", func() bool {
			a, _ := h.bus.settled()
			return a == len(storm)
		})
		if worst := h.bus.latest(storm, published); worst > 15*time.Second {
			t.Errorf("an event waited %v for Slack during the storm, want at most 15s", worst)
		}
		if limited := countStatus(h.slack.posts(url), http.StatusTooManyRequests); limited > 0 {
			t.Errorf("Slack answered 429 %d times", limited)
		}
	})
}

// TestFilteredEventsAreSettledWithoutAPost sends a channel that shows only
// failed policies every kind of event: only the failure is posted; the
// others are settled at once, without a post or a dead letter, and counted
// by type. A channel without a filter still gets everything.
func TestFilteredEventsAreSettledWithoutAPost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		policies, hook := h.channel("policies", registry.DeliverySettings{})
		policies.Filter = registry.EventFilter{
			Events:       []string{"ComputerPolicyFinished"},
			FailuresOnly: []string{"ComputerPolicyFinished"},
		}
		h.model.put(policies)
		everything, other := h.channel("everything", registry.DeliverySettings{})
		_, reg := h.dispatcher(nil)

		policy := func(name string, ok bool) []byte {
			return fmt.Appendf(nil, `{"webhook": {"webhookEvent": "ComputerPolicyFinished"},
 "event": {"computer": {"deviceName": %q, "jssID": 7}, "policyId": 3, "successful": %t}}`, name, ok)
		}
		h.bus.publishBody(policies.ID, "failed-000", policy("failed-000", false))
		h.bus.publishBody(policies.ID, "passed-000", policy("passed-000", true))
		h.bus.publish(policies.ID, "added-000")
		h.bus.publishBody(policies.ID, "novel-000", []byte(`{"webhook": {"webhookEvent": "ComputerExploded"}, "event": {"name": "novel-000"}}`))
		h.bus.publishBody(everything.ID, "passed-001", policy("passed-001", true))
		h.bus.publish(everything.ID, "added-001")
		waitUntil(t, time.Minute, time.Second, "the failure and the unfiltered channel's two events posted", func() bool {
			return len(h.slack.delivered(hook)) == 1 && len(h.slack.delivered(other)) == 2
		})
		synctest.Wait()
		if got := namedIn(h.slack.posts(hook)); !cmp.Equal(got, map[string]int{"failed-000": 1}) {
			t.Errorf("the filtered channel got posts naming %v; want only failed-000", got)
		}
		h.bus.mu.Lock()
		skipped := maps.Clone(h.bus.skipped)
		h.bus.mu.Unlock()
		if want := map[string]int{"passed-000": 1, "added-000": 1, "novel-000": 1}; !cmp.Equal(skipped, want) {
			t.Errorf("skipped events %v, want %v", skipped, want)
		}
		if p := h.parked.all(); len(p) != 0 {
			t.Errorf("filtered events were parked: %+v", p)
		}
		for event, want := range map[string]float64{"ComputerPolicyFinished": 1, "ComputerAdded": 1, "other": 1} {
			if got := counterValue(t, reg, "jackalope_events_filtered_total", "event", event); got != want {
				t.Errorf("jackalope_events_filtered_total{event=%q} = %v, want %v", event, got, want)
			}
		}
	})
}

// TestBusyHostComesFirst checks Options.Busy: while the host is busy with
// work that comes first (the all-in-one's ingest in a burst), events are
// taken one at a time, one per 10 ms, however many could go. A moment not
// busy does not open the gate: the dispatcher goes on trickling until the
// host has not been busy for 100 ms, then takes the rest at once.
func TestBusyHostComesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var busy atomic.Bool
		busy.Store(true)
		h.dispatcher(func(o *dispatch.Options) { o.Busy = busy.Load })
		// 50 channels, an event each: nothing but Busy holds them back.
		var urls []string
		for i := range 50 {
			e, url := h.channel(fmt.Sprintf("c%02d", i), registry.DeliverySettings{})
			h.bus.publish(e.ID, fmt.Sprintf("c%02d-000", i))
			urls = append(urls, url)
		}
		delivered := func() int {
			n := 0
			for _, u := range urls {
				n += len(h.slack.delivered(u))
			}
			return n
		}
		pass(100 * time.Millisecond)
		synctest.Wait()
		busyFor := delivered()
		if busyFor < 5 || busyFor > 11 {
			t.Errorf("while busy for 100ms, %d events went out; want one per 10ms", busyFor)
		}
		// Not busy for a moment, as a burst's webhooks in flight dip: still
		// one per 10 ms.
		busy.Store(false)
		pass(50 * time.Millisecond)
		synctest.Wait()
		if n := delivered() - busyFor; n > 6 {
			t.Errorf("50ms after the host was last busy, %d more events went out; want one per 10ms", n)
		}
		pass(61 * time.Millisecond)
		synctest.Wait()
		if n := delivered(); n != len(urls) {
			t.Errorf("111ms after the host was last busy, %d of %d events were delivered; want all", n, len(urls))
		}
	})
}

// TestRunnersBoundPostsAndTakeTurns checks the runners that run channels'
// turns: never more posts at once than MaxInFlight, a channel with many
// events queues behind the others after each turn rather than keeping a
// runner, and stopping does not wait for idle runners to time out.
func TestRunnersBoundPostsAndTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.slack.latency = time.Second
		fast := registry.DeliverySettings{Interval: time.Millisecond, Burst: 1, Digests: registry.DigestsOff}
		busy, busyURL := h.channel("busy", fast)
		stop, reg := h.dispatcher(func(o *dispatch.Options) { o.MaxInFlight = 1 })
		for _, n := range names("busy", 20) {
			h.bus.publish(busy.ID, n)
		}
		synctest.Wait() // the busy channel's first post is under way
		if n := counterValue(t, reg, "jackalope_dispatch_posts_in_flight", "", ""); n != 1 {
			t.Errorf("posts in flight during the first post = %v, want 1", n)
		}
		var quiet []string
		for i := range 5 {
			e, url := h.channel(fmt.Sprintf("quiet%d", i), fast)
			h.bus.publish(e.ID, fmt.Sprintf("quiet-%03d", i))
			quiet = append(quiet, url)
		}
		waitUntil(t, time.Minute, 100*time.Millisecond, "all events delivered", func() bool {
			a, _ := h.bus.settled()
			return a == 25
		})
		if most := h.slack.most(); most != 1 {
			t.Errorf("at most %d posts were under way at once, want 1 (MaxInFlight)", most)
		}
		// One busy post, the five quiet ones in turn, then the rest.
		second := h.slack.posts(busyURL)[1].at
		for i, url := range quiet {
			if p := h.slack.posts(url); len(p) != 1 || !p[0].at.Before(second) {
				t.Errorf("quiet channel %d: posts %v, want one before the busy channel's second post at %v", i, p, second)
			}
		}
		if n := counterValue(t, reg, "jackalope_dispatch_posts_in_flight", "", ""); n != 0 {
			t.Errorf("posts in flight with every event delivered = %v, want 0", n)
		}
		start := time.Now()
		stop()
		if waited := time.Since(start); waited != 0 {
			t.Errorf("stop took %v of fake time, want none: idle runners end when the dispatcher stops", waited)
		}
	})
}
