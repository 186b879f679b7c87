package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Options used by the golden files.
var (
	plainOptions = render.Options{IconBaseURL: "https://jackalope.example.com/static/images"}
	linkOptions  = render.Options{IconBaseURL: "https://jackalope.example.com/static/images", JamfURL: "https://example.jamfcloud.com"}
)

// Limits every message must keep (see Slack's attachment documentation).
const (
	limitJSON     = 16 << 10
	limitText     = 3000
	limitFields   = 10
	limitValue    = 300
	limitTitle    = 150
	limitFallback = 300
)

// readFile returns a test file, failing the test when it is missing.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parse parses a webhook body, failing the test on an error.
func parse(t testing.TB, body []byte) jamf.Envelope {
	t.Helper()
	env, err := jamf.Parse(body)
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	return env
}

// sample returns the envelope of testdata/<event>.json.
func sample(t testing.TB, event string) jamf.Envelope {
	t.Helper()
	return parse(t, readFile(t, filepath.Join("testdata", event+".json")))
}

// encode renders a message as the golden files store it: indented, with
// <, > and & left readable.
func encode(t testing.TB, m slack.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// golden compares a message with testdata/<name>.golden.json, or rewrites
// the file with -update.
func golden(t *testing.T, name string, m slack.Message) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	got := encode(t, m)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("message differs from %s (-want +got):\n%s", path, diff)
	}
}

// checkMessage fails the test unless m is one attachment within Slack's
// limits in which every "<" opens a web link: no mention, no channel ping,
// no forged link.
func checkMessage(t testing.TB, m slack.Message) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal() error = %v", err)
	}
	if len(b) > limitJSON {
		t.Errorf("message JSON is %d bytes, want at most %d", len(b), limitJSON)
	}
	if !json.Valid(b) {
		t.Errorf("message JSON is not valid: %s", b)
	}
	if len(m.Attachments) != 1 {
		t.Fatalf("message has %d attachments, want 1", len(m.Attachments))
	}
	a := m.Attachments[0]
	if a.Title == "" || a.Color == "" || a.Fallback == "" || a.Text == "" {
		t.Errorf("attachment lacks a title, colour, fallback or text: %+v", a)
	}
	for _, c := range []struct {
		name  string
		value string
		limit int
	}{
		{"text", a.Text, limitText},
		{"title", a.Title, limitTitle},
		{"fallback", a.Fallback, limitFallback},
	} {
		if len(c.value) > c.limit {
			t.Errorf("%s is %d bytes, want at most %d", c.name, len(c.value), c.limit)
		}
		checkSafe(t, c.name, c.value)
	}
	if len(a.Fields) > limitFields {
		t.Errorf("attachment has %d fields, want at most %d", len(a.Fields), limitFields)
	}
	for _, f := range a.Fields {
		if len(f.Value) > limitValue {
			t.Errorf("field %q is %d bytes, want at most %d", f.Title, len(f.Value), limitValue)
		}
		checkSafe(t, "field title", f.Title)
		checkSafe(t, "field value", f.Value)
	}
	for _, u := range []string{a.TitleLink, a.ThumbURL} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			t.Errorf("link %q is not http(s)", u)
		}
	}
}

// checkSafe fails the test when s is not valid UTF-8, holds a control
// character other than a newline, or has a "<" that does not open a web link.
func checkSafe(t testing.TB, name, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s is not valid UTF-8: %q", name, s)
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f {
			t.Errorf("%s holds control character %U: %q", name, r, s)
			break
		}
	}
	for i := strings.IndexByte(s, '<'); i >= 0; {
		if !strings.HasPrefix(s[i:], "<http://") && !strings.HasPrefix(s[i:], "<https://") {
			end := min(len(s), i+40)
			t.Errorf("%s has a '<' that is not a web link: %q", name, s[i:end])
			return
		}
		next := strings.IndexByte(s[i+1:], '<')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if f := forgeable(withoutLinkTargets(s)); f != "" {
		t.Errorf("%s holds %q, which Slack reads as formatting or a link: %q", name, f, s)
	}
}

// withoutLinkTargets removes the URLs of Jackalope's links ("<url|label>"
// keeps "label>"), which are meant to be links.
func withoutLinkTargets(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '|')
		if j < 0 {
			return b.String()
		}
		s = s[i+j+1:]
	}
}

