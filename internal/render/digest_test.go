package render_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// stormStart is when the digests' events start arriving.
var stormStart = time.Date(2024, 11, 29, 9, 14, 3, 0, time.UTC)

// digestEvent parses a webhook of the given event type and event object,
// received at the given time.
func digestEvent(t testing.TB, name string, event map[string]any, at time.Time) render.DigestEvent {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"webhook": map[string]any{"id": 1, "name": "hook", "webhookEvent": name, "eventTimestamp": at.UnixMilli()},
		"event":   event,
	})
	if err != nil {
		t.Fatal(err)
	}
	return render.DigestEvent{Envelope: parse(t, body), ReceivedAt: at}
}

// computer is a computer object named MAC-<n>.
func computer(n int) map[string]any {
	return map[string]any{"jssID": 1000 + n, "deviceName": fmt.Sprintf("MAC-%04d", n), "serialNumber": fmt.Sprintf("C02%05d", n)}
}

// mobile is a mobile device named IPAD-<n>.
func mobile(n int) map[string]any {
	return map[string]any{"jssID": 5000 + n, "deviceName": fmt.Sprintf("IPAD-%04d", n), "serialNumber": fmt.Sprintf("DMP%05d", n)}
}

// eventOf returns an event object of the given type for device n; odd is
// used by events that can fail, which fail when it is set.
func eventOf(name string, n int, fail bool) map[string]any {
	switch name {
	case jamf.EventComputerCheckIn:
		return map[string]any{"computer": computer(n), "trigger": "CLIENT_CHECKIN"}
	case jamf.EventComputerPolicyFinished:
		return map[string]any{"computer": computer(n), "policyId": 87, "successful": !fail}
	case jamf.EventComputerPatchPolicyCompleted:
		return map[string]any{"computer": computer(n), "patchPolicyId": 4, "softwareTitleId": 7, "patchPolicyName": "Chrome", "successful": !fail}
	case jamf.EventComputerAdded, jamf.EventComputerInventoryCompleted, jamf.EventComputerPushCapabilityChanged:
		return computer(n)
	case jamf.EventMobileDeviceCommandCompleted:
		status := "Acknowledged"
		if fail {
			status = "Error"
		}
		m := mobile(n)
		m["mdmCommand"], m["mdmCommandStatus"] = "DeviceLock", status
		return m
	case jamf.EventMobileDeviceCheckIn, jamf.EventMobileDeviceEnrolled, jamf.EventMobileDeviceUnEnrolled,
		jamf.EventMobileDeviceInventoryCompleted, jamf.EventMobileDevicePushSent:
		return mobile(n)
	case jamf.EventSmartGroupComputerMembershipChange, jamf.EventSmartGroupMobileDeviceMembershipChange:
		return map[string]any{"jssid": 50 + n%5, "name": fmt.Sprintf("Group %d", n%5), "groupAddedDevicesIds": []int{n}, "groupRemovedDevicesIds": []int{n + 1}}
	case jamf.EventSmartGroupUserMembershipChange:
		return map[string]any{"jssid": 60, "name": "Contractors", "groupAddedUserIds": []int{n}}
	case jamf.EventRestAPIOperation:
		return map[string]any{"authorizedUsername": "svc", "objectID": n, "objectName": fmt.Sprintf("Policy %d", n), "objectTypeName": "Policy", "restAPIOperationType": "PUT", "operationSuccessful": !fail}
	case jamf.EventJSSStartup, jamf.EventJSSShutdown:
		return map[string]any{"jssUrl": "https://example.jamfcloud.com/", "hostAddress": fmt.Sprintf("10.0.0.%d", n%250)}
	case jamf.EventDeviceAddedToDEP:
		return map[string]any{"serialNumber": fmt.Sprintf("DEP%05d", n), "model": "MacBook Air"}
	case jamf.EventDeviceRateLimited:
		return map[string]any{"deviceName": fmt.Sprintf("MAC-%04d", n)}
	case jamf.EventPatchSoftwareTitleUpdated:
		return map[string]any{"jssID": 7, "name": "Google Chrome", "latestVersion": fmt.Sprintf("131.0.%d", n)}
	case jamf.EventPushSent:
		return map[string]any{"managementId": strconv.Itoa(n), "type": "PushSent"}
	case jamf.EventSCEPChallenge:
		return map[string]any{"targetDevice": mobile(n)}
	}
	return map[string]any{"n": n}
}

