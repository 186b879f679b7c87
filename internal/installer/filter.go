package installer

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
)

// The `channels set` flags of a channel's event filter.
const (
	flagEvents       = "events"
	flagFailuresOnly = "failures-only"
)

// filter returns the event filter the flags give, read by render.
// ParseFilter as the console's form is, and whether one was given: a flag
// left out keeps its part of cur. Bad values are a *UsageError.
func (f setFlags) filter(cur registry.EventFilter) (registry.EventFilter, bool, error) {
	if !f.given[flagEvents] && !f.given[flagFailuresOnly] {
		return cur, false, nil
	}
	events, failuresOnly := cur.Events, cur.FailuresOnly
	if len(events) == 0 {
		events = []string{render.FilterAll}
	}
	if f.given[flagEvents] {
		events = strings.Split(f.values[flagEvents], ",")
		if !f.given[flagFailuresOnly] {
			// Failures only of a type no longer shown goes with it.
			failuresOnly = keepShown(failuresOnly, events)
		}
	}
	if f.given[flagFailuresOnly] {
		failuresOnly = strings.Split(f.values[flagFailuresOnly], ",")
	}
	filter, err := render.ParseFilter(events, failuresOnly)
	if err != nil {
		return cur, false, &UsageError{Msg: err.Error()}
	}
	return filter, true, nil
}

// keepShown returns the names of failuresOnly that a filter of events still
// shows, compared as the parser compares them.
func keepShown(failuresOnly, events []string) []string {
	shown, err := render.ParseFilter(events, nil)
	if err != nil || len(shown.Events) == 0 {
		return failuresOnly
	}
	var keep []string
	for _, name := range failuresOnly {
		if shown.Shows(name, func() bool { return false }) {
			keep = append(keep, name)
		}
	}
	return keep
}

// SetEventFilter sets which events a channel shows (see render.ParseFilter)
// and publishes it to the read model, where every dispatcher applies it to
// the channel's next events.
func (in *Installer) SetEventFilter(ctx context.Context, id string, f registry.EventFilter) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("set event filter: %w", registry.ErrNotFound)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.SetEventFilter(ctx, key, f)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set event filter: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, fmt.Errorf("set event filter: %w", err)
	}
	in.logger.Info("event filter set", "installation", inst.ID, "filter", render.DescribeFilter(inst.Filter))
	return inst, nil
}
