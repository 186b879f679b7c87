package dispatch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one delivery attempt, the values of the outcome label of
// jackalope_dispatch_deliveries_total.
const (
	OutcomeDelivered    = "delivered"     // Slack answered 2xx; acked
	OutcomeRetried      = "retried"       // handed back to the bus to retry with backoff
	OutcomeRateLimited  = "rate_limited"  // Slack answered 429; the channel is paused
	OutcomeDeadLettered = "dead_lettered" // parked in the dead-letter stream
	OutcomePaused       = "paused"        // not posted: the channel is paused after a 429
)

// Reasons a message becomes a dead letter, the values of the reason label of
// jackalope_dispatch_dead_letters_total and of jamf.DeadLetter.Reason.
const (
	ReasonAttemptsSpent       = "attempts_spent"       // retryable failures until MaxAttempts
	ReasonChannelDead         = "channel_dead"         // Slack says the webhook will never post again
	ReasonBadMessage          = "bad_message"          // the body cannot be parsed, or Slack refused the message
	ReasonChannelDisabled     = "channel_disabled"     // the installation is disabled; replay once re-enabled
	ReasonUnknownInstallation = "unknown_installation" // no such installation in the read model
	ReasonUnreadableWebhook   = "unreadable_webhook"   // the sealed webhook URL cannot be opened (wrong SECRET_KEY)
	ReasonRejected            = "rejected"             // Slack refused it permanently for another reason
	ReasonWebhookRefused      = "webhook_refused"      // the webhook URL is outside SLACK_WEBHOOK_HOSTS; nothing was sent
)

// metrics are the dispatcher's Prometheus collectors. Labels never carry an
// installation id, a webhook URL or a token: only fixed outcome, class and
// reason names.
type metrics struct {
	deliveries  *prometheus.CounterVec
	requests    *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	lag         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_dispatch_deliveries_total",
			Help: "Delivery attempts by outcome: delivered, retried, rate_limited, dead_lettered, paused.",
		}, []string{"outcome"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jackalope_slack_request_seconds",
			Help:    "Time of each post to a Slack incoming webhook, by answer class.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12), // 10 ms to about 20 s
		}, []string{"class"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_dispatch_dead_letters_total",
			Help: "Events parked in the dead-letter stream, by reason.",
		}, []string{"reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jackalope_dispatch_event_lag_seconds",
			Help:    "Time from ingest receiving an event to Slack accepting it.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 17), // 50 ms to about 55 min
		}),
	}
	// Every label value is created up front, so that dashboards and alerts
	// see zeros instead of missing series.
	for _, o := range []string{OutcomeDelivered, OutcomeRetried, OutcomeRateLimited, OutcomeDeadLettered, OutcomePaused} {
		m.deliveries.WithLabelValues(o)
	}
	for _, r := range []string{ReasonAttemptsSpent, ReasonChannelDead, ReasonBadMessage, ReasonChannelDisabled,
		ReasonUnknownInstallation, ReasonUnreadableWebhook, ReasonRejected, ReasonWebhookRefused} {
		m.deadLetters.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.requests, m.deadLetters, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register dispatch metrics: %w", err)
		}
	}
	return m, nil
}