// burst is a digest's events: count of each type, in turns, one every
// step from stormStart; every failEvery-th event of a type that can fail
// fails.
type burst struct {
	name      string
	count     int
	failEvery int
}

func events(t testing.TB, step time.Duration, bursts ...burst) []render.DigestEvent {
	t.Helper()
	var evs []render.DigestEvent
	left := make([]int, len(bursts))
	for i, b := range bursts {
		left[i] = b.count
	}
	for n := 0; ; n++ {
		added := false
		for i, b := range bursts {
			if left[i] == 0 {
				continue
			}
			k := b.count - left[i]
			left[i]--
			fail := b.failEvery > 0 && k%b.failEvery == b.failEvery-1
			evs = append(evs, digestEvent(t, b.name, eventOf(b.name, k, fail), stormStart.Add(time.Duration(len(evs))*step)))
			added = true
		}
		if !added {
			return evs
		}
	}
}

// fleet is 10,000 events of every catalog type and 12 that Jamf may add
// later, with failures.
func fleet(t testing.TB) []render.DigestEvent {
	t.Helper()
	bursts := []burst{
		{name: jamf.EventMobileDeviceCheckIn, count: 1500},
		{name: jamf.EventComputerInventoryCompleted, count: 1000},
		{name: jamf.EventComputerPolicyFinished, count: 800, failEvery: 8},
		{name: jamf.EventComputerPatchPolicyCompleted, count: 200, failEvery: 10},
		{name: jamf.EventMobileDeviceCommandCompleted, count: 100, failEvery: 10},
		{name: jamf.EventMobileDeviceUnEnrolled, count: 50},
		{name: jamf.EventSmartGroupComputerMembershipChange, count: 20},
		{name: jamf.EventSmartGroupMobileDeviceMembershipChange, count: 10},
		{name: jamf.EventSmartGroupUserMembershipChange, count: 5},
		{name: jamf.EventRestAPIOperation, count: 50, failEvery: 5},
		{name: jamf.EventComputerAdded, count: 40},
		{name: jamf.EventMobileDeviceEnrolled, count: 40},
		{name: jamf.EventDeviceAddedToDEP, count: 20},
		{name: jamf.EventPushSent, count: 100},
		{name: jamf.EventMobileDevicePushSent, count: 40},
		{name: jamf.EventMobileDeviceInventoryCompleted, count: 300},
		{name: jamf.EventSCEPChallenge, count: 5},
		{name: jamf.EventDeviceRateLimited, count: 5},
		{name: jamf.EventComputerPushCapabilityChanged, count: 5},
		{name: jamf.EventJSSStartup, count: 1},
		{name: jamf.EventJSSShutdown, count: 1},
		{name: jamf.EventPatchSoftwareTitleUpdated, count: 2},
	}
	total := 0
	for i := range 12 {
		bursts = append(bursts, burst{name: fmt.Sprintf("FutureEvent%02d", i), count: i + 1})
	}
	for _, b := range bursts {
		total += b.count
	}
	bursts = append(bursts, burst{name: jamf.EventComputerCheckIn, count: 10_000 - total})
	return events(t, 5*time.Millisecond, bursts...)
}

// Limits every digest keeps: Slack's (100 attachments, 40,000 characters of
// text) and much less, for people.
const (
	limitDigestAttachments = 24
	limitDigestVisible     = 4000
	limitDigestJSON        = 24 << 10
	limitDigestHeader      = 1000
)

// checkDigest fails the test unless m is a digest of total events within the
// limits, whose text is safe, and in which each event is named or counted.
func checkDigest(t testing.TB, m slack.Message, total int) {
	t.Helper()
	checkDigestLimits(t, m, total)
	counted := 0
	for _, a := range m.Attachments {
		counted += countAttachment(t, a)
	}
	if counted != total {
		t.Errorf("digest names or counts %d events, want %d", counted, total)
	}
}