// forgeable returns the first part of s that Slack could read as code,
// strike, italics or a link, or "". Jackalope itself writes none of these
// (only bold labels, checked by the escaping tests, and links, which
// withoutLinkTargets removes), so any of them came from Jamf text.
func forgeable(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '`', '~':
			return string(c)
		case '_':
			if i == 0 || i+1 == len(s) || !isAlnum(s[i-1]) || !isAlnum(s[i+1]) {
				return s[max(0, i-1):min(len(s), i+2)]
			}
		case ':':
			if strings.HasPrefix(s[i:], "://") {
				return s[i : i+3]
			}
		case '.':
			if r, _ := utf8.DecodeRuneInString(s[i+1:]); unicode.IsLetter(r) {
				return s[i:min(len(s), i+2)]
			}
		}
	}
	return ""
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// inputs returns the webhook bodies of testdata, samples and variants.
func inputs(t testing.TB) []string {
	t.Helper()
	var in []string
	for _, pattern := range []string{filepath.Join("testdata", "*.json"), filepath.Join("testdata", "variants", "*.json")} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".golden.json") {
				in = append(in, f)
			}
		}
	}
	return in
}

func TestGoldenSamples(t *testing.T) {
	for _, e := range jamf.Events {
		t.Run(e.Name, func(t *testing.T) {
			m := render.Message(sample(t, e.Name), plainOptions)
			checkMessage(t, m)
			golden(t, e.Name, m)
		})
	}
}

func TestGoldenLinks(t *testing.T) {
	for _, name := range []string{
		jamf.EventComputerAdded,
		jamf.EventComputerPolicyFinished,
		jamf.EventComputerPatchPolicyCompleted,
		jamf.EventMobileDeviceEnrolled,
		jamf.EventPatchSoftwareTitleUpdated,
		jamf.EventRestAPIOperation,
		jamf.EventSmartGroupComputerMembershipChange,
		jamf.EventSmartGroupMobileDeviceMembershipChange,
		jamf.EventSmartGroupUserMembershipChange,
	} {
		t.Run(name, func(t *testing.T) {
			m := render.Message(sample(t, name), linkOptions)
			checkMessage(t, m)
			golden(t, name+".links", m)
		})
	}
}

// hostileText is appended to every string of a sample: mentions, escapes,
// a forged line, unicode, a right-to-left override and a control character.
const hostileText = " <!channel> & <@U024BE7LH> <#C024BE7LH> > &amp; *bold*\n*User:* root ünïcødé 🦌 \u202egnp.exe\x01"

// longKeys get a very long value in the hostile variants.
var longKeys = []string{"deviceName", "name", "objectName", "patchPolicyName", "username", "jssUrl", "description", "reportUrls"}

// hostile rewrites every string of a decoded JSON value.
func hostile(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			x[k] = hostile(k, item)
		}
		return x
	case []any:
		for i, item := range x {
			x[i] = hostile(key, item)
		}
		return x
	case string:
		s := x + hostileText
		if strings.Contains(strings.ToLower(key), "url") {
			s = x + "|<!channel>"
		}
		if slices.Contains(longKeys, key) {
			s += strings.Repeat("&<Ω>", 1500)
		}
		return s
	}
	return v
}

// hostileBody returns a sample whose event strings are all hostile.
func hostileBody(t testing.TB, event string) []byte {
	t.Helper()
	var body map[string]any
	d := json.NewDecoder(bytes.NewReader(readFile(t, filepath.Join("testdata", event+".json"))))
	d.UseNumber()
	if err := d.Decode(&body); err != nil {
		t.Fatal(err)
	}
	body["event"] = hostile("", body["event"])
	body["webhook"].(map[string]any)["name"] = "<!here>" + hostileText
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenHostile(t *testing.T) {
	for _, e := range jamf.Events {
		t.Run(e.Name, func(t *testing.T) {
			m := render.Message(parse(t, hostileBody(t, e.Name)), linkOptions)
			checkMessage(t, m)
			golden(t, e.Name+".hostile", m)
		})
	}
}

func TestGoldenVariants(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "variants", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs in testdata/variants")
	}
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			m := render.Message(parse(t, readFile(t, in)), linkOptions)
			checkMessage(t, m)
			golden(t, filepath.Join("variants", name), m)
		})
	}
}

func TestXMLRendersLikeJSON(t *testing.T) {
	body, err := jamf.FromXML(readFile(t, filepath.Join("testdata", "ComputerAdded.xml")), 0)
	if err != nil {
		t.Fatalf("FromXML() error = %v", err)
	}
	got := render.Message(parse(t, body), linkOptions)
	want := render.Message(sample(t, jamf.EventComputerAdded), linkOptions)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("XML message differs from JSON message (-want +got):\n%s", diff)
	}
}

