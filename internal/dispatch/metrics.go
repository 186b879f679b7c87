package dispatch

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// Outcomes of delivery, the values of the outcome label of
// jackalope_dispatch_deliveries_total, counted per event.
const (
	OutcomeDelivered    = "delivered"     // Slack answered 2xx; acked
	OutcomeRetried      = "retried"       // a post failed; the channel is tried again later
	OutcomeRateLimited  = "rate_limited"  // Slack answered 429; the channel is paused everywhere
	OutcomeDeadLettered = "dead_lettered" // parked in the dead-letter stream
)

// Reasons a message becomes a dead letter, the values of the reason label of
// jackalope_dispatch_dead_letters_total and of jamf.DeadLetter.Reason.
const (
	ReasonDeadlinePassed      = "deadline_passed"      // its channel still failed at its delivery deadline
	ReasonChannelDead         = "channel_dead"         // Slack says the webhook will never post again
	ReasonBadMessage          = "bad_message"          // the body cannot be parsed, or Slack refused the message
	ReasonChannelDisabled     = "channel_disabled"     // the installation is disabled; replay once re-enabled
	ReasonUnknownInstallation = "unknown_installation" // no such installation in the read model
	ReasonUnreadableWebhook   = "unreadable_webhook"   // the sealed webhook URL cannot be opened (wrong SECRET_KEY)
	ReasonRejected            = "rejected"             // Slack refused it permanently for another reason
	ReasonWebhookRefused      = "webhook_refused"      // the webhook URL is outside SLACK_WEBHOOK_HOSTS; nothing was sent
)

// filteredOther is the event label of jackalope_events_filtered_total for
// event types outside the catalog.
const filteredOther = "other"

// metrics are the dispatcher's Prometheus collectors. Labels never carry an
// installation id, a webhook URL or a token: only fixed outcome, class,
// reason and wait names.
type metrics struct {
	deliveries   *prometheus.CounterVec
	requests     *prometheus.HistogramVec
	deadLetters  *prometheus.CounterVec
	lag          prometheus.Histogram
	waits        *prometheus.CounterVec
	digests      prometheus.Counter
	digestEvents prometheus.Histogram
	filtered     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, d *Dispatcher) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_dispatch_deliveries_total",
			Help: "Events by delivery outcome: delivered, retried, rate_limited, dead_lettered.",
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
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_dispatch_waits_total",
			Help: "Times a channel's events waited without a post, by why: paced (its turn), paused (a 429), failing (its posts fail), held (this process holds enough of them).",
		}, []string{"why"}),
		digests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jackalope_dispatch_digests_total",
			Help: "Digests posted: messages that carried many events of a channel behind its pace.",
		}),
		digestEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jackalope_dispatch_digest_events",
			Help:    "Events per digest posted.",
			Buckets: prometheus.ExponentialBuckets(2, 2, 14), // 2 to 16384
		}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_events_filtered_total",
			Help: "Events settled without a post because their channel's event filter hides them, by event type (other: a type outside the catalog).",
		}, []string{"event"}),
	}
	// Every label value is created up front, so that dashboards and alerts
	// see zeros instead of missing series.
	for _, o := range []string{OutcomeDelivered, OutcomeRetried, OutcomeRateLimited, OutcomeDeadLettered} {
		m.deliveries.WithLabelValues(o)
	}
	for _, r := range []string{ReasonDeadlinePassed, ReasonChannelDead, ReasonBadMessage, ReasonChannelDisabled,
		ReasonUnknownInstallation, ReasonUnreadableWebhook, ReasonRejected, ReasonWebhookRefused} {
		m.deadLetters.WithLabelValues(r)
	}
	for _, w := range []string{waitPaced, waitPaused, waitFailing, waitHeld} {
		m.waits.WithLabelValues(w)
	}
	for _, e := range jamf.Events {
		m.filtered.WithLabelValues(e.Name)
	}
	m.filtered.WithLabelValues(filteredOther)
	if reg == nil {
		return m, nil
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jackalope_dispatch_held_events",
			Help: "Events this dispatcher holds in memory: waiting for their channel's turn or being posted.",
		}, func() float64 { return float64(d.heldEvents()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jackalope_dispatch_posts_in_flight",
			Help: "Posts to Slack under way in this dispatcher.",
		}, func() float64 { return float64(d.postsInFlight()) }),
	}
	channels := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jackalope_dispatch_channels",
		Help: "Channels by state as this dispatcher last saw them: paused (a 429), failing, dead, digest (behind its pace, getting digests, with events here).",
	}, []string{"state"})
	gauges = append(gauges, channelsCollector{vec: channels, d: d})
	for _, c := range append([]prometheus.Collector{m.deliveries, m.requests, m.deadLetters, m.lag, m.waits, m.digests, m.digestEvents, m.filtered}, gauges...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register dispatch metrics: %w", err)
		}
	}
	return m, nil
}

// channelsCollector counts, at each scrape, the channels by the state this
// dispatcher last saw of them.
type channelsCollector struct {
	vec *prometheus.GaugeVec
	d   *Dispatcher
}

func (c channelsCollector) Describe(ch chan<- *prometheus.Desc) { c.vec.Describe(ch) }

func (c channelsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.d.channelStates(time.Now())
	for _, state := range []string{"paused", "failing", "dead", "digest"} {
		c.vec.WithLabelValues(state).Set(float64(counts[state]))
	}
	c.vec.Collect(ch)
}

// postsInFlight is how many runners are not waiting for a channel: each
// claims a turn, renders or posts. A runner that waits is counted in idle
// or has its channel in handoff.
func (d *Dispatcher) postsInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runners - d.idle - len(d.handoff)
}

// heldEvents is how many events the dispatcher holds.
func (d *Dispatcher) heldEvents() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

// channelStates counts the channels by the state this dispatcher last
// saw of them at now.
func (d *Dispatcher) channelStates(now time.Time) map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := map[string]int{}
	for id, c := range d.cache {
		s := c.state
		switch {
		case s.Dead != nil:
			counts["dead"]++
		case s.Paused(now):
			counts["paused"]++
		case s.Failing():
			counts["failing"]++
		}
		// A channel gets digests while it is behind: it has events here.
		if ch := d.channels[id]; !s.DigestSince.IsZero() && ch != nil && len(ch.queue)+len(ch.posting) > 0 {
			counts["digest"]++
		}
	}
	return counts
}
