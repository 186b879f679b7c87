package render

import (
	"net/url"
	"strconv"
	"strings"
)

// links builds deep links into the installation's Jamf Pro. The zero value
// builds none.
type links struct {
	base string
}

// newLinks accepts a Jamf Pro base URL if it is an absolute http or https
// URL; user info, query and fragment are dropped, so no credential ever
// reaches Slack.
func newLinks(raw string) links {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return links{}
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return links{}
	}
	u.User = nil
	u.RawQuery, u.ForceQuery = "", false
	u.Fragment, u.RawFragment = "", ""
	base := strings.TrimRight(u.String(), "/")
	if len(base) > 500 || !linkSafe(base) {
		return links{}
	}
	return links{base: base}
}

// page links a Jamf Pro page such as computers.html for the object id.
func (l links) page(page string, id int64) string {
	if l.base == "" || id <= 0 {
		return ""
	}
	return l.base + "/" + page + "?id=" + strconv.FormatInt(id, 10)
}

func (l links) computer(id int64) string { return l.page("computers.html", id) }

func (l links) mobileDevice(id int64) string { return l.page("mobileDevices.html", id) }

func (l links) policy(id int64) string { return l.page("policies.html", id) }

func (l links) patchTitle(id int64) string { return l.page("patch.html", id) }

// patchPolicy links a patch policy, which Jamf Pro addresses by software
// title and policy; without the title it links the title's page, or nothing.
func (l links) patchPolicy(titleID, policyID int64) string {
	if l.base == "" || titleID <= 0 {
		return ""
	}
	if policyID <= 0 {
		return l.patchTitle(titleID)
	}
	return l.base + "/patchDeployment.html?softwareTitleId=" + strconv.FormatInt(titleID, 10) +
		"&id=" + strconv.FormatInt(policyID, 10)
}

// apiObject links the object of a REST API operation when its type has a
// known page and the operation did not delete it.
func (l links) apiObject(typeName, operation string, id int64) string {
	if strings.EqualFold(strings.TrimSpace(operation), "DELETE") {
		return ""
	}
	switch strings.ToLower(strings.TrimSpace(typeName)) {
	case "policy":
		return l.policy(id)
	case "computer":
		return l.computer(id)
	case "mobile device":
		return l.mobileDevice(id)
	}
	return ""
}

// safeURL returns a URL from Jamf (a patch report) if it is an absolute
// http(s) URL without credentials that can sit inside a Slack link, else "".
func safeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if len(raw) > 1000 || !linkSafe(raw) {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return ""
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return ""
	}
	return raw
}

// linkSafe reports whether s is printable ASCII without the characters
// that end or split a Slack link.
func linkSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '<' || c == '>' || c == '|' || c == '"' || c == '`':
			return false
		}
	}
	return true
}

// link formats a Slack link around an escaped label, or returns the label
// alone when url is empty.
func link(url, label string) string {
	if url == "" {
		return label
	}
	return "<" + mrkdwnURL(url) + "|" + label + ">"
}

// mrkdwnURL writes a URL that Jackalope built or checked with linkSafe into
// mrkdwn: only & needs an entity, as linkSafe refused < and >.
func mrkdwnURL(url string) string {
	return strings.ReplaceAll(url, "&", "&amp;")
}