func TestOriginalTen(t *testing.T) {
	tests := []struct {
		event string
		title string
		color string
	}{
		{jamf.EventComputerAdded, "Computer Added", "#008000"},
		{jamf.EventComputerCheckIn, "Computer Check-In", "#808080"},
		{jamf.EventComputerInventoryCompleted, "Computer Inventory Complete", "#808080"},
		{jamf.EventJSSShutdown, "Jamf Pro Shutdown", "#ff0000"},
		{jamf.EventJSSStartup, "Jamf Pro Startup", "#008000"},
		{jamf.EventMobileDeviceCheckIn, "Mobile Device Check-In", "#808080"},
		{jamf.EventMobileDeviceEnrolled, "Mobile Device Enrolled", "#008000"},
		{jamf.EventMobileDeviceUnEnrolled, "Mobile Device Un-Enrolled", "#ffff00"},
		{jamf.EventPatchSoftwareTitleUpdated, "Patch Definition Update", "#ffff00"},
		{jamf.EventRestAPIOperation, "REST API Operation", "#808080"},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			for _, env := range []jamf.Envelope{
				sample(t, tt.event),
				parse(t, hostileBody(t, tt.event)),
				{Webhook: jamf.Webhook{Event: tt.event}, Event: json.RawMessage(`{}`)},
			} {
				a := render.Message(env, plainOptions).Attachments[0]
				if a.Title != tt.title || a.Color != tt.color {
					t.Errorf("title, colour = %q, %q, want %q, %q", a.Title, a.Color, tt.title, tt.color)
				}
			}
		})
	}
}

