package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the stream reads of one scrape.
const scrapeTimeout = 2 * time.Second

// streamCollector reads the streams' state from the server at each scrape:
// what they hold against their limits, and the age of the backlog's oldest
// event. A scrape that cannot reach the server reports nothing for them.
type streamCollector struct {
	c        *Conn
	msgs     *prometheus.Desc
	bytes    *prometheus.Desc
	fill     *prometheus.Desc
	oldest   *prometheus.Desc
	maxBytes *prometheus.Desc
}

// RegisterMetrics registers the streams' gauges on reg:
// jackalope_stream_messages, jackalope_stream_bytes,
// jackalope_stream_limit_ratio and jackalope_stream_max_bytes by stream, and
// jackalope_backlog_oldest_seconds.
func (c *Conn) RegisterMetrics(reg prometheus.Registerer) error {
	label := []string{"stream"}
	sc := &streamCollector{
		c: c,
		msgs: prometheus.NewDesc("jackalope_stream_messages",
			"Messages a stream holds; for JAMF_EVENTS, the events waiting for delivery.", label, nil),
		bytes: prometheus.NewDesc("jackalope_stream_bytes",
			"Bytes a stream holds.", label, nil),
		fill: prometheus.NewDesc("jackalope_stream_limit_ratio",
			"How full a stream is: the larger of bytes/STREAM_MAX_BYTES and messages/STREAM_MAX_MSGS (0 without a limit). JAMF_EVENTS refuses events at 1.", label, nil),
		maxBytes: prometheus.NewDesc("jackalope_stream_max_bytes",
			"A stream's size limit in bytes (-1: none).", label, nil),
		oldest: prometheus.NewDesc("jackalope_backlog_oldest_seconds",
			"Age of the oldest event waiting in JAMF_EVENTS; 0 when none waits.", nil, nil),
	}
	if err := reg.Register(sc); err != nil {
		return fmt.Errorf("register stream metrics: %w", err)
	}
	return nil
}

func (sc *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sc.msgs
	ch <- sc.bytes
	ch <- sc.fill
	ch <- sc.maxBytes
	ch <- sc.oldest
}

func (sc *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	states, err := sc.c.StreamStates(ctx)
	if err != nil {
		sc.c.log.Debug("stream metrics unavailable", "err", err)
		return
	}
	now := time.Now()
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(sc.msgs, prometheus.GaugeValue, float64(s.Msgs), s.Name)
		ch <- prometheus.MustNewConstMetric(sc.bytes, prometheus.GaugeValue, float64(s.Bytes), s.Name)
		ch <- prometheus.MustNewConstMetric(sc.fill, prometheus.GaugeValue, s.Fill(), s.Name)
		ch <- prometheus.MustNewConstMetric(sc.maxBytes, prometheus.GaugeValue, float64(s.MaxBytes), s.Name)
		if s.Name == StreamEvents {
			age := 0.0
			if !s.Oldest.IsZero() {
				age = max(now.Sub(s.Oldest), 0).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(sc.oldest, prometheus.GaugeValue, age)
		}
	}
}
