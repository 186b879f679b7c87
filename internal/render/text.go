package render

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackalope-app/jackalope/internal/slack"
)

// none stands for a value the event did not carry.
const none = "—"

// ellipsis marks text cut to fit a limit.
const ellipsis = "…"

// card is a message being built. Every string in it is already escaped
// mrkdwn, except title, which is plain text escaped by the constructors.
type card struct {
	title     string
	titleLink string
	color     string
	icon      string
	summary   string
	lines     []string
	fields    []slack.Field
	// item names the event's object in a digest's list, linked to it where
	// possible, e.g. a computer's name; "" when nothing names it.
	item string
	// outcome is how the event ended, for events that have a result.
	outcome outcome
}

// fallback is the plain one-line form Slack shows in notifications.
func (c *card) fallback() string {
	if c.summary == "" {
		return clip(c.title, maxFallback)
	}
	return clip(c.title+": "+c.summary, maxFallback)
}

// line adds a text line made of the non-empty parts joined by " | ".
func (c *card) line(parts ...string) {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	if len(kept) > 0 {
		c.lines = append(c.lines, strings.Join(kept, " | "))
	}
}

// field adds a short field with a Jamf value, unless the value is empty or
// the card already has maxFields fields.
func (c *card) field(title, value string) {
	value = strings.TrimSpace(value)
	if value == "" || len(c.fields) >= maxFields {
		return
	}
	c.fields = append(c.fields, slack.Field{Title: title, Value: clip(esc(value), maxFieldValue), Short: true})
}

// slackField is a short field whose value Jackalope wrote itself.
func slackField(title, value string) slack.Field {
	return slack.Field{Title: title, Value: value, Short: true}
}

// esc is the one escaper of Jamf text (device, user, policy and group names,
// URLs, anything from a Jamf body) for Slack mrkdwn on one line:
//
//   - &, < and > become entities, so a value cannot ping anyone (<!channel>,
//     <@U…>), open a link (<url|label>) or a date token;
//   - invalid UTF-8 becomes U+FFFD, line breaks and other control characters
//     become spaces and bidirectional overrides are dropped, so a value can
//     neither forge a line nor reorder the text around it;
//   - the formatting characters become look-alikes that Slack never reads as
//     formatting: * → ∗ (U+2217), ~ → ∼ (U+223C), ` → ˋ (U+02CB), and _ → ＿
//     (U+FF3F) unless it sits between two ASCII letters or digits, where Slack
//     never reads it as italics (snake_case stays as typed);
//   - what Slack would auto-link is broken the same way: the colon of "://"
//     becomes ∶ (U+2236) and a dot before a letter becomes ․ (U+2024), so
//     neither https://evil.example/login, nor evil.example, nor
//     someone@evil.example is a link, while versions and IP addresses
//     (14.6.1, 203.0.113.45) keep their dots.
//
// Slack mrkdwn has no escape character. Look-alikes were chosen over zero-width
// characters placed next to the markers: Slack's parser treats a zero-width
// space or word joiner as a word boundary, which other senders insert precisely
// to make formatting apply next to text, so they cannot be relied on to stop
// it; a look-alike is not a marker whatever the parser does, and reads the
// same. The cost is that a copied value differs from Jamf's in those
// characters. Jackalope's own formatting (bold labels, deep links) is written
// around escaped values and is never passed through esc.
func esc(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
		case r < utf8.RuneSelf:
			if l := lookalike(s, i); l != "" {
				b.WriteString(l)
			} else {
				b.WriteByte(byte(r))
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// needsEscape reports whether esc would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '&' || c == '<' || c == '>' || c < 0x20 || c >= 0x7f:
			return true
		case c == '*' || c == '~' || c == '`' || c == '_' || c == ':' || c == '.':
			if lookalike(s, i) != "" {
				return true
			}
		}
	}
	return false
}

// lookalike returns what esc writes instead of the ASCII character s[i] when
// Slack could read it as formatting or as part of a link, or "" to keep it.
// Looking ahead it skips invisible format characters (zero-width spaces,
// joiners, bidirectional marks), so that "https:\u200b//" is caught too.
func lookalike(s string, i int) string {
	switch s[i] {
	case '*':
		return "\u2217"
	case '~':
		return "\u223c"
	case '`':
		return "\u02cb"
	case '_':
		if i > 0 && i+1 < len(s) && isAlnum(s[i-1]) && isAlnum(s[i+1]) {
			return ""
		}
		return "\uff3f"
	case ':':
		if r, j := visibleAt(s, i+1); r == '/' {
			if r, _ := visibleAt(s, j); r == '/' {
				return "\u2236"
			}
		}
	case '.':
		if r, _ := visibleAt(s, i+1); unicode.IsLetter(r) {
			return "\u2024"
		}
	}
	return ""
}

