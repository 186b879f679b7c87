package render

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
)

// FilterAll and FilterNone are the words ParseFilter takes for every event
// type and for none.
const (
	FilterAll  = "all"
	FilterNone = "none"
)

// EventChoice is one event type as a channel's event filter offers it.
type EventChoice struct {
	Event string // the catalog's spelling
	Title string // as the titles of its messages say it
	// ReportsOutcome is set for the types whose events say whether they
	// succeeded (jamf.ReportsOutcome): a channel may show only their
	// failures.
	ReportsOutcome bool
}

// EventChoices lists the catalog's event types in the order digests rank
// them, most important first, so that a filter form shows failures and
// removals before check-ins.
func EventChoices() []EventChoice {
	out := make([]EventChoice, 0, len(kinds))
	for _, k := range kinds {
		if k.event == "" {
			continue
		}
		out = append(out, EventChoice{Event: k.event, Title: k.title, ReportsOutcome: jamf.ReportsOutcome(k.event)})
	}
	return out
}

// ParseFilter reads a channel's event filter as an admin gives it, in the
// console's form or on the command line (`channels set --events ...
// --failures-only ...`), so that both take the same values:
//
//   - events lists the event types the channel shows, each matched as
//     jamf.Canonical matches it; FilterAll, or nothing, shows every type
//     (and types Jamf Pro adds later).
//   - failuresOnly lists the types of which the channel shows only the
//     events that did not succeed: each must report an outcome and be
//     shown; FilterAll takes every shown type that reports one; FilterNone,
//     or nothing, takes none.
//
// Names are trimmed and empty ones skipped. The error names every problem
// and, for the member or the admin, what to give instead.
func ParseFilter(events, failuresOnly []string) (registry.EventFilter, error) {
	var (
		f        registry.EventFilter
		problems []string
	)
	shown, all := eventNames(events, "events", &problems)
	all = all || len(shown) == 0
	if !all {
		f.Events = shown
	}
	chosen, allOutcomes := eventNames(failuresOnly, "failures only", &problems)
	if allOutcomes {
		chosen = nil
		for _, c := range EventChoices() {
			if c.ReportsOutcome && (all || slices.Contains(shown, c.Event)) {
				chosen = append(chosen, c.Event)
			}
		}
		slices.Sort(chosen)
	}
	for _, name := range chosen {
		switch {
		case !jamf.ReportsOutcome(name):
			problems = append(problems, fmt.Sprintf("failures only: %s events do not say whether they succeeded", name))
		case !all && !slices.Contains(shown, name):
			problems = append(problems, fmt.Sprintf("failures only: %s is not among the events shown", name))
		default:
			f.FailuresOnly = append(f.FailuresOnly, name)
		}
	}
	if len(problems) > 0 {
		return registry.EventFilter{}, errors.New(strings.Join(problems, "; "))
	}
	return f, registry.CheckEventFilter(f)
}

// eventNames reads a list of event type names for ParseFilter: the catalog
// names sorted and without repeats, and whether FilterAll was given. A name
// outside the catalog is a problem, and so is FilterNone for events: a
// channel that shows nothing is a disabled one.
func eventNames(list []string, what string, problems *[]string) (names []string, all bool) {
	for _, raw := range list {
		name := strings.TrimSpace(raw)
		switch {
		case name == "":
		case strings.EqualFold(name, FilterAll):
			all = true
		case strings.EqualFold(name, FilterNone) && what == "events":
			*problems = append(*problems, "events: none would hide every event; disable the channel instead")
		case strings.EqualFold(name, FilterNone):
		case !jamf.Known(name):
			*problems = append(*problems, fmt.Sprintf("%s: %q is not a Jamf Pro webhook event", what, clip(name, 64)))
		default:
			names = append(names, jamf.Canonical(name))
		}
	}
	slices.Sort(names)
	return slices.Compact(names), all
}

// Shows reports whether a channel with filter f shows the event env: its
// type is one the filter shows and, for a type shown failures only, the
// event does not say that it succeeded. Only such an event is decoded.
func Shows(f registry.EventFilter, env jamf.Envelope) bool {
	return f.Shows(jamf.Canonical(env.Webhook.Event), func() bool {
		ev, err := jamf.Decode(env)
		if err != nil {
			return false
		}
		_, o := result(ev)
		return o == outcomeSucceeded
	})
}

// DescribeFilter shows a channel's event filter on one line, as `channels
// list` prints it and the console's audit log keeps it: "all", or the types shown
// with "(failures only)" after those shown so.
func DescribeFilter(f registry.EventFilter) string {
	failures := func(name string) string {
		if slices.Contains(f.FailuresOnly, name) {
			return name + " (failures only)"
		}
		return name
	}
	if len(f.Events) == 0 {
		if len(f.FailuresOnly) == 0 {
			return "all"
		}
		parts := make([]string, len(f.FailuresOnly))
		for i, n := range f.FailuresOnly {
			parts[i] = failures(n)
		}
		return "all; " + strings.Join(parts, ", ")
	}
	parts := make([]string, len(f.Events))
	for i, n := range f.Events {
		parts[i] = failures(n)
	}
	return strings.Join(parts, ", ")
}
