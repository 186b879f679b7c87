package render

import "github.com/jackalope-app/jackalope/internal/slack"

// Welcome is the message posted to a channel when Jackalope is installed in
// it, with the original's wording. jamfURL is the installation's webhook
// URL, which the admin enters in Jamf Pro: Jackalope built it, so it is shown
// as it is (Slack links it) unless it holds characters that would break out
// of the text, in which case it is escaped like Jamf text.
func Welcome(jamfURL string) slack.Message {
	url := esc(jamfURL)
	if linkSafe(jamfURL) {
		url = mrkdwnURL(jamfURL)
	}
	text := "Jackalope has been installed in this channel! Create webhooks " +
		"(in `JSON` format) in your Jamf Pro server using this url:\n" +
		url + "\n\nThey will appear here as notifications."
	return slack.Message{Attachments: []slack.Attachment{{
		Fallback: text,
		Color:    colorPurple,
		Text:     text,
		MrkdwnIn: []string{"text"},
	}}}
}
