package installer

import (
	"errors"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/secret"
)

// TestStatesBounded fills the memory of used states: further callbacks are
// refused (never a state forgotten early and replayable) until the oldest
// expire.
func TestStatesBounded(t *testing.T) {
	keys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	s := newStates(keys, c.Now, 2)

	type issued struct{ state, cookie string }
	issue := func() issued {
		state, cookie, _ := s.issue()
		return issued{state, cookie}
	}
	a, b := issue(), issue()
	c.Advance(time.Minute)
	late, later := issue(), issue()

	steps := []struct {
		name    string
		advance time.Duration
		use     issued
		want    error
	}{
		{name: "first", use: a},
		{name: "second", use: b},
		{name: "replay of the first", use: a, want: errStateReplayed},
		{name: "full", use: late, want: errStateBusy},
		{name: "room once the first two expired", advance: stateTTL - time.Minute, use: late},
		{name: "the expired first is now refused as expired", use: a, want: errStateExpired},
		{name: "another", use: later},
		{name: "full again", use: issue(), want: errStateBusy},
	}
	for _, st := range steps {
		c.Advance(st.advance)
		if err := s.consume(st.use.state, st.use.cookie); !errors.Is(err, st.want) {
			t.Errorf("%s: consume = %v; want %v", st.name, err, st.want)
		}
	}
}
