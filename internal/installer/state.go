package installer

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
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
	// stateTTL is how long an install started on /install may take.
	stateTTL = 10 * time.Minute
	// maxPendingStates bounds the memory that remembers used states. When
	// it is full of unexpired states, callbacks are refused until some
	// expire, rather than forgetting one and allowing its replay.
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

// states issues OAuth states bound to a signed cookie and accepts each
// once. Used states are remembered in this process until they expire, so
// single use holds per installer process.
type states struct {
	keys *secret.Keys
	now  func() time.Time
	max  int

	mu   sync.Mutex
	used map[string]time.Time // state -> expiry
}

func newStates(keys *secret.Keys, now func() time.Time, max int) *states {
	return &states{keys: keys, now: now, max: max, used: make(map[string]time.Time)}
}

// issue returns a new random state, the cookie value that binds it
// ("state.expiry.mac") and when it expires.
func (s *states) issue() (state, cookie string, expires time.Time) {
	state = rand.Text()
	expires = s.now().Add(stateTTL)
	payload := state + "." + strconv.FormatInt(expires.Unix(), 10)
	return state, payload + "." + s.sign(payload), expires
}

func (s *states) sign(payload string) string {
	return base64.RawURLEncoding.EncodeToString(s.keys.Sign([]byte(stateSignLabel + payload)))
}

// consume accepts state once if cookie is its unexpired signed cookie.
func (s *states) consume(state, cookie string) error {
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
	expires := time.Unix(unix, 0)
	now := s.now()
	if !now.Before(expires) {
		return errStateExpired
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.used[state]; ok {
		return errStateReplayed
	}
	if len(s.used) >= s.max {
		for k, exp := range s.used {
			if !now.Before(exp) {
				delete(s.used, k)
			}
		}
		if len(s.used) >= s.max {
			return errStateBusy
		}
	}
	s.used[state] = expires
	return nil
}