// checkDigestLimits fails the test unless m is a digest of total events
// within the limits, whose text is safe.
func checkDigestLimits(t testing.TB, m slack.Message, total int) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal() error = %v", err)
	}
	if len(b) > limitDigestJSON {
		t.Errorf("digest JSON is %d bytes, want at most %d", len(b), limitDigestJSON)
	}
	if n := len(m.Attachments); n == 0 || n > limitDigestAttachments {
		t.Errorf("digest has %d attachments, want 1 to %d", n, limitDigestAttachments)
	}
	if len(m.Text) > limitDigestHeader {
		t.Errorf("header is %d bytes, want at most %d", len(m.Text), limitDigestHeader)
	}
	if !strings.HasPrefix(m.Text, strconv.Itoa(total)+" event") {
		t.Errorf("header = %q, want it to start with %d events", m.Text, total)
	}
	checkSafe(t, "header", withoutDates(m.Text))
	visible := utf8.RuneCountInString(withoutLinkTargets(withoutDates(m.Text)))
	for _, a := range m.Attachments {
		if a.Title == "" || a.Fallback == "" || a.Color == "" || a.Text == "" {
			t.Errorf("attachment lacks a title, fallback, colour or text: %+v", a)
		}
		if len(a.Title) > limitTitle || len(a.Text) > limitText {
			t.Errorf("attachment %q has a %d-byte title and a %d-byte text, want at most %d and %d", a.Title, len(a.Title), len(a.Text), limitTitle, limitText)
		}
		for name, s := range map[string]string{"title": a.Title, "text": a.Text, "fallback": a.Fallback} {
			checkSafe(t, name, s)
		}
		visible += utf8.RuneCountInString(a.Title) + utf8.RuneCountInString(withoutLinkTargets(a.Text))
	}
	if visible > limitDigestVisible {
		t.Errorf("digest shows %d characters, want at most %d", visible, limitDigestVisible)
	}
}

// dateToken matches a Slack date token.
var dateToken = regexp.MustCompile(`<!date\^[0-9]+\^\{[a-z_ {}]+\}\|[0-9: -]+ UTC>`)

// withoutDates replaces Slack date tokens by their fallback text.
func withoutDates(s string) string {
	return dateToken.ReplaceAllStringFunc(s, func(tok string) string {
		return strings.TrimSuffix(tok[strings.IndexByte(tok, '|')+1:], ">")
	})
}

var (
	titleCount  = regexp.MustCompile(`^([0-9]+) `)
	lineLabel   = regexp.MustCompile(`^\*[A-Za-z ]+ \(([0-9]+)\):\* `)
	andMore     = regexp.MustCompile(`(?:^| )… and ([0-9]+) more$`)
	unknownItem = regexp.MustCompile(` \(([0-9]+)\)$`)
	unknownRest = regexp.MustCompile(`(?:^| )… and ([0-9]+) more events? of [0-9]+ other types?$`)
)

// countAttachment checks that an attachment names or counts as many events
// as its title says, and returns that number.
func countAttachment(t testing.TB, a slack.Attachment) int {
	t.Helper()
	m := titleCount.FindStringSubmatch(a.Title)
	if m == nil {
		t.Errorf("title %q does not start with a count", a.Title)
		return 0
	}
	want, _ := strconv.Atoi(m[1])
	got := 0
	if strings.Contains(a.Title, " Unknown Jamf Pro Event") {
		text := a.Text
		if r := unknownRest.FindStringSubmatch(text); r != nil {
			n, _ := strconv.Atoi(r[1])
			got += n
			text = strings.TrimSuffix(text, r[0])
		}
		for _, it := range strings.Split(text, ", ") {
			if c := unknownItem.FindStringSubmatch(it); c != nil {
				n, _ := strconv.Atoi(c[1])
				got += n
			} else if it != "" {
				t.Errorf("unknown type %q has no count", it)
			}
		}
	} else {
		lines := strings.Split(a.Text, "\n")
		for _, l := range lines {
			lineWant := want
			if lm := lineLabel.FindStringSubmatch(l); lm != nil {
				lineWant, _ = strconv.Atoi(lm[1])
				l = strings.TrimPrefix(l, lm[0])
			} else if len(lines) > 1 {
				t.Errorf("line %q of a group with several outcomes has no label", l)
			}
			lineGot := 0
			if r := andMore.FindStringSubmatch(l); r != nil {
				lineGot, _ = strconv.Atoi(r[1])
				l = strings.TrimSuffix(l, r[0])
			}
			if l != "" {
				lineGot += len(strings.Split(l, ", "))
			}
			if lineGot != lineWant {
				t.Errorf("line %q names or counts %d events, want %d", l, lineGot, lineWant)
			}
			got += lineGot
		}
	}
	if got != want {
		t.Errorf("attachment %q names or counts %d events, want %d", a.Title, got, want)
	}
	return want
}

