package jamf_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// decodeAny decodes JSON into generic values for a semantic comparison.
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

func TestFromXMLComputerAddedSample(t *testing.T) {
	got, err := jamf.FromXML(readSample(t, "ComputerAdded.xml"), 0)
	if err != nil {
		t.Fatalf("FromXML() error = %v", err)
	}
	wantJSON := readSample(t, "ComputerAdded.json")
	if diff := cmp.Diff(decodeAny(t, wantJSON), decodeAny(t, got)); diff != "" {
		t.Errorf("FromXML() mismatch with the JSON sample (-want +got):\n%s", diff)
	}

	gotEnv, err := jamf.Parse(got)
	if err != nil {
		t.Fatalf("Parse(FromXML()) error = %v", err)
	}
	wantEnv, err := jamf.Parse(wantJSON)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEnv.Webhook, gotEnv.Webhook); diff != "" {
		t.Errorf("webhook mismatch (-want +got):\n%s", diff)
	}
	gotEvent, err := jamf.Decode(gotEnv)
	if err != nil {
		t.Fatal(err)
	}
	wantEvent, err := jamf.Decode(wantEnv)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEvent, gotEvent); diff != "" {
		t.Errorf("decoded event mismatch (-want +got):\n%s", diff)
	}
}

// toXML writes a JSON sample as a Jamf XML webhook. Lists are written as
// repeated elements, or, when wrap is set, as a wrapper element around
// <item> elements.
func toXML(t *testing.T, sample []byte, wrap bool) string {
	t.Helper()
	var root map[string]any
	d := json.NewDecoder(strings.NewReader(string(sample)))
	d.UseNumber()
	if err := d.Decode(&root); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<JSSEvent>")
	writeXMLMembers(&b, root, wrap)
	b.WriteString("</JSSEvent>\n")
	return b.String()
}

func writeXMLMembers(b *strings.Builder, obj map[string]any, wrap bool) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := obj[k]
		list, isList := v.([]any)
		switch {
		case isList && len(list) == 0:
			fmt.Fprintf(b, "<%s/>", k)
		case isList && wrap:
			fmt.Fprintf(b, "<%s>", k)
			for _, item := range list {
				writeXMLValue(b, "item", item, wrap)
			}
			fmt.Fprintf(b, "</%s>", k)
		case isList:
			for _, item := range list {
				writeXMLValue(b, k, item, wrap)
			}
		default:
			writeXMLValue(b, k, v, wrap)
		}
	}
}

func writeXMLValue(b *strings.Builder, name string, v any, wrap bool) {
	fmt.Fprintf(b, "<%s>", name)
	switch x := v.(type) {
	case map[string]any:
		writeXMLMembers(b, x, wrap)
	case string:
		var esc strings.Builder
		for _, r := range x {
			switch r {
			case '<':
				esc.WriteString("&lt;")
			case '&':
				esc.WriteString("&amp;")
			default:
				esc.WriteRune(r)
			}
		}
		b.WriteString(esc.String())
	default:
		fmt.Fprint(b, x)
	}
	fmt.Fprintf(b, "</%s>", name)
}

func TestFromXMLEverySample(t *testing.T) {
	for _, e := range jamf.Events {
		for _, wrap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wrapped=%t", e.Name, wrap), func(t *testing.T) {
				sample := readSample(t, e.Name+".json")
				got, err := jamf.FromXML([]byte(toXML(t, sample, wrap)), 0)
				if err != nil {
					t.Fatalf("FromXML() error = %v", err)
				}
				if diff := cmp.Diff(decodeAny(t, sample), decodeAny(t, got)); diff != "" {
					t.Errorf("FromXML() mismatch with the JSON sample (-want +got):\n%s", diff)
				}
				if _, err := jamf.Parse(got); err != nil {
					t.Errorf("Parse(FromXML()) error = %v", err)
				}
			})
		}
	}
}

