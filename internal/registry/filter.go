package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// EventFilter is which of the events Jamf Pro sends a channel shows. The
// zero value shows every event, including event types Jamf Pro adds later.
// Events that a filter hides are settled by the dispatchers without a post
// and without a dead letter (and counted), never posted.
type EventFilter struct {
	// Events are the event types (the catalog's spelling, sorted) the
	// channel shows; empty shows every type.
	Events []string `json:"events,omitempty"`
	// FailuresOnly are event types (sorted, each one the channel shows and
	// one whose events say whether they succeeded) of which the channel
	// shows only the events that did not succeed.
	FailuresOnly []string `json:"failures_only,omitempty"`
}

// Bounds of an event filter.
const (
	maxFilterEvents    = 64
	maxFilterEventName = 64
)

// IsZero reports whether f shows every event.
func (f EventFilter) IsZero() bool { return len(f.Events) == 0 && len(f.FailuresOnly) == 0 }

// Equal reports whether f and g show the same events.
func (f EventFilter) Equal(g EventFilter) bool {
	return slices.Equal(f.Events, g.Events) && slices.Equal(f.FailuresOnly, g.FailuresOnly)
}

// Shows reports whether a channel with filter f shows an event of type
// event (in the catalog's spelling). succeeded says whether the event
// reports that it succeeded; it is asked only for a type shown failures
// only, so that the caller decodes an event only when that matters.
func (f EventFilter) Shows(event string, succeeded func() bool) bool {
	if len(f.Events) > 0 && !slices.Contains(f.Events, event) {
		return false
	}
	return !slices.Contains(f.FailuresOnly, event) || !succeeded()
}

// CheckEventFilter validates what Store.SetEventFilter writes: sorted,
// distinct event type names of at most 64 characters without commas or
// spaces, at most 64 of each, and failures-only types the filter shows. It
// knows nothing of the catalog: callers parse what an admin gives against
// it first (render.ParseFilter).
func CheckEventFilter(f EventFilter) error {
	var problems []string
	for _, l := range []struct {
		name  string
		names []string
	}{{"events", f.Events}, {"failures only", f.FailuresOnly}} {
		if len(l.names) > maxFilterEvents {
			problems = append(problems, fmt.Sprintf("%s lists %d event types, more than %d", l.name, len(l.names), maxFilterEvents))
		}
		for i, n := range l.names {
			if n == "" || len(n) > maxFilterEventName || strings.ContainsAny(n, ", \t\r\n") {
				problems = append(problems, fmt.Sprintf("%s: %q is not an event type name", l.name, clipName(n)))
			}
			if i > 0 && l.names[i-1] >= n {
				problems = append(problems, l.name+" must be sorted and without repeats")
				break
			}
		}
	}
	if len(f.Events) > 0 {
		for _, n := range f.FailuresOnly {
			if !slices.Contains(f.Events, n) {
				problems = append(problems, fmt.Sprintf("failures only: %s is not among the events shown", clipName(n)))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New("invalid event filter: " + strings.Join(problems, "; "))
	}
	return nil
}

// clipName keeps a bad name short in an error.
func clipName(s string) string {
	if len(s) > maxFilterEventName {
		return s[:maxFilterEventName] + "…"
	}
	return s
}

// JoinEventNames stores a list of event type names as one column: joined
// by commas, "" for none.
func JoinEventNames(names []string) string { return strings.Join(names, ",") }

// SplitEventNames reads a column JoinEventNames wrote: nil for "".
func SplitEventNames(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
