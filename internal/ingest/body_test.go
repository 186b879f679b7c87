package ingest

import (
	"testing"
	"time"
)

func TestMediaKind(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		want        kind
	}{
		{name: "missing", contentType: "", want: kindJSON},
		{name: "json", contentType: "application/json", want: kindJSON},
		{name: "json with charset", contentType: "application/json; charset=UTF-8", want: kindJSON},
		{name: "json upper case, spaces", contentType: "  Application/JSON ;charset=utf-8", want: kindJSON},
		{name: "text/xml", contentType: "text/xml", want: kindXML},
		{name: "application/xml with charset", contentType: "application/xml; charset=\"utf-8\"", want: kindXML},
		{name: "form", contentType: "application/x-www-form-urlencoded", want: kindUnsupported},
		{name: "plain text", contentType: "text/plain", want: kindUnsupported},
		{name: "json suffix", contentType: "application/problem+json", want: kindUnsupported},
		{name: "parameters only", contentType: "; charset=utf-8", want: kindJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mediaKind(tt.contentType); got != tt.want {
				t.Errorf("mediaKind(%q) = %d, want %d", tt.contentType, got, tt.want)
			}
		})
	}
}

func TestValidToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{name: "uuid", token: "5f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7a90", want: true},
		{name: "uuid without dashes", token: "5f0c8a4e2b7d4c1e9a3f6d8b2e1c7a90", want: true},
		{name: "base64url", token: "q1w2e3r4t5y6u7i8o9p0_-AZ", want: true},
		{name: "empty", token: "", want: false},
		{name: "too short", token: "abc123", want: false},
		{name: "too long", token: "5f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7a905f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7a90", want: false},
		{name: "dot", token: "5f0c8a4e.2b7d.4c1e.9a3f.6d8b2e1c7a90", want: false},
		{name: "space", token: "5f0c8a4e 2b7d 4c1e 9a3f 6d8b2e1c7a90", want: false},
		{name: "non-ascii", token: "5f0c8a4e-2b7d-4c1e-9a3f-6d8b2e1c7aé", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validToken(tt.token); got != tt.want {
				t.Errorf("validToken(%q) = %v, want %v", tt.token, got, tt.want)
			}
		})
	}
}

func TestMaxBody(t *testing.T) {
	tests := []struct {
		name                     string
		configured, transportMax int64
		want                     int64
	}{
		{name: "defaults", want: DefaultMaxBodyBytes},
		{name: "no transport limit", configured: 5 << 20, want: 5 << 20},
		{name: "nats default payload", configured: 1 << 20, transportMax: 1 << 20, want: 1<<20 - HeaderRoom},
		{name: "room to spare", configured: 1 << 20, transportMax: 8 << 20, want: 1 << 20},
		{name: "default under a small server", transportMax: 64 << 10, want: 64<<10 - HeaderRoom},
		{name: "absurd server", configured: 1 << 20, transportMax: 100, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxBody(tt.configured, tt.transportMax); got != tt.want {
				t.Errorf("MaxBody(%d, %d) = %d, want %d", tt.configured, tt.transportMax, got, tt.want)
			}
		})
	}
}

func TestRateLimiter(t *testing.T) {
	var l rateLimiter
	start := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at             time.Duration
		wantAllowed    bool
		wantSuppressed int
	}{
		{at: 0, wantAllowed: true},
		{at: 100 * time.Millisecond},
		{at: 900 * time.Millisecond},
		{at: time.Second, wantAllowed: true, wantSuppressed: 2},
		{at: 1500 * time.Millisecond},
		{at: 5 * time.Second, wantAllowed: true, wantSuppressed: 1},
	}
	for _, s := range steps {
		n, ok := l.allow(start.Add(s.at))
		if ok != s.wantAllowed || n != s.wantSuppressed {
			t.Errorf("allow at +%s = %d, %v; want %d, %v", s.at, n, ok, s.wantSuppressed, s.wantAllowed)
		}
	}
}
