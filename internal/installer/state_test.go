package installer

import (
	"errors"
	"testing"
	"time"
)

// TestMemStatesBounded fills the memory of used states of an installer
// without a KV bucket: further claims are refused (never a state forgotten
// early and replayable) until the oldest expire.
func TestMemStatesBounded(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	m := newMemStates(c.Now, 2)
	steps := []struct {
		name    string
		advance time.Duration
		state   string
		want    bool
		wantErr error
	}{
		{name: "first", state: "A", want: true},
		{name: "second", advance: time.Minute, state: "B", want: true},
		{name: "replay of the first", state: "A"},
		{name: "full", state: "C", wantErr: errStateBusy},
		{name: "room once the first expired", advance: StateTTL - time.Minute, state: "C", want: true},
		{name: "full again", state: "E", wantErr: errStateBusy},
		{name: "room once the second expired", advance: time.Minute, state: "D", want: true},
	}
	for _, st := range steps {
		c.Advance(st.advance)
		got, err := m.ClaimState(t.Context(), st.state)
		if got != st.want || !errors.Is(err, st.wantErr) {
			t.Errorf("%s: ClaimState = %v, %v; want %v, %v", st.name, got, err, st.want, st.wantErr)
		}
	}
}
