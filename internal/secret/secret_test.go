package secret

import (
	"errors"
	"strings"
	"testing"
)

func mustNew(t *testing.T, key string) *Keys {
	t.Helper()
	k, err := New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustNew(t, "0123456789abcdef-test-key")
	url := "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
	sealed := k.Seal(url)
	if strings.Contains(sealed, "hooks.slack.com") {
		t.Fatalf("sealed value %q shows the plaintext", sealed)
	}
	if again := k.Seal(url); again == sealed {
		t.Error("two seals of the same value are equal; want a fresh nonce each time")
	}
	got, err := k.Open(sealed)
	if err != nil || got != url {
		t.Fatalf("Open = %q, %v; want %q", got, err, url)
	}
}

func TestOpenFailsLoudly(t *testing.T) {
	k := mustNew(t, "0123456789abcdef-test-key")
	other := mustNew(t, "another-key-entirely-0000")
	sealed := k.Seal("secret value")
	flipped := []byte(sealed)
	flipped[len(flipped)-3] ^= 1
	tests := map[string]string{
		"wrong key": "",
		"tampered":  string(flipped),
		"no prefix": strings.TrimPrefix(sealed, "v1."),
		"not b64":   "v1.!!!",
		"short":     "v1.AAAA",
		"empty":     "",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			opener := k
			if name == "wrong key" {
				opener, in = other, sealed
			}
			got, err := opener.Open(in)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
			if got != "" {
				t.Errorf("Open returned %q with an error; want nothing", got)
			}
		})
	}
}

func TestHashAndSign(t *testing.T) {
	k := mustNew(t, "0123456789abcdef-test-key")
	other := mustNew(t, "another-key-entirely-0000")
	h := k.HashToken("3f1c2a9e-token")
	if len(h) != 64 || h != k.HashToken("3f1c2a9e-token") {
		t.Errorf("HashToken = %q; want 64 stable hex characters", h)
	}
	if h == other.HashToken("3f1c2a9e-token") || h == k.HashToken("other") {
		t.Error("HashToken must depend on key and token")
	}
	mac := k.Sign([]byte("state"))
	if !k.Verify([]byte("state"), mac) {
		t.Error("Verify rejected its own signature")
	}
	if k.Verify([]byte("state2"), mac) || other.Verify([]byte("state"), mac) {
		t.Error("Verify accepted a signature over other data or from another key")
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := New("short"); err == nil {
		t.Fatal("New(short) succeeded; want an error")
	}
}
