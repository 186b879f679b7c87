package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// installerMaxAckPending bounds the control messages in flight.
const installerMaxAckPending = 1000

// minServerMajor and minServerMinor are the oldest NATS server Jackalope
// runs on: 2.10 is the first that switches a stream to interest retention
// in place (see below).
const (
	minServerMajor = 2
	minServerMinor = 10
)

// ErrServerTooOld is returned by Provision on a NATS server older than
// 2.10.
var ErrServerTooOld = errors.New("jackalope needs NATS server 2.10 or newer")

// JAMF_EVENTS is the backlog: it holds an event from the moment ingest
// stored it until a dispatcher settles it (delivered, or parked in
// JAMF_DEAD), and nothing after. It uses interest retention with the one
// durable consumer "dispatch", so the server removes an event as soon as
// dispatch acks or terminates it, and STREAM_MAX_BYTES (and
// STREAM_MAX_MSGS) bound only what still waits.
//
// Work-queue retention would remove events the same way, but JetStream
// cannot change a stream to or from it: deployments from before the
// backlog rule run JAMF_EVENTS with limits retention, full of delivered
// events, and only interest retention can be switched on in place. The
// server then drops at once what "dispatch" already acked and keeps the
// rest, with the consumer's state, so an upgrade loses and repeats nothing
// and old ingests keep publishing to the same stream during a rolling
// upgrade. The price of interest retention: a message is kept only while a
// consumer has interest in it, so the stream must never be left without
// "dispatch" (provisionEvents creates the consumer before it switches the
// retention, and a new stream starts with limits retention until the
// consumer exists), and no other consumer with explicit acks may be added
// to it: one that never acks would keep every event (Provision warns).

// Provision creates or updates the streams JAMF_EVENTS, JAMF_DEAD,
// JAMF_CONTROL and (when the history is on) JAMF_HISTORY, the KV buckets
// "installations" and "delivery" and the durable consumers "dispatch" and
// "installer". It is idempotent: on a provisioned server it brings changed
// settings (a new MaxAge, say) up to date and succeeds. It also upgrades
// JAMF_EVENTS of older deployments to the backlog layout in place.
func (c *Conn) Provision(ctx context.Context) error {
	if err := c.provisionEvents(ctx, true); err != nil {
		return err
	}
	for _, sc := range c.streamConfigs() {
		if _, err := c.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range c.bucketConfigs() {
		if _, err := c.js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
		}
	}
	cc := c.installerConsumer()
	if _, err := c.js.CreateOrUpdateConsumer(ctx, StreamControl, cc); err != nil {
		return fmt.Errorf("provision consumer %s on %s: %w", cc.Durable, StreamControl, err)
	}
	return nil
}

// ProvisionMissing creates what Provision creates but leaves whatever
// already exists as it is. Commands (channels, dlq) use it: they run from a
// shell that may lack the services' STREAM_* settings, and must not change
// a running deployment's limits, yet a first `channels add` on a new data
// directory needs the bucket to exist.
func (c *Conn) ProvisionMissing(ctx context.Context) error {
	if err := c.provisionEvents(ctx, false); err != nil {
		return err
	}
	for _, sc := range c.streamConfigs() {
		if _, err := c.js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range c.bucketConfigs() {
		if _, err := c.js.CreateKeyValue(ctx, kc); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
		}
	}
	cc := c.installerConsumer()
	if _, err := c.js.CreateConsumer(ctx, StreamControl, cc); err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return fmt.Errorf("provision consumer %s on %s: %w", cc.Durable, StreamControl, err)
	}
	return nil
}

// provisionEvents makes JAMF_EVENTS and its consumer "dispatch" in the
// order interest retention needs (see above): the stream, with limits
// retention when it is new; the consumer; then interest retention. With
// update false it only creates what is missing, but still finishes a
// stream it finds half made.
func (c *Conn) provisionEvents(ctx context.Context, update bool) error {
	if v := c.nc.ConnectedServerVersion(); !versionAtLeast(v, minServerMajor, minServerMinor) {
		return fmt.Errorf("provision stream %s: %w (this server runs %q)", StreamEvents, ErrServerTooOld, v)
	}
	want := c.eventsConfig()
	stream, err := c.js.Stream(ctx, StreamEvents)
	existed := err == nil
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		first := want
		first.Retention = jetstream.LimitsPolicy
		if stream, err = c.js.CreateStream(ctx, first); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("provision stream %s: %w", StreamEvents, err)
		}
		if err != nil {
			// Another process made it meanwhile.
			if stream, err = c.js.Stream(ctx, StreamEvents); err != nil {
				return fmt.Errorf("provision stream %s: %w", StreamEvents, err)
			}
		}
	case err != nil:
		return fmt.Errorf("provision stream %s: %w", StreamEvents, err)
	}

	cc := c.dispatchConsumer()
	if update {
		_, err = c.js.CreateOrUpdateConsumer(ctx, StreamEvents, cc)
	} else if _, err = c.js.CreateConsumer(ctx, StreamEvents, cc); errors.Is(err, jetstream.ErrConsumerExists) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("provision consumer %s on %s: %w", cc.Durable, StreamEvents, err)
	}

	have := stream.CachedInfo().Config
	switch {
	case update:
	case have.Retention != jetstream.InterestPolicy:
		// A command finishing a stream it found with limits retention:
		// keep its limits, switch only the retention.
		want = have
		want.Retention = jetstream.InterestPolicy
	default:
		return nil
	}
	if existed && have.Retention == jetstream.LimitsPolicy {
		c.log.Info("switching the backlog to interest retention: delivered events leave it", "stream", StreamEvents,
			"messages", stream.CachedInfo().State.Msgs)
	}
	if _, err := c.js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("provision stream %s: %w", StreamEvents, err)
	}
	c.warnOtherConsumers(ctx, stream)
	return nil
}

