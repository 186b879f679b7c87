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

// severity ranks a colour: red (a failure or a server going down) is worst,
// then yellow (a removal or a warning), green (an addition or a success) and
// grey (routine). A digest group takes the colour of its worst event and
// groups are listed worst first.
func severity(color string) int {
	switch color {
	case colorRed:
		return 3
	case colorYellow:
		return 2
	case colorGreen:
		return 1
	}
	return 0
}

// kind is how one event type looks: its title, its colour unless the event
// itself decides (a policy that failed, a group that lost members), and its
// icon.
type kind struct {
	event string // the catalog name; "" for events Jackalope does not know
	title string
	color string
	icon  string
	// decides is set when the event's content decides its colour or its
	// outcome, so that a digest must decode every such event.
	decides bool
}

// kinds is the one table of event types, used by single messages for their
// title, colour and icon, and by digests for the order of their groups. It is
// in order of importance, most important first: what needs someone now (a
// server shutting down; policies, patches and MDM commands, which can fail);
// then removals and warnings; then changes made through the API; then
// additions; then routine traffic, the most frequent last (inventory, pushes,
// check-ins), so that a check-in storm never hides a failure. Events Jackalope
// does not know sit just before the routine ones: they may matter. Digests
// order groups by the severity of their worst event first, then by this
// table.
var kinds = [...]kind{
	{jamf.EventJSSShutdown, "Jamf Pro Shutdown", colorRed, iconServer, false},
	{jamf.EventComputerPolicyFinished, "Computer Policy Finished", colorGrey, iconPolicy, true},
	{jamf.EventComputerPatchPolicyCompleted, "Patch Policy Completed", colorGrey, iconPatch, true},
	{jamf.EventMobileDeviceCommandCompleted, "Mobile Device Command Completed", colorGrey, iconMobile, true},
	{jamf.EventMobileDeviceUnEnrolled, "Mobile Device Un-Enrolled", colorYellow, iconMobile, false},
	{jamf.EventComputerPushCapabilityChanged, "Computer Push Capability Changed", colorYellow, iconComputer, false},
	{jamf.EventDeviceRateLimited, "Device Rate Limited", colorYellow, iconGeneric, false},
	{jamf.EventSmartGroupComputerMembershipChange, "Smart Computer Group Membership Change", colorGrey, iconGroup, true},
	{jamf.EventSmartGroupMobileDeviceMembershipChange, "Smart Mobile Device Group Membership Change", colorGrey, iconGroup, true},
	{jamf.EventSmartGroupUserMembershipChange, "Smart User Group Membership Change", colorGrey, iconGroup, true},
	{jamf.EventPatchSoftwareTitleUpdated, "Patch Definition Update", colorYellow, iconPatch, false},
	{jamf.EventRestAPIOperation, "REST API Operation", colorGrey, iconAPI, true},
	{jamf.EventJSSStartup, "Jamf Pro Startup", colorGreen, iconServer, false},
	{jamf.EventComputerAdded, "Computer Added", colorGreen, iconComputer, false},
	{jamf.EventMobileDeviceEnrolled, "Mobile Device Enrolled", colorGreen, iconMobile, false},
	{jamf.EventDeviceAddedToDEP, "Device Added to Automated Device Enrollment", colorGreen, iconDEP, false},
	{jamf.EventSCEPChallenge, "SCEP Challenge Requested", colorGrey, iconSCEP, false},
	{"", genericTitlePrefix, colorGrey, iconGeneric, false},
	{jamf.EventComputerInventoryCompleted, "Computer Inventory Complete", colorGrey, iconComputer, false},
	{jamf.EventMobileDeviceInventoryCompleted, "Mobile Device Inventory Complete", colorGrey, iconMobile, false},
	{jamf.EventPushSent, "Push Notification Sent", colorGrey, iconPush, false},
	{jamf.EventMobileDevicePushSent, "Mobile Device Push Sent", colorGrey, iconPush, false},
	{jamf.EventComputerCheckIn, "Computer Check-In", colorGrey, iconComputer, false},
	{jamf.EventMobileDeviceCheckIn, "Mobile Device Check-In", colorGrey, iconMobile, false},
}

// kindIndex finds a catalog event's place in kinds.
var kindIndex = func() map[string]int {
	m := make(map[string]int, len(kinds))
	for i, k := range kinds {
		m[k.event] = i
	}
	return m
}()

// kindOf returns the place in kinds of the event named as on the wire,
// matched with jamf.Canonical; an event that is not in the catalog gets the
// place of unknown events.
func kindOf(event string) int {
	name := jamf.Canonical(event)
	if !jamf.Known(name) {
		name = ""
	}
	return kindIndex[name]
}

// newCard starts the card of a catalog event with the title, colour and icon
// of its kind.
func newCard(event string) *card {
	k := kinds[kindIndex[event]]
	return &card{title: k.title, color: k.color, icon: k.icon}
}

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
	if jsonBound(m) <= maxMessageJSON {
		return m
	}
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

// jsonBound is at least the length of m's JSON, without encoding it: every
// byte of a string may take up to six (\u escapes), and every member's
// name and punctuation fit in 32. Most messages are far under
// maxMessageJSON by this bound, and fit then has nothing to check.
func jsonBound(m slack.Message) int {
	const perString, perMember = 6, 32
	n := perMember + perString*len(m.Text)
	for _, a := range m.Attachments {
		n += perMember * 12
		for _, s := range [...]string{a.Fallback, a.Color, a.Pretext, a.Title, a.TitleLink, a.Text, a.ThumbURL, a.Footer} {
			n += perString * len(s)
		}
		for _, s := range a.MrkdwnIn {
			n += perMember + perString*len(s)
		}
		for _, f := range a.Fields {
			n += perMember*3 + perString*(len(f.Title)+len(f.Value))
		}
	}
	return n
}

// build decodes the event and renders the card of its type.
func build(env jamf.Envelope, l links) *card {
	ev, err := jamf.Decode(env)
	if err != nil {
		return undecodable(env.Webhook.Event)
	}
	return cardOf(env.Webhook.Event, ev, l)
}

// cardOf renders the card of a decoded event.
func cardOf(event string, ev any, l links) *card {
	name := jamf.Canonical(event)
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
		return unknownEvent(event, e.Fields)
	}
	return unknownEvent(event, nil)
}
