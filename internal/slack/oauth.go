package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// OAuthResult is what an OAuth v2 code exchange grants: the workspace, the
// channel the installing user picked, and that channel's incoming webhook.
// WebhookURL is a secret; String and LogValue leave it out.
type OAuthResult struct {
	TeamID           string
	TeamName         string
	ChannelID        string
	ChannelName      string // as Slack gives it, e.g. "#jamf"
	WebhookURL       string // secret: store it sealed, never log it
	ConfigurationURL string // Slack's page to manage the webhook
	AuthedUserID     string // the installing user
	AppID            string
	Scope            string // the granted scopes, comma-separated
}

// String describes r without its webhook URL.
func (r OAuthResult) String() string {
	return fmt.Sprintf("slack install of team %s (%s) channel %s (%s) by %s", r.TeamID, r.TeamName, r.ChannelID, r.ChannelName, r.AuthedUserID)
}

// LogValue logs r without its webhook URL.
func (r OAuthResult) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("team_id", r.TeamID),
		slog.String("team", r.TeamName),
		slog.String("channel_id", r.ChannelID),
		slog.String("channel", r.ChannelName),
		slog.String("user", r.AuthedUserID),
		slog.String("app", r.AppID),
		slog.String("scope", r.Scope),
	)
}

// OAuthError is Slack refusing a code exchange: it answered
// {"ok":false,"error":Code}. Hint tells the user or the admin what to do.
// Codes that mean a passing problem at Slack (internal_error,
// service_unavailable, ratelimited, ...) also match ErrUnavailable.
type OAuthError struct {
	Code string
}

// Error names the code Slack gave.
func (e *OAuthError) Error() string { return "slack answered " + e.Code }

// Unwrap returns ErrUnavailable for passing failures, nil otherwise.
func (e *OAuthError) Unwrap() error {
	if transientOAuthCodes[e.Code] {
		return ErrUnavailable
	}
	return nil
}

// transientOAuthCodes are the Web API's error codes for failures on Slack's
// side that a later try may not meet.
var transientOAuthCodes = map[string]bool{
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
	"ratelimited":         true,
	"rate_limited":        true,
}

// oauthHints says, per code, what the person installing or the admin
// running Jackalope should do.
var oauthHints = map[string]string{
	"invalid_code": "Slack did not recognise the authorization code, usually because it expired. " +
		"Start the installation again with the Add to Slack button.",
	"code_already_used": "This authorization code was already used, usually because the page was reloaded. " +
		"Start the installation again with the Add to Slack button.",
	"access_denied": "The installation was cancelled in Slack. " +
		"Start again with the Add to Slack button and choose Allow.",
	"bad_redirect_uri": "The redirect URL does not match the Slack app's settings. " +
		"An administrator must add this server's /install URL to the app's Redirect URLs (OAuth & Permissions) " +
		"and check that SERVER_NAME is the public address of this server.",
	"oauth_authorization_url_mismatch": "The authorization page and the code exchange used different OAuth versions. " +
		"An administrator must set SLACK_OAUTH_URL to https://slack.com/oauth/v2/authorize.",
	"invalid_client_id": "SLACK_CLIENT_ID does not name a Slack app. " +
		"An administrator must set it to the Client ID on the app's Basic Information page.",
	"bad_client_secret": "SLACK_CLIENT_SECRET is wrong for this app. " +
		"An administrator must set it to the Client Secret on the app's Basic Information page.",
	"invalid_grant_type": "Slack did not accept the kind of grant Jackalope asked for. " +
		"This is a bug in Jackalope or a change at Slack; please report it.",
	"invalid_team_for_non_distributed_app": "This Slack app is not distributed, so it installs only in its own workspace. " +
		"An administrator must enable public distribution (Manage Distribution) or install from the app's workspace.",
	"unapproved_app": "A workspace administrator must approve this app before it can be installed. " +
		"Ask them to approve it, then start again with the Add to Slack button.",
	"cannot_install_an_org_installed_app": "This app is installed for the whole Enterprise Grid organisation. " +
		"An organisation administrator must add it to this workspace.",
	"team_added_to_org": "The workspace is moving into an Enterprise Grid organisation. " +
		"Wait until the move is finished, then start the installation again.",
	"preview_feature_not_available": "The Slack app uses a feature this workspace does not have. " +
		"An administrator must check the app's settings.",
}

