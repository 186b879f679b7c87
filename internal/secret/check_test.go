package secret_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/secret"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{name: "openssl rand -hex 32", key: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", ok: true},
		{name: "32 hex characters", key: "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c", ok: true},
		{name: "openssl rand -base64 32", key: "q3Zp8J1xV0mR6tYwK2sL9dN4bH7cF5gA0eU1iO3kP6M=", ok: true},
		{name: "a long passphrase", key: "marble otter violin harbour quietly 42", ok: true},
		{name: "empty", key: ""},
		{name: "16 characters (the old minimum)", key: "3f1e9a7c0b5d2e8f"},
		{name: "31 characters", key: "3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5"},
		{name: "the kubernetes sample", key: "change-me-to-openssl-rand-hex-32"},
		{name: "change-me in capitals", key: "CHANGE_ME_0123456789abcdefghijklmnop"},
		{name: "changeme followed by randomness", key: "changeme-3f1e9a7c0b5d2e8f4a6c1b9d7e0f2a5c"},
		{name: "unexpanded command", key: "$(openssl rand -hex 32)-not-run-by-the-shell"},
		{name: "replace me", key: "replace-me-with-a-real-secret-key-please"},
		{name: "your secret key", key: "your-secret-key-goes-here-0123456789"},
		{name: "one character", key: strings.Repeat("a", 64)},
		{name: "two characters", key: strings.Repeat("ab", 20)},
		{name: "a pattern repeated", key: strings.Repeat("0123456789abcdef", 2)},
		{name: "a word repeated", key: strings.Repeat("password", 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := secret.CheckKey(tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckKey = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, secret.ErrWeakKey) {
				t.Errorf("CheckKey = %v, want ErrWeakKey", err)
			}
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("CheckKey's error %q contains the key", err)
			}
		})
	}
}
