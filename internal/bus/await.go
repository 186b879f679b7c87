package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/retry"
)

// Need is a stream, a durable consumer of a stream, or a KV bucket that a
// service uses but leaves to another to create: with least privilege on a
// shared server, only the installer and the admin commands may create and
// change streams (deploy/nats).
type Need struct {
	Stream   string
	Consumer string // with Stream: its durable consumer
	Bucket   string
}

func (n Need) String() string {
	switch {
	case n.Bucket != "":
		return "KV bucket " + n.Bucket
	case n.Consumer != "":
		return "consumer " + n.Consumer + " of stream " + n.Stream
	default:
		return "stream " + n.Stream
	}
}

// What the services that do not provision wait for. Each is also what its
// user may look at in deploy/nats.
var (
	// IngestNeeds: ingest publishes to JAMF_EVENTS, reads the
	// installations and checks its key against the keyring.
	IngestNeeds = []Need{{Stream: StreamEvents}, {Bucket: BucketInstallations}, {Bucket: BucketKeyring}}
	// DispatchNeeds: dispatchers consume JAMF_EVENTS, park dead letters,
	// report dead channels, read the installations, share the channels'
	// delivery state and check their key against the keyring.
	DispatchNeeds = []Need{
		{Stream: StreamEvents, Consumer: ConsumerDispatch},
		{Stream: StreamDead},
		{Stream: StreamControl},
		{Bucket: BucketInstallations},
		{Bucket: BucketDelivery},
		{Bucket: BucketKeyring},
	}
)

// awaitEvery is how often Await looks again; awaitReport how often it says
// again what it still waits for.
const (
	awaitEvery  = 500 * time.Millisecond
	awaitReport = time.Minute
)

// Await returns once every need exists, looking again every awaitEvery and
// logging what is missing (at once, then every minute), or ctx's error
// with what was still missing. It creates nothing.
func (c *Conn) Await(ctx context.Context, needs []Need) error {
	var (
		reported time.Time
		state    = "not looked yet"
	)
	for {
		missing, err := c.missing(ctx, needs)
		if ctx.Err() != nil {
			return fmt.Errorf("wait for nats streams and buckets: %w (%s)", ctx.Err(), state)
		}
		if err == nil && len(missing) == 0 {
			if !reported.IsZero() {
				c.log.Info("nats streams and buckets are there; going on")
			}
			return nil
		}
		if err != nil {
			state = err.Error()
		} else {
			state = "missing " + strings.Join(missing, ", ")
		}
		if time.Since(reported) >= awaitReport {
			reported = time.Now()
			if err != nil {
				c.log.Warn("cannot tell whether the nats streams and buckets exist; waiting", "err", err)
			} else {
				c.log.Warn("waiting for the installer to create what this service needs", "missing", strings.Join(missing, ", "))
			}
		}
		if !retry.Sleep(ctx, awaitEvery) {
			return fmt.Errorf("wait for nats streams and buckets: %w (%s)", ctx.Err(), state)
		}
	}
}

// missing returns the needs that do not exist yet, or the first error that
// is not a "not found".
func (c *Conn) missing(ctx context.Context, needs []Need) ([]string, error) {
	var missing []string
	for _, n := range needs {
		var err error
		switch {
		case n.Bucket != "":
			_, err = c.js.KeyValue(ctx, n.Bucket)
		case n.Consumer != "":
			_, err = c.js.Consumer(ctx, n.Stream, n.Consumer)
		default:
			_, err = c.js.Stream(ctx, n.Stream)
		}
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
			missing = append(missing, n.String())
		case err != nil:
			return nil, fmt.Errorf("%s: %w", n, err)
		}
	}
	return missing, nil
}
