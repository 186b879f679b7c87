package bus

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

func TestEventMsgID(t *testing.T) {
	tests := []struct {
		name         string
		installation string
		body         string
		want         string
	}{
		{
			// The first 16 bytes of SHA-256("a\x00{}") in base64url:
			// printf 'a\0{}' | sha256sum | cut -c1-32 | xxd -r -p | base64 | tr '+/' '-_' | tr -d =
			name: "known value", installation: "a", body: "{}", want: "bYo5opHbonmwKZo4tYNaIw",
		},
		{name: "empty body", installation: "a", body: "", want: sum16("a\x00")},
		{name: "uuid", installation: "6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11", body: `{"x":1}`, want: sum16("6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11\x00{\"x\":1}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eventMsgID(tt.installation, []byte(tt.body))
			if got != tt.want {
				t.Errorf("eventMsgID(%q, %q) = %q, want %q", tt.installation, tt.body, got, tt.want)
			}
			if len(got) != 22 {
				t.Errorf("eventMsgID(%q, %q) has %d characters, want 22", tt.installation, tt.body, len(got))
			}
		})
	}

	// The separator keeps the installation and the body apart: "ab"+"c"
	// and "a"+"bc" are different events.
	if eventMsgID("ab", []byte("c")) == eventMsgID("a", []byte("bc")) {
		t.Error("eventMsgID(\"ab\", \"c\") = eventMsgID(\"a\", \"bc\")")
	}
}

// sum16 is the definition eventMsgID implements.
func sum16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// BenchmarkEventMsg measures what Publish does before it sends: the
// message with its headers, and its ID, for a 1 KB body.
func BenchmarkEventMsg(b *testing.B) {
	r := jamf.Received{
		InstallationID: "11111111-aaaa-4bbb-8ccc-000000000001",
		Event:          "ComputerCheckIn",
		ReceivedAt:     time.Now(),
		Body:           bytes.Repeat([]byte("x"), 1033),
	}
	b.ReportAllocs()
	for b.Loop() {
		m := eventMsg(r)
		m.Header[jetstream.MsgIDHeader] = []string{eventMsgID(r.InstallationID, r.Body)}
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"2.9.10", false},
		{"2.10.0", true},
		{"2.15.2", true},
		{"2.11.0-RC.1", true},
		{"3.0.0", true},
		{"1.4.1", false},
		{"", true},
		{"weird", true},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, 2, 10); got != tt.want {
			t.Errorf("versionAtLeast(%q, 2, 10) = %t, want %t", tt.v, got, tt.want)
		}
	}
}
