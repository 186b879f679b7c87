package registry

import (
	"testing"
	"time"
)

func TestParsePace(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1/s", time.Second, true},
		{"2/s", 500 * time.Millisecond, true},
		{"0.5/s", 2 * time.Second, true},
		{"30/min", 2 * time.Second, true},
		{"30/m", 2 * time.Second, true},
		{"1/h", time.Hour, true},
		{" 4 / s ", 250 * time.Millisecond, true},
		{"1000/s", time.Millisecond, true},
		{"2000/s", 0, false},
		{"0/s", 0, false},
		{"-1/s", 0, false},
		{"NaN/s", 0, false},
		{"1/day", 0, false},
		{"1s", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParsePace(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePace(%q) = %v, %v; want %v, ok %t", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok {
			back, err := ParsePace(FormatPace(got))
			if err != nil || back != got {
				t.Errorf("ParsePace(FormatPace(%v) = %q) = %v, %v", got, FormatPace(got), back, err)
			}
		}
	}
	for in, want := range map[time.Duration]string{time.Second: "1/s", 500 * time.Millisecond: "2/s", 2 * time.Second: "30/min", time.Hour: "1/h", 0: "default"} {
		if got := FormatPace(in); got != want {
			t.Errorf("FormatPace(%v) = %q, want %q", in, got, want)
		}
	}
}