// Hint says in one or two sentences what to do about e, for the page shown
// after a failed installation.
func (e *OAuthError) Hint() string {
	if h, ok := oauthHints[e.Code]; ok {
		return h
	}
	if transientOAuthCodes[e.Code] {
		return "Slack had a temporary problem. Wait a minute, then start the installation again."
	}
	return "Slack refused the installation. Start again with the Add to Slack button; " +
		"if it keeps failing, an administrator should check the Slack app's settings and the Jackalope logs."
}

// oauthAnswer is the part of oauth.v2.access's answer Jackalope reads. The
// bot and user access tokens Slack may also send are deliberately ignored.
type oauthAnswer struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	AppID string `json:"app_id"`
	Scope string `json:"scope"`
	Team  *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"team"`
	AuthedUser *struct {
		ID string `json:"id"`
	} `json:"authed_user"`
	IncomingWebhook *struct {
		Channel          string `json:"channel"`
		ChannelID        string `json:"channel_id"`
		ConfigurationURL string `json:"configuration_url"`
		URL              string `json:"url"`
	} `json:"incoming_webhook"`
}

// Exchange trades the code Slack gave the installing user's browser for the
// installation (oauth.v2.access), sending the client ID and secret with
// HTTP Basic authentication. redirectURI must be the one the authorization
// request used; it is left out when empty.
//
// Slack refusing the code gives an *OAuthError. Slack being unreachable,
// failing or answering nonsense gives an error wrapping ErrUnavailable. An
// installation without an incoming webhook gives ErrNoWebhook; one whose
// webhook URL the Client's WebhookPolicy refuses, ErrWebhookRefused. No error
// contains the client secret, the code or the webhook URL.
func (c *Client) Exchange(ctx context.Context, code, redirectURI string) (OAuthResult, error) {
	if c.clientID == "" || c.clientSecret == "" {
		return OAuthResult{}, errors.New("slack oauth exchange: the slack client id and secret are not configured")
	}
	if code == "" {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", &OAuthError{Code: "invalid_code"})
	}
	form := url.Values{"code": {code}, "grant_type": {"authorization_code"}}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.apiURL+"/oauth.v2.access", strings.NewReader(form.Encode()))
	if err != nil {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: the slack api url cannot be requested: %w", ErrUnavailable)
	}
	req.SetBasicAuth(c.clientID, c.clientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	secrets := []string{c.clientSecret, code, url.QueryEscape(code), req.Header.Get("Authorization")}

	a, err := c.do(ctx, req, secrets...)
	if err != nil {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", err)
	}
	if a.status != http.StatusOK {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", &Error{Status: a.status, Body: cleanBody(a.body, secrets), Err: ErrUnavailable})
	}
	var ans oauthAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil {
		// The body is left out on purpose: a half-broken success would hold
		// the webhook URL and access tokens.
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", &Error{Status: a.status, Err: fmt.Errorf("%w: the answer is not json", ErrUnavailable)})
	}
	if !ans.OK {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", &OAuthError{Code: ErrorCode(ans.Error)})
	}
	hook := ans.IncomingWebhook
	if hook == nil || hook.URL == "" || hook.ChannelID == "" {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w", ErrNoWebhook)
	}
	if u, err := url.Parse(hook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: %w: the incoming webhook url is not an http(s) url", ErrUnavailable)
	}
	if err := c.webhooks.Check(hook.URL); err != nil {
		return OAuthResult{}, fmt.Errorf("slack oauth exchange: the incoming webhook url: %w", err)
	}
	res := OAuthResult{
		ChannelID:        hook.ChannelID,
		ChannelName:      hook.Channel,
		WebhookURL:       hook.URL,
		ConfigurationURL: hook.ConfigurationURL,
		AppID:            ans.AppID,
		Scope:            ans.Scope,
	}
	if ans.Team != nil {
		res.TeamID, res.TeamName = ans.Team.ID, ans.Team.Name
	}
	if ans.AuthedUser != nil {
		res.AuthedUserID = ans.AuthedUser.ID
	}
	return res, nil
}

// ErrorCode keeps a Slack error code only if it looks like one (lowercase
// letters, digits and underscores, at most 64 bytes), so that whatever an
// odd answer holds (or a query parameter, where a redirect carries one)
// cannot reach a page, a log line or a metric label through it.
func ErrorCode(s string) string {
	if s == "" || len(s) > 64 {
		return "unknown_error"
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return "unknown_error"
		}
	}
	return s
}
