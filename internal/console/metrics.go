package console

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a sign-in, the values of the outcome label.
const (
	outcomeSignedIn         = "signed_in"
	outcomeDenied           = "denied"            // cancelled on Slack's page, or refused by Slack there
	outcomeBadState         = "bad_state"         // missing, forged or expired state
	outcomeRefused          = "refused"           // Slack refused the code exchange
	outcomeBadToken         = "bad_token"         // the id_token failed verification or lacks Slack's claims
	outcomeSlackUnavailable = "slack_unavailable" // discovery or exchange could not reach Slack
)

// metrics are the console's Prometheus metrics.
type metrics struct {
	signIns *prometheus.CounterVec
	changes *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them on reg; nil registers
// nothing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_console_sign_ins_total",
			Help: "Sign-ins to the console that came back from Slack, by outcome.",
		}, []string{"outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_console_changes_total",
			Help: "Changes made in the console, by action and result (done, failed, forbidden).",
		}, []string{"action", "result"}),
	}
	for _, o := range []string{outcomeSignedIn, outcomeDenied, outcomeBadState, outcomeRefused, outcomeBadToken, outcomeSlackUnavailable} {
		m.signIns.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.signIns, m.changes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register console metrics: %w", err)
		}
	}
	return m, nil
}
