package render

import "github.com/jackalope-app/jackalope/internal/slack"

// TestMessage is the message posted when an admin checks that a channel
// still takes Jackalope's posts (the console's "Send a test message", or
// `channels test ID`). by names who sent it; empty means an operator on
// the server.
func TestMessage(by string) slack.Message {
	who := "an operator"
	if by != "" {
		who = esc(by)
	}
	text := "This is a test message from Jackalope, sent by " + who +
		". Jamf Pro events for this channel will appear here like this."
	return slack.Message{Attachments: []slack.Attachment{{
		Fallback: text,
		Color:    colorPurple,
		Title:    "Jackalope test message",
		Text:     text,
		MrkdwnIn: []string{"text"},
	}}}
}
