package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumer sizing.
const (
	// dispatchMaxAckPending bounds the events handed out and not yet
	// settled, across all dispatchers.
	dispatchMaxAckPending = 10000
	// installerMaxAckPending bounds the control messages in flight.
	installerMaxAckPending = 1000
)

// Provision creates or updates the streams JAMF_EVENTS, JAMF_DEAD and
// JAMF_CONTROL, the KV bucket "installations" and the durable consumers
// "dispatch" and "installer". It is idempotent: on a provisioned server it
// brings changed settings (a new MaxAge, say) up to date and succeeds.
func (c *Conn) Provision(ctx context.Context) error {
	for _, sc := range c.streamConfigs() {
		if _, err := c.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
	}
	if _, err := c.js.CreateOrUpdateKeyValue(ctx, c.bucketConfig()); err != nil {
		return fmt.Errorf("provision kv bucket %s: %w", BucketInstallations, err)
	}
	for _, kc := range c.securityBuckets() {
		if _, err := c.js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
		}
	}
	for stream, cc := range c.consumerConfigs() {
		if _, err := c.js.CreateOrUpdateConsumer(ctx, stream, cc); err != nil {
			return fmt.Errorf("provision consumer %s on %s: %w", cc.Durable, stream, err)
		}
	}
	return nil
}

// ProvisionMissing creates what Provision creates but leaves whatever
// already exists as it is. Commands (channels, dlq) use it: they run from a
// shell that may lack the services' STREAM_* settings, and must not change
// a running deployment's limits, yet a first `channels add` on a new data
// directory needs the bucket to exist.
func (c *Conn) ProvisionMissing(ctx context.Context) error {
	for _, sc := range c.streamConfigs() {
		if _, err := c.js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
	}
	if _, err := c.js.CreateKeyValue(ctx, c.bucketConfig()); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return fmt.Errorf("provision kv bucket %s: %w", BucketInstallations, err)
	}
	for _, kc := range c.securityBuckets() {
		if _, err := c.js.CreateKeyValue(ctx, kc); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
		}
	}
	for stream, cc := range c.consumerConfigs() {
		if _, err := c.js.CreateConsumer(ctx, stream, cc); err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("provision consumer %s on %s: %w", cc.Durable, stream, err)
		}
	}
	return nil
}

func (c *Conn) streamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "Jamf Pro webhooks accepted by ingest, waiting for delivery to Slack",
			Subjects:    []string{subjectEvents + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      c.cfg.MaxAge,
			MaxBytes:    c.cfg.MaxBytes,
			// A full stream refuses publishes (ingest answers 503 and
			// Jamf retries); it never drops an event it acknowledged.
			Discard:    jetstream.DiscardNew,
			Duplicates: c.cfg.DedupWindow,
			Replicas:   c.cfg.Replicas,
		},
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
}

func (c *Conn) bucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketInstallations,
		Description: "Installations read model: id -> registry.Entry (JSON)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	}
}

func (c *Conn) consumerConfigs() map[string]jetstream.ConsumerConfig {
	return map[string]jetstream.ConsumerConfig{
		StreamEvents: {
			Durable:     ConsumerDispatch,
			Description: "Dispatchers: deliver events to Slack",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     c.cfg.AckWait,
			// Attempts are bounded by the consume loop, which parks spent
			// messages in JAMF_DEAD; the server must never drop one.
			MaxDeliver:    -1,
			MaxAckPending: dispatchMaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      c.cfg.Replicas,
		},
		StreamControl: {
			Durable:       ConsumerInstaller,
			Description:   "Installer: act on dead channel reports",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.cfg.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: installerMaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      c.cfg.Replicas,
		},
	}
}
