package bus_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/registry"
)

// TestDeliveryStateCompareAndSet checks the delivery state's
// compare-and-set, which every post's turn goes through: a write at the
// revision last read succeeds and returns the next, a write at an older
// one (another dispatcher wrote meanwhile) reports the conflict without an
// error, and a cleared state is created again from revision 0.
func TestDeliveryStateCompareAndSet(t *testing.T) {
	c := bustest.New(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	set := func(s registry.DeliveryState, rev uint64) (uint64, bool) {
		t.Helper()
		next, ok, err := c.SetDeliveryState(ctx, "a", s, rev)
		if err != nil {
			t.Fatalf("SetDeliveryState(rev %d): %v", rev, err)
		}
		return next, ok
	}
	get := func() (registry.DeliveryState, uint64) {
		t.Helper()
		s, rev, err := c.DeliveryState(ctx, "a")
		if err != nil {
			t.Fatalf("DeliveryState: %v", err)
		}
		return s, rev
	}

	first := registry.DeliveryState{TAT: at}
	rev1, ok := set(first, 0)
	if !ok || rev1 == 0 {
		t.Fatalf("creating the state = rev %d, %t; want a revision, true", rev1, ok)
	}
	if _, ok := set(registry.DeliveryState{TAT: at.Add(time.Hour)}, 0); ok {
		t.Fatal("creating it again succeeded, want a conflict")
	}
	second := registry.DeliveryState{TAT: at.Add(time.Second), Failures: 2}
	rev2, ok := set(second, rev1)
	if !ok || rev2 <= rev1 {
		t.Fatalf("update at rev %d = rev %d, %t; want a later revision, true", rev1, rev2, ok)
	}
	if _, ok := set(registry.DeliveryState{TAT: at.Add(time.Minute)}, rev1); ok {
		t.Fatal("update at a stale revision succeeded, want a conflict")
	}
	got, rev := get()
	if rev != rev2 {
		t.Errorf("revision read = %d, want %d", rev, rev2)
	}
	if diff := cmp.Diff(second, got); diff != "" {
		t.Errorf("state read (-want +got):\n%s", diff)
	}

	if err := c.ClearDeliveryState(ctx, "a"); err != nil {
		t.Fatalf("ClearDeliveryState: %v", err)
	}
	if s, rev := get(); rev != 0 || !cmp.Equal(s, registry.DeliveryState{}) {
		t.Fatalf("after clearing = %+v at rev %d, want the zero state at 0", s, rev)
	}
	if _, ok := set(first, 0); !ok {
		t.Fatal("creating the cleared state failed")
	}
}
