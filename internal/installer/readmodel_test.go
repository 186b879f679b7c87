package installer

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// addThree adds three channels by hand and returns their installations.
func addThree(t *testing.T, env *testEnv) []registry.Installation {
	t.Helper()
	var out []registry.Installation
	for _, name := range []string{"one", "two", "three"} {
		done, err := env.in.addChannel(t.Context(), "https://hooks.slack.com/services/T1/B1/"+name, name, "Acme")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, done.inst)
	}
	return out
}

func TestReconcile(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, env *testEnv, insts []registry.Installation)
	}{
		{
			name:   "nothing to do",
			damage: func(*testing.T, *testEnv, []registry.Installation) {},
		},
		{
			name: "fresh start with an empty bucket",
			damage: func(t *testing.T, env *testEnv, insts []registry.Installation) {
				for _, inst := range insts {
					if err := env.kv.DeleteInstallation(t.Context(), inst.ID); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			name: "entry deleted by hand",
			damage: func(t *testing.T, env *testEnv, insts []registry.Installation) {
				if err := env.kv.DeleteInstallation(t.Context(), insts[1].ID); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "stray key",
			damage: func(t *testing.T, env *testEnv, _ []registry.Installation) {
				stray := registry.Entry{ID: "7b0e5a3c-0c1f-4a8e-9d55-6f1e2a3b4c5d", Status: registry.StatusActive, TokenHash: "abc", WebhookURLSealed: "v1.x"}
				if err := env.kv.PutInstallation(t.Context(), stray); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "stale entry",
			damage: func(t *testing.T, env *testEnv, insts []registry.Installation) {
				ctx := t.Context()
				if _, err := env.store.SetStatus(ctx, insts[0].ID, registry.StatusDisabled, "changed behind KV's back"); err != nil {
					t.Fatal(err)
				}
				if _, err := env.store.SetJamfURL(ctx, insts[2].ID, "https://acme.jamfcloud.com"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "everything removed from SQL",
			damage: func(t *testing.T, env *testEnv, insts []registry.Installation) {
				for _, inst := range insts {
					if err := env.store.Delete(t.Context(), inst.ID); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			insts := addThree(t, env)
			env.checkKVMatchesSQL(t)
			tt.damage(t, env, insts)
			if err := env.in.Reconcile(t.Context()); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			env.checkKVMatchesSQL(t)
			// A second run finds nothing to change.
			before := kvContents(t, t.Context(), env.kv)
			if err := env.in.Reconcile(t.Context()); err != nil {
				t.Fatalf("second Reconcile: %v", err)
			}
			if diff := cmp.Diff(before, kvContents(t, t.Context(), env.kv)); diff != "" {
				t.Errorf("second Reconcile changed KV:\n%s", diff)
			}
		})
	}
}

func TestReconcileReportsKVFailure(t *testing.T) {
	env := newEnv(t)
	addThree(t, env)
	env.kv.Close()
	if err := env.in.Reconcile(t.Context()); err == nil {
		t.Fatal("Reconcile with NATS closed succeeded; want an error")
	}
}

func TestDisableDeadChannel(t *testing.T) {
	const unknown = "00000000-0000-4000-8000-000000000001"
	tests := []struct {
		name       string
		prepare    func(t *testing.T, env *testEnv, id string)
		id         func(id string) string
		reason     string
		wantStatus registry.Status
		wantReason string
		wantCount  float64
	}{
		{
			name:       "active installation",
			reason:     "channel_not_found",
			wantStatus: registry.StatusDisabled,
			wantReason: "channel_not_found",
			wantCount:  1,
		},
		{
			name:       "empty reason",
			wantStatus: registry.StatusDisabled,
			wantReason: "Slack channel is gone",
			wantCount:  1,
		},
		{
			name: "already disabled by an operator",
			prepare: func(t *testing.T, env *testEnv, id string) {
				if _, err := env.in.setStatus(t.Context(), id, registry.StatusDisabled, "maintenance"); err != nil {
					t.Fatal(err)
				}
			},
			reason:     "no_service",
			wantStatus: registry.StatusDisabled,
			wantReason: "maintenance",
		},
		{
			name: "missing from KV",
			prepare: func(t *testing.T, env *testEnv, id string) {
				if err := env.kv.DeleteInstallation(t.Context(), id); err != nil {
					t.Fatal(err)
				}
			},
			reason:     "channel_is_archived",
			wantStatus: registry.StatusDisabled,
			wantReason: "channel_is_archived",
			wantCount:  1,
		},
		{
			name: "unknown installation still in KV",
			prepare: func(t *testing.T, env *testEnv, _ string) {
				if err := env.kv.PutInstallation(t.Context(), registry.Entry{ID: unknown, Status: registry.StatusActive}); err != nil {
					t.Fatal(err)
				}
			},
			id:         func(string) string { return unknown },
			reason:     "no_service",
			wantStatus: registry.StatusActive,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			id := addThree(t, env)[0].ID
			if tt.prepare != nil {
				tt.prepare(t, env, id)
			}
			target := id
			if tt.id != nil {
				target = tt.id(id)
			}
			if err := env.in.DisableDeadChannel(t.Context(), target, tt.reason); err != nil {
				t.Fatalf("DisableDeadChannel: %v", err)
			}
			inst, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if inst.Status != tt.wantStatus || inst.StatusReason != tt.wantReason {
				t.Errorf("installation is %s (%q); want %s (%q)", inst.Status, inst.StatusReason, tt.wantStatus, tt.wantReason)
			}
			if got := testutil.ToFloat64(env.in.metrics.deadChannels); got != tt.wantCount {
				t.Errorf("dead_channels_total = %v; want %v", got, tt.wantCount)
			}
			env.checkKVMatchesSQL(t)
		})
	}
}

// TestDeadChannelReport sends a report the way a dispatcher does and lets
// the bus consumer that cmd/ wires deliver it to DisableDeadChannel.
func TestDeadChannelReport(t *testing.T) {
	env := newEnv(t)
	insts := addThree(t, env)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- env.kv.ConsumeDeadChannels(ctx, env.in.DisableDeadChannel) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConsumeDeadChannels: %v", err)
		}
	})

	if err := env.kv.ReportDeadChannel(t.Context(), insts[1].ID, "channel_not_found"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the report to disable the installation", func() bool {
		en, err := env.kv.GetInstallation(t.Context(), insts[1].ID)
		if err != nil {
			t.Fatal(err)
		}
		return en.Status == registry.StatusDisabled
	})
	inst, err := env.store.Get(t.Context(), insts[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status != registry.StatusDisabled || inst.StatusReason != "channel_not_found" {
		t.Errorf("SQL has %s (%q); want disabled (channel_not_found)", inst.Status, inst.StatusReason)
	}
	for _, other := range []registry.Installation{insts[0], insts[2]} {
		if got, err := env.store.Get(t.Context(), other.ID); err != nil || got.Status != registry.StatusActive {
			t.Errorf("installation %s is %s, %v; want untouched", other.ID, got.Status, err)
		}
	}
	env.checkKVMatchesSQL(t)
}

func TestNewChecksOptions(t *testing.T) {
	env := newEnv(t)
	tests := []struct {
		name string
		opts Options
	}{
		{name: "nothing", opts: Options{}},
		{name: "no store", opts: Options{KV: env.kv, Keys: env.keys, BaseURL: "https://x.example"}},
		{name: "no kv", opts: Options{Store: env.store, Keys: env.keys, BaseURL: "https://x.example"}},
		{name: "no keys", opts: Options{Store: env.store, KV: env.kv, BaseURL: "https://x.example"}},
		{name: "bad base url", opts: Options{Store: env.store, KV: env.kv, Keys: env.keys, BaseURL: "jackalope.example.com"}},
		{name: "metrics twice", opts: Options{Store: env.store, KV: env.kv, Keys: env.keys, BaseURL: "https://x.example", Registerer: env.reg}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Error("New succeeded; want an error")
			}
		})
	}
	if _, err := New(Options{Store: env.store, KV: env.kv, Keys: env.keys, BaseURL: "https://x.example/"}); err != nil {
		t.Errorf("New with the required options: %v", err)
	}
}
