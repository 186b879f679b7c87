package render

import (
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// TestKindsCoverCatalog checks that the table of kinds holds every catalog
// event once, and a place for unknown events.
func TestKindsCoverCatalog(t *testing.T) {
	seen := map[string]int{}
	for _, k := range kinds {
		seen[k.event]++
		if k.title == "" || k.color == "" || k.icon == "" {
			t.Errorf("kind %q lacks a title, colour or icon: %+v", k.event, k)
		}
	}
	for _, e := range jamf.Events {
		if seen[e.Name] != 1 {
			t.Errorf("%s is in kinds %d times, want once", e.Name, seen[e.Name])
		}
		delete(seen, e.Name)
	}
	if seen[""] != 1 || len(seen) != 1 {
		t.Errorf("kinds outside the catalog = %v, want only one for unknown events", seen)
	}
	if got := kinds[kindOf("ComputerCheckin")].event; got != jamf.EventComputerCheckIn {
		t.Errorf("kindOf(ComputerCheckin) = %q, want %s", got, jamf.EventComputerCheckIn)
	}
	if got := kinds[kindOf("Teleported")].event; got != "" {
		t.Errorf("kindOf(Teleported) = %q, want the unknown kind", got)
	}
}
