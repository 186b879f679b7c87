package bus

import (
	"errors"
	"strings"
	"testing"
)

func TestHeaderSafe(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{name: "kept", in: "ComputerAdded", max: 64, want: "ComputerAdded"},
		{name: "line breaks", in: "a\r\nb\tc", max: 64, want: "a  b c"},
		{name: "trimmed", in: "\n x \n", max: 64, want: "x"},
		{name: "cut", in: "abcdef", max: 3, want: "abc"},
		{name: "cut before a split character", in: "aé", max: 2, want: "a"},
		{name: "invalid utf-8", in: "a\xffb", max: 64, want: "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerSafe(tt.in, tt.max); got != tt.want {
				t.Errorf("headerSafe(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"6f1c7a9e-0a4b-4c4e-9d51-0b5f2c1f7c11", true},
		{"manual_channel-1", true},
		{"", false},
		{"a.b", false},
		{"a*", false},
		{">", false},
		{"a b", false},
		{"a\nb", false},
		{"a\xffb", false},
		{strings.Repeat("x", 257), false},
	}
	for _, tt := range tests {
		err := validID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("validID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidInstallationID) {
			t.Errorf("validID(%q) = %v, want ErrInvalidInstallationID", tt.id, err)
		}
	}
}

// TestConnectErrorHidesCredentials checks that a NATS URL the client
// cannot parse, which it quotes in its error, leaves no credential in the
// error Connect returns.
func TestConnectErrorHidesCredentials(t *testing.T) {
	for _, u := range []string{"nats://u:p-secret@%zz:4222", "nats://TOKEN-secret@%zz:4222"} {
		_, err := Connect(t.Context(), Config{URL: u}, nil)
		if err == nil {
			t.Fatalf("Connect(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Connect error shows a credential: %v", err)
		}
	}
}
