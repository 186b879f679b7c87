package render_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
)

// FuzzDecodeRender feeds arbitrary bodies through every path a webhook
// takes, JSON or XML: nothing may panic, converted XML must be valid JSON,
// and every message must be safe and within Slack's limits. Each body is
// also rendered as the event of a catalog event picked by its length, so
// that arbitrary event objects reach every specific renderer, and in a
// digest with the parsed body.
func FuzzDecodeRender(f *testing.F) {
	seeds := append(inputs(f), filepath.Join("testdata", "ComputerAdded.xml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<JSSEvent><webhook><webhookEvent>SmartGroupComputerMembershipChange</webhookEvent></webhook><event><groupAddedDevicesIds><id>1</id></groupAddedDevicesIds></event></JSSEvent>`))
	f.Add([]byte(`{"webhook":{"webhookEvent":"Future"},"event":{"a":[{"b":"<!channel>"}]}}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		if env, err := jamf.Parse(body); err == nil {
			checkMessage(t, render.Message(env, linkOptions))
		}
		if converted, err := jamf.FromXML(body, 1<<20); err == nil {
			if !json.Valid(converted) {
				t.Fatalf("FromXML() = %q, not valid JSON", converted)
			}
			if env, err := jamf.Parse(converted); err == nil {
				checkMessage(t, render.Message(env, linkOptions))
			}
		}
		event := jamf.Events[len(body)%len(jamf.Events)].Name
		byType := jamf.Envelope{Webhook: jamf.Webhook{Event: event}, Event: body}
		checkMessage(t, render.Message(byType, linkOptions))

		digest := []render.DigestEvent{{Envelope: byType}, {Envelope: byType}}
		if env, err := jamf.Parse(body); err == nil {
			digest = append(digest, render.DigestEvent{Envelope: env})
		}
		checkDigestLimits(t, render.Digest(digest, linkOptions), len(digest))
	})
}
