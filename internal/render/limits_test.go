package render_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
)

// bigGroup returns a smart group change with n added and n/2 removed
// members, as IDs or as device objects with long hostile names.
func bigGroup(t *testing.T, event string, n int, objects bool) []byte {
	t.Helper()
	ids := make([]int64, n)
	devices := make([]map[string]any, 0, n)
	for i := range ids {
		ids[i] = int64(100_000 + i)
		if objects {
			devices = append(devices, map[string]any{
				"jssID":      ids[i],
				"deviceName": fmt.Sprintf("<!channel> device %d %s", i, strings.Repeat("&", 80)),
			})
		}
	}
	ev := map[string]any{
		"jssid":                  9,
		"name":                   "All the things",
		"groupAddedDevicesIds":   ids,
		"groupRemovedDevicesIds": ids[:n/2],
		"groupAddedUserIds":      ids,
		"groupRemovedUserIds":    ids[:n/2],
	}
	if objects {
		ev["groupAddedDevices"] = devices
		ev["groupRemovedDevices"] = devices[:n/2]
	}
	b, err := json.Marshal(map[string]any{
		"webhook": map[string]any{"webhookEvent": event, "eventTimestamp": 1732878000647},
		"event":   ev,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSlackLimits(t *testing.T) {
	manyFields := map[string]any{}
	for i := range 10_000 {
		manyFields[fmt.Sprintf("field%05d", i)] = "<!channel> & " + strings.Repeat("x", 50)
	}
	deep := `{"a":` + strings.Repeat(`{"b":`, 500) + `"x"` + strings.Repeat("}", 500) + "}"
	unknown, err := json.Marshal(map[string]any{"webhook": map[string]any{"webhookEvent": "Future"}, "event": manyFields})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		body     []byte
		wantText string // a substring of the text
	}{
		{name: "10000 computers by ID", body: bigGroup(t, jamf.EventSmartGroupComputerMembershipChange, 10_000, false), wantText: "more"},
		{name: "10000 computers as objects", body: bigGroup(t, jamf.EventSmartGroupComputerMembershipChange, 10_000, true), wantText: "*Added (10000):*"},
		{name: "10000 mobile devices as objects", body: bigGroup(t, jamf.EventSmartGroupMobileDeviceMembershipChange, 10_000, true), wantText: "*Removed (5000):*"},
		{name: "10000 users", body: bigGroup(t, jamf.EventSmartGroupUserMembershipChange, 10_000, false), wantText: "… and 99"},
		{name: "unknown event with 10000 fields", body: unknown, wantText: "more fields"},
		{name: "deeply nested unknown event", body: []byte(`{"webhook":{"webhookEvent":"Future"},"event":` + deep + `}`), wantText: "*a\u2024b\u2024b\u2024b"},
		{name: "rate limited with 10000 fields", body: []byte(strings.Replace(string(unknown), "Future", "DeviceRateLimited", 1)), wantText: "more fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := render.Message(parse(t, tt.body), linkOptions)
			checkMessage(t, m)
			if !strings.Contains(m.Attachments[0].Text, tt.wantText) {
				t.Errorf("text = %q, want it to contain %q", m.Attachments[0].Text, tt.wantText)
			}
		})
	}
}

func TestGroupListsSayHowManyMore(t *testing.T) {
	m := render.Message(parse(t, bigGroup(t, jamf.EventSmartGroupComputerMembershipChange, 10_000, false)), plainOptions)
	lines := strings.Split(m.Attachments[0].Text, "\n")
	var added string
	for _, l := range lines {
		if strings.HasPrefix(l, "*Added (10000):* ") {
			added = strings.TrimPrefix(l, "*Added (10000):* ")
		}
	}
	if added == "" {
		t.Fatalf("text = %q, want an Added line", m.Attachments[0].Text)
	}
	items, more, ok := strings.Cut(added, " … and ")
	if !ok {
		t.Fatalf("added = %q, want it to end with … and N more", added)
	}
	shown := len(strings.Split(items, ", "))
	if want := fmt.Sprintf("%d more", 10_000-shown); more != want {
		t.Errorf("added ends with %q, want %q (%d shown)", more, want, shown)
	}
	if !strings.HasPrefix(items, "100000, 100001, ") {
		t.Errorf("added = %q, want the first IDs first", items)
	}
	a := m.Attachments[0]
	if len(a.Fields) != 2 || a.Fields[0].Value != "10000" || a.Fields[1].Value != "5000" {
		t.Errorf("fields = %+v, want Added 10000 and Removed 5000", a.Fields)
	}
}
