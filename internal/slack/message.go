// Package slack talks to Slack: the OAuth v2 code exchange and posts to
// incoming webhooks. It turns every answer into a retry class once
// (see package retry), so callers never read status codes or bodies.
package slack

// Message is the JSON body posted to an incoming webhook. Jackalope keeps the
// original look: one attachment with a colour bar.
type Message struct {
	Text        string       `json:"text,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a legacy Slack message attachment.
type Attachment struct {
	Fallback  string   `json:"fallback,omitempty"`
	Color     string   `json:"color,omitempty"`
	Pretext   string   `json:"pretext,omitempty"`
	Title     string   `json:"title,omitempty"`
	TitleLink string   `json:"title_link,omitempty"`
	Text      string   `json:"text,omitempty"`
	Fields    []Field  `json:"fields,omitempty"`
	ThumbURL  string   `json:"thumb_url,omitempty"`
	Footer    string   `json:"footer,omitempty"`
	Ts        int64    `json:"ts,omitempty"`
	MrkdwnIn  []string `json:"mrkdwn_in,omitempty"`
}

// Field is one short key/value pair shown in an attachment's table.
type Field struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short,omitempty"`
}
