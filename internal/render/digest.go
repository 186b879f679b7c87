package render

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// DigestEvent is one event of a digest: the envelope jamf.Parse returned and
// when ingest received it.
type DigestEvent struct {
	Envelope   jamf.Envelope
	ReceivedAt time.Time
}

// Limits of a digest. People read a digest at a glance, so it stays far
// below Slack's limits (50 blocks, 100 attachments, 40,000 characters of
// text) whatever the number of events.
const (
	// maxDigestVisible is the characters people read, in bytes: the header,
	// titles and lists, link targets not counted.
	maxDigestVisible = 3500
	// maxDigestBytes bounds the bytes of every text, link targets included.
	maxDigestBytes = 12000
	// maxDigestHeader bounds the header line.
	maxDigestHeader = 700
)

// Digest renders many events for one channel as one Slack message, for a
// channel whose events arrive faster than Slack takes them:
//
//   - the message text is a header line: how many events, over which time
//     span (as Slack date tokens, so that readers see their own time zone,
//     with UTC in the fallback), and how many of each type;
//   - then one attachment per event type of the catalog (matched with
//     jamf.Canonical), in the order of kinds after the severity of its worst
//     event, coloured as that event, titled with its count ("7 Computer
//     Policy Finished (2 failed)"), listing the devices or objects by name
//     (linked when opts.JamfURL is set), failures first, as many as fit,
//     then "… and N more";
//   - events Jackalope does not know share one attachment that counts them
//     by name ("ComputerTeleported (2)").
//
// Every event is named, or counted in an "and N more" of the attachment of
// its type; the only exception is a digest holding more unknown event names
// than fit in their attachment, whose last ones are counted as "N more
// events of K other types". Jamf text is escaped as in Message. The message
// stays within Slack's limits for any number of events (at most 24
// attachments, about maxDigestVisible characters to read), and Digest never
// fails. Only the events whose content decides their colour or outcome, and
// those named, are decoded, so that a digest of thousands of events stays
// cheap.
func Digest(events []DigestEvent, opts Options) slack.Message {
	if len(events) == 0 {
		return slack.Message{Text: "No events."}
	}
	d := digester{events: events, links: newLinks(opts.JamfURL)}
	d.group()
	return d.message()
}

// digestGroup is the events of one type in a digest, or all the events
// Jackalope does not know.
type digestGroup struct {
	kind   int    // place in kinds
	color  string // the colour of the worst event
	n      int
	failed int
	// events are indexes into the digest's events by outcome, in arrival
	// order; items are the names chosen to show, next is the next event to
	// name, tried counts the events decoded for a name, and full is set once
	// a name did not fit.
	events [numOutcomes][]int32
	items  [numOutcomes][]string
	next   [numOutcomes]int
	tried  int
	full   bool
	// visible and bytes are what the group's names take.
	visible, bytes int
	// unknown counts the events of the unknown group by name, in order of
	// first arrival.
	unknown []nameCount
}

// nameCount is how many events of an unknown type a digest holds.
type nameCount struct {
	name string
	n    int
}

// groupRef is where the events of one name on the wire go.
type groupRef struct {
	g       *digestGroup
	unknown int // place in g.unknown
}

// digester builds one digest.
type digester struct {
	events      []DigestEvent
	links       links
	groups      []*digestGroup
	first, last time.Time
	// visible and bytes are what is left of maxDigestVisible and
	// maxDigestBytes.
	visible, bytes int
}