// visibleAt returns the first rune of s at or after byte i that is not an
// invisible format character (Unicode category Cf), and the index just past
// it; utf8.RuneError and len(s) at the end.
func visibleAt(s string, i int) (rune, int) {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if r < utf8.RuneSelf || !unicode.Is(unicode.Cf, r) {
			return r, i
		}
	}
	return utf8.RuneError, i
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// clip cuts escaped text to at most max bytes, ending it with "…". It cuts
// between characters and never inside an entity such as &amp;.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(ellipsis)
	if cut <= 0 {
		return ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	s = s[:cut]
	if amp := strings.LastIndexByte(s, '&'); amp >= 0 && amp >= len(s)-len("&amp;") && !strings.Contains(s[amp:], ";") {
		s = s[:amp]
	}
	return s + ellipsis
}

// val is a Jamf value ready for the text: escaped, cut to maxValue, and
// none when empty.
func val(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return none
	}
	return clip(strings.TrimSpace(esc(s)), maxValue)
}

// short is a Jamf value ready for a list: escaped and cut to maxItemName.
func short(s string) string {
	return clip(esc(strings.TrimSpace(s)), maxItemName)
}

// pair formats "*Label:* value"; value is already escaped.
func pair(label, value string) string {
	return "*" + label + ":* " + value
}

// optPair is pair for an optional Jamf value: empty when the value is.
func optPair(label, value string) string {
	if strings.TrimSpace(value) == "" {
		return ""
	}
	return pair(label, val(value))
}

// bold formats an escaped value in bold, keeping the markers off spaces so
// that Slack still sees them.
func bold(value string) string {
	return "*" + strings.TrimSpace(value) + "*"
}

// id formats a Jamf ID, linked when url is set; none when the ID is missing.
func id(n int64, url string) string {
	if n <= 0 {
		return none
	}
	return link(url, strconv.FormatInt(n, 10))
}

// status names the outcome of a policy or operation.
func status(ok *bool) string {
	if o := outcomeOf(ok); o != outcomeUnknown {
		return outcomeLabels[o]
	}
	return "Unknown"
}

// outcome is how an event with a result ended. Digests list an event type's
// events by outcome, in outcomeOrder.
type outcome uint8

const (
	outcomeNone outcome = iota // the event has no result, or says none
	outcomeFailed
	outcomeDeferred
	outcomeUnknown
	outcomeSucceeded
	numOutcomes
)

// outcomeOrder lists outcomes worst first.
var outcomeOrder = [numOutcomes]outcome{outcomeFailed, outcomeDeferred, outcomeUnknown, outcomeSucceeded, outcomeNone}

// outcomeLabels name the outcomes in a digest.
var outcomeLabels = [numOutcomes]string{
	outcomeNone:      "Other",
	outcomeFailed:    "Failed",
	outcomeDeferred:  "Not now",
	outcomeUnknown:   "Status unknown",
	outcomeSucceeded: "Succeeded",
}

// outcomeOf is the outcome of a policy or operation.
func outcomeOf(ok *bool) outcome {
	switch {
	case ok == nil:
		return outcomeUnknown
	case *ok:
		return outcomeSucceeded
	default:
		return outcomeFailed
	}
}

// statusColor colours an outcome: green success, red failure, grey unknown.
func statusColor(ok *bool) string {
	switch outcomeOf(ok) {
	case outcomeSucceeded:
		return colorGreen
	case outcomeFailed:
		return colorRed
	}
	return colorGrey
}

// when formats a time for the text, in UTC.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// joinLines joins text lines with newlines, keeping whole lines while they
// fit in max bytes and saying how many were left out.
func joinLines(lines []string, max int) string {
	const reserve = 40 // room for the "… and N more lines" note
	var b strings.Builder
	for i, l := range lines {
		need := len(l)
		if i > 0 {
			need++
		}
		if b.Len()+need > max-reserve {
			rest := len(lines) - i
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(ellipsis + " and " + strconv.Itoa(rest) + " more " + plural(rest, "line", "lines"))
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

// list joins escaped items with ", " while they fit in budget bytes and at
// most maxListItems, then says how many of total were left out.
func list(items []string, total, budget int) string {
	var b strings.Builder
	shown := 0
	for _, it := range items {
		if it == "" {
			continue
		}
		if shown == maxListItems || b.Len()+len(it)+2 > budget-30 {
			break
		}
		if shown > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it)
		shown++
	}
	if rest := total - shown; rest > 0 {
		if shown > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ellipsis + " and " + strconv.Itoa(rest) + " more")
	}
	return b.String()
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// osText formats an OS version and build, e.g. "macOS 14.6.1 (23G93)".
func osText(prefix, version, build string) string {
	version, build = strings.TrimSpace(version), strings.TrimSpace(build)
	if version == "" && build == "" {
		return ""
	}
	var parts []string
	if prefix != "" {
		parts = append(parts, prefix)
	}
	if version != "" {
		parts = append(parts, version)
	}
	if build != "" {
		parts = append(parts, "("+build+")")
	}
	return strings.Join(parts, " ")
}

// summary joins a name and a secondary identifier for the fallback, e.g.
// "MBP-01 (C02X)"; both are Jamf values.
func summary(name, detail string) string {
	name, detail = strings.TrimSpace(name), strings.TrimSpace(detail)
	switch {
	case name != "" && detail != "":
		return short(name) + " (" + short(detail) + ")"
	case name != "":
		return short(name)
	default:
		return short(detail)
	}
}
