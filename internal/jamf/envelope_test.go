package jamf_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// readSample returns testdata/<name>, failing the test when it is missing.
func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want jamf.Webhook
	}{
		{
			name: "full envelope",
			body: `{"webhook":{"id":11,"name":"Slack","webhookEvent":"ComputerAdded","eventTimestamp":1732870801234},"event":{"jssID":1}}`,
			want: jamf.Webhook{ID: 11, Name: "Slack", Event: "ComputerAdded", Timestamp: time.UnixMilli(1732870801234).UTC()},
		},
		{
			name: "event before webhook",
			body: `{"event":{},"webhook":{"webhookEvent":"JSSStartup","id":3}}`,
			want: jamf.Webhook{ID: 3, Event: "JSSStartup"},
		},
		{
			name: "only webhookEvent",
			body: `{"webhook":{"webhookEvent":"PushSent"},"event":{}}`,
			want: jamf.Webhook{Event: "PushSent"},
		},
		{
			name: "event name kept as sent",
			body: `{"webhook":{"webhookEvent":"ComputerCheckin"},"event":{}}`,
			want: jamf.Webhook{Event: "ComputerCheckin"},
		},
		{
			name: "escaped strings",
			body: `{"webhook":{"webhookEvent":"Computer\u0041dded","name":"a \"b\" \u00e9"},"event":{}}`,
			want: jamf.Webhook{Event: "ComputerAdded", Name: `a "b" é`},
		},
		{
			name: "numbers as strings and name as number",
			body: `{"webhook":{"id":"11","name":42,"webhookEvent":"ComputerAdded","eventTimestamp":"1732870801234"},"event":{}}`,
			want: jamf.Webhook{ID: 11, Name: "42", Event: "ComputerAdded", Timestamp: time.UnixMilli(1732870801234).UTC()},
		},
		{
			name: "nulls",
			body: `{"webhook":{"id":null,"name":null,"webhookEvent":"ComputerAdded","eventTimestamp":null},"event":{}}`,
			want: jamf.Webhook{Event: "ComputerAdded"},
		},
		{
			name: "unknown keys tolerated",
			body: `{"webhook":{"webhookEvent":"Future","extra":[1,{"a":2}]},"event":{"x":1},"more":true}`,
			want: jamf.Webhook{Event: "Future"},
		},
		{
			name: "surrounding white space",
			body: " \n\t{\"webhook\":{\"webhookEvent\":\"ComputerAdded\"},\"event\":{}}\n",
			want: jamf.Webhook{Event: "ComputerAdded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := jamf.Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, env.Webhook); diff != "" {
				t.Errorf("Parse() webhook mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSamples(t *testing.T) {
	for _, e := range jamf.Events {
		t.Run(e.Name, func(t *testing.T) {
			body := readSample(t, e.Name+".json")
			env, err := jamf.Parse(body)
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if env.Webhook.Event != e.Name {
				t.Errorf("Parse() event = %q, want %q", env.Webhook.Event, e.Name)
			}
			if env.Webhook.ID == 0 || env.Webhook.Name == "" || env.Webhook.Timestamp.IsZero() {
				t.Errorf("Parse() webhook = %+v, want id, name and timestamp set", env.Webhook)
			}
			var whole struct{ Event json.RawMessage }
			if err := json.Unmarshal(body, &whole); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(env.Event, whole.Event) {
				t.Errorf("Parse() event = %s, want %s", env.Event, whole.Event)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		notJSON bool   // the error matches ErrNotJSON
		want    string // the *FieldError's message, when not notJSON
	}{
		{name: "empty", body: "", notJSON: true},
		{name: "white space", body: " \n ", notJSON: true},
		{name: "plain text", body: "hello", notJSON: true},
		{name: "xml", body: "<JSSEvent/>", notJSON: true},
		{name: "form", body: "webhook=1&event=2", notJSON: true},
		{name: "truncated object", body: `{"webhook":{"webhookEvent":"A"}`, notJSON: true},
		{name: "trailing garbage", body: `{"webhook":{"webhookEvent":"A"},"event":{}} x`, notJSON: true},
		{name: "array", body: `[{"webhook":{"webhookEvent":"A"},"event":{}}]`, notJSON: true},
		{name: "vertical tab after the object", body: "{\"webhook\":{\"webhookEvent\":\"A\"},\"event\":{}}\v", notJSON: true},
		{name: "no-break space before the object", body: "\u00a0{\"webhook\":{\"webhookEvent\":\"A\"},\"event\":{}}", notJSON: true},
		{name: "string", body: `"webhook"`, notJSON: true},
		{name: "number", body: `42`, notJSON: true},
		{name: "null", body: `null`, notJSON: true},
		{name: "missing webhook", body: `{"event":{}}`, want: "webhook: missing"},
		{name: "empty object", body: `{}`, want: "webhook: missing"},
		{name: "webhook array", body: `{"webhook":[],"event":{}}`, want: "webhook: must be an object, got array"},
		{name: "webhook null", body: `{"webhook":null,"event":{}}`, want: "webhook: must be an object, got null"},
		{name: "webhook string", body: `{"webhook":"ComputerAdded","event":{}}`, want: "webhook: must be an object, got string"},
		{name: "missing webhookEvent", body: `{"webhook":{"id":1},"event":{}}`, want: "webhook.webhookEvent: missing"},
		{name: "webhookEvent number", body: `{"webhook":{"webhookEvent":7},"event":{}}`, want: "webhook.webhookEvent: must be a string, got number"},
		{name: "webhookEvent null", body: `{"webhook":{"webhookEvent":null},"event":{}}`, want: "webhook.webhookEvent: must be a string, got null"},
		{name: "webhookEvent object", body: `{"webhook":{"webhookEvent":{}},"event":{}}`, want: "webhook.webhookEvent: must be a string, got object"},
		{name: "webhookEvent empty", body: `{"webhook":{"webhookEvent":""},"event":{}}`, want: "webhook.webhookEvent: must not be empty"},
		{name: "webhookEvent blank", body: `{"webhook":{"webhookEvent":"  "},"event":{}}`, want: "webhook.webhookEvent: must not be empty"},
		{name: "missing event", body: `{"webhook":{"webhookEvent":"A"}}`, want: "event: missing"},
		{name: "event array", body: `{"webhook":{"webhookEvent":"A"},"event":[]}`, want: "event: must be an object, got array"},
		{name: "event null", body: `{"webhook":{"webhookEvent":"A"},"event":null}`, want: "event: must be an object, got null"},
		{name: "event string", body: `{"webhook":{"webhookEvent":"A"},"event":"{}"}`, want: "event: must be an object, got string"},
		{name: "event boolean", body: `{"webhook":{"webhookEvent":"A"},"event":true}`, want: "event: must be an object, got boolean"},
		{name: "id object", body: `{"webhook":{"webhookEvent":"A","id":{}},"event":{}}`, want: "webhook.id: must be a number, got object"},
		{name: "id boolean", body: `{"webhook":{"webhookEvent":"A","id":true},"event":{}}`, want: "webhook.id: must be a number, got boolean"},
		{name: "id text", body: `{"webhook":{"webhookEvent":"A","id":"eleven"},"event":{}}`, want: `webhook.id: must be a number, got string "eleven"`},
		{name: "id out of range", body: `{"webhook":{"webhookEvent":"A","id":1e300},"event":{}}`, want: "webhook.id: must be an integer, got 1e300"},
		{name: "timestamp array", body: `{"webhook":{"webhookEvent":"A","eventTimestamp":[1]},"event":{}}`, want: "webhook.eventTimestamp: must be a number, got array"},
		{name: "name object", body: `{"webhook":{"webhookEvent":"A","name":{}},"event":{}}`, want: "webhook.name: must be a string, got object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jamf.Parse([]byte(tt.body))
			if err == nil {
				t.Fatal("Parse() error = nil, want an error")
			}
			if tt.notJSON {
				if !errors.Is(err, jamf.ErrNotJSON) {
					t.Errorf("Parse() error = %v, want ErrNotJSON", err)
				}
				return
			}
			var fe *jamf.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse() error = %v (%T), want *FieldError", err, err)
			}
			if errors.Is(err, jamf.ErrNotJSON) {
				t.Errorf("Parse() error = %v matches ErrNotJSON, want only a field error", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse() error = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  time.Time
	}{
		{name: "milliseconds", value: `1732870801234`, want: time.UnixMilli(1732870801234).UTC()},
		{name: "seconds", value: `1732870801`, want: time.Unix(1732870801, 0).UTC()},
		{name: "milliseconds as string", value: `"1732870801234"`, want: time.UnixMilli(1732870801234).UTC()},
		{name: "seconds as string", value: `" 1732870801 "`, want: time.Unix(1732870801, 0).UTC()},
		{name: "float milliseconds", value: `1.732870801234e12`, want: time.UnixMilli(1732870801234).UTC()},
		{name: "just under 1e12 is seconds", value: `999999999`, want: time.Unix(999999999, 0).UTC()},
		{name: "zero", value: `0`},
		{name: "negative", value: `-5`},
		{name: "null", value: `null`},
		{name: "empty string", value: `""`},
		{name: "after year 9999", value: `9223372036854775807`},
		{name: "seconds after year 9999", value: `999999999999`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"webhook":{"webhookEvent":"A","eventTimestamp":` + tt.value + `},"event":{}}`
			env, err := jamf.Parse([]byte(body))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if !env.Webhook.Timestamp.Equal(tt.want) {
				t.Errorf("Parse() timestamp = %v, want %v", env.Webhook.Timestamp, tt.want)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		env, err := jamf.Parse([]byte(`{"webhook":{"webhookEvent":"A"},"event":{}}`))
		if err != nil {
			t.Fatalf("Parse() error = %v", err)
		}
		if !env.Webhook.Timestamp.IsZero() {
			t.Errorf("Parse() timestamp = %v, want the zero time", env.Webhook.Timestamp)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"ComputerCheckIn", "SmartGroupMobileDeviceMembershipChange"} {
		body := readSample(b, name+".json")
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jamf.Parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
