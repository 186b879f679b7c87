package installer

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// stateSignLabel separates the state's signatures from other uses of
	// the signing key.
	stateSignLabel = "oauth state\x00"
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

// issue returns a new random state, the cookie value that binds it
// ("state.expiry.mac") and when it expires.
func (s *states) issue() (state, cookie string, expires time.Time) {
	state = rand.Text()
	expires = s.now().Add(StateTTL)
	payload := state + "." + strconv.FormatInt(expires.Unix(), 10)
	return state, payload + "." + s.sign(payload), expires
}

func (s *states) sign(payload string) string {
	return base64.RawURLEncoding.EncodeToString(s.keys.Sign([]byte(stateSignLabel + payload)))
}

// check reports whether cookie is state's unexpired signed cookie. It
// remembers nothing: claim does, once the install succeeded.
func (s *states) check(state, cookie string) error {
	if state == "" || cookie == "" {
		return errStateMissing
	}
	parts := strings.Split(cookie, ".")
	if len(parts) != 3 {
		return errStateForged
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !s.keys.Verify([]byte(stateSignLabel+parts[0]+"."+parts[1]), mac) {
		return errStateForged
	}
	if subtle.ConstantTimeCompare([]byte(parts[0]), []byte(state)) != 1 {
		return errStateForged
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return errStateForged
	}
	if !s.now().Before(time.Unix(unix, 0)) {
		return errStateExpired
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
