package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Buckets of the key agreement and of the OAuth flow. Provision creates
// them next to "installations".
const (
	// BucketKeyring holds, under keyFingerprint, the fingerprints of the
	// keys that open what the registry holds (see Fingerprints).
	BucketKeyring = "keyring"
	// BucketOAuthStates holds the OAuth states of finished installs, each
	// for OAuthStateTTL, so that a state is used once across installers.
	BucketOAuthStates = "oauth_states"
	// OAuthStateTTL is how long an OAuth state lives, and so how long the
	// bucket remembers a used one.
	OAuthStateTTL = 10 * time.Minute

	keyFingerprint = "fingerprint"
)

// Fingerprints is what the installer publishes in the bucket "keyring":
// the fingerprint of its SECRET_KEY (Current), and of SECRET_KEY_PREVIOUS
// while some stored value still needs it (Previous). Fingerprints never
// reveal a key (see secret.Keys.Fingerprint).
type Fingerprints struct {
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
}

// securityBuckets are the buckets of this file, as Provision creates them.
func (c *Conn) securityBuckets() []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{
			Bucket:      BucketKeyring,
			Description: "Fingerprints of the keys that open the registry's secrets",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.Replicas,
		},
		{
			Bucket:      BucketOAuthStates,
			Description: "OAuth states of finished installs, so that each is used once",
			History:     1,
			TTL:         OAuthStateTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.Replicas,
		},
	}
}

// PublishKeys stores the key fingerprints in the bucket "keyring", for
// every service to compare with its own keys. previous is empty when no
// stored value needs SECRET_KEY_PREVIOUS.
func (c *Conn) PublishKeys(ctx context.Context, current, previous string) error {
	if current == "" {
		return errors.New("publish key fingerprints: the current fingerprint is empty")
	}
	b, err := json.Marshal(Fingerprints{Current: current, Previous: previous})
	if err != nil {
		return fmt.Errorf("publish key fingerprints: %w", err)
	}
	kv, err := c.bucket(ctx, BucketKeyring)
	if err != nil {
		return fmt.Errorf("publish key fingerprints: %w", err)
	}
	if _, err := kv.Put(ctx, keyFingerprint, b); err != nil {
		return fmt.Errorf("publish key fingerprints: %w", err)
	}
	return nil
}

// KeyFingerprints returns the published key fingerprints, and false when
// none were published yet.
func (c *Conn) KeyFingerprints(ctx context.Context) (Fingerprints, bool, error) {
	kv, err := c.bucket(ctx, BucketKeyring)
	if err != nil {
		return Fingerprints{}, false, fmt.Errorf("read key fingerprints: %w", err)
	}
	e, err := kv.Get(ctx, keyFingerprint)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Fingerprints{}, false, nil
	}
	if err != nil {
		return Fingerprints{}, false, fmt.Errorf("read key fingerprints: %w", err)
	}
	var f Fingerprints
	if err := json.Unmarshal(e.Value(), &f); err != nil || f.Current == "" {
		return Fingerprints{}, false, fmt.Errorf("read key fingerprints: unreadable record (%d bytes)", len(e.Value()))
	}
	return f, true, nil
}

// ClaimState records an OAuth state as used in the bucket "oauth_states"
// and reports false when it already was, in this or another installer:
// the key is created only if absent, so of two claims one wins. The entry
// expires with the state.
func (c *Conn) ClaimState(ctx context.Context, state string) (bool, error) {
	if err := validKey(state); err != nil {
		return false, fmt.Errorf("claim oauth state: %w", err)
	}
	kv, err := c.bucket(ctx, BucketOAuthStates)
	if err != nil {
		return false, fmt.Errorf("claim oauth state: %w", err)
	}
	_, err = kv.Create(ctx, state, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim oauth state: %w", err)
	}
	return true, nil
}

// validKey accepts what a KV key may be, from the state alphabet
// (crypto/rand.Text: A-Z and 2-7) and a little more.
func validKey(k string) error {
	if k == "" || len(k) > 128 {
		return errors.New("key must be 1 to 128 characters")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			continue
		}
		return errors.New("key has a character outside A-Z, a-z, 0-9, - and _")
	}
	return nil
}