// group sorts the events into groups by type, decoding only the events
// whose content decides their colour or outcome, and orders the groups.
func (d *digester) group() {
	byName := map[string]groupRef{} // as spelled on the wire
	var byKind [len(kinds)]*digestGroup
	unknownNames := map[string]int{} // place in the unknown group's counts
	for i := range d.events {
		ev := &d.events[i]
		name := ev.Envelope.Webhook.Event
		ref, ok := byName[name]
		if !ok {
			k := kindOf(name)
			if ref.g = byKind[k]; ref.g == nil {
				ref.g = &digestGroup{kind: k, color: colorGrey}
				byKind[k] = ref.g
				d.groups = append(d.groups, ref.g)
			}
			if kinds[k].event == "" {
				trimmed := strings.TrimSpace(name)
				u, seen := unknownNames[trimmed]
				if !seen {
					u = len(ref.g.unknown)
					unknownNames[trimmed] = u
					ref.g.unknown = append(ref.g.unknown, nameCount{name: trimmed})
				}
				ref.unknown = u
			}
			byName[name] = ref
		}
		g := ref.g
		if g.unknown != nil {
			g.unknown[ref.unknown].n++
		}

		color, o := kinds[g.kind].color, outcomeNone
		if kinds[g.kind].decides {
			color, o = classify(ev.Envelope)
		}
		g.n++
		if o == outcomeFailed {
			g.failed++
		}
		if severity(color) > severity(g.color) {
			g.color = color
		}
		g.events[o] = append(g.events[o], int32(i))

		t := ev.ReceivedAt
		if t.IsZero() {
			t = ev.Envelope.Webhook.Timestamp
		}
		if t.Unix() > 0 {
			if d.first.IsZero() || t.Before(d.first) {
				d.first = t
			}
			if t.After(d.last) {
				d.last = t
			}
		}
	}
	slices.SortStableFunc(d.groups, func(a, b *digestGroup) int {
		if sa, sb := severity(a.color), severity(b.color); sa != sb {
			return sb - sa
		}
		return a.kind - b.kind
	})
}

// classify is the colour and outcome of an event whose content decides
// them, as its single message has them. It renders no card unless the event
// is a smart group change, which is rare and coloured by its members.
func classify(env jamf.Envelope) (string, outcome) {
	ev, err := jamf.Decode(env)
	if err != nil {
		c := undecodable(env.Webhook.Event)
		return c.color, c.outcome
	}
	switch ev.(type) {
	case jamf.SmartGroupComputerMembershipChange, jamf.SmartGroupMobileDeviceMembershipChange, jamf.SmartGroupUserMembershipChange:
		c := cardOf(env.Webhook.Event, ev, links{})
		return c.color, c.outcome
	}
	return result(ev)
}

// message lays the groups out within the digest's limits.
func (d *digester) message() slack.Message {
	header := d.header()
	titles := make([]string, len(d.groups))
	d.visible, d.bytes = maxDigestVisible-visibleLen(header), maxDigestBytes-len(header)
	for i, g := range d.groups {
		titles[i] = clip(g.heading(), maxTitle)
		d.visible -= len(titles[i])
		d.bytes -= 2 * len(titles[i]) // title and fallback
	}

	// Unknown events are counted by name first, as their names are all that
	// says what they are, within a third of the budget. Then each group may
	// name events for its share of the budget, in order of importance; what
	// is left goes to the groups in the same order, so that a quiet type
	// still shows a few names beside a storm.
	for _, g := range d.groups {
		if g.unknown != nil {
			d.fill(g, d.visible/3)
		}
	}
	share := d.visible / len(d.groups)
	for _, g := range d.groups {
		d.fill(g, share)
	}
	for _, g := range d.groups {
		d.fill(g, math.MaxInt)
	}

	m := slack.Message{Text: header, Attachments: make([]slack.Attachment, 0, len(d.groups))}
	for i, g := range d.groups {
		m.Attachments = append(m.Attachments, slack.Attachment{
			Fallback: titles[i],
			Color:    g.color,
			Title:    titles[i],
			Text:     g.text(),
			MrkdwnIn: []string{"text"},
		})
	}
	return m
}

// fill names the group's events, worst outcome first and in arrival order,
// while the group's names take at most limit visible bytes and the digest's
// budgets last. Once a name does not fit the digest's budgets, the group is
// full, so that the names shown are always the first ones. An event that
// nothing names (an unknown event, a device without name or serial) is
// counted in "and N more". At most maxListItems events of a group are
// decoded for their names.
func (d *digester) fill(g *digestGroup, limit int) {
	const maxGroupBytes = maxText - 300 // room for labels and "… and N more"
	for _, o := range outcomeOrder {
		for !g.full && g.tried < maxListItems && g.next[o] < len(g.events[o]) {
			var item string
			if g.unknown != nil {
				if g.next[o] >= len(g.unknown) {
					return
				}
				u := g.unknown[g.next[o]]
				label := short(u.name)
				if label == "" {
					label = "unnamed"
				}
				item = label + " (" + strconv.Itoa(u.n) + ")"
			} else {
				item = d.item(g.events[o][g.next[o]])
			}
			if item == "" {
				g.next[o]++
				g.tried++
				continue
			}
			v, b := visibleLen(item)+2, len(item)+2
			if v > d.visible || b > d.bytes || g.bytes+b > maxGroupBytes {
				g.full = true
				return
			}
			if g.visible+v > limit {
				return
			}
			g.items[o] = append(g.items[o], item)
			g.next[o]++
			g.tried++
			g.visible += v
			g.bytes += b
			d.visible -= v
			d.bytes -= b
		}
	}
}

