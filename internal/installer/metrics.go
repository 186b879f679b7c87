package installer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of the install flow, the values of the outcome label.
const (
	outcomeInstalled        = "installed"         // a new channel
	outcomeReinstalled      = "reinstalled"       // a channel installed before; its Jamf URL is kept
	outcomeCancelled        = "cancelled"         // the admin cancelled on Slack's consent screen
	outcomeBadState         = "bad_state"         // missing, forged, expired or replayed state
	outcomeOAuthError       = "oauth_error"       // Slack refused the code exchange
	outcomeSlackUnavailable = "slack_unavailable" // Slack could not be reached
	outcomeFailed           = "failed"            // the store or the KV bucket failed
	outcomeWebhookRefused   = "webhook_refused"   // Slack's webhook URL is outside SLACK_WEBHOOK_HOSTS
)

var outcomes = []string{
	outcomeInstalled, outcomeReinstalled, outcomeCancelled, outcomeBadState,
	outcomeOAuthError, outcomeSlackUnavailable, outcomeFailed, outcomeWebhookRefused,
}

// metrics are the installer's Prometheus metrics.
type metrics struct {
	installs        *prometheus.CounterVec
	oauthErrors     *prometheus.CounterVec
	welcomeFailures prometheus.Counter
	deadChannels    prometheus.Counter
}

// newMetrics creates the metrics and registers them on reg; a nil reg
// registers nothing (the `channels` commands).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		installs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_installer_installs_total",
			Help: "Install attempts that came back from Slack, by outcome.",
		}, []string{"outcome"}),
		oauthErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_installer_oauth_errors_total",
			Help: "OAuth code exchanges Slack refused, by Slack's error code.",
		}, []string{"code"}),
		welcomeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jackalope_installer_welcome_failures_total",
			Help: "Welcome messages Slack did not take after an install; the install stays.",
		}),
		deadChannels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jackalope_installer_dead_channels_total",
			Help: "Installations disabled because a dispatcher reported their Slack channel gone.",
		}),
	}
	for _, o := range outcomes {
		m.installs.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.installs, m.oauthErrors, m.welcomeFailures, m.deadChannels} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// oauthCodes are the error codes Slack documents for the OAuth v2 flow and
// oauth.v2.access, including its passing failures. Any other code counts as
// "other", so that the label stays bounded whatever arrives in a redirect
// or an answer.
var oauthCodes = map[string]bool{
	"access_denied":                        true,
	"bad_client_secret":                    true,
	"bad_redirect_uri":                     true,
	"cannot_install_an_org_installed_app":  true,
	"code_already_used":                    true,
	"fatal_error":                          true,
	"internal_error":                       true,
	"invalid_client_id":                    true,
	"invalid_code":                         true,
	"invalid_grant_type":                   true,
	"invalid_team_for_non_distributed_app": true,
	"oauth_authorization_url_mismatch":     true,
	"preview_feature_not_available":        true,
	"rate_limited":                         true,
	"ratelimited":                          true,
	"request_timeout":                      true,
	"service_unavailable":                  true,
	"team_added_to_org":                    true,
	"unapproved_app":                       true,
}

// codeLabel returns code when Slack documents it, "other" otherwise.
func codeLabel(code string) string {
	if oauthCodes[code] {
		return code
	}
	return "other"
}
