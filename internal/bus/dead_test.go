package bus_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
)

func deadLetter(id, body string) jamf.DeadLetter {
	return jamf.DeadLetter{
		Received:   received(id, "ComputerAdded", body),
		Reason:     "channel_dead",
		Attempts:   4,
		LastStatus: 404,
		LastBody:   "channel_not_found",
		At:         time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC),
	}
}

// seedDead publishes three events for installation "a" and two for "b",
// then parks each in JAMF_DEAD, as a dispatcher would.
func seedDead(t *testing.T, c *bus.Conn) []jamf.DeadLetter {
	t.Helper()
	var ds []jamf.DeadLetter
	for _, x := range []struct{ id, body string }{
		{"a", `{"n":1}`}, {"a", `{"n":2}`}, {"b", `{"n":3}`}, {"a", `{"n":4}`}, {"b", `{"n":5}`},
	} {
		d := deadLetter(x.id, x.body)
		publish(t, c, d.Received)
		if err := c.DeadLetter(t.Context(), d); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		ds = append(ds, d)
	}
	return ds
}

func bodies(ds []jamf.DeadLetter) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Body))
	}
	return out
}

func TestListDead(t *testing.T) {
	c := bustest.New(t)
	seeded := seedDead(t, c)

	tests := []struct {
		name string
		id   string
		want []string
	}{
		{name: "one installation", id: "a", want: []string{`{"n":1}`, `{"n":2}`, `{"n":4}`}},
		{name: "the other", id: "b", want: []string{`{"n":3}`, `{"n":5}`}},
		{name: "all", id: "", want: bodies(seeded)},
		{name: "none", id: "c", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ListDead(t.Context(), tt.id)
			if err != nil {
				t.Fatalf("ListDead: %v", err)
			}
			if got == nil {
				t.Error("ListDead returned nil, want an empty slice")
			}
			if diff := cmp.Diff(tt.want, bodies(got)); diff != "" {
				t.Errorf("bodies (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		got, err := c.ListDead(t.Context(), "")
		if err != nil {
			t.Fatalf("ListDead: %v", err)
		}
		for i := range seeded {
			seeded[i].Seq = uint64(i + 1)
		}
		if diff := cmp.Diff(seeded, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("dead letters (-want +got):\n%s", diff)
		}
	})

	t.Run("invalid installation", func(t *testing.T) {
		if _, err := c.ListDead(t.Context(), "a.b"); !errors.Is(err, bus.ErrInvalidInstallationID) {
			t.Errorf("ListDead(a.b) = %v, want ErrInvalidInstallationID", err)
		}
	})
}

func TestDeadLetterLastBodyIsHeaderSafe(t *testing.T) {
	c := bustest.New(t)
	d := deadLetter("a", `{}`)
	d.LastBody = "line one\r\nline two\n" + strings.Repeat("é", 2000)
	d.Reason = "bad\nreason"
	if err := c.DeadLetter(t.Context(), d); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	got, err := c.ListDead(t.Context(), "a")
	if err != nil || len(got) != 1 {
		t.Fatalf("ListDead = %v, %v; want one", got, err)
	}
	lb := got[0].LastBody
	if strings.ContainsAny(lb, "\r\n") || strings.ContainsAny(got[0].Reason, "\r\n") {
		t.Errorf("LastBody %q or Reason %q holds a line break", lb, got[0].Reason)
	}
	if len(lb) > 1024 || !strings.HasPrefix(lb, "line one  line two") {
		t.Errorf("LastBody has %d bytes and starts %q; want at most 1024 starting with the answer", len(lb), lb[:min(len(lb), 20)])
	}
	if !strings.HasSuffix(lb, "é") {
		t.Errorf("LastBody was cut inside a character: ...%q", lb[len(lb)-4:])
	}
}

func TestReplayAndDropDead(t *testing.T) {
	tests := []struct {
		name     string
		replay   bool // else drop
		id       string
		all      bool
		want     int
		wantErr  error
		leftDead []string
		// bodies in JAMF_EVENTS after the replay, in order: the five
		// seeded events, then the replayed ones.
		events []string
	}{
		{
			name: "replay one installation", replay: true, id: "a", want: 3,
			leftDead: []string{`{"n":3}`, `{"n":5}`},
			events:   []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`, `{"n":1}`, `{"n":2}`, `{"n":4}`},
		},
		{
			name: "replay all", replay: true, all: true, want: 5,
			events: []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
		{
			name: "replay needs a scope", replay: true, wantErr: bus.ErrNoScope,
			leftDead: []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
			events:   []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
		{
			name: "drop one installation", id: "b", want: 2,
			leftDead: []string{`{"n":1}`, `{"n":2}`, `{"n":4}`},
			events:   []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
		{
			name: "drop all", all: true, want: 5,
			events: []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
		{
			name: "drop an installation without dead letters", id: "c", want: 0,
			leftDead: []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
			events:   []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
		{
			name: "drop needs a scope", wantErr: bus.ErrNoScope,
			leftDead: []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
			events:   []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bustest.New(t)
			seedDead(t, c)
			var n int
			var err error
			if tt.replay {
				n, err = c.ReplayDead(t.Context(), tt.id, tt.all)
			} else {
				n, err = c.DropDead(t.Context(), tt.id, tt.all)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != tt.want {
				t.Errorf("count = %d, want %d", n, tt.want)
			}
			left, err := c.ListDead(t.Context(), "")
			if err != nil {
				t.Fatalf("ListDead: %v", err)
			}
			if diff := cmp.Diff(tt.leftDead, bodies(left)); diff != "" {
				t.Errorf("dead letters left (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.events, eventBodies(t, c)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplayedEventsAreDelivered replays dead letters and consumes them:
// they come back as events with their original headers.
func TestReplayedEventsAreDelivered(t *testing.T) {
	c := bustest.New(t)
	d := deadLetter("a", `{"n":1}`)
	if err := c.DeadLetter(t.Context(), d); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if n, err := c.ReplayDead(t.Context(), "a", false); err != nil || n != 1 {
		t.Fatalf("ReplayDead = %d, %v; want 1, nil", n, err)
	}
	tk := newTaken()
	consumer(t, c, tk.take)
	dv := tk.next(t)
	r := dv.Event()
	want := d.Received
	want.Attempt = 1
	want.Queued = r.Queued // when the replay stored it
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("replayed event (-want +got):\n%s", diff)
	}
	if r.Queued.Before(d.At) {
		t.Errorf("replayed event Queued = %v, before it was parked (%v): its deadline must count from the replay", r.Queued, d.At)
	}
	dv.Settle(nil)
}

// eventBodies returns the bodies stored in JAMF_EVENTS, oldest first.
func eventBodies(t *testing.T, c *bus.Conn) []string {
	t.Helper()
	s, err := c.JetStream().Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var out []string
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("GetMsg %d: %v", seq, err)
		}
		out = append(out, string(m.Data))
	}
	return slices.Clip(out)
}

// TestOneDeadLetter replays and drops single dead letters by sequence, and
// only for the installation they belong to.
func TestOneDeadLetter(t *testing.T) {
	c := bustest.New(t)
	seedDead(t, c)
	listed, err := c.ListDead(t.Context(), "a")
	if err != nil || len(listed) != 3 {
		t.Fatalf("ListDead(a) = %d letters, %v; want 3", len(listed), err)
	}
	first, second := listed[0].Seq, listed[1].Seq

	counts, err := c.DeadCounts(t.Context())
	if err != nil {
		t.Fatalf("DeadCounts: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"a": 3, "b": 2}, counts); diff != "" {
		t.Errorf("DeadCounts (-want +got):\n%s", diff)
	}

	steps := []struct {
		name string
		op   func() (int, error)
		want int
	}{
		{"another installation's letter is not replayed", func() (int, error) { return c.ReplayDeadLetter(t.Context(), "b", first) }, 0},
		{"another installation's letter is not dropped", func() (int, error) { return c.DropDeadLetter(t.Context(), "b", first) }, 0},
		{"replay one", func() (int, error) { return c.ReplayDeadLetter(t.Context(), "a", first) }, 1},
		{"replay it again", func() (int, error) { return c.ReplayDeadLetter(t.Context(), "a", first) }, 0},
		{"drop one", func() (int, error) { return c.DropDeadLetter(t.Context(), "a", second) }, 1},
		{"drop it again", func() (int, error) { return c.DropDeadLetter(t.Context(), "a", second) }, 0},
		{"a sequence past the end", func() (int, error) { return c.ReplayDeadLetter(t.Context(), "a", 1_000_000) }, 0},
	}
	for _, s := range steps {
		n, err := s.op()
		if err != nil || n != s.want {
			t.Errorf("%s: %d, %v; want %d, nil", s.name, n, err, s.want)
		}
	}
	left, err := c.ListDead(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`{"n":3}`, `{"n":4}`, `{"n":5}`}, bodies(left)); diff != "" {
		t.Errorf("dead letters left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`, `{"n":1}`}, eventBodies(t, c)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if _, err := c.ReplayDeadLetter(t.Context(), "a.b", first); err == nil {
		t.Error("ReplayDeadLetter with an invalid installation ID succeeded; want an error")
	}
	counts, err = c.DeadCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 2}, counts); diff != "" {
		t.Errorf("DeadCounts after (-want +got):\n%s", diff)
	}
}