// warnOtherConsumers logs each consumer of JAMF_EVENTS other than
// "dispatch": under interest retention each one keeps events in the
// backlog until it acks them too.
func (c *Conn) warnOtherConsumers(ctx context.Context, stream jetstream.Stream) {
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		if name != ConsumerDispatch {
			c.log.Warn("another consumer holds events in the backlog until it acks them; remove it unless you mean it",
				"stream", StreamEvents, "consumer", name)
		}
	}
	if err := names.Err(); err != nil {
		c.log.Debug("list consumers", "stream", StreamEvents, "err", err)
	}
}

func (c *Conn) eventsConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "The backlog: Jamf Pro webhooks accepted by ingest and not yet delivered to Slack or parked",
		Subjects:    []string{subjectEvents + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.InterestPolicy,
		MaxAge:      c.cfg.MaxAge,
		MaxBytes:    c.cfg.MaxBytes,
		MaxMsgs:     c.cfg.MaxMsgs,
		// A full backlog refuses publishes (ingest answers 503); it never
		// drops an event it acknowledged.
		Discard:    jetstream.DiscardNew,
		Duplicates: c.cfg.DedupWindow,
		Replicas:   c.cfg.Replicas,
	}
}

// streamConfigs are the streams other than JAMF_EVENTS.
func (c *Conn) streamConfigs() []jetstream.StreamConfig {
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamDead,
			Description: "Jamf events that could not be delivered, with why; replayable",
			Subjects:    []string{subjectDead + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      c.cfg.DeadMaxAge,
			MaxBytes:    c.cfg.MaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  c.cfg.DedupWindow,
			Replicas:    c.cfg.Replicas,
		},
		{
			Name:        StreamControl,
			Description: "Reports from dispatchers to the installer (dead Slack channels)",
			Subjects:    []string{subjectControl + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      controlMaxAge,
			Discard:     jetstream.DiscardOld,
			Duplicates:  c.cfg.DedupWindow,
			Replicas:    c.cfg.Replicas,
		},
	}
	if c.cfg.HistoryMaxAge > 0 {
		streams = append(streams, jetstream.StreamConfig{
			Name:        StreamHistory,
			Description: "Jamf events delivered to Slack, kept a while to be resent; the oldest make room",
			Subjects:    []string{subjectHistory + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      c.cfg.HistoryMaxAge,
			MaxBytes:    c.cfg.HistoryMaxBytes,
			// The history never refuses an event: it drops its oldest.
			Discard:  jetstream.DiscardOld,
			Replicas: c.cfg.Replicas,
		})
	}
	return streams
}

func (c *Conn) bucketConfigs() []jetstream.KeyValueConfig {
	return append([]jetstream.KeyValueConfig{
		{
			Bucket:      BucketInstallations,
			Description: "Installations read model: id -> registry.Entry (JSON)",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.Replicas,
		},
		// The delivery state is written at every post (each claims its
		// channel's turn), so it lives in memory: a server restart forgets
		// paces, pauses, backoffs and dead marks, which cost at most one
		// more post to learn again, and no event.
		{
			Bucket:      BucketDelivery,
			Description: "Delivery state every dispatcher shares: id -> registry.DeliveryState (JSON)",
			History:     1,
			Storage:     jetstream.MemoryStorage,
			Replicas:    c.cfg.Replicas,
		},
	}, c.securityBuckets()...)
}

func (c *Conn) dispatchConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     ConsumerDispatch,
		Description: "Dispatchers: deliver events to Slack",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     c.cfg.AckWait,
		// The dispatchers decide when an event is given up (its delivery
		// deadline) and park it in JAMF_DEAD; the server must never drop
		// one.
		MaxDeliver: -1,
		// Events of a channel that must wait (its pace, a 429 pause, a
		// failing Slack) stay pending on the server while the dispatchers
		// take every other channel's events; a bound here would let one
		// flooded channel stop them all. Each dispatcher bounds what it
		// holds in memory itself.
		MaxAckPending: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
	}
}

func (c *Conn) installerConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerInstaller,
		Description:   "Installer: act on dead channel reports",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: installerMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
	}
}

// versionAtLeast reports whether the server version v ("2.10.24",
// "2.11.0-RC.1") is major.minor or newer. An unreadable version passes:
// the server itself then refuses what it cannot do.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// streamNames lists the streams Provision makes, for status reports.
func (c *Conn) streamNames() []string {
	names := []string{StreamEvents}
	for _, sc := range c.streamConfigs() {
		names = append(names, sc.Name)
	}
	return slices.Clip(names)
}