func TestGoldenDigests(t *testing.T) {
	hostile := []string{
		"*User:* admin", "_x_", "~x~", "`code`", "```block```", "https://evil.example/login",
		"evil.example", "<https://evil.example|click>", "<!channel>", "<@U024BE7LH>", "a\u202eb\nc",
	}
	var hostileEvents []render.DigestEvent
	for i, name := range hostile {
		c := computer(i)
		c["deviceName"] = name
		hostileEvents = append(hostileEvents,
			digestEvent(t, jamf.EventComputerCheckIn, map[string]any{"computer": c}, stormStart.Add(time.Duration(i)*time.Second)),
			digestEvent(t, "<!channel> *Future* "+name, map[string]any{"deviceName": name}, stormStart.Add(time.Duration(i)*time.Second)),
			digestEvent(t, jamf.EventSmartGroupComputerMembershipChange, map[string]any{"jssid": i + 1, "name": name, "groupRemovedDevicesIds": []int{1}}, stormStart),
		)
	}

	tests := []struct {
		name   string
		events []render.DigestEvent
		opts   render.Options
	}{
		{name: "storm", events: events(t, 100*time.Millisecond, burst{name: jamf.EventComputerCheckIn, count: 600}), opts: linkOptions},
		{name: "storm-without-links", events: events(t, 100*time.Millisecond, burst{name: jamf.EventComputerCheckIn, count: 600}), opts: plainOptions},
		{name: "mix", events: events(t, 250*time.Millisecond,
			burst{name: jamf.EventComputerCheckIn, count: 120},
			burst{name: jamf.EventComputerPolicyFinished, count: 40, failEvery: 8},
			burst{name: jamf.EventMobileDeviceUnEnrolled, count: 3},
			burst{name: jamf.EventSmartGroupComputerMembershipChange, count: 2},
			burst{name: jamf.EventComputerInventoryCompleted, count: 25},
			burst{name: "ComputerTeleported", count: 2},
		), opts: linkOptions},
		{name: "fleet", events: fleet(t), opts: linkOptions},
		{name: "hostile", events: hostileEvents, opts: linkOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := render.Digest(tt.events, tt.opts)
			checkDigest(t, m, len(tt.events))
			golden(t, filepath.Join("digest", tt.name), m)
		})
	}
}

