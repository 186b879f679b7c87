package installer

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackalope-app/jackalope/internal/secret"
)

const (
	// stateCookie carries the signed OAuth state between /install and
	// Slack's redirect back to /install.
	stateCookie = "jackalope_oauth_state"
	// StateTTL is how long an install started on /install may take, and so
	// how long a used state must be remembered (the TTL of the KV bucket
	// "oauth_states").
	StateTTL = 10 * time.Minute
	// maxPendingStates bounds the memory that remembers used states in a
	// process without UsedStates. Only states of finished installs are
	// remembered, so only real installs fill it; when it is full of
	// unexpired states, callbacks are refused until some expire, rather
	// than forgetting one and allowing its replay.
	maxPendingStates = 100_000
	// stateTokenPurpose is the purpose the state cookie is signed for (see
	// secret.Keys.SignToken).
	stateTokenPurpose = "oauth state"
)

// Reasons a callback's state is refused.
var (
	errStateMissing  = errors.New("oauth state missing")
	errStateForged   = errors.New("oauth state does not match its signed cookie")
	errStateExpired  = errors.New("oauth state expired")
	errStateReplayed = errors.New("oauth state already used")
	errStateBusy     = errors.New("too many installs in progress")
)

// states issues OAuth states bound to a signed cookie, checks them without
// remembering anything, and claims each once an install finished, so that
// a callback with a made-up or refused code uses nothing up.
type states struct {
	keys *secret.Keys
	now  func() time.Time
	used UsedStates
}

func newStates(keys *secret.Keys, now func() time.Time, used UsedStates) *states {
	return &states{keys: keys, now: now, used: used}
}

// issue returns a new random state, the cookie value that binds it (the
// state signed for stateTokenPurpose until it expires) and when it
// expires.
func (s *states) issue() (state, cookie string, expires time.Time) {
	state = rand.Text()
	expires = s.now().Add(StateTTL)
	return state, s.keys.SignToken(stateTokenPurpose, []byte(state), expires), expires
}

// check reports whether cookie is state's unexpired signed cookie. It
// remembers nothing: claim does, once the install succeeded.
func (s *states) check(state, cookie string) error {
	if state == "" || cookie == "" {
		return errStateMissing
	}
	signed, err := s.keys.OpenToken(stateTokenPurpose, cookie, s.now())
	switch {
	case errors.Is(err, secret.ErrTokenExpired):
		return errStateExpired
	case err != nil:
		return errStateForged
	}
	if subtle.ConstantTimeCompare(signed, []byte(state)) != 1 {
		return errStateForged
	}
	return nil
}

// claim uses state up, once check accepted it and Slack accepted the code:
// the second claim of a state, in any replica, gets errStateReplayed.
func (s *states) claim(ctx context.Context, state string) error {
	ok, err := s.used.ClaimState(ctx, state)
	if err != nil {
		return fmt.Errorf("claim oauth state: %w", err)
	}
	if !ok {
		return errStateReplayed
	}
	return nil
}

// memStates remembers used states in this process until they expire: single
// use per process, for an installer without a KV bucket.
type memStates struct {
	now func() time.Time
	max int

	mu   sync.Mutex
	used map[string]time.Time // state -> when it may be forgotten
}

func newMemStates(now func() time.Time, max int) *memStates {
	return &memStates{now: now, max: max, used: make(map[string]time.Time)}
}

// ClaimState implements UsedStates. When the memory is full of unexpired
// states it refuses with errStateBusy.
func (m *memStates) ClaimState(_ context.Context, state string) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.used[state]; ok {
		return false, nil
	}
	if len(m.used) >= m.max {
		for k, exp := range m.used {
			if !now.Before(exp) {
				delete(m.used, k)
			}
		}
		if len(m.used) >= m.max {
			return false, errStateBusy
		}
	}
	m.used[state] = now.Add(StateTTL)
	return true, nil
}