func TestFromXMLShapes(t *testing.T) {
	const hook = `<webhook><webhookEvent>E</webhookEvent></webhook>`
	tests := []struct {
		name  string
		event string // the inside of <event>
		want  string // the JSON of event
	}{
		{name: "empty event", event: ``, want: `{}`},
		{name: "known numeric and boolean keys", event: `<jssID> 12 </jssID><successful>TRUE</successful><isClusterMaster>false</isClusterMaster>`, want: `{"jssID":12,"successful":true,"isClusterMaster":false}`},
		{name: "non-numeric value of a numeric key stays text", event: `<jssID>12a</jssID><managementId>8f5c-1b</managementId>`, want: `{"jssID":"12a","managementId":"8f5c-1b"}`},
		{name: "numbers of unknown keys stay text", event: `<userDirectoryID>-1</userDirectoryID><uid>1042</uid>`, want: `{"userDirectoryID":"-1","uid":"1042"}`},
		{name: "nested object", event: `<computer><jssID>1</jssID><deviceName>m</deviceName></computer><trigger>CLIENT_CHECKIN</trigger>`, want: `{"computer":{"jssID":1,"deviceName":"m"},"trigger":"CLIENT_CHECKIN"}`},
		{name: "smart group computer flag", event: `<computer>false</computer><smartGroup>true</smartGroup>`, want: `{"computer":false,"smartGroup":true}`},
		{name: "single list item", event: `<groupAddedDevicesIds>5</groupAddedDevicesIds>`, want: `{"groupAddedDevicesIds":[5]}`},
		{name: "repeated list items", event: `<groupAddedDevicesIds>5</groupAddedDevicesIds><groupAddedDevicesIds>6</groupAddedDevicesIds>`, want: `{"groupAddedDevicesIds":[5,6]}`},
		{name: "wrapped list with size", event: `<groupRemovedDevicesIds><size>2</size><id>5</id><id>6</id></groupRemovedDevicesIds>`, want: `{"groupRemovedDevicesIds":[5,6]}`},
		{name: "wrapped empty list with size", event: `<groupRemovedDevicesIds><size>0</size></groupRemovedDevicesIds>`, want: `{"groupRemovedDevicesIds":[]}`},
		{name: "empty list", event: `<groupAddedUserIds/><payloadTypes></payloadTypes>`, want: `{"groupAddedUserIds":[],"payloadTypes":[]}`},
		{name: "single string list", event: `<payloadTypes>com.apple.security.scep</payloadTypes>`, want: `{"payloadTypes":["com.apple.security.scep"]}`},
		{name: "event actions with one action", event: `<eventActions><action>install</action></eventActions>`, want: `{"eventActions":{"action":["install"]}}`},
		{name: "empty event actions", event: `<eventActions/>`, want: `{"eventActions":{}}`},
		{name: "device objects wrapped", event: `<groupAddedDevices><mobileDevice><jssID>1</jssID></mobileDevice><mobileDevice><jssID>2</jssID></mobileDevice></groupAddedDevices>`, want: `{"groupAddedDevices":[{"jssID":1},{"jssID":2}]}`},
		{name: "device objects repeated", event: `<groupAddedDevices><jssID>1</jssID><deviceName>a</deviceName></groupAddedDevices><groupAddedDevices><jssID>2</jssID></groupAddedDevices>`, want: `{"groupAddedDevices":[{"jssID":1,"deviceName":"a"},{"jssID":2}]}`},
		{name: "repeated unknown element", event: `<tag>a</tag><tag>b</tag>`, want: `{"tag":["a","b"]}`},
		{name: "escapes, CDATA and comments", event: `<deviceName>a &amp; &lt;b&gt; <![CDATA[<!channel>]]><!-- c --></deviceName>`, want: `{"deviceName":"a & <b> <!channel>"}`},
		{name: "white space only is empty", event: `<room>  </room><icciID/>`, want: `{"room":"","icciID":""}`},
		{name: "inner white space kept", event: `<deviceName> Jo's Mac </deviceName>`, want: `{"deviceName":" Jo's Mac "}`},
		{name: "xsi nil", event: `<product xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>`, want: `{"product":null}`},
		{name: "attributes ignored", event: `<jssID type="int">4</jssID>`, want: `{"jssID":4}`},
		{name: "namespaced element", event: `<j:jssID xmlns:j="urn:x">4</j:jssID>`, want: `{"jssID":4}`},
		{name: "unicode and control escapes", event: "<deviceName>é 🦌 \"q\" \\ \t</deviceName>", want: `{"deviceName":"é 🦌 \"q\" \\ \t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `<?xml version="1.0" encoding="UTF-8"?><JSSEvent>` + hook + `<event>` + tt.event + `</event></JSSEvent>`
			got, err := jamf.FromXML([]byte(body), 0)
			if err != nil {
				t.Fatalf("FromXML() error = %v", err)
			}
			env, err := jamf.Parse(got)
			if err != nil {
				t.Fatalf("Parse(%s) error = %v", got, err)
			}
			if diff := cmp.Diff(decodeAny(t, []byte(tt.want)), decodeAny(t, env.Event)); diff != "" {
				t.Errorf("FromXML() event mismatch (-want +got):\n%s\nJSON: %s", diff, got)
			}
		})
	}
}

func TestFromXMLKeepsOrder(t *testing.T) {
	body := `<JSSEvent><webhook><webhookEvent>E</webhookEvent><id>1</id></webhook><event><b>1</b><a>2</a></event></JSSEvent>`
	got, err := jamf.FromXML([]byte(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"webhook":{"webhookEvent":"E","id":1},"event":{"b":"1","a":"2"}}`
	if string(got) != want {
		t.Errorf("FromXML() = %s, want %s", got, want)
	}
}

func TestFromXMLHostile(t *testing.T) {
	deep := strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40)
	tests := []struct {
		name     string
		body     string
		limit    int
		tooLarge bool
		want     string // the whole message, when it is ours; empty for encoding/xml's
	}{
		{name: "empty", body: "", want: "bad XML webhook: no root element, want <JSSEvent>"},
		{name: "not XML", body: "hello world", want: "bad XML webhook: text outside the root element"},
		{name: "JSON", body: `{"webhook":{}}`, want: "bad XML webhook: text outside the root element"},
		{name: "wrong root", body: `<JSSEvents><event/></JSSEvents>`, want: "bad XML webhook: root element is <JSSEvents>, want <JSSEvent>"},
		{name: "root in the wrong case", body: `<jssevent/>`, want: "bad XML webhook: root element is <jssevent>, want <JSSEvent>"},
		{name: "two roots", body: `<JSSEvent/><JSSEvent/>`, want: "bad XML webhook: element <JSSEvent> after the root element"},
		{name: "text after the root", body: `<JSSEvent/>trailing`, want: "bad XML webhook: text outside the root element"},
		{name: "truncated", body: `<JSSEvent><event>`},
		{name: "mismatched tags", body: `<JSSEvent><event></webhook></JSSEvent>`},
		{name: "deep nesting", body: `<JSSEvent><event>` + deep + `</event></JSSEvent>`, want: "bad XML webhook: elements nested deeper than 32 levels"},
		{name: "too many elements", body: `<JSSEvent>` + strings.Repeat("<a/>", 100_001) + `</JSSEvent>`, want: "bad XML webhook: more than 100000 elements"},
		{name: "huge text", body: `<JSSEvent><event><deviceName>` + strings.Repeat("x", 70_000) + `</deviceName></event></JSSEvent>`, want: "bad XML webhook: text of <deviceName> is longer than 65536 bytes"},
		{name: "doctype", body: `<!DOCTYPE JSSEvent><JSSEvent/>`, want: "bad XML webhook: DOCTYPE, ENTITY and other declarations are not allowed"},
		{name: "external entity", body: `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><JSSEvent><event><deviceName>&xxe;</deviceName></event></JSSEvent>`, want: "bad XML webhook: DOCTYPE, ENTITY and other declarations are not allowed"},
		{name: "billion laughs", body: `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><JSSEvent>&lol2;</JSSEvent>`, want: "bad XML webhook: DOCTYPE, ENTITY and other declarations are not allowed"},
		{name: "undeclared entity", body: `<JSSEvent><event><deviceName>&xxe;</deviceName></event></JSSEvent>`},
		{name: "unsupported encoding", body: `<?xml version="1.0" encoding="ISO-8859-1"?><JSSEvent/>`},
		{name: "over the limit", body: `<JSSEvent>` + strings.Repeat(" ", 100) + `</JSSEvent>`, limit: 64, tooLarge: true, want: "bad XML webhook: too large: body of 121 bytes is over the 64 byte limit"},
		{name: "JSON over the limit", body: `<JSSEvent><a>` + strings.Repeat(`"`, 60) + `</a></JSSEvent>`, limit: 100, tooLarge: true, want: "bad XML webhook: too large: converted JSON of 128 bytes is over the 100 byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jamf.FromXML([]byte(tt.body), tt.limit)
			if err == nil {
				t.Fatalf("FromXML() = %s, want an error", got)
			}
			if !errors.Is(err, jamf.ErrBadXML) {
				t.Errorf("FromXML() error = %v, want ErrBadXML", err)
			}
			if got := errors.Is(err, jamf.ErrTooLarge); got != tt.tooLarge {
				t.Errorf("FromXML() error %v matches ErrTooLarge = %t, want %t", err, got, tt.tooLarge)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("FromXML() error = %q, want %q", err.Error(), tt.want)
			}
		})
	}
}

func TestFromXMLLargeGroup(t *testing.T) {
	var b strings.Builder
	b.WriteString("<JSSEvent>\n  <webhook><webhookEvent>SmartGroupComputerMembershipChange</webhookEvent></webhook>\n  <event>\n    <groupAddedDevicesIds>\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "      <id>%d</id>\n", i+1)
	}
	b.WriteString("    </groupAddedDevicesIds>\n  </event>\n</JSSEvent>\n")
	got, err := jamf.FromXML([]byte(b.String()), 0)
	if err != nil {
		t.Fatalf("FromXML() error = %v", err)
	}
	env, err := jamf.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := jamf.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	g := ev.(jamf.SmartGroupComputerMembershipChange)
	if len(g.AddedIDs) != 10_000 || g.AddedIDs[9_999] != 10_000 {
		t.Errorf("decoded %d added IDs, want 10000 ending with 10000", len(g.AddedIDs))
	}
}

func BenchmarkFromXML(b *testing.B) {
	body := readSample(b, "ComputerAdded.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jamf.FromXML(body, 0); err != nil {
			b.Fatal(err)
		}
	}
}
