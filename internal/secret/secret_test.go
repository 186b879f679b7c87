package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	testKey  = "0123456789abcdef-test-key"
	otherKey = "another-key-entirely-0000"
	idA      = "5f0c8a9e-1d2b-4c3d-8e4f-0a1b2c3d4e5f"
	idB      = "7a1d9b0f-2e3c-4d4e-9f50-1b2c3d4e5f60"
)

func mustNew(t *testing.T, key string) *Keys {
	t.Helper()
	k, err := New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func mustRotating(t *testing.T, key, previous string) *Keys {
	t.Helper()
	k, err := NewWithPrevious(key, previous)
	if err != nil {
		t.Fatalf("NewWithPrevious: %v", err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustNew(t, testKey)
	url := "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
	sealed := k.Seal(WebhookURL, idA, url)
	if !strings.HasPrefix(sealed, "v2.") || strings.Contains(sealed, "hooks.slack.com") {
		t.Fatalf("sealed value %q is not a v2 seal or shows the plaintext", sealed)
	}
	if again := k.Seal(WebhookURL, idA, url); again == sealed {
		t.Error("two seals of the same value are equal; want a fresh nonce each time")
	}
	got, how, err := k.Open(WebhookURL, idA, sealed)
	if err != nil || got != url || how != Current {
		t.Fatalf("Open = %q, %v, %v; want %q, Current", got, how, err, url)
	}
	if got, err := k.OpenWebhook(idA, sealed); err != nil || got != url {
		t.Fatalf("OpenWebhook = %q, %v; want %q", got, err, url)
	}
}

// TestSealIsBound pins finding 2: a seal opens only for the installation
// and purpose it was made for, so a KV entry pointed at another channel's
// sealed webhook URL, or at a sealed token, gets nothing.
func TestSealIsBound(t *testing.T) {
	k := mustNew(t, testKey)
	sealed := k.Seal(WebhookURL, idA, "https://hooks.slack.com/services/T000/B000/AAAA")
	tests := []struct {
		name    string
		purpose Purpose
		id      string
	}{
		{"other installation", WebhookURL, idB},
		{"other purpose", JamfToken, idA},
		{"inbound auth purpose", InboundAuth, idA},
		{"no installation", WebhookURL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := k.Open(tt.purpose, tt.id, sealed)
			if !errors.Is(err, ErrOpen) || got != "" {
				t.Errorf("Open(%s, %q) = %q, %v; want ErrOpen and nothing", tt.purpose, tt.id, got, err)
			}
		})
	}
	if got, err := k.OpenWebhook(idB, sealed); !errors.Is(err, ErrOpen) || got != "" {
		t.Errorf("OpenWebhook(other installation) = %q, %v; want ErrOpen", got, err)
	}
}

func TestOpenFailsLoudly(t *testing.T) {
	k := mustNew(t, testKey)
	other := mustNew(t, otherKey)
	sealed := k.Seal(JamfToken, idA, "secret value")
	flipped := []byte(sealed)
	flipped[len(flipped)-3] ^= 1
	tests := []struct {
		name   string
		opener *Keys
		in     string
	}{
		{"wrong key", other, sealed},
		{"wrong key legacy", other, k.SealLegacy("secret value")},
		{"tampered", k, string(flipped)},
		{"no prefix", k, strings.TrimPrefix(sealed, "v2.")},
		{"unknown version", k, "v9." + strings.TrimPrefix(sealed, "v2.")},
		{"not b64", k, "v2.!!!"},
		{"short", k, "v2.AAAA"},
		{"empty", k, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := tt.opener.Open(JamfToken, idA, tt.in)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
			if got != "" {
				t.Errorf("Open returned %q with an error; want nothing", got)
			}
		})
	}
}

// TestOpenHow pins what Open says about each kind of seal, which is what
// decides whether it is sealed again.
func TestOpenHow(t *testing.T) {
	old := mustNew(t, otherKey)
	cur := mustNew(t, testKey)
	rotating := mustRotating(t, testKey, otherKey)
	tests := []struct {
		name   string
		opener *Keys
		sealed string
		want   Opened
	}{
		{"bound under the key", cur, cur.Seal(JamfToken, idA, "v"), Current},
		{"legacy under the key", cur, cur.SealLegacy("v"), Legacy},
		{"bound under the current key while rotating", rotating, cur.Seal(JamfToken, idA, "v"), Current},
		{"legacy under the current key while rotating", rotating, cur.SealLegacy("v"), Legacy},
		{"bound under the previous key", rotating, old.Seal(JamfToken, idA, "v"), Previous},
		{"legacy under the previous key", rotating, old.SealLegacy("v"), Previous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, how, err := tt.opener.Open(JamfToken, idA, tt.sealed)
			if err != nil || got != "v" || how != tt.want {
				t.Errorf("Open = %q, %v, %v; want \"v\", %v", got, how, err, tt.want)
			}
			if how.Stale() != (tt.want != Current) {
				t.Errorf("Stale() = %v for %v", how.Stale(), how)
			}
		})
	}
	// A bound seal under the previous key is still bound.
	if _, _, err := rotating.Open(JamfToken, idB, old.Seal(JamfToken, idA, "v")); !errors.Is(err, ErrOpen) {
		t.Errorf("a previous-key seal opened for another installation: %v", err)
	}
}

