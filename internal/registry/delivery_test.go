package registry

import (
	"strings"
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

func TestParseDelivery(t *testing.T) {
	cur := DeliverySettings{Interval: time.Second, Burst: 3, Digests: DigestsOn, DigestAfter: 10 * time.Second}
	tests := []struct {
		name    string
		given   map[string]string
		want    DeliverySettings
		problem string // a part of the error; "" for none
	}{
		{"nothing given keeps all", nil, cur, ""},
		{"one setting", map[string]string{SettingPace: "30/min"}, DeliverySettings{Interval: 2 * time.Second, Burst: 3, Digests: DigestsOn, DigestAfter: 10 * time.Second}, ""},
		{"all four", map[string]string{SettingPace: " 2/s ", SettingBurst: "5", SettingDigests: "OFF", SettingDigestAfter: "1m"},
			DeliverySettings{Interval: 500 * time.Millisecond, Burst: 5, Digests: DigestsOff, DigestAfter: time.Minute}, ""},
		{"defaults, as words and blanks", map[string]string{SettingPace: "default", SettingBurst: "", SettingDigests: "Default", SettingDigestAfter: " "},
			DeliverySettings{}, ""},
		{"burst 0 is the default", map[string]string{SettingBurst: "0"}, DeliverySettings{Interval: time.Second, Digests: DigestsOn, DigestAfter: 10 * time.Second}, ""},
		{"a bad pace", map[string]string{SettingPace: "fast"}, cur, `pace "fast" is not N/s`},
		{"a pace out of range", map[string]string{SettingPace: "5000/s"}, cur, "out of range"},
		{"a bad burst", map[string]string{SettingBurst: "lots"}, cur, `burst "lots" is not a number`},
		{"a burst out of range", map[string]string{SettingBurst: "101"}, cur, "burst 101 is out of range"},
		{"bad digests", map[string]string{SettingDigests: "sometimes"}, cur, `digest "sometimes": give on, off or default`},
		{"a bad digest-after", map[string]string{SettingDigestAfter: "-5s"}, cur, `digest-after "-5s"`},
		{"an unknown setting", map[string]string{"speed": "1/s"}, cur, `"speed" is not a delivery setting`},
		{"every problem at once", map[string]string{SettingPace: "fast", SettingBurst: "lots"}, cur, `pace "fast" is not N/s, N/min or N/h (or default); burst "lots"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDelivery(cur, tt.given)
			switch {
			case tt.problem == "" && err != nil:
				t.Fatalf("ParseDelivery(%v): %v", tt.given, err)
			case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Fatalf("ParseDelivery(%v) = %v; want an error with %q", tt.given, err, tt.problem)
			}
			if got != tt.want {
				t.Errorf("ParseDelivery(%v) = %+v, want %+v", tt.given, got, tt.want)
			}
		})
	}
}

func TestCheckBasicCredential(t *testing.T) {
	tests := []struct {
		user, password, problem string
	}{
		{"jamf", "s3cret", ""},
		{"", "s3cret", "user name is empty"},
		{"ja:mf", "s3cret", "without a colon"},
		{"ja\nmf", "s3cret", "without a colon"},
		{strings.Repeat("u", MaxCredentialLength+1), "s3cret", "longer than"},
		{"jamf", "", "password is empty"},
		{"jamf", "s3\x00cret", "printable"},
		{"jamf", strings.Repeat("p", MaxCredentialLength+1), "longer than"},
	}
	for _, tt := range tests {
		err := CheckBasicCredential(tt.user, tt.password)
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("CheckBasicCredential(%q, %q) = %v", tt.user, tt.password, err)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
			t.Errorf("CheckBasicCredential(%q, %q) = %v; want an error with %q", tt.user, tt.password, err, tt.problem)
		case err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password):
			t.Errorf("CheckBasicCredential's error repeats the password: %v", err)
		}
	}
}
