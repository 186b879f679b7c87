package registry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxJamfURLLength bounds the Jamf Pro URL an admin types in.
const maxJamfURLLength = 2048

// CheckJamfURL checks an Installation's JamfURL as an admin typed it: an
// http or https base URL with a host, without user info, query or fragment.
// It returns the URL without a trailing slash, or an error that says, for
// the admin, what is wrong. Empty is accepted and clears the setting.
func CheckJamfURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	if len(raw) > maxJamfURLLength {
		return "", fmt.Errorf("the Jamf Pro URL is longer than %d characters", maxJamfURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("the Jamf Pro URL must be an http or https address, like https://yourcompany.jamfcloud.com")
	}
	return strings.TrimRight(u.String(), "/"), nil
}
