package console

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMrkdwn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]segment
	}{
		{"empty", "", nil},
		{"plain with entities", "a &lt;b&gt; &amp; c", [][]segment{{{Text: "a <b> & c"}}}},
		{"bold label and link", "*Policy ID:* <https://x.example/p?id=87&amp;a=1|87> | *Status:* Failed", [][]segment{{
			{Text: "Policy ID:", Bold: true}, {Text: " "}, {Text: "87", Link: "https://x.example/p?id=87&a=1"},
			{Text: " | "}, {Text: "Status:", Bold: true}, {Text: " Failed"},
		}}},
		{"two lines", "one\n_two_", [][]segment{{{Text: "one"}}, {{Text: "two", Italic: true}}}},
		{"a bare link", "<https://x.example>", [][]segment{{{Text: "https://x.example", Link: "https://x.example"}}}},
		{"a date keeps its text", "from <!date^1732871643^{time_secs}|09:14:03 UTC> on", [][]segment{{{Text: "from "}, {Text: "09:14:03 UTC"}, {Text: " on"}}}},
		{"snake_case stays", "a snake_case_name", [][]segment{{{Text: "a snake_case_name"}}}},
		{"a lone star", "5 * 3", [][]segment{{{Text: "5 * 3"}}}},
		{"an unclosed bracket", "a < b", [][]segment{{{Text: "a < b"}}}},
		{"a link inside bold", "*<https://x.example|MAC-1>*", [][]segment{{{Text: "MAC-1", Bold: true, Link: "https://x.example"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mrkdwn(tt.in)); diff != "" {
				t.Errorf("mrkdwn(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[string]string{"15m": "15 minutes", "1h": "1 hour", "24h": "1 day", "168h": "7 days", "90s": "1m30s", "2h30m": "150 minutes"} {
		if got := humanDuration(mustDuration(t, d)); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