// item names one event for a list.
func (d *digester) item(i int32) string {
	c := build(d.events[i].Envelope, d.links)
	if c.item != "" {
		return c.item
	}
	return c.summary
}

// heading is a group's title, e.g. "7 Computer Policy Finished (2 failed)".
func (g *digestGroup) heading() string {
	title := kinds[g.kind].title
	if g.unknown != nil {
		title = "Unknown " + title + plural(g.n, "", "s")
	}
	h := strconv.Itoa(g.n) + " " + title
	if g.failed > 0 {
		h += " (" + strconv.Itoa(g.failed) + " failed)"
	}
	return h
}

// text lists a group's names: one line per outcome, labelled when the group
// has more than one, each ending with how many it did not name.
func (g *digestGroup) text() string {
	if g.unknown != nil {
		return g.unknownText()
	}
	labelled := 0
	for _, evs := range g.events {
		if len(evs) > 0 {
			labelled++
		}
	}
	var lines []string
	for _, o := range outcomeOrder {
		n := len(g.events[o])
		if n == 0 {
			continue
		}
		l := list(g.items[o], n, math.MaxInt)
		if labelled > 1 {
			l = pair(outcomeLabels[o]+" ("+strconv.Itoa(n)+")", l)
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// unknownText lists the names of unknown events with their counts, as many
// as fit, then how many events of how many other names it left out.
func (g *digestGroup) unknownText() string {
	items := g.items[outcomeNone]
	text := strings.Join(items, ", ")
	if rest := len(g.unknown) - len(items); rest > 0 {
		n := 0
		for _, u := range g.unknown[len(items):] {
			n += u.n
		}
		if text != "" {
			text += " "
		}
		text += ellipsis + " and " + strconv.Itoa(n) + " more " + plural(n, "event", "events") +
			" of " + strconv.Itoa(rest) + " other " + plural(rest, "type", "types")
	}
	return text
}

// header is the digest's first line, e.g. "412 events from 09:14:03 to
// 09:14:58: 7 Computer Policy Finished (2 failed), 380 Computer Check-In".
func (d *digester) header() string {
	total := len(d.events)
	var b strings.Builder
	b.WriteString(strconv.Itoa(total) + " " + plural(total, "event", "events"))
	switch {
	case d.first.IsZero():
	case d.first.Unix() == d.last.Unix():
		b.WriteString(" at " + d.date(d.first))
	default:
		b.WriteString(" from " + d.date(d.first) + " to " + d.date(d.last))
	}
	b.WriteString(": ")
	for i, g := range d.groups {
		h := clip(g.heading(), maxTitle)
		if b.Len()+len(h)+2 > maxDigestHeader-60 {
			rest := len(d.groups) - i
			b.WriteString(ellipsis + " and " + strconv.Itoa(rest) + " other " + plural(rest, "type", "types"))
			break
		}
		b.WriteString(h)
		if i < len(d.groups)-1 {
			b.WriteString(", ")
		}
	}
	return b.String()
}

// date writes a time as a Slack date token, which Slack shows in the
// reader's time zone, with the time in UTC for clients that cannot. A span
// over more than one day shows dates too.
func (d *digester) date(t time.Time) string {
	format, fallback := "{time_secs}", "15:04:05 UTC"
	if d.first.UTC().YearDay() != d.last.UTC().YearDay() || d.last.Sub(d.first) >= 24*time.Hour {
		format, fallback = "{date_short} {time_secs}", "2006-01-02 15:04:05 UTC"
	}
	return "<!date^" + strconv.FormatInt(t.Unix(), 10) + "^" + format + "|" + t.UTC().Format(fallback) + ">"
}

// visibleLen is the length of mrkdwn as people read it: without the targets
// of links.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			if j := strings.IndexByte(s[i:], '|'); j >= 0 {
				i += j
			}
		case '>':
		default:
			n++
		}
	}
	return n
}