func TestHashAndSign(t *testing.T) {
	k := mustNew(t, testKey)
	other := mustNew(t, otherKey)
	h := k.HashToken("3f1c2a9e-token")
	if len(h) != 64 || h != k.HashToken("3f1c2a9e-token") {
		t.Errorf("HashToken = %q; want 64 stable hex characters", h)
	}
	if h == other.HashToken("3f1c2a9e-token") || h == k.HashToken("other") {
		t.Error("HashToken must depend on key and token")
	}
	if h == k.HashInboundAuth("3f1c2a9e-token") {
		t.Error("HashInboundAuth uses the token hash key; want a key of its own")
	}
	mac := k.Sign([]byte("state"))
	if !bytes.Equal(mac, k.Sign([]byte("state"))) {
		t.Error("Sign is not stable")
	}
	if bytes.Equal(mac, k.Sign([]byte("state2"))) || bytes.Equal(mac, other.Sign([]byte("state"))) {
		t.Error("Sign must depend on key and data")
	}
}

// TestRotation pins what SECRET_KEY_PREVIOUS opens and checks, and that
// everything new is made with SECRET_KEY.
func TestRotation(t *testing.T) {
	old := mustNew(t, otherKey)
	k := mustRotating(t, testKey, otherKey)
	cur := mustNew(t, testKey)

	if !bytes.Equal(cur.Sign([]byte("cookie")), k.Sign([]byte("cookie"))) {
		t.Error("Sign does not use SECRET_KEY")
	}
	if p := k.Previous(); p == nil || !bytes.Equal(p.Sign([]byte("cookie")), old.Sign([]byte("cookie"))) {
		t.Error("Previous().Sign does not use the previous key (what made the channel keys of channels added by hand)")
	}
	if got := k.HashToken("tok"); got != cur.HashToken("tok") {
		t.Error("HashToken does not use SECRET_KEY")
	}
	if p := k.Previous(); p == nil || p.HashToken("tok") != old.HashToken("tok") || p.Previous() != nil {
		t.Error("Previous() does not hash with the previous key alone")
	}
	if cur.Previous() != nil {
		t.Error("Previous() of keys without a previous key is not nil")
	}
	if _, how, err := cur.Open(WebhookURL, idA, k.Seal(WebhookURL, idA, "u")); err != nil || how != Current {
		t.Errorf("Seal does not use SECRET_KEY: %v, %v", how, err)
	}
	if !k.CheckInboundAuth("cred", old.HashInboundAuth("cred")) || !k.CheckInboundAuth("cred", cur.HashInboundAuth("cred")) {
		t.Error("CheckInboundAuth rejects a hash made with the current or the previous key")
	}
	if k.CheckInboundAuth("other", cur.HashInboundAuth("cred")) || cur.CheckInboundAuth("cred", old.HashInboundAuth("cred")) {
		t.Error("CheckInboundAuth accepts other credentials, or a key it does not hold")
	}
	if _, err := NewWithPrevious(testKey, testKey); err == nil {
		t.Error("NewWithPrevious accepted the same key twice")
	}
	if _, err := NewWithPrevious(testKey, "short"); err == nil {
		t.Error("NewWithPrevious accepted a short previous key")
	}
}

func TestFingerprint(t *testing.T) {
	k := mustNew(t, testKey)
	other := mustNew(t, otherKey)
	rotating := mustRotating(t, testKey, otherKey)
	fp := k.Fingerprint()
	if len(fp) != 32 || fp != mustNew(t, testKey).Fingerprint() || fp == other.Fingerprint() {
		t.Errorf("Fingerprint = %q; want 32 hex characters, stable per key, different across keys", fp)
	}
	if strings.Contains(fp, testKey) || strings.Contains(testKey, fp) {
		t.Errorf("Fingerprint %q shows the key", fp)
	}
	if rotating.Fingerprint() != fp {
		t.Error("the fingerprint of rotating keys is not that of SECRET_KEY")
	}
	if !rotating.Holds(fp) || !rotating.Holds(other.Fingerprint()) || k.Holds(other.Fingerprint()) || k.Holds("") {
		t.Error("Holds does not answer for exactly the current and previous keys")
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := New("short"); err == nil {
		t.Fatal("New(short) succeeded; want an error")
	}
}
