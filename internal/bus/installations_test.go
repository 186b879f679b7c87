package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

func entry(id, hash string) registry.Entry {
	return registry.Entry{
		ID:               id,
		Status:           registry.StatusActive,
		TokenHash:        hash,
		WebhookURLSealed: "sealed:" + id,
		TeamName:         "Team",
		ChannelName:      "#mdm-" + id,
		JamfURL:          "https://jamf.example.com",
	}
}

func TestInstallationsKV(t *testing.T) {
	c := bustest.New(t)
	ctx := t.Context()

	keys, err := c.InstallationKeys(ctx)
	if err != nil {
		t.Fatalf("InstallationKeys on an empty bucket: %v", err)
	}
	if keys == nil || len(keys) != 0 {
		t.Errorf("InstallationKeys on an empty bucket = %#v, want an empty slice", keys)
	}
	if _, err := c.GetInstallation(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetInstallation(missing) = %v, want registry.ErrNotFound", err)
	}
	if err := c.DeleteInstallation(ctx, "nope"); err != nil {
		t.Errorf("DeleteInstallation(missing) = %v, want nil", err)
	}

	a, b := entry("a", "hash-a"), entry("b", "hash-b")
	for _, e := range []registry.Entry{a, b} {
		if err := c.PutInstallation(ctx, e); err != nil {
			t.Fatalf("PutInstallation: %v", err)
		}
	}
	b.Status, b.StatusReason = registry.StatusDisabled, "channel_not_found"
	if err := c.PutInstallation(ctx, b); err != nil {
		t.Fatalf("PutInstallation (update): %v", err)
	}

	tests := []struct {
		id   string
		want registry.Entry
	}{
		{"a", a},
		{"b", b},
	}
	for _, tt := range tests {
		got, err := c.GetInstallation(ctx, tt.id)
		if err != nil {
			t.Fatalf("GetInstallation(%s): %v", tt.id, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("GetInstallation(%s) (-want +got):\n%s", tt.id, diff)
		}
	}
	keys, err = c.InstallationKeys(ctx)
	if err != nil {
		t.Fatalf("InstallationKeys: %v", err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, keys); diff != "" {
		t.Errorf("InstallationKeys (-want +got):\n%s", diff)
	}

	if err := c.DeleteInstallation(ctx, "a"); err != nil {
		t.Fatalf("DeleteInstallation: %v", err)
	}
	if _, err := c.GetInstallation(ctx, "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetInstallation(deleted) = %v, want registry.ErrNotFound", err)
	}
	keys, err = c.InstallationKeys(ctx)
	if err != nil {
		t.Fatalf("InstallationKeys: %v", err)
	}
	if diff := cmp.Diff([]string{"b"}, keys); diff != "" {
		t.Errorf("InstallationKeys after delete (-want +got):\n%s", diff)
	}
	if err := c.PutInstallation(ctx, entry("x.y", "h")); !errors.Is(err, bus.ErrInvalidInstallationID) {
		t.Errorf("PutInstallation(x.y) = %v, want ErrInvalidInstallationID", err)
	}
}

// TestInstallationsKVExternal round-trips a key on the shared server and
// removes it again.
func TestInstallationsKVExternal(t *testing.T) {
	c := bustest.External(t)
	id := fmt.Sprintf("bustest-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.DeleteInstallation(ctx, id)
	})
	e := entry(id, "hash-"+id)
	if err := c.PutInstallation(t.Context(), e); err != nil {
		t.Fatalf("PutInstallation: %v", err)
	}
	got, err := c.GetInstallation(t.Context(), id)
	if err != nil {
		t.Fatalf("GetInstallation: %v", err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("GetInstallation (-want +got):\n%s", diff)
	}
}

// state is what a test checks of the read model for one installation.
type state struct {
	byID     bool
	entry    registry.Entry
	byHashes map[string]bool // token hash -> found
}

func observe(s *bus.Installations, id string, hashes ...string) state {
	e, ok := s.ByID(id)
	st := state{byID: ok, entry: e, byHashes: map[string]bool{}}
	for _, h := range hashes {
		got, ok := s.ByTokenHash(h)
		st.byHashes[h] = ok && got.ID == id
	}
	return st
}

func TestWatchInstallations(t *testing.T) {
	c := bustest.New(t)
	ctx := t.Context()
	for _, e := range []registry.Entry{entry("a", "hash-a"), entry("b", "hash-b")} {
		if err := c.PutInstallation(ctx, e); err != nil {
			t.Fatalf("PutInstallation: %v", err)
		}
	}
	if err := c.PutInstallation(ctx, entry("gone", "hash-gone")); err != nil {
		t.Fatalf("PutInstallation: %v", err)
	}
	if err := c.DeleteInstallation(ctx, "gone"); err != nil {
		t.Fatalf("DeleteInstallation: %v", err)
	}

	s, err := c.WatchInstallations(ctx)
	if err != nil {
		t.Fatalf("WatchInstallations: %v", err)
	}
	if !s.Loaded() {
		t.Error("Loaded() = false after WatchInstallations returned")
	}
	if s.Len() != 2 {
		t.Errorf("Len() = %d at start, want 2", s.Len())
	}
	if e, ok := s.ByTokenHash("hash-b"); !ok || e.ID != "b" {
		t.Errorf("ByTokenHash(hash-b) = %v, %v; want b", e, ok)
	}
	if _, ok := s.ByID("gone"); ok {
		t.Error("a deleted installation is in the read model")
	}

	disabled := entry("a", "hash-a")
	disabled.Status, disabled.StatusReason = registry.StatusDisabled, "channel_is_archived"

	steps := []struct {
		name   string
		do     func() error
		id     string
		hashes []string
		want   state
		len    int
	}{
		{
			name: "new installation",
			do:   func() error { return c.PutInstallation(ctx, entry("c", "hash-c")) },
			id:   "c", hashes: []string{"hash-c"},
			want: state{byID: true, entry: entry("c", "hash-c"), byHashes: map[string]bool{"hash-c": true}},
			len:  3,
		},
		{
			name: "rotated token",
			do:   func() error { return c.PutInstallation(ctx, entry("c", "hash-c2")) },
			id:   "c", hashes: []string{"hash-c", "hash-c2"},
			want: state{byID: true, entry: entry("c", "hash-c2"), byHashes: map[string]bool{"hash-c": false, "hash-c2": true}},
			len:  3,
		},
		{
			name: "disabled",
			do:   func() error { return c.PutInstallation(ctx, disabled) },
			id:   "a", hashes: []string{"hash-a"},
			want: state{byID: true, entry: disabled, byHashes: map[string]bool{"hash-a": true}},
			len:  3,
		},
		{
			name: "deleted",
			do:   func() error { return c.DeleteInstallation(ctx, "c") },
			id:   "c", hashes: []string{"hash-c", "hash-c2"},
			want: state{byHashes: map[string]bool{"hash-c": false, "hash-c2": false}},
			len:  2,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatalf("change: %v", err)
			}
			var got state
			testwait.For(t, 10*time.Second, "the read model to show the change", func() bool {
				got = observe(s, st.id, st.hashes...)
				return cmp.Equal(st.want, got, cmp.AllowUnexported(state{})) && s.Len() == st.len
			})
		})
	}
}

