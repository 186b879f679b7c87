package ingest

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// Event label values besides the catalog's event names. The label never
// holds a name Jamf (or anyone holding a URL) made up, so its cardinality
// stays bounded.
const (
	// labelNone counts requests refused before their event was known.
	labelNone = "none"
	// labelOther counts webhooks whose event is not in the catalog.
	labelOther = "other"
)

// metrics are ingest's Prometheus series.
type metrics struct {
	requests       *prometheus.CounterVec
	publishSeconds prometheus.Histogram
	inFlight       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jackalope_ingest_requests_total",
			Help: "Webhook requests answered, by HTTP status and event (catalog events only; \"other\" for the rest, \"none\" before the event is known).",
		}, []string{"code", "event"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jackalope_ingest_publish_seconds",
			Help:    "Time from publishing a webhook to the bus's acknowledgement or failure.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jackalope_ingest_in_flight",
			Help: "Webhook requests being handled.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.publishSeconds, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// request counts one answered request.
func (m *metrics) request(code int, event string) {
	m.requests.WithLabelValues(codeLabel(code), event).Inc()
}

// codeLabel spells the statuses the handler answers without formatting a
// number on every request.
func codeLabel(code int) string {
	switch code {
	case 204:
		return "204"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 410:
		return "410"
	case 413:
		return "413"
	case 415:
		return "415"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// catalog holds the catalog's event names, the only event label values
// besides labelNone and labelOther.
var catalog = func() map[string]bool {
	m := make(map[string]bool, len(jamf.Events))
	for _, e := range jamf.Events {
		m[e.Name] = true
	}
	return m
}()

// eventLabel returns the event label for a name jamf.Canonical returned.
func eventLabel(event string) string {
	if catalog[event] {
		return event
	}
	return labelOther
}
