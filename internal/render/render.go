// Package render turns Jamf Pro webhooks into Slack messages: one attachment
// with a colour bar, a title, mrkdwn text, fields, an icon and the event's
// time, as the original Jackalope posted them. Every event of the catalog
// has its own message; events Jamf adds later get a generic one that shows
// their fields. All text from Jamf is escaped, so a device called
// <!channel> pings nobody, and every message stays within Slack's limits
// whatever the event holds.
package render

import (
	"encoding/json"
	"strings"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// Options are the installation-specific parts of a message.
type Options struct {
	// IconBaseURL is where the icons of Static are served, e.g.
	// https://jackalope.example.com/static/images; empty means no icon.
	IconBaseURL string
	// JamfURL is the installation's Jamf Pro base URL, used for links to
	// computers, devices, policies and groups. Empty, or not http(s), means
	// no links.
	JamfURL string
}

// Attachment colours. The original ten events keep the original's colours.
const (
	colorGreen  = "#008000"
	colorGrey   = "#808080"
	colorRed    = "#ff0000"
	colorYellow = "#ffff00"
	colorPurple = "#800080"
)

// Icons, named by the file static/images/<icon>.png.
const (
	iconAPI      = "api"
	iconComputer = "computer"
	iconDEP      = "dep"
	iconGeneric  = "generic"
	iconGroup    = "group"
	iconMobile   = "mobile"
	iconPatch    = "patch"
	iconPolicy   = "policy"
	iconPush     = "push"
	iconSCEP     = "scep"
	iconServer   = "server"
)

// Slack limits, kept with a margin: Slack truncates attachment text after
// 3000 characters and rejects very large payloads. Sizes are in bytes,
// which never undercounts characters.
const (
	maxText        = 3000
	maxFields      = 10
	maxFieldValue  = 200
	maxValue       = 200
	maxTitle       = 150
	maxFallback    = 300
	maxListItems   = 50
	maxItemName    = 60
	maxMessageJSON = 15 << 10
)

// genericTitlePrefix starts the title of events without a message of their
// own.
const genericTitlePrefix = "Jamf Pro Event"

// Message renders one Jamf Pro webhook as a Slack message. It never fails:
// an event it cannot read, or does not know, still gives a message that
// names the event and shows what it carried.
func Message(env jamf.Envelope, opts Options) slack.Message {
	c := build(env, newLinks(opts.JamfURL))
	a := slack.Attachment{
		Fallback:  c.fallback(),
		Color:     c.color,
		Title:     clip(c.title, maxTitle),
		TitleLink: c.titleLink,
		Text:      joinLines(c.lines, maxText),
		Fields:    c.fields,
		MrkdwnIn:  []string{"text", "fields"},
	}
	if base := strings.TrimRight(opts.IconBaseURL, "/"); base != "" && c.icon != "" {
		a.ThumbURL = base + "/" + c.icon + ".png"
	}
	if ts := env.Webhook.Timestamp; !ts.IsZero() && ts.Unix() > 0 {
		a.Ts = ts.Unix()
	}
	return fit(slack.Message{Attachments: []slack.Attachment{a}})
}

// fit shrinks a message whose JSON is over maxMessageJSON: it drops fields,
// then halves the text, until it fits. The per-part limits make this a
// safety net that normal messages never reach.
func fit(m slack.Message) slack.Message {
	for range 16 {
		b, err := json.Marshal(m)
		if err == nil && len(b) <= maxMessageJSON {
			return m
		}
		a := &m.Attachments[0]
		switch {
		case len(a.Fields) > 0:
			a.Fields = a.Fields[:len(a.Fields)/2]
		case len(a.Text) > 100:
			a.Text = clip(a.Text, len(a.Text)/2)
		default:
			a.Fallback = clip(a.Fallback, 100)
			a.Title = clip(a.Title, 100)
			a.TitleLink = ""
			a.ThumbURL = ""
		}
	}
	return m
}

// build decodes the event and renders the card of its type.
func build(env jamf.Envelope, l links) *card {
	name := jamf.Canonical(env.Webhook.Event)
	ev, err := jamf.Decode(env)
	if err != nil {
		return undecodable(env.Webhook.Event)
	}
	switch e := ev.(type) {
	case jamf.Computer:
		return computerEvent(name, e, l)
	case jamf.ComputerCheckIn:
		return computerCheckIn(e, l)
	case jamf.ComputerPolicyFinished:
		return policyFinished(e, l)
	case jamf.ComputerPatchPolicyCompleted:
		return patchPolicyCompleted(e, l)
	case jamf.MobileDevice:
		return mobileEvent(name, e, l)
	case jamf.Server:
		return serverEvent(name, e)
	case jamf.DeviceAddedToDEP:
		return deviceAddedToDEP(e)
	case jamf.DeviceRateLimited:
		return deviceRateLimited(e)
	case jamf.PatchSoftwareTitleUpdated:
		return patchTitleUpdated(e, l)
	case jamf.PushSent:
		return pushSent(e)
	case jamf.RestAPIOperation:
		return restAPIOperation(e, l)
	case jamf.SCEPChallenge:
		return scepChallenge(e)
	case jamf.SmartGroupComputerMembershipChange:
		return computerGroupChange(e, l)
	case jamf.SmartGroupMobileDeviceMembershipChange:
		return mobileGroupChange(e, l)
	case jamf.SmartGroupUserMembershipChange:
		return userGroupChange(e, l)
	case jamf.Unknown:
		return unknownEvent(env.Webhook.Event, e.Fields)
	}
	return unknownEvent(env.Webhook.Event, nil)
}
