package jamf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

func TestEvents(t *testing.T) {
	if got := len(jamf.Events); got != 23 {
		t.Fatalf("len(Events) = %d, want 23", got)
	}
	names := make([]string, 0, len(jamf.Events))
	for _, e := range jamf.Events {
		if e.Description == "" {
			t.Errorf("event %s has no description", e.Name)
		}
		if !jamf.Known(e.Name) {
			t.Errorf("Known(%q) = false, want true", e.Name)
		}
		if got := jamf.Canonical(e.Name); got != e.Name {
			t.Errorf("Canonical(%q) = %q, want it unchanged", e.Name, got)
		}
		names = append(names, e.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Events are not in alphabetical order: %v", names)
	}
	if got := len(slices.Compact(slices.Clone(names))); got != len(names) {
		t.Errorf("Events has duplicate names: %v", names)
	}

	// Every catalog event has a sample, and every sample is in the catalog.
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sampleNames []string
	for _, s := range samples {
		sampleNames = append(sampleNames, strings.TrimSuffix(filepath.Base(s), ".json"))
	}
	slices.Sort(sampleNames)
	if !slices.Equal(sampleNames, names) {
		t.Errorf("testdata samples = %v, want one per event %v", sampleNames, names)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "exact", in: "ComputerCheckIn", want: "ComputerCheckIn"},
		{name: "old check-in spelling", in: "ComputerCheckin", want: "ComputerCheckIn"},
		{name: "lower case", in: "mobiledeviceunenrolled", want: "MobileDeviceUnEnrolled"},
		{name: "upper case", in: "JSSSTARTUP", want: "JSSStartup"},
		{name: "surrounding space", in: " PushSent\n", want: "PushSent"},
		{name: "unknown kept as is", in: "ComputerExploded", want: "ComputerExploded"},
		{name: "unknown with space kept as is", in: " Future ", want: " Future "},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jamf.Canonical(tt.in); got != tt.want {
				t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEventsCannotBeChangedByCallers(t *testing.T) {
	saved := jamf.Events[0]
	t.Cleanup(func() { jamf.Events[0] = saved })
	jamf.Events[0].Name = "Changed"
	if got := jamf.Canonical(saved.Name); got != saved.Name {
		t.Errorf("Canonical(%q) = %q after Events was changed, want %q", saved.Name, got, saved.Name)
	}
}

// TestReportsOutcome holds ReportsOutcome to the samples: an event type
// reports an outcome exactly when its sample's event has a successful or
// operationSuccessful field.
func TestReportsOutcome(t *testing.T) {
	for _, e := range jamf.Events {
		body, err := os.ReadFile(filepath.Join("testdata", e.Name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var sample struct {
			Event map[string]json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(body, &sample); err != nil {
			t.Fatalf("%s sample: %v", e.Name, err)
		}
		_, a := sample.Event["successful"]
		_, b := sample.Event["operationSuccessful"]
		if got, want := jamf.ReportsOutcome(e.Name), a || b; got != want {
			t.Errorf("ReportsOutcome(%s) = %t; its sample says %t", e.Name, got, want)
		}
	}
	if !jamf.ReportsOutcome("computerpolicyfinished") || jamf.ReportsOutcome("SomethingNew") {
		t.Error("ReportsOutcome does not match names as Known does")
	}
}
