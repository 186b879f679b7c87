package dispatch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/registry"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	p := pace{interval: time.Second, burst: 3}
	const hook = "hook-1"
	const lease = 15 * time.Second
	type want struct {
		verdict verdict
		turns   int
		until   time.Time
		why     string
		probe   bool
		tat     time.Time
	}
	tests := []struct {
		name  string
		state registry.DeliveryState
		want  int // turns asked for
		out   want
	}{
		{"fresh channel takes its burst", registry.DeliveryState{}, 10,
			want{verdict: mayPost, turns: 3, tat: now.Add(3 * time.Second)}},
		{"asks for one, takes one", registry.DeliveryState{}, 1,
			want{verdict: mayPost, turns: 1, tat: now.Add(time.Second)}},
		{"burst half used", registry.DeliveryState{TAT: now.Add(time.Second)}, 10,
			want{verdict: mayPost, turns: 2, tat: now.Add(3 * time.Second)}},
		{"burst used up waits an interval", registry.DeliveryState{TAT: now.Add(3 * time.Second)}, 1,
			want{verdict: mustWait, until: now.Add(time.Second), why: waitPaced}},
		{"a past TAT counts from now", registry.DeliveryState{TAT: now.Add(-time.Hour)}, 1,
			want{verdict: mayPost, turns: 1, tat: now.Add(time.Second)}},
		{"paused by a 429", registry.DeliveryState{PausedUntil: now.Add(20 * time.Second)}, 1,
			want{verdict: mustWait, until: now.Add(20 * time.Second), why: waitPaused}},
		{"failing waits for its retry", registry.DeliveryState{Failures: 2, RetryAt: now.Add(4 * time.Second)}, 5,
			want{verdict: mustWait, until: now.Add(4 * time.Second), why: waitFailing}},
		{"failing, retry due: one probe holds the channel", registry.DeliveryState{Failures: 2, RetryAt: now}, 5,
			want{verdict: mayPost, turns: 1, probe: true, tat: now.Add(time.Second)}},
		{"dead for this webhook", registry.DeliveryState{Dead: &registry.DeadMark{Webhook: hook}}, 1,
			want{verdict: isDead}},
		{"dead for another webhook (reinstalled)", registry.DeliveryState{Dead: &registry.DeadMark{Webhook: "old"}}, 1,
			want{verdict: mayPost, turns: 1, tat: now.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decide(tt.state, now, p, asker{dispatcher: "me", oldest: now, webhook: hook, want: tt.want}, lease)
			got := want{verdict: c.verdict, turns: c.turns, until: c.until, why: c.why, probe: c.probe}
			if c.verdict == mayPost {
				got.tat = c.next.TAT
			}
			if diff := cmp.Diff(tt.out, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
			if c.verdict == mayPost {
				if c.probe && !c.next.RetryAt.Equal(now.Add(lease)) {
					t.Errorf("a probe holds the channel until %v, want %v", c.next.RetryAt, now.Add(lease))
				}
				if c.next.Dead != nil {
					t.Errorf("a post to a reinstalled channel keeps the old dead mark")
				}
			}
		})
	}
}

func TestPausedLetsOneGoAtItsEnd(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	p := pace{interval: time.Second, burst: 3}
	s := paused(registry.DeliveryState{Failures: 3, RetryAt: now.Add(time.Minute)}, now, 30*time.Second, p, failure{status: 429})
	if s.Failing() {
		t.Error("a 429 is an answer: the channel should not be failing any more")
	}
	end := now.Add(30 * time.Second)
	if c := decide(s, end.Add(-time.Millisecond), p, asker{want: 3}, time.Second); c.verdict != mustWait {
		t.Errorf("just before the pause ends: %v, want to wait", c.verdict)
	}
	c := decide(s, end, p, asker{want: 3}, time.Second)
	if c.verdict != mayPost || c.turns != 1 {
		t.Errorf("at the end of the pause: verdict %v, %d turns; want one post", c.verdict, c.turns)
	}
}

func TestFailedBacksOff(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	var s registry.DeliveryState
	for i := 1; i <= 20; i++ {
		s = failed(s, now, time.Second, 5*time.Minute, failure{status: 500, body: "rollup_error"})
		if wait := s.RetryAt.Sub(now); wait < 0 || wait > 5*time.Minute {
			t.Fatalf("failure %d: retry in %v, want within [0, 5m]", i, wait)
		}
	}
	if s.Failures != 20 || !s.FailingSince.Equal(now) || s.LastStatus != 500 {
		t.Errorf("after 20 failures: %+v", s)
	}
	if r := recovered(s); r.Failing() || !r.FailingSince.IsZero() || r.LastStatus != 0 {
		t.Errorf("recovered = %+v, want no failure left", r)
	}
}

// TestTurnTickets: a dispatcher refused a turn takes the next one when its
// event is the oldest waiting, and the others leave it that turn.
func TestTurnTickets(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	p := pace{interval: time.Second, burst: 1}
	busy := registry.DeliveryState{TAT: now.Add(time.Second)}
	older := asker{dispatcher: "A", oldest: now.Add(-time.Minute), want: 1}
	younger := asker{dispatcher: "B", oldest: now.Add(-time.Second), want: 1}

	c := decide(busy, now, p, older, time.Second)
	if c.verdict != mustWait || !c.store || c.next.Next == nil || c.next.Next.Dispatcher != "A" {
		t.Fatalf("refused turn: %+v; want a ticket for A to store", c)
	}
	ticketed := c.next
	turn := now.Add(time.Second)
	if c := decide(ticketed, turn, p, younger, time.Second); c.verdict != mustWait || c.store {
		t.Errorf("B with a younger event at A's turn: %+v; want to wait, storing nothing", c)
	}
	c = decide(ticketed, turn, p, older, time.Second)
	if c.verdict != mayPost || c.next.Next != nil {
		t.Errorf("A at its turn: %+v; want the turn, and the ticket gone", c)
	}
	// A younger event does not take an older one's ticket.
	if c := decide(ticketed, now, p, younger, time.Second); c.store {
		t.Errorf("B refused with a younger event replaced A's ticket: %+v", c)
	}
	// A ticket not renewed is void: B takes the turn.
	late := now.Add(10 * time.Second)
	if c := decide(ticketed, late, p, younger, time.Second); c.verdict != mayPost {
		t.Errorf("B after A's ticket went stale: %+v; want the turn", c)
	}
}