func TestOriginalTextLines(t *testing.T) {
	tests := []struct {
		event string
		lines []string
	}{
		{jamf.EventComputerAdded, []string{
			"A new computer has been added!",
			"*ID:* 1322 | *Serial Number:* C02FAKE1Q6L4",
			"*Computer Name:* MBP-JRIVERA-01 | *User:* jrivera",
		}},
		{jamf.EventMobileDeviceCheckIn, []string{
			"A mobile device check-in has occurred.",
			"*ID:* 215 | *Serial Number:* DMPFAKE3Q1GC",
			"*Device Name:* iPad-LIB-0042 | *User:* apatel",
		}},
		{jamf.EventJSSStartup, []string{
			"The Jamf Pro web app *https\u2236//example\u2024jamfcloud\u2024com/* has started up. *(master)*",
		}},
		{jamf.EventJSSShutdown, []string{
			"The Jamf Pro web app *https\u2236//example\u2024jamfcloud\u2024com/* has initiated a shutdown.",
		}},
		{jamf.EventPatchSoftwareTitleUpdated, []string{
			"Jamf Pro has received a new patch definition update.",
			"<https://example.jamfcloud.com//view/patch/7/report|Click here to view the report>",
			"*Software Title:* Google Chrome | *New Version:* 131.0.6778.86",
		}},
		{jamf.EventRestAPIOperation, []string{
			"A REST API operation has been performed.",
			"*API Object Type:* Policy | *Name:* Install Zoom | *ID:* 87",
			"*User:* svc-automation | *Action:* PUT | *Success?* True",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			text := render.Message(sample(t, tt.event), plainOptions).Attachments[0].Text
			got := strings.Split(text, "\n")
			if diff := cmp.Diff(tt.lines, got[:min(len(got), len(tt.lines))]); diff != "" {
				t.Errorf("text lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEveryEventHasItsOwnTitle(t *testing.T) {
	seen := map[string]string{}
	for _, e := range jamf.Events {
		t.Run(e.Name, func(t *testing.T) {
			for _, env := range []jamf.Envelope{
				sample(t, e.Name),
				{Webhook: jamf.Webhook{Event: e.Name}, Event: json.RawMessage(`{}`)},
				{Webhook: jamf.Webhook{Event: strings.ToLower(e.Name)}, Event: json.RawMessage(`{"unexpected":[1]}`)},
			} {
				title := render.Message(env, plainOptions).Attachments[0].Title
				if title == "" || strings.HasPrefix(title, "Jamf Pro Event") {
					t.Errorf("title = %q, want a title specific to %s", title, e.Name)
				}
			}
		})
		title := render.Message(sample(t, e.Name), plainOptions).Attachments[0].Title
		if other, dup := seen[title]; dup {
			t.Errorf("%s and %s share the title %q", e.Name, other, title)
		}
		seen[title] = e.Name
	}
}

func TestUnknownEvent(t *testing.T) {
	body := `{"webhook":{"webhookEvent":"ComputerTeleported","eventTimestamp":1732870801},` +
		`"event":{"where":{"planet":"Mars","coords":[1,2]},"ok":true,"n":null,"api_token":"s3cr3t","empty":{}}}`
	m := render.Message(parse(t, []byte(body)), plainOptions)
	checkMessage(t, m)
	a := m.Attachments[0]
	want := slack.Attachment{
		Fallback: "Jamf Pro Event: ComputerTeleported",
		Color:    "#808080",
		Title:    "Jamf Pro Event: ComputerTeleported",
		Text: "Jamf Pro sent a *ComputerTeleported* event, which Jackalope has no specific message for.\n" +
			"*api_token:* [redacted]\n*empty:* {}\n*n:* null\n*ok:* true\n" +
			"*where\u2024coords.0:* 1\n*where\u2024coords.1:* 2\n*where\u2024planet:* Mars",
		ThumbURL: "https://jackalope.example.com/static/images/generic.png",
		Ts:       1732870801,
		MrkdwnIn: []string{"text", "fields"},
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("attachment mismatch (-want +got):\n%s", diff)
	}
}

func TestMessageNeverFails(t *testing.T) {
	tests := []struct {
		name string
		env  jamf.Envelope
	}{
		{name: "zero envelope", env: jamf.Envelope{}},
		{name: "no event", env: jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerAdded}}},
		{name: "event not JSON", env: jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerAdded}, Event: json.RawMessage(`{"a":`)}},
		{name: "event array", env: jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventSmartGroupComputerMembershipChange}, Event: json.RawMessage(`[1,2]`)}},
		{name: "unknown event not JSON", env: jamf.Envelope{Webhook: jamf.Webhook{Event: "<!channel>"}, Event: json.RawMessage(`nope`)}},
		{name: "huge event name", env: jamf.Envelope{Webhook: jamf.Webhook{Event: strings.Repeat("<!channel>&", 2000)}, Event: json.RawMessage(`{}`)}},
		{name: "invalid UTF-8 name", env: jamf.Envelope{Webhook: jamf.Webhook{Event: "\xff\xfe<!here>"}, Event: json.RawMessage(`{"a":"\u0000"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMessage(t, render.Message(tt.env, plainOptions))
		})
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name string
		ts   string
		want int64
	}{
		{name: "milliseconds", ts: `,"eventTimestamp":1732870801234`, want: 1732870801},
		{name: "seconds", ts: `,"eventTimestamp":1732870801`, want: 1732870801},
		{name: "missing", ts: ``, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"webhook":{"webhookEvent":"ComputerAdded"` + tt.ts + `},"event":{}}`
			if got := render.Message(parse(t, []byte(body)), plainOptions).Attachments[0].Ts; got != tt.want {
				t.Errorf("ts = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestEscaping renders a computer whose name is hostile: it must show as
// text, neither pinging, nor linking, nor formatting anything, while
// Jackalope's own labels stay bold. Each case is also a golden file in
// testdata/escaping, so a reviewer sees the message Slack gets.
func TestEscaping(t *testing.T) {
	tests := []struct {
		name       string
		deviceName string
		want       string // the Computer Name line
	}{
		{name: "channel-ping", deviceName: "<!channel>", want: "*Computer Name:* &lt;!channel&gt; | *User:* u"},
		{name: "user-mention", deviceName: "<@U024BE7LH> hi", want: "*Computer Name:* &lt;@U024BE7LH&gt; hi | *User:* u"},
		{name: "forged-link", deviceName: "<https://evil.example|click>", want: "*Computer Name:* &lt;https\u2236//evil\u2024example|click&gt; | *User:* u"},
		{name: "forged-label", deviceName: "*User:* admin", want: "*Computer Name:* \u2217User:\u2217 admin | *User:* u"},
		{name: "bold", deviceName: "*x*", want: "*Computer Name:* \u2217x\u2217 | *User:* u"},
		{name: "italics", deviceName: "_x_", want: "*Computer Name:* \uff3fx\uff3f | *User:* u"},
		{name: "strike", deviceName: "~x~", want: "*Computer Name:* \u223cx\u223c | *User:* u"},
		{name: "code-span", deviceName: "`rm -rf /`", want: "*Computer Name:* \u02cbrm -rf /\u02cb | *User:* u"},
		{name: "code-block", deviceName: "```x```", want: "*Computer Name:* \u02cb\u02cb\u02cbx\u02cb\u02cb\u02cb | *User:* u"},
		{name: "bare-url", deviceName: "https://evil.example/login", want: "*Computer Name:* https\u2236//evil\u2024example/login | *User:* u"},
		{name: "bare-domain", deviceName: "evil.example", want: "*Computer Name:* evil\u2024example | *User:* u"},
		{name: "email", deviceName: "it@evil.example", want: "*Computer Name:* it@evil\u2024example | *User:* u"},
		{name: "url-with-invisible-characters", deviceName: "https:\u200b//evil.\u202eexample", want: "*Computer Name:* https\u2236\u200b//evil\u2024example | *User:* u"},
		{name: "snake-case-kept", deviceName: "MBP_JRIVERA_01.local", want: "*Computer Name:* MBP_JRIVERA_01\u2024local | *User:* u"},
		{name: "version-and-ip-kept", deviceName: "mac 14.6.1 at 203.0.113.45:22", want: "*Computer Name:* mac 14.6.1 at 203.0.113.45:22 | *User:* u"},
		{name: "ampersand", deviceName: "R&D > QA", want: "*Computer Name:* R&amp;D &gt; QA | *User:* u"},
		{name: "already-escaped", deviceName: "&lt;", want: "*Computer Name:* &amp;lt; | *User:* u"},
		{name: "forged-line", deviceName: "mac\n*User:* root", want: "*Computer Name:* mac \u2217User:\u2217 root | *User:* u"},
		{name: "unicode-kept", deviceName: "Zoë’s 🦌 Mac", want: "*Computer Name:* Zoë’s 🦌 Mac | *User:* u"},
		{name: "direction-override-dropped", deviceName: "a\u202eb", want: "*Computer Name:* ab | *User:* u"},
		{name: "empty", deviceName: "", want: "*Computer Name:* — | *User:* u"},
		{name: "long-name-cut", deviceName: strings.Repeat("&", 100), want: "*Computer Name:* " + strings.Repeat("&amp;", 39) + "… | *User:* u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			event, err := json.Marshal(map[string]any{"deviceName": tt.deviceName, "username": "u"})
			if err != nil {
				t.Fatal(err)
			}
			env := jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerAdded}, Event: event}
			m := render.Message(env, linkOptions)
			checkMessage(t, m)
			lines := strings.Split(m.Attachments[0].Text, "\n")
			if len(lines) < 3 || lines[2] != tt.want {
				t.Errorf("text = %q, want line 3 = %q", m.Attachments[0].Text, tt.want)
			}
			if strings.Count(m.Attachments[0].Text, "*") != strings.Count(plainEscaping.Attachments[0].Text, "*") {
				t.Errorf("text = %q, want only Jackalope's own bold labels", m.Attachments[0].Text)
			}
			golden(t, filepath.Join("escaping", tt.name), m)
		})
	}
}

// plainEscaping is the message TestEscaping compares the number of bold
// markers with: the same event with a plain name.
var plainEscaping = render.Message(jamf.Envelope{
	Webhook: jamf.Webhook{Event: jamf.EventComputerAdded},
	Event:   json.RawMessage(`{"deviceName":"mac","username":"u"}`),
}, linkOptions)

func TestDeepLinks(t *testing.T) {
	tests := []struct {
		name    string
		jamfURL string
		want    string // title_link of ComputerAdded
	}{
		{name: "none", jamfURL: "", want: ""},
		{name: "https", jamfURL: "https://example.jamfcloud.com", want: "https://example.jamfcloud.com/computers.html?id=1322"},
		{name: "trailing slash", jamfURL: "https://example.jamfcloud.com/", want: "https://example.jamfcloud.com/computers.html?id=1322"},
		{name: "on-premises with port and context", jamfURL: "http://jss.example.com:8443/jss/", want: "http://jss.example.com:8443/jss/computers.html?id=1322"},
		{name: "credentials, query and fragment dropped", jamfURL: "https://admin:hunter2@jss.example.com/?a=1#top", want: "https://jss.example.com/computers.html?id=1322"},
		{name: "upper-case scheme", jamfURL: "HTTPS://jss.example.com", want: "https://jss.example.com/computers.html?id=1322"},
		{name: "javascript", jamfURL: "javascript:alert(1)", want: ""},
		{name: "ftp", jamfURL: "ftp://jss.example.com", want: ""},
		{name: "no host", jamfURL: "https://", want: ""},
		{name: "relative", jamfURL: "jss.example.com", want: ""},
		{name: "link breaking characters encoded", jamfURL: "https://jss.example.com/a|<b>", want: "https://jss.example.com/a%7C%3Cb%3E/computers.html?id=1322"},
		{name: "space in host", jamfURL: "https://jss example.com", want: ""},
		{name: "not a URL", jamfURL: "http://[::1", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := render.Message(sample(t, jamf.EventComputerAdded), render.Options{JamfURL: tt.jamfURL})
			checkMessage(t, m)
			a := m.Attachments[0]
			if a.TitleLink != tt.want {
				t.Errorf("title_link = %q, want %q", a.TitleLink, tt.want)
			}
			if tt.want == "" && strings.Contains(a.Text, "<") {
				t.Errorf("text has a link without a Jamf URL: %q", a.Text)
			}
		})
	}
}

func TestReportURLs(t *testing.T) {
	tests := []struct {
		name string
		urls string
		want string // the report line
	}{
		{name: "list", urls: `"reportUrls":["https://a.example/r?x=1&y=2","http://b.example/r"]`, want: "<https://a.example/r?x=1&amp;y=2|Click here to view the report> | <http://b.example/r|Report 2>"},
		{name: "legacy string", urls: `"reportUrl":"https://a.example/patch.html?id=7&o=r"`, want: "<https://a.example/patch.html?id=7&amp;o=r|Click here to view the report>"},
		{name: "javascript shown as text", urls: `"reportUrls":["javascript:alert(1)"]`, want: "*Report:* javascript:alert(1)"},
		{name: "link breaker shown as text", urls: `"reportUrls":["https://a.example/|<!channel>"]`, want: "*Report:* https\u2236//a\u2024example/|&lt;!channel&gt;"},
		{name: "credentials shown as text", urls: `"reportUrls":["https://u:p@a.example/"]`, want: "*Report:* https\u2236//u:p@a\u2024example/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"webhook":{"webhookEvent":"PatchSoftwareTitleUpdated"},"event":{"name":"T",` + tt.urls + `}}`
			m := render.Message(parse(t, []byte(body)), plainOptions)
			checkMessage(t, m)
			lines := strings.Split(m.Attachments[0].Text, "\n")
			if len(lines) < 2 || lines[1] != tt.want {
				t.Errorf("text = %q, want line 2 = %q", m.Attachments[0].Text, tt.want)
			}
		})
	}
}

func TestSecretsNeverShown(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "SCEP target user password", body: `{"webhook":{"webhookEvent":"SCEPChallenge"},"event":{"targetUser":{"username":"u","password":"hunter2-XYZZY"},"challenge":"hunter2-XYZZY"}}`},
		{name: "unknown event password", body: `{"webhook":{"webhookEvent":"Future"},"event":{"user":{"Password":"hunter2-XYZZY"},"challengePassword":"hunter2-XYZZY","clientSecret":"hunter2-XYZZY","apiToken":["hunter2-XYZZY"]}}`},
		{name: "rate limited password", body: `{"webhook":{"webhookEvent":"DeviceRateLimited"},"event":{"password":"hunter2-XYZZY"}}`},
		{name: "Jamf URL credentials", body: `{"webhook":{"webhookEvent":"ComputerAdded"},"event":{"jssID":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := render.Message(parse(t, []byte(tt.body)), render.Options{JamfURL: "https://admin:hunter2-XYZZY@jss.example.com"})
			if b := encode(t, m); bytes.Contains(b, []byte("XYZZY")) {
				t.Errorf("message shows a secret:\n%s", b)
			}
		})
	}
}

func TestWelcome(t *testing.T) {
	got := render.Welcome("https://jackalope.example.com/jamf/abc123")
	text := "Jackalope has been installed in this channel! Create webhooks (in `JSON` format) in your Jamf Pro server using this url:\n" +
		"https://jackalope.example.com/jamf/abc123\n\nThey will appear here as notifications."
	want := slack.Message{Attachments: []slack.Attachment{{
		Fallback: text,
		Color:    "#800080",
		Text:     text,
		MrkdwnIn: []string{"text"},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Welcome() mismatch (-want +got):\n%s", diff)
	}

	// A URL that is not link-safe is escaped like Jamf text.
	text = render.Welcome("https://x.example/jamf/<!channel>").Attachments[0].Text
	if strings.Contains(text, "<!channel>") || !strings.Contains(text, "https\u2236//x\u2024example/jamf/&lt;!channel&gt;") {
		t.Errorf("Welcome() text = %q, want the URL escaped", text)
	}
}
