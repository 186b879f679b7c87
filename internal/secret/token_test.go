package secret

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	k := mustNew(t, "0123456789abcdef-test-key")
	now := time.Unix(1_700_000_000, 0)
	payload := []byte(`{"uid":"U1","tid":"T1"}`)
	tok := k.SignToken("session", payload, now.Add(time.Hour))
	if strings.ContainsAny(tok, "=+/ ;,") {
		t.Errorf("token %q has characters unsafe in a cookie or URL", tok)
	}
	got, err := k.OpenToken("session", tok, now)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("OpenToken = %q, %v; want %q", got, err, payload)
	}
}

func TestOpenTokenRefuses(t *testing.T) {
	k := mustNew(t, "0123456789abcdef-test-key")
	other := mustNew(t, "another-key-entirely-0000")
	now := time.Unix(1_700_000_000, 0)
	tok := k.SignToken("session", []byte("payload"), now.Add(time.Hour))
	payload64, _, _ := strings.Cut(tok, ".")
	mac := tok[strings.LastIndexByte(tok, '.')+1:]
	flipped := []byte(tok)
	flipped[0] ^= 1
	// A later expiry with the old signature must not pass.
	extended := payload64 + ".9999999999." + mac
	tests := []struct {
		name    string
		keys    *Keys
		token   string
		purpose string
		now     time.Time
		want    error
	}{
		{"expired", k, tok, "session", now.Add(time.Hour), ErrTokenExpired},
		{"other purpose", k, tok, "csrf", now, ErrTokenInvalid},
		{"other key", other, tok, "session", now, ErrTokenInvalid},
		{"payload altered", k, string(flipped), "session", now, ErrTokenInvalid},
		{"expiry extended", k, extended, "session", now, ErrTokenInvalid},
		{"empty", k, "", "session", now, ErrTokenInvalid},
		{"no dots", k, "abc", "session", now, ErrTokenInvalid},
		{"mac only", k, mac, "session", now, ErrTokenInvalid},
		{"huge", k, strings.Repeat("a", maxTokenLength+1), "session", now, ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.OpenToken(tt.purpose, tt.token, tt.now)
			if !errors.Is(err, tt.want) || got != nil {
				t.Errorf("OpenToken = %q, %v; want nil, %v", got, err, tt.want)
			}
		})
	}
}

// TestOpenTokenDuringRotation pins the key-rotation design for tokens:
// SECRET_KEY_PREVIOUS opens the sessions and forms signed before the
// rotation, new tokens are signed with SECRET_KEY only, and once the
// previous key is removed its tokens no longer open.
func TestOpenTokenDuringRotation(t *testing.T) {
	const oldKey, newKey = "the-old-secret-key-0123456789abcdef", "the-new-secret-key-fedcba9876543210"
	old := mustNew(t, oldKey)
	rotating := mustRotating(t, newKey, oldKey)
	after := mustNew(t, newKey)
	now := time.Unix(1_700_000_000, 0)
	before := old.SignToken("session", []byte("old session"), now.Add(time.Hour))
	signed := rotating.SignToken("session", []byte("new session"), now.Add(time.Hour))

	tests := []struct {
		name  string
		keys  *Keys
		token string
		want  string // payload; "" means ErrTokenInvalid
	}{
		{"old token, during the rotation", rotating, before, "old session"},
		{"new token, during the rotation", rotating, signed, "new session"},
		{"new token, signed with the new key alone", after, signed, "new session"},
		{"new token, under the old key alone", old, signed, ""},
		{"old token, after the rotation", after, before, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.OpenToken("session", tt.token, now)
			if tt.want == "" {
				if !errors.Is(err, ErrTokenInvalid) {
					t.Errorf("OpenToken = %q, %v; want ErrTokenInvalid", got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("OpenToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// A previous-key token for another purpose stays invalid.
	if _, err := rotating.OpenToken("csrf", before, now); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("OpenToken(csrf, old session token) = %v; want ErrTokenInvalid", err)
	}
}
