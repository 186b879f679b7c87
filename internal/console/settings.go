package console

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
)

// defaultBasicUser and defaultAuthHeader are the user name and the
// header name the inbound auth forms suggest.
const (
	defaultBasicUser  = "jamf"
	defaultAuthHeader = "X-Jamf-Secret"
)

// deliveryView is the pace and digests form: the channel's own settings
// as typed ("" where it takes the default) and the defaults they replace.
type deliveryView struct {
	Pace, Burst, Digests, DigestAfter                             string
	DefaultPace, DefaultBurst, DefaultDigests, DefaultDigestAfter string
}

// filterView is the event filter form.
type filterView struct {
	All     bool // every type is shown
	Choices []filterChoice
	Summary string
}

// filterChoice is one event type of the form, as the filter has it.
type filterChoice struct {
	render.EventChoice
	Shown        bool
	FailuresOnly bool
}

// deliveryViewOf fills the pace and digests form for inst.
func (c *Console) deliveryViewOf(inst registry.Installation) deliveryView {
	own, def := inst.Delivery, c.defaults
	v := deliveryView{Digests: string(own.Digests)}
	if own.Interval > 0 {
		v.Pace = registry.FormatPace(own.Interval)
	}
	if own.Burst > 0 {
		v.Burst = strconv.Itoa(own.Burst)
	}
	if own.DigestAfter > 0 {
		v.DigestAfter = own.DigestAfter.String()
	}
	v.DefaultPace, v.DefaultBurst, v.DefaultDigests, v.DefaultDigestAfter = "default", "default", "default", "default"
	if def.Interval > 0 {
		v.DefaultPace = registry.FormatPace(def.Interval)
	}
	if def.Burst > 0 {
		v.DefaultBurst = strconv.Itoa(def.Burst)
	}
	if def.Digests != registry.DigestsDefault {
		v.DefaultDigests = string(def.Digests)
	}
	if def.DigestAfter > 0 {
		v.DefaultDigestAfter = def.DigestAfter.String()
	}
	return v
}

// filterViewOf fills the event filter form for f.
func filterViewOf(f registry.EventFilter) filterView {
	v := filterView{All: len(f.Events) == 0, Summary: render.DescribeFilter(f)}
	for _, ch := range render.EventChoices() {
		v.Choices = append(v.Choices, filterChoice{
			EventChoice:  ch,
			Shown:        len(f.Events) == 0 || slices.Contains(f.Events, ch.Event),
			FailuresOnly: slices.Contains(f.FailuresOnly, ch.Event),
		})
	}
	return v
}

// readDelivery reads the pace and digests form with the parser `channels
// set` uses.
func readDelivery(pf url.Values, cur registry.DeliverySettings) (registry.DeliverySettings, string) {
	given := map[string]string{}
	for _, name := range registry.DeliverySettingNames {
		given[name] = pf.Get(name)
	}
	d, err := registry.ParseDelivery(cur, given)
	if err != nil {
		return cur, "Not saved: " + strings.TrimPrefix(err.Error(), "invalid delivery settings: ") + "."
	}
	return d, ""
}

// readFilter reads the event filter form with the parser `channels set`
// uses: scope all, or the event types ticked; failures only for those
// ticked.
func readFilter(pf url.Values) (registry.EventFilter, string) {
	events := []string{render.FilterAll}
	if pf.Get("scope") != render.FilterAll {
		events = pf["event"]
		if len(events) == 0 {
			return registry.EventFilter{}, "Not saved: tick at least one event type, or show every event."
		}
	}
	f, err := render.ParseFilter(events, pf["failures"])
	if err != nil {
		return registry.EventFilter{}, "Not saved: " + err.Error() + "."
	}
	return f, ""
}

// readInbound reads the inbound auth form: Basic with a user name, a
// header with its name (the password or the value is made when the change
// is confirmed), or none.
func readInbound(pf url.Values) (user, header string, none bool, problem string) {
	switch pf.Get("scheme") {
	case "none":
		return "", "", true, ""
	case registry.AuthHeader:
		header, err := registry.CanonicalAuthHeader(pf.Get("header"))
		if err != nil {
			return "", "", false, "Not saved: " + err.Error() + "."
		}
		return "", header, false, ""
	}
	user = strings.TrimSpace(pf.Get("user"))
	if err := registry.CheckBasicUser(user); err != nil {
		return "", "", false, "Not saved: " + err.Error() + "."
	}
	return user, "", false, ""
}

// hidden returns the fields a confirmation repeats for action: what the
// form gave, as the parsers read it back.
func (f form) hidden(action string) []field {
	switch action {
	case actionDisable:
		return []field{{"reason", f.Reason}}
	case actionJamfURL:
		return []field{{"jamf_url", f.JamfURL}}
	case actionReplay, actionDrop:
		if f.All {
			return []field{{"all", "yes"}}
		}
		return []field{{"seq", strconv.FormatUint(f.Seq, 10)}}
	case actionDelivery:
		d := f.Delivery
		out := []field{{registry.SettingPace, ""}, {registry.SettingBurst, ""}, {registry.SettingDigests, string(d.Digests)}, {registry.SettingDigestAfter, ""}}
		if d.Interval > 0 {
			out[0].Value = registry.FormatPace(d.Interval)
		}
		if d.Burst > 0 {
			out[1].Value = strconv.Itoa(d.Burst)
		}
		if d.DigestAfter > 0 {
			out[3].Value = d.DigestAfter.String()
		}
		return out
	case actionFilter:
		out := []field{{"scope", render.FilterAll}}
		if len(f.Filter.Events) > 0 {
			out[0].Value = "some"
		}
		for _, e := range f.Filter.Events {
			out = append(out, field{"event", e})
		}
		for _, e := range f.Filter.FailuresOnly {
			out = append(out, field{"failures", e})
		}
		return out
	case actionInbound:
		switch {
		case f.NoAuth:
			return []field{{"scheme", "none"}}
		case f.Header != "":
			return []field{{"scheme", registry.AuthHeader}, {"header", f.Header}}
		}
		return []field{{"scheme", registry.AuthBasic}, {"user", f.User}}
	case actionResend:
		return []field{{"since", stamp(f.Since)}, {"until", stamp(f.Until)}}
	}
	return nil
}

// field is one hidden field of a confirmation.
type field struct {
	Name, Value string
}

// newPassword makes the password of Basic inbound auth: 26 characters of
// base32, 130 bits.
func newPassword() string { return rand.Text() }

// describeInbound says what Jamf Pro must send to inst, never a secret.
func describeInbound(a registry.InboundAuth) string {
	switch a.Scheme {
	case registry.AuthBasic:
		return "HTTP Basic credentials"
	case registry.AuthHeader:
		return "the header(s) " + strings.ReplaceAll(a.Headers, ",", ", ")
	}
	return "only the token in the Jamf URL"
}

// describeDelivery says a channel's own pace and digests, for the audit log
// and the confirmation.
func describeDelivery(d registry.DeliverySettings) string {
	return fmt.Sprintf("pace %s, digests %s", d.DescribePace(), d.DescribeDigests())
}