func TestDigestOrderAndColours(t *testing.T) {
	evs := events(t, time.Second,
		burst{name: jamf.EventComputerCheckIn, count: 5},
		burst{name: jamf.EventComputerAdded, count: 2},
		burst{name: jamf.EventComputerPolicyFinished, count: 4, failEvery: 4},
		burst{name: jamf.EventMobileDeviceUnEnrolled, count: 1},
		burst{name: jamf.EventComputerPatchPolicyCompleted, count: 2},
		burst{name: "Future", count: 1},
	)
	m := render.Digest(evs, plainOptions)
	type group struct{ Title, Color string }
	var got []group
	for _, a := range m.Attachments {
		got = append(got, group{a.Title, a.Color})
	}
	want := []group{
		{"4 Computer Policy Finished (1 failed)", "#ff0000"},
		{"1 Mobile Device Un-Enrolled", "#ffff00"},
		{"2 Patch Policy Completed", "#008000"},
		{"2 Computer Added", "#008000"},
		{"1 Unknown Jamf Pro Event", "#808080"},
		{"5 Computer Check-In", "#808080"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups mismatch (-want +got):\n%s", diff)
	}
	wantHeader := "15 events from <!date^1732871643^{time_secs}|09:14:03 UTC> to <!date^1732871657^{time_secs}|09:14:17 UTC>: " +
		"4 Computer Policy Finished (1 failed), 1 Mobile Device Un-Enrolled, 2 Patch Policy Completed, 2 Computer Added, 1 Unknown Jamf Pro Event, 5 Computer Check-In"
	if m.Text != wantHeader {
		t.Errorf("header = %q, want %q", m.Text, wantHeader)
	}
	if got, want := m.Attachments[0].Text, "*Failed (1):* MAC-0003 (policy 87)\n*Succeeded (3):* MAC-0000 (policy 87), MAC-0001 (policy 87), MAC-0002 (policy 87)"; got != want {
		t.Errorf("policy group text = %q, want %q", got, want)
	}
}

// TestDigestColoursMatchMessages renders each sample as a one-event digest:
// its group has the colour of the event's own message.
func TestDigestColoursMatchMessages(t *testing.T) {
	for _, in := range inputs(t) {
		t.Run(filepath.Base(in), func(t *testing.T) {
			env := parse(t, readFile(t, in))
			want := render.Message(env, plainOptions).Attachments[0].Color
			m := render.Digest([]render.DigestEvent{{Envelope: env}}, plainOptions)
			checkDigest(t, m, 1)
			if got := m.Attachments[0].Color; got != want {
				t.Errorf("digest colour = %s, message colour = %s", got, want)
			}
		})
	}
}

func TestDigestLimits(t *testing.T) {
	long := strings.Repeat("&<Ω>", 500)
	var manyTypes []render.DigestEvent
	for i := range 2000 {
		manyTypes = append(manyTypes, digestEvent(t, fmt.Sprintf("Future%04d%s", i, long[:i%100]), map[string]any{}, stormStart))
	}
	var longNames []render.DigestEvent
	for i := range 3000 {
		c := computer(i)
		c["deviceName"] = long
		name := jamf.Events[i%len(jamf.Events)].Name
		ev := eventOf(name, i, i%3 == 0)
		if _, ok := ev["computer"]; ok {
			ev["computer"] = c
		}
		longNames = append(longNames, digestEvent(t, name, ev, stormStart.Add(time.Duration(i)*time.Hour)))
	}
	tests := []struct {
		name   string
		events []render.DigestEvent
	}{
		{name: "one event", events: fleet(t)[:1]},
		{name: "10000 events", events: fleet(t)},
		{name: "2000 types", events: manyTypes},
		{name: "long names over months", events: longNames},
		{name: "no times", events: []render.DigestEvent{{Envelope: jamf.Envelope{Webhook: jamf.Webhook{Event: "x"}}}, {}}},
		{name: "undecodable events", events: []render.DigestEvent{
			{Envelope: jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerPolicyFinished}, Event: json.RawMessage(`{"a":`)}},
			{Envelope: jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerCheckIn}, Event: json.RawMessage(`[]`)}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, opts := range []render.Options{plainOptions, linkOptions} {
				checkDigest(t, render.Digest(tt.events, opts), len(tt.events))
			}
		})
	}
}

func TestDigestNamesAllWhenFew(t *testing.T) {
	evs := events(t, time.Second, burst{name: jamf.EventComputerCheckIn, count: 30}, burst{name: jamf.EventMobileDeviceEnrolled, count: 10})
	m := render.Digest(evs, linkOptions)
	checkDigest(t, m, len(evs))
	text := m.Attachments[0].Text + "\n" + m.Attachments[1].Text
	for i := range 30 {
		if name := fmt.Sprintf("|MAC-%04d>", i); !strings.Contains(text, name) {
			t.Errorf("digest does not name %s: %q", name, text)
		}
	}
	if strings.Contains(text, "more") {
		t.Errorf("digest of 40 events leaves some out: %q", text)
	}
}

func TestDigestEmpty(t *testing.T) {
	if got := render.Digest(nil, plainOptions); got.Text == "" {
		t.Errorf("Digest(nil) = %+v, want a text", got)
	}
}

func BenchmarkDigest(b *testing.B) {
	evs := fleet(b)
	opts := linkOptions
	b.ReportAllocs()
	for b.Loop() {
		render.Digest(evs, opts)
	}
}
