package jamf_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// FuzzParse checks Parse's own scanner against encoding/json: Parse accepts
// exactly the bodies that are JSON objects with a string webhookEvent and an
// object event, and finds the same values.
func FuzzParse(f *testing.F) {
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"webhook":{"webhookEvent":"A","webhook\u0045vent":"B"},"event":{"x":"}\"{"},"event":{}}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := jamf.Parse(body)

		var top map[string]json.RawMessage
		var hook map[string]json.RawMessage
		var name string
		ok := json.Unmarshal(body, &top) == nil &&
			json.Unmarshal(top["webhook"], &hook) == nil && hook != nil &&
			json.Unmarshal(hook["webhookEvent"], &name) == nil && bytes.HasPrefix(bytes.TrimSpace(hook["webhookEvent"]), []byte(`"`)) &&
			bytes.HasPrefix(bytes.TrimSpace(top["event"]), []byte("{"))
		if err != nil {
			if ok && name != "" && len(bytes.TrimSpace([]byte(name))) > 0 && hookNumbersOK(hook) {
				t.Fatalf("Parse() error = %v for a body encoding/json reads as valid", err)
			}
			return
		}
		if !ok {
			t.Fatalf("Parse() accepted a body encoding/json does not read as a webhook: %q", body)
		}
		if env.Webhook.Event != name {
			t.Errorf("Parse() event = %q, encoding/json reads %q", env.Webhook.Event, name)
		}
		if !bytes.Equal(env.Event, top["event"]) {
			t.Errorf("Parse() event body = %q, encoding/json reads %q", env.Event, top["event"])
		}
	})
}

// hookNumbersOK reports whether the optional webhook fields are of a type
// Parse accepts, so that a Parse error is expected otherwise.
func hookNumbersOK(hook map[string]json.RawMessage) bool {
	for _, key := range []string{"id", "eventTimestamp", "name"} {
		raw, ok := hook[key]
		if !ok {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return false
		}
		switch x := v.(type) {
		case nil:
		case json.Number:
			if _, err := x.Int64(); err != nil && key != "name" {
				return false
			}
		case string:
			if key != "name" {
				return false
			}
		default:
			return false
		}
	}
	return true
}
