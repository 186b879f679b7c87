package render_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

func TestTestMessage(t *testing.T) {
	tests := []struct {
		name, by, who string
	}{
		{"from the console", "Ada <!channel>", "Ada &lt;!channel&gt;"},
		{"from the command line", "", "an operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "This is a test message from Jackalope, sent by " + tt.who +
				". Jamf Pro events for this channel will appear here like this."
			want := slack.Message{Attachments: []slack.Attachment{{
				Fallback: text,
				Color:    "#800080",
				Title:    "Jackalope test message",
				Text:     text,
				MrkdwnIn: []string{"text"},
			}}}
			if diff := cmp.Diff(want, render.TestMessage(tt.by)); diff != "" {
				t.Errorf("TestMessage(%q) mismatch (-want +got):\n%s", tt.by, diff)
			}
		})
	}
}
