package render

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/slack"
)

func TestEsc(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "MBP-01", want: "MBP-01"},
		{name: "specials", in: "<!channel> & >", want: "&lt;!channel&gt; &amp; &gt;"},
		{name: "entity escaped again", in: "&amp;", want: "&amp;amp;"},
		{name: "line breaks and tabs", in: "a\nb\r\tc", want: "a b  c"},
		{name: "C1 control and line separator", in: "a\u0085b\u2028c", want: "a b c"},
		{name: "bidi overrides dropped", in: "a\u202eb\u2066c", want: "abc"},
		{name: "invalid UTF-8", in: "a\xffb", want: "a\ufffdb"},
		{name: "unicode kept", in: "ünïcødé 🦌", want: "ünïcødé 🦌"},
		{name: "bold, italics, strike, code", in: "*b* _i_ ~s~ `c` ```p```", want: "∗b∗ ＿i＿ ∼s∼ ˋcˋ ˋˋˋpˋˋˋ"},
		{name: "underscore inside a word kept", in: "a_b snake_case_9 _x x_ a__b é_x", want: "a_b snake_case_9 ＿x x＿ a＿＿b é＿x"},
		{name: "URL", in: "https://evil.example/login?a=b", want: "https∶//evil․example/login?a=b"},
		{name: "any scheme", in: "slack://open ftp://x", want: "slack∶//open ftp∶//x"},
		{name: "domain and email", in: "www.evil.example a@b.co", want: "www․evil․example a@b․co"},
		{name: "dot before a non-ASCII letter", in: "evil.рф", want: "evil․рф"},
		{name: "invisible characters skipped when looking ahead", in: "https:\u2060/\u200b/x .\ufeffcom", want: "https∶\u2060/\u200b/x ․\ufeffcom"},
		{name: "dropped override skipped when looking ahead", in: "a.\u202ecom", want: "a․com"},
		{name: "numbers, times and sentences kept", in: "14.6.1 203.0.113.45 09:14:03 end. Next", want: "14.6.1 203.0.113.45 09:14:03 end. Next"},
		{name: "colon alone kept", in: "javascript:alert(1) a:/b", want: "javascript:alert(1) a:/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := esc(tt.in); got != tt.want {
				t.Errorf("esc(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in != tt.want && !needsEscape(tt.in) {
				t.Errorf("needsEscape(%q) = false, but esc changes it", tt.in)
			}
		})
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "short enough", in: "abc", max: 3, want: "abc"},
		{name: "cut", in: "abcdefgh", max: 6, want: "abc…"},
		{name: "rune boundary", in: "ééééé", max: 7, want: "éé…"},
		{name: "entity not split", in: "ab&amp;cd", max: 8, want: "ab…"},
		{name: "whole entity kept", in: "ab&amp;cdef", max: 10, want: "ab&amp;…"},
		{name: "no room", in: "abcdef", max: 2, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max {
				t.Errorf("clip(%q, %d) is %d bytes", tt.in, tt.max, len(got))
			}
		})
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		name   string
		items  []string
		total  int
		budget int
		want   string
	}{
		{name: "all fit", items: []string{"1", "2"}, total: 2, budget: 100, want: "1, 2"},
		{name: "more than sent", items: []string{"1", "2"}, total: 5, budget: 100, want: "1, 2 … and 3 more"},
		{name: "budget", items: []string{"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"}, total: 3, budget: 50, want: "aaaaaaaaaa … and 2 more"},
		{name: "nothing fits", items: []string{strings.Repeat("a", 100)}, total: 1, budget: 50, want: "… and 1 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.items, tt.total, tt.budget); got != tt.want {
				t.Errorf("list() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJoinLines(t *testing.T) {
	lines := []string{strings.Repeat("a", 50), strings.Repeat("b", 50), strings.Repeat("c", 50)}
	if got, want := joinLines(lines, 1000), strings.Join(lines, "\n"); got != want {
		t.Errorf("joinLines() = %q, want %q", got, want)
	}
	if got, want := joinLines(lines, 150), lines[0]+"\n"+lines[1]+"\n… and 1 more line"; got != want {
		t.Errorf("joinLines() = %q, want %q", got, want)
	}
}

func TestSafeURL(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{in: "https://jss.example.com/view/patch/7/report", want: "https://jss.example.com/view/patch/7/report"},
		{in: " http://jss.example.com:8443//patch.html?id=7&o=r ", want: "http://jss.example.com:8443//patch.html?id=7&o=r"},
		{in: "javascript:alert(1)"},
		{in: "mailto:a@example.com"},
		{in: "https://a.example/|<!channel>"},
		{in: "https://a.example/ x"},
		{in: "https://u:p@a.example/"},
		{in: "/relative/path"},
		{in: "https://a.example/ünï"},
		{in: "https://a.example/" + strings.Repeat("a", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := safeURL(tt.in); got != tt.want {
				t.Errorf("safeURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFitShrinksOversizedMessages(t *testing.T) {
	fields := make([]slack.Field, 20)
	for i := range fields {
		fields[i] = slack.Field{Title: "t", Value: strings.Repeat("<", 2000)}
	}
	m := fit(slack.Message{Attachments: []slack.Attachment{{
		Title:    "title",
		Fallback: strings.Repeat("&", 5000),
		Text:     strings.Repeat("\"", 40_000),
		Fields:   fields,
	}}})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxMessageJSON {
		t.Errorf("fit() left %d bytes, want at most %d", len(b), maxMessageJSON)
	}
	if a := m.Attachments[0]; a.Title != "title" || a.Text == "" {
		t.Errorf("fit() dropped the title or all the text: %+v", a)
	}
}

// TestJSONBound checks that jsonBound never undercounts, for messages
// whose strings need the longest escapes and for plain ones.
func TestJSONBound(t *testing.T) {
	worst := strings.Repeat("\x01<>&\u2028\"\\", 20)
	tests := []struct {
		name string
		m    slack.Message
	}{
		{name: "empty", m: slack.Message{}},
		{name: "plain", m: slack.Message{Text: "hello", Attachments: []slack.Attachment{{Title: "t", Ts: 1 << 40, MrkdwnIn: []string{"text", "fields"}}}}},
		{name: "escapes everywhere", m: slack.Message{Text: worst, Attachments: []slack.Attachment{{
			Fallback: worst, Color: worst, Pretext: worst, Title: worst, TitleLink: worst, Text: worst,
			Fields:   []slack.Field{{Title: worst, Value: worst, Short: true}, {Title: "", Value: ""}},
			ThumbURL: worst, Footer: worst, Ts: -1 << 62, MrkdwnIn: []string{worst, ""},
		}, {}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonBound(tt.m); got < len(b) {
				t.Errorf("jsonBound = %d, below the %d bytes of its JSON", got, len(b))
			}
		})
	}
}
