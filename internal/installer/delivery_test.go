package installer

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// TestChannelsSetDelivery sets a channel's pace and digests, changes one
// setting at a time, and goes back to the defaults: SQL and the read model
// hold them, and list shows them.
func TestChannelsSetDelivery(t *testing.T) {
	env := newEnv(t)
	out := env.mustRun(t, "add", "--webhook-url", hookA, "--channel", "jamf")
	id := regexp.MustCompile(uuidRE).FindString(out)
	steps := []struct {
		name string
		args []string
		want registry.DeliverySettings
		list string // PACE and DIGESTS columns
	}{
		{"pace, burst and digests", []string{"--pace", "2/s", "--burst", "5", "--digest", "off"},
			registry.DeliverySettings{Interval: 500 * time.Millisecond, Burst: 5, Digests: registry.DigestsOff},
			`2/s burst 5\s+off`},
		{"one setting keeps the others", []string{"--digest", "on", "--digest-after", "10s"},
			registry.DeliverySettings{Interval: 500 * time.Millisecond, Burst: 5, Digests: registry.DigestsOn, DigestAfter: 10 * time.Second},
			`2/s burst 5\s+on after 10s`},
		{"slow pace", []string{"--pace", "30/min", "--burst", "default"},
			registry.DeliverySettings{Interval: 2 * time.Second, Digests: registry.DigestsOn, DigestAfter: 10 * time.Second},
			`30/min\s+on after 10s`},
		{"back to the defaults", []string{"--pace", "default", "--digest", "default", "--digest-after", "default"},
			registry.DeliverySettings{},
			`default\s+default`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out := env.mustRun(t, append([]string{"set", id}, st.args...)...)
			if !strings.Contains(out, "every dispatcher follows it") {
				t.Errorf("set printed %q", out)
			}
			inst, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if inst.Delivery != st.want {
				t.Errorf("stored settings = %+v, want %+v", inst.Delivery, st.want)
			}
			env.checkKVMatchesSQL(t)
			list := env.mustRun(t, "list")
			if row := strings.Split(strings.TrimSpace(list), "\n")[1]; !regexp.MustCompile(`\s` + st.list + `\s+all$`).MatchString(row) {
				t.Errorf("list row %q; want PACE and DIGESTS matching %q", row, st.list)
			}
		})
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--pace", "fast"}, `pace "fast" is not N/s, N/min or N/h`},
		{[]string{"--pace", "5000/s"}, "out of range"},
		{[]string{"--burst", "500"}, "burst 500 is out of range"},
		{[]string{"--digest", "maybe"}, "on, off or default"},
		{[]string{"--digest-after", "soon"}, `digest-after "soon": give a duration`},
		{[]string{"--burst", "many"}, `burst "many" is not a number`},
		{[]string{"--burst", "-1"}, `burst "-1" is not a number`},
		{[]string{"--digest-after", "2h"}, "digest-after 2h0m0s is out of range"},
	} {
		_, err := env.run(t, append([]string{"set", id}, bad.args...)...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("channels set %v = %v; want a usage error saying %q", bad.args, err, bad.want)
		}
	}
}
