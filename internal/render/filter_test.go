package render_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
)

func TestEventChoices(t *testing.T) {
	choices := render.EventChoices()
	if len(choices) != len(jamf.Events) {
		t.Fatalf("%d choices, want one per catalog event (%d)", len(choices), len(jamf.Events))
	}
	var outcomes []string
	for _, c := range choices {
		if !jamf.Known(c.Event) || c.Title == "" {
			t.Errorf("choice %+v: not a catalog event, or no title", c)
		}
		if c.ReportsOutcome {
			outcomes = append(outcomes, c.Event)
		}
	}
	want := []string{jamf.EventComputerPolicyFinished, jamf.EventComputerPatchPolicyCompleted, jamf.EventRestAPIOperation}
	if diff := cmp.Diff(want, outcomes, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("choices that report an outcome (-want +got):\n%s", diff)
	}
	if choices[0].Event != jamf.EventJSSShutdown {
		t.Errorf("first choice %s; want the most important, JSSShutdown", choices[0].Event)
	}
}

func TestParseFilter(t *testing.T) {
	policy, patch, api, added := jamf.EventComputerPolicyFinished, jamf.EventComputerPatchPolicyCompleted, jamf.EventRestAPIOperation, jamf.EventComputerAdded
	tests := []struct {
		name         string
		events       []string
		failuresOnly []string
		want         registry.EventFilter
		problem      string // a part of the error; "" for none
	}{
		{name: "nothing shows all"},
		{name: "all", events: []string{"all"}},
		{name: "all, any case, with none", events: []string{" ALL "}, failuresOnly: []string{"none"}},
		{name: "names, sorted, canonical, once", events: []string{"computeradded", policy, " ComputerAdded ", ""},
			want: registry.EventFilter{Events: []string{added, policy}}},
		{name: "failures only of a shown type", events: []string{added, policy}, failuresOnly: []string{policy},
			want: registry.EventFilter{Events: []string{added, policy}, FailuresOnly: []string{policy}}},
		{name: "failures only of every type", failuresOnly: []string{policy},
			want: registry.EventFilter{FailuresOnly: []string{policy}}},
		{name: "failures only: all of all", failuresOnly: []string{"all"},
			want: registry.EventFilter{FailuresOnly: []string{patch, policy, api}}},
		{name: "failures only: all of those shown", events: []string{policy, added}, failuresOnly: []string{"all"},
			want: registry.EventFilter{Events: []string{added, policy}, FailuresOnly: []string{policy}}},
		{name: "an unknown event", events: []string{"ComputerExploded"}, problem: `events: "ComputerExploded" is not a Jamf Pro webhook event`},
		{name: "none is not a list of events", events: []string{"none"}, problem: "disable the channel instead"},
		{name: "only empty names", events: []string{" ", ""}, want: registry.EventFilter{}},
		{name: "failures only of a type without outcome", failuresOnly: []string{added}, problem: "ComputerAdded events do not say whether they succeeded"},
		{name: "failures only of a hidden type", events: []string{added}, failuresOnly: []string{policy}, problem: "ComputerPolicyFinished is not among the events shown"},
		{name: "every problem at once", events: []string{"Nope", added}, failuresOnly: []string{"Nah", added},
			problem: `events: "Nope" is not a Jamf Pro webhook event; failures only: "Nah" is not a Jamf Pro webhook event; failures only: ComputerAdded events do not say whether they succeeded`},
		{name: "a hostile name is cut", events: []string{strings.Repeat("<x>", 100)}, problem: "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := render.ParseFilter(tt.events, tt.failuresOnly)
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("ParseFilter(%q, %q) = %+v, %v; want an error with %q", tt.events, tt.failuresOnly, got, err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter(%q, %q): %v", tt.events, tt.failuresOnly, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseFilter(%q, %q) (-want +got):\n%s", tt.events, tt.failuresOnly, diff)
			}
		})
	}
}

func TestShows(t *testing.T) {
	failedPolicy := sample(t, jamf.EventComputerPolicyFinished) // successful: false
	succeededPolicy := parse(t, bytes.Replace(readFile(t, "testdata/ComputerPolicyFinished.json"),
		[]byte(`"successful": false`), []byte(`"successful": true`), 1))
	unsaidPolicy := parse(t, bytes.Replace(readFile(t, "testdata/ComputerPolicyFinished.json"),
		[]byte(`"successful": false`), []byte(`"other": true`), 1))
	succeededAPI := sample(t, jamf.EventRestAPIOperation) // operationSuccessful: true
	added := sample(t, jamf.EventComputerAdded)
	unknown := parse(t, []byte(`{"webhook":{"webhookEvent":"ComputerExploded"},"event":{}}`))

	failuresOnly := registry.EventFilter{FailuresOnly: []string{jamf.EventComputerPolicyFinished, jamf.EventRestAPIOperation}}
	onlyPolicies := registry.EventFilter{Events: []string{jamf.EventComputerPolicyFinished}}
	tests := []struct {
		name   string
		filter registry.EventFilter
		env    jamf.Envelope
		want   bool
	}{
		{"no filter, an unknown event", registry.EventFilter{}, unknown, true},
		{"failures only: a failed policy", failuresOnly, failedPolicy, true},
		{"failures only: a policy that succeeded", failuresOnly, succeededPolicy, false},
		{"failures only: a policy that does not say", failuresOnly, unsaidPolicy, true},
		{"failures only: an API call that succeeded", failuresOnly, succeededAPI, false},
		{"failures only: another type", failuresOnly, added, true},
		{"only policies: a policy", onlyPolicies, succeededPolicy, true},
		{"only policies: ComputerAdded", onlyPolicies, added, false},
		{"only policies: an unknown event", onlyPolicies, unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render.Shows(tt.filter, tt.env); got != tt.want {
				t.Errorf("Shows(%+v, %s) = %t, want %t", tt.filter, tt.env.Webhook.Event, got, tt.want)
			}
		})
	}
}

func TestDescribeFilter(t *testing.T) {
	tests := []struct {
		filter registry.EventFilter
		want   string
	}{
		{registry.EventFilter{}, "all"},
		{registry.EventFilter{FailuresOnly: []string{"ComputerPolicyFinished"}}, "all; ComputerPolicyFinished (failures only)"},
		{registry.EventFilter{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}},
			"ComputerAdded, ComputerPolicyFinished (failures only)"},
	}
	for _, tt := range tests {
		if got := render.DescribeFilter(tt.filter); got != tt.want {
			t.Errorf("DescribeFilter(%+v) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}
