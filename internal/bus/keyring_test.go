package bus_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
)

// TestSecurityBuckets pins the buckets of key agreement and OAuth states:
// both made by Provision and by ProvisionMissing, and oauth_states forgets
// an entry after the life of a state.
func TestSecurityBuckets(t *testing.T) {
	empty := bustest.Server(t)
	missing, err := bus.Connect(t.Context(), bus.Config{URL: empty.URL()}, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(missing.Close)
	if err := missing.ProvisionMissing(t.Context()); err != nil {
		t.Fatalf("ProvisionMissing on an empty server: %v", err)
	}
	if err := missing.ProvisionMissing(t.Context()); err != nil {
		t.Fatalf("ProvisionMissing on a provisioned server: %v", err)
	}
	for name, c := range map[string]*bus.Conn{"Provision": bustest.New(t), "ProvisionMissing": missing} {
		for _, b := range []struct {
			bucket string
			ttl    time.Duration
		}{{bus.BucketKeyring, 0}, {bus.BucketOAuthStates, bus.OAuthStateTTL}} {
			kv, err := c.JetStream().KeyValue(t.Context(), b.bucket)
			if err != nil {
				t.Fatalf("%s: bucket %s: %v", name, b.bucket, err)
			}
			st, err := kv.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.History() != 1 || st.TTL() != b.ttl {
				t.Errorf("%s: bucket %s has history %d, TTL %v; want 1, %v", name, b.bucket, st.History(), st.TTL(), b.ttl)
			}
		}
	}
	if bus.OAuthStateTTL != 10*time.Minute {
		t.Errorf("OAuthStateTTL = %v; want the 10 minutes a state lives", bus.OAuthStateTTL)
	}
}

func TestKeyFingerprints(t *testing.T) {
	c := bustest.New(t)
	if got, ok, err := c.KeyFingerprints(t.Context()); err != nil || ok {
		t.Fatalf("KeyFingerprints before any publish = %+v, %v, %v; want none", got, ok, err)
	}
	for _, want := range []bus.Fingerprints{{Current: "new", Previous: "old"}, {Current: "new"}} {
		if err := c.PublishKeys(t.Context(), want.Current, want.Previous); err != nil {
			t.Fatal(err)
		}
		got, ok, err := c.KeyFingerprints(t.Context())
		if err != nil || !ok {
			t.Fatalf("KeyFingerprints = %v, %v", ok, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("KeyFingerprints (-want +got):\n%s", diff)
		}
	}
	if err := c.PublishKeys(t.Context(), "", "old"); err == nil {
		t.Error("PublishKeys without a current fingerprint succeeded")
	}
	kv, err := c.JetStream().KeyValue(t.Context(), bus.BucketKeyring)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "fingerprint", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.KeyFingerprints(t.Context()); err == nil {
		t.Error("KeyFingerprints of a garbled record succeeded")
	}
}

// TestClaimState pins single use of OAuth states across installers: of
// many concurrent claims of one state, on several connections, exactly one
// wins.
func TestClaimState(t *testing.T) {
	n := bustest.Server(t)
	conns := []*bus.Conn{n.Connect(t), n.Connect(t), n.Connect(t)}
	const state = "OQ7CGFNWSV6SIGBXSF3OE46QIN"
	var (
		wins atomic.Int32
		wg   sync.WaitGroup
	)
	for i := range 12 {
		wg.Go(func() {
			ok, err := conns[i%len(conns)].ClaimState(t.Context(), state)
			if err != nil {
				t.Errorf("ClaimState: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("%d claims of one state won; want exactly 1", got)
	}
	if ok, err := conns[0].ClaimState(t.Context(), "ANOTHERSTATE234567"); err != nil || !ok {
		t.Errorf("ClaimState of another state = %v, %v; want it won", ok, err)
	}
	for _, bad := range []string{"", "a.b", "a b", "state>"} {
		if _, err := conns[0].ClaimState(t.Context(), bad); err == nil {
			t.Errorf("ClaimState(%q) succeeded; want an error", bad)
		}
	}
}
