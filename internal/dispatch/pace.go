package dispatch

import (
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/retry"
)

// pace is a channel's delivery settings with the defaults filled in.
type pace struct {
	interval    time.Duration // one message's share of the channel's allowance
	burst       int           // messages that may go out at once after a quiet spell
	digests     bool
	digestAfter time.Duration
}

// tolerance is how far ahead of now the theoretical arrival time may run
// while a message still goes out: burst-1 intervals.
func (p pace) tolerance() time.Duration { return time.Duration(p.burst-1) * p.interval }

// verdict is what the shared state says of a post to a channel at a moment.
type verdict int

const (
	// mayPost: the post may go out now; the state to store takes its turn.
	mayPost verdict = iota
	// mustWait: not before until.
	mustWait
	// isDead: Slack called the channel's webhook gone.
	isDead
)

// Why a channel waits, the values of the reason label of
// jackalope_dispatch_waits_total.
const (
	waitPaced   = "paced"   // its turn under the pace has not come
	waitPaused  = "paused"  // a 429 asked for a pause
	waitFailing = "failing" // its posts fail; it is tried again later
)

// asker is who asks for a channel's turn, and for what.
type asker struct {
	dispatcher string    // the asking dispatcher's ID
	oldest     time.Time // when its oldest waiting event entered the backlog
	webhook    string    // the fingerprint of the webhook the read model shows
	digest     bool      // the post would be a digest
	want       int       // turns it could use at once
}

// ticketLife is how long a turn ticket holds without being renewed, in
// intervals of the channel's pace (plus a second): a dispatcher that died
// holding one delays the others at most that long.
const ticketLife = 3

func (p pace) ticketStale(t *registry.TurnTicket, now time.Time) bool {
	return now.Sub(t.Noted) > ticketLife*p.interval+time.Second
}

// claim is the decision on one post.
type claim struct {
	verdict verdict
	until   time.Time // mustWait: when to ask again
	why     string    // mustWait: waitPaced, waitPaused or waitFailing
	probe   bool      // mayPost to a failing channel: this post tells whether it answers again
	turns   int       // mayPost: how many messages may go out now, one after another
	store   bool      // mustWait: next takes the channel's next turn and must be stored
	next    registry.DeliveryState
	// failingSince is when a failing channel started to fail.
	failingSince time.Time
}

// decide decides whether posts to a channel may go out at now, given the
// shared state s and the channel's pace p, for a: it takes up to a.want
// turns (at least one). It is a pure function: the caller stores next with
// compare-and-set (always for mayPost, when store is set for mustWait), and
// decides again on a conflict.
//
// The pace is the generic cell rate algorithm: TAT is when the channel's
// allowance is next free; a post goes out when TAT is at most tolerance
// ahead of now, and moves TAT one interval on. Several turns at once are
// as many posts as fit under the tolerance, so that one compare-and-set
// takes a burst. Turns are fair between dispatchers: one refused a turn
// takes a ticket for the next when its oldest waiting event is older than
// the ticket holder's, and the others leave that turn to it. A failing
// channel is tried by one post at RetryAt (the probe), which holds the
// channel for lease so that no other dispatcher probes meanwhile. The state
// records whether the channel gets digests, for the console.
func decide(s registry.DeliveryState, now time.Time, p pace, a asker, lease time.Duration) claim {
	if s.Dead != nil {
		if s.Dead.Webhook == a.webhook {
			return claim{verdict: isDead}
		}
		// Reinstalled with another webhook: the mark was for the old one.
		s.Dead = nil
	}
	if now.Before(s.PausedUntil) {
		return claim{verdict: mustWait, until: s.PausedUntil, why: waitPaused}
	}
	probe := s.Failing()
	if probe && now.Before(s.RetryAt) {
		return claim{verdict: mustWait, until: s.RetryAt, why: waitFailing, failingSince: s.FailingSince}
	}
	if t := s.Next; t != nil && t.Dispatcher != a.dispatcher && !p.ticketStale(t, now) && t.Oldest.Before(a.oldest) {
		// An older event waits elsewhere: the next turn is its.
		return claim{verdict: mustWait, until: now.Add(p.interval), why: waitPaced}
	}
	tat := later(s.TAT, now)
	ahead := tat.Sub(now)
	if ahead > p.tolerance() {
		c := claim{verdict: mustWait, until: now.Add(ahead - p.tolerance()), why: waitPaced}
		if t := s.Next; t == nil || t.Dispatcher == a.dispatcher || p.ticketStale(t, now) || a.oldest.Before(t.Oldest) {
			s.Next = &registry.TurnTicket{Dispatcher: a.dispatcher, Oldest: a.oldest, Noted: now}
			c.store, c.next = true, s
		}
		return c
	}
	turns := 1 + int((p.tolerance()-ahead)/p.interval)
	turns = min(turns, max(a.want, 1))
	if probe {
		turns = 1
		s.RetryAt = now.Add(lease)
	}
	s.TAT = tat.Add(time.Duration(turns) * p.interval)
	if s.Next != nil && (s.Next.Dispatcher == a.dispatcher || p.ticketStale(s.Next, now)) {
		s.Next = nil
	}
	switch {
	case a.digest && s.DigestSince.IsZero():
		s.DigestSince = now
	case !a.digest:
		s.DigestSince = time.Time{}
	}
	return claim{verdict: mayPost, probe: probe, turns: turns, next: s}
}

// paused returns s after Slack answered 429 with a wait of retryAfter at
// now: nothing goes out until then, and then one message, the pace
// following. A 429 is an answer: a channel that was failing is not any
// more.
func paused(s registry.DeliveryState, now time.Time, retryAfter time.Duration, p pace, f failure) registry.DeliveryState {
	s = recovered(s)
	s.PausedUntil = later(s.PausedUntil, now.Add(retryAfter))
	s.TAT = later(s.TAT, s.PausedUntil.Add(p.tolerance()))
	s.LastStatus, s.LastBody = f.status, f.body
	return s
}

// failed returns s after a retryable failure at now: the channel is tried
// again after a backoff that grows with each failure in a row, with full
// jitter, up to retryMax.
func failed(s registry.DeliveryState, now time.Time, retryBase, retryMax time.Duration, f failure) registry.DeliveryState {
	s.Failures++
	if s.FailingSince.IsZero() {
		s.FailingSince = now
	}
	s.RetryAt = now.Add(retry.Backoff(s.Failures, retryBase, retryMax))
	s.LastStatus, s.LastBody = f.status, f.body
	return s
}

// recovered returns s once the channel took a message.
func recovered(s registry.DeliveryState) registry.DeliveryState {
	s.Failures, s.FailingSince, s.RetryAt = 0, time.Time{}, time.Time{}
	s.LastStatus, s.LastBody = 0, ""
	return s
}

// gone returns s once Slack said the channel's webhook is gone.
func gone(s registry.DeliveryState, now time.Time, webhook, code string, f failure) registry.DeliveryState {
	s.Dead = &registry.DeadMark{Webhook: webhook, Code: code, Status: f.status, Body: f.body, At: now}
	return s
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
