package console

import (
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// preview is a Slack message as a page shows it: what render made of an
// event, laid out like Slack lays out an attachment. Its text is split
// into segments that the template escapes, so nothing of the event (or of
// Slack's markup) reaches the page as HTML.
type preview struct {
	Text    [][]segment // the message's own text (a digest's header), by line
	Cards   []card
	Problem string // why the event could not be read, instead of cards
}

// card is one attachment.
type card struct {
	Color     string // a class: green, grey, red, yellow or purple
	Title     string
	TitleLink string
	Lines     [][]segment
	Fields    []cardField
	Thumb     string
	At        time.Time
}

// cardField is one field of an attachment.
type cardField struct {
	Title string
	Value [][]segment
}

// segment is a run of text with one style: plain, bold, italic, or a link.
type segment struct {
	Text   string
	Bold   bool
	Italic bool
	Link   string
}

// colorClasses names the colours render uses, as stylesheet classes.
var colorClasses = map[string]string{
	"#008000": "green", "#808080": "grey", "#ff0000": "red", "#ffff00": "yellow", "#800080": "purple",
}

// previewEvent renders body as the channel's message: with its Jamf Pro
// URL for links, and the icons this server serves.
func (c *Console) previewEvent(body []byte, jamfURL string) *preview {
	env, err := jamf.Parse(body)
	if err != nil {
		return &preview{Problem: "Not a Jamf Pro webhook Jackalope can read: " + err.Error()}
	}
	return previewMessage(render.Message(env, render.Options{IconBaseURL: c.icons, JamfURL: jamfURL}))
}

// previewMessage lays m out for a page.
func previewMessage(m slack.Message) *preview {
	p := &preview{Text: mrkdwn(m.Text)}
	for _, a := range m.Attachments {
		k := card{
			Color:     colorClasses[strings.ToLower(a.Color)],
			Title:     unescape(a.Title),
			TitleLink: a.TitleLink,
			Lines:     mrkdwn(a.Text),
			Thumb:     a.ThumbURL,
		}
		if k.Color == "" {
			k.Color = "grey"
		}
		if a.Ts > 0 {
			k.At = time.Unix(a.Ts, 0)
		}
		for _, f := range a.Fields {
			k.Fields = append(k.Fields, cardField{Title: unescape(f.Title), Value: mrkdwn(f.Value)})
		}
		p.Cards = append(p.Cards, k)
	}
	return p
}

// mrkdwn splits Slack mrkdwn into lines of segments: *bold*, _italic_,
// <url|text> and <url> links, <!date^…|text> as its text, and the three
// entities Slack escapes (&amp; &lt; &gt;) decoded. Anything else is
// plain text. render escapes what comes from Jamf, so its markup is only
// the message's own.
func mrkdwn(s string) [][]segment {
	if s == "" {
		return nil
	}
	var lines [][]segment
	for _, line := range strings.Split(s, "\n") {
		lines = append(lines, mrkdwnLine(line))
	}
	return lines
}

func mrkdwnLine(line string) []segment {
	var (
		out          []segment
		plain        strings.Builder
		bold, italic bool
	)
	flush := func() {
		if plain.Len() > 0 {
			out = append(out, segment{Text: unescape(plain.String()), Bold: bold, Italic: italic})
			plain.Reset()
		}
	}
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '<':
			end := strings.IndexByte(line[i:], '>')
			if end < 0 {
				plain.WriteByte(ch)
				continue
			}
			flush()
			target, text, labelled := strings.Cut(line[i+1:i+end], "|")
			seg := segment{Text: unescape(text), Bold: bold, Italic: italic}
			if !strings.HasPrefix(target, "!") {
				seg.Link = unescape(target)
				if !labelled {
					seg.Text = seg.Link
				}
			}
			if seg.Text != "" {
				out = append(out, seg)
			}
			i += end
		case ch == '*' && markAt(line, i, bold):
			flush()
			bold = !bold
		case ch == '_' && markAt(line, i, italic):
			flush()
			italic = !italic
		default:
			plain.WriteByte(ch)
		}
	}
	flush()
	return out
}

// markAt reports whether the * or _ at i opens (closing false) or closes
// (closing true) a run, as Slack reads them: an opening mark is followed by
// text and starts a word, a closing one follows text and ends a word.
func markAt(s string, i int, closing bool) bool {
	if closing {
		return i > 0 && s[i-1] != ' ' && (i+1 == len(s) || !isWordByte(s[i+1]))
	}
	return i+1 < len(s) && s[i+1] != ' ' && (i == 0 || !isWordByte(s[i-1])) && strings.IndexByte(s[i+1:], s[i]) > 0
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b >= 0x80
}

// unescape decodes the entities Slack's markup escapes.
func unescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// oneLine is an event's one-line summary, as Slack shows it in
// notifications: the fallback text of render's message.
func oneLine(body []byte, event string) string {
	env, err := jamf.Parse(body)
	if err != nil {
		return event + " (unreadable)"
	}
	m := render.Message(env, render.Options{})
	if len(m.Attachments) == 0 || m.Attachments[0].Fallback == "" {
		return event
	}
	return unescape(m.Attachments[0].Fallback)
}
