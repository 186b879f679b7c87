package installer

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// TestChannelsSetEventFilter sets which events a channel shows, changes one
// part at a time and goes back to all: SQL and the read model hold the
// filter, list shows it, and a mistake changes nothing.
func TestChannelsSetEventFilter(t *testing.T) {
	env := newEnv(t)
	out := env.mustRun(t, "add", "--webhook-url", hookA, "--channel", "jamf")
	id := regexp.MustCompile(uuidRE).FindString(out)
	steps := []struct {
		name string
		args []string
		want registry.EventFilter
		list string // the EVENTS column
	}{
		{"two types, any case", []string{"--events", "ComputerPolicyFinished, computeradded"},
			registry.EventFilter{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}},
			"ComputerAdded, ComputerPolicyFinished"},
		{"failures only of those that say", []string{"--failures-only", "all"},
			registry.EventFilter{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}},
			"ComputerAdded, ComputerPolicyFinished (failures only)"},
		{"a type dropped takes its failures only", []string{"--events", "ComputerAdded"},
			registry.EventFilter{Events: []string{"ComputerAdded"}},
			"ComputerAdded"},
		{"all, failures only of API calls", []string{"--events", "all", "--failures-only", "RestAPIOperation"},
			registry.EventFilter{FailuresOnly: []string{"RestAPIOperation"}},
			"all; RestAPIOperation (failures only)"},
		{"back to all", []string{"--failures-only", "none"},
			registry.EventFilter{},
			"all"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out := env.mustRun(t, append([]string{"set", id}, st.args...)...)
			if !strings.Contains(out, "settle the other events without posting them") {
				t.Errorf("set printed %q", out)
			}
			inst, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.want, inst.Filter, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("stored filter (-want +got):\n%s", diff)
			}
			env.checkKVMatchesSQL(t)
			list := env.mustRun(t, "list")
			if row := strings.Split(strings.TrimSpace(list), "\n")[1]; !strings.HasSuffix(row, "default  "+st.list) {
				t.Errorf("list row %q; want EVENTS %q", row, st.list)
			}
		})
	}

	before, err := env.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--events", "ComputerExploded"}, `"ComputerExploded" is not a Jamf Pro webhook event`},
		{[]string{"--events", "none"}, "disable the channel instead"},
		{[]string{"--failures-only", "ComputerAdded"}, "ComputerAdded events do not say whether they succeeded"},
		{[]string{"--events", "ComputerAdded", "--failures-only", "ComputerPolicyFinished"}, "not among the events shown"},
		{[]string{"--events", "ComputerAdded", "--pace", "fast"}, `pace "fast"`},
	} {
		_, err := env.run(t, append([]string{"set", id}, bad.args...)...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("channels set %v = %v; want a usage error saying %q", bad.args, err, bad.want)
		}
	}
	after, err := env.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Filter.Equal(before.Filter) || after.Delivery != before.Delivery {
		t.Errorf("refused commands changed the channel: %+v %+v, was %+v %+v", after.Filter, after.Delivery, before.Filter, before.Delivery)
	}
}
