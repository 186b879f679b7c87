package bus

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
			// The first 12 bytes of SHA-256("a\x00{}") in base64url:
			// printf 'a\0{}' | sha256sum | cut -c1-24 | xxd -r -p | base64 | tr '+/' '-_'
			name: "known value", installation: "a", body: "{}", want: "bYo5opHbonmwKZo4",
		},
		{name: "empty body", installation: "a", body: "", want: sum12("a\x00")},
		{name: "uuid", installation: "6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11", body: `{"x":1}`, want: sum12("6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11\x00{\"x\":1}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eventMsgID(tt.installation, []byte(tt.body))
			if got != tt.want {
				t.Errorf("eventMsgID(%q, %q) = %q, want %q", tt.installation, tt.body, got, tt.want)
			}
			if len(got) != 16 {
				t.Errorf("eventMsgID(%q, %q) has %d characters, want 16", tt.installation, tt.body, len(got))
			}
		})
	}

	// The separator keeps the installation and the body apart: "ab"+"c"
	// and "a"+"bc" are different events.
	if eventMsgID("ab", []byte("c")) == eventMsgID("a", []byte("bc")) {
		t.Error("eventMsgID(\"ab\", \"c\") = eventMsgID(\"a\", \"bc\")")
	}
}

// sum12 is the definition eventMsgID implements.
func sum12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func TestReadAck(t *testing.T) {
	tests := []struct {
		name          string
		stream        string
		data          string
		wantSeq       uint64
		wantDuplicate bool
		wantErr       error // matched with errors.Is; nil for success
		wantAPICode   int   // the *jetstream.APIError's code, when there is one
	}{
		// Acknowledgements as nats-server 2.15 (embedded) and 2.9 send them.
		{name: "stored", stream: StreamEvents, data: `{"stream":"JAMF_EVENTS","seq":1}`, wantSeq: 1},
		{name: "stored, 2.9", stream: StreamEvents, data: `{"stream":"JAMF_EVENTS", "seq":12}`, wantSeq: 12},
		{name: "duplicate", stream: StreamEvents, data: `{"stream":"JAMF_EVENTS","seq":1,"duplicate": true}`, wantSeq: 1, wantDuplicate: true},
		{name: "duplicate, 2.9", stream: StreamEvents, data: `{"stream":"JAMF_EVENTS", "seq":1,"duplicate": true}`, wantSeq: 1, wantDuplicate: true},
		{name: "with a domain", stream: StreamDead, data: `{"stream":"JAMF_DEAD","domain":"hub","seq":7}`, wantSeq: 7},
		{name: "a key written", stream: streamDelivery, data: `{"stream":"KV_delivery","seq":18446744073709551615}`, wantSeq: 18446744073709551615},
		{
			name: "stored, in another order", stream: StreamEvents,
			data: `{"seq":3,"stream":"JAMF_EVENTS"}`, wantSeq: 3,
		},
		{
			name: "a domain named error is still a success", stream: StreamEvents,
			data: `{"stream":"JAMF_EVENTS","seq":3,"domain":"error"}`, wantSeq: 3,
		},
		{
			name: "stream full", stream: StreamEvents,
			data:    `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"JAMF_EVENTS","seq":0}`,
			wantErr: &jetstream.APIError{ErrorCode: 10077}, wantAPICode: 503,
		},
		{
			name: "error after the stream", stream: StreamEvents,
			data:    `{"stream":"JAMF_EVENTS","seq":0,"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`,
			wantErr: &jetstream.APIError{ErrorCode: 10077}, wantAPICode: 503,
		},
		{
			name: "expected stream does not match", stream: StreamEvents,
			data:    `{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"},"stream":"OTHER","seq":0}`,
			wantErr: &jetstream.APIError{ErrorCode: 10060}, wantAPICode: 400,
		},
		{
			name: "a key changed by another", stream: streamDelivery,
			data:    `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 8"},"stream":"KV_delivery","seq":0}`,
			wantErr: &jetstream.APIError{ErrorCode: 10071}, wantAPICode: 400,
		},
		{name: "another stream's ack", stream: StreamEvents, data: `{"stream":"OTHER","seq":1}`, wantErr: jetstream.ErrInvalidJSAck},
		{name: "no stream", stream: StreamEvents, data: `{"seq":1}`, wantErr: jetstream.ErrInvalidJSAck},
		{name: "empty", stream: StreamEvents, data: ``, wantErr: jetstream.ErrInvalidJSAck},
		{name: "not JSON", stream: StreamEvents, data: `+OK`, wantErr: jetstream.ErrInvalidJSAck},
		{name: "cut short", stream: StreamEvents, data: `{"stream":"JAMF_EVENTS","seq":1`, wantErr: jetstream.ErrInvalidJSAck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := readAck([]byte(tt.data), tt.stream)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("readAck(%s) error = %v, want nil", tt.data, err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("readAck(%s) error = %v, want %v", tt.data, err, tt.wantErr)
			}
			if ack.duplicate != tt.wantDuplicate || ack.seq != tt.wantSeq {
				t.Errorf("readAck(%s) = seq %d, duplicate %v; want seq %d, duplicate %v", tt.data, ack.seq, ack.duplicate, tt.wantSeq, tt.wantDuplicate)
			}
			if tt.wantAPICode != 0 {
				var apiErr *jetstream.APIError
				if !errors.As(err, &apiErr) || apiErr.Code != tt.wantAPICode {
					t.Errorf("readAck(%s) error = %v, want an APIError with code %d", tt.data, err, tt.wantAPICode)
				}
			}
		})
	}
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
