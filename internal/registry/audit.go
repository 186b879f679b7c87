package registry

import (
	"errors"
	"strings"
	"time"
)

// AuditEntry is one change a Slack admin made in the console: who, what,
// to which installation, when and from which address. The log outlives
// the installations it names, so it keeps the channel's name as it was.
type AuditEntry struct {
	ID             int64     // set by the store, increasing
	At             time.Time // set by the store when zero
	TeamID         string    // the workspace whose log it is: the member's
	InstallationID string    // empty for a change that is not about one installation
	ChannelName    string    // the channel's name at the time
	UserID         string    // Slack user ID of who made the change
	UserName       string
	Action         string // what was done: "rotate", "disable", "replay_dead", ...
	Detail         string // what it changed, in words; never a secret
	Address        string // where the request came from
}

// AuditFilter selects audit entries. Empty fields match everything.
type AuditFilter struct {
	TeamID         string
	InstallationID string
	// Limit caps how many entries come back, newest first; DefaultAuditLimit
	// when zero, MaxAuditLimit at most.
	Limit int
}

// Bounds of an audit listing.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// Bounds of an audit entry's text fields: longer text is cut, so that a
// change is never refused for its description.
const (
	maxAuditField  = 256
	maxAuditDetail = 2048
)

// CheckAudit validates e for Store.AddAudit and returns it as stored: text
// cut to its bounds on a rune boundary, At in UTC truncated to the
// microseconds both stores keep (now when zero).
func CheckAudit(e AuditEntry, now time.Time) (AuditEntry, error) {
	if strings.TrimSpace(e.Action) == "" {
		return AuditEntry{}, errors.New("invalid audit entry: action is empty")
	}
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	for _, f := range []*string{&e.TeamID, &e.InstallationID, &e.ChannelName, &e.UserID, &e.UserName, &e.Action, &e.Address} {
		*f = cutText(*f, maxAuditField)
	}
	e.Detail = cutText(e.Detail, maxAuditDetail)
	return e, nil
}

// Count returns how many entries f asks for at most, within the bounds.
func (f AuditFilter) Count() int {
	switch {
	case f.Limit <= 0:
		return DefaultAuditLimit
	case f.Limit > MaxAuditLimit:
		return MaxAuditLimit
	}
	return f.Limit
}

// cutText returns s, valid UTF-8, cut to at most n bytes on a rune boundary.
func cutText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