// TestWatchInstallationsSurvivesRestart stops the server under a running
// watch: changes made after it is back reach the read model.
func TestWatchInstallationsSurvivesRestart(t *testing.T) {
	srv := bustest.Server(t)
	c := srv.Connect(t)
	ctx := t.Context()
	if err := c.PutInstallation(ctx, entry("a", "hash-a")); err != nil {
		t.Fatalf("PutInstallation: %v", err)
	}
	s, err := c.WatchInstallations(ctx)
	if err != nil {
		t.Fatalf("WatchInstallations: %v", err)
	}

	srv.Restart()
	testwait.For(t, 15*time.Second, "the reconnect", c.Connected)
	testwait.For(t, 15*time.Second, "a put after the restart", func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return c.PutInstallation(pctx, entry("b", "hash-b")) == nil
	})
	if err := c.DeleteInstallation(ctx, "a"); err != nil {
		t.Fatalf("DeleteInstallation: %v", err)
	}
	testwait.For(t, 30*time.Second, "the watch to see the changes", func() bool {
		_, hasA := s.ByTokenHash("hash-a")
		_, hasB := s.ByTokenHash("hash-b")
		return !hasA && hasB && s.Len() == 1
	})
}

func TestWatchInstallationsStopsWithContext(t *testing.T) {
	c := bustest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.WatchInstallations(ctx)
	if err != nil {
		t.Fatalf("WatchInstallations: %v", err)
	}
	cancel()
	<-bus.WatchStopped(s)
	// A live read model sees the change: the stopped one must not.
	live, err := c.WatchInstallations(t.Context())
	if err != nil {
		t.Fatalf("WatchInstallations: %v", err)
	}
	if err := c.PutInstallation(t.Context(), entry("late", "hash-late")); err != nil {
		t.Fatalf("PutInstallation: %v", err)
	}
	testwait.For(t, 10*time.Second, "a live read model to see the change", func() bool {
		_, ok := live.ByID("late")
		return ok
	})
	if _, ok := s.ByID("late"); ok {
		t.Error("the read model changed after its context ended")
	}

	if _, err := c.WatchInstallations(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("WatchInstallations with a cancelled context = %v, want context.Canceled", err)
	}
}
