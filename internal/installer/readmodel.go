package installer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// maxReasonLength bounds a disabled installation's reason.
const maxReasonLength = 500

// Reconcile makes the KV bucket equal to SQL: it puts every installation
// whose entry is missing or differs and deletes keys that SQL does not
// have. It keeps going after a failed key and returns every failure.
// Services call it on start, before they report ready.
func (in *Installer) Reconcile(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	all, err := in.store.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	keys, err := in.kv.InstallationKeys(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	inSQL := make(map[string]bool, len(all))
	var errs []error
	put := 0
	for _, inst := range all {
		inSQL[inst.ID] = true
		want := inst.Entry()
		// A failed read (a missing key among them) is settled by the put.
		if got, err := in.kv.GetInstallation(ctx, inst.ID); err == nil && got.Equal(want) {
			continue
		}
		if err := in.kv.PutInstallation(ctx, want); err != nil {
			errs = append(errs, fmt.Errorf("put installation %s: %w", inst.ID, err))
			continue
		}
		put++
	}
	deleted := 0
	for _, key := range keys {
		if inSQL[key] {
			continue
		}
		if err := in.kv.DeleteInstallation(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("delete stray key %s: %w", key, err))
			continue
		}
		deleted++
	}
	in.logger.Info("read model reconciled", "installations", len(all), "put", put, "deleted", deleted, "failed", len(errs))
	if len(errs) > 0 {
		return fmt.Errorf("reconcile: %w", errors.Join(errs...))
	}
	return nil
}

// ReconcileEvery runs Reconcile every interval until ctx ends, so that a
// KV bucket that lost entries (deleted by hand, recreated) heals without a
// restart. Failures are logged and tried again at the next tick.
func (in *Installer) ReconcileEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := in.Reconcile(ctx); err != nil && ctx.Err() == nil {
				in.logger.Error("periodic reconcile failed", "err", err)
			}
		}
	}
}

// DisableDeadChannel marks an installation disabled with reason, in SQL and
// then in KV, after a dispatcher reported that its channel is gone. An
// installation already disabled keeps its reason (an operator's, say); an
// unknown one is removed from KV if it is still there. The bus consumer
// calls it and redelivers the report when it fails.
func (in *Installer) DisableDeadChannel(ctx context.Context, id, reason string) error {
	reason = clip(reason, maxReasonLength)
	if reason == "" {
		reason = "Slack channel is gone"
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	cur, err := in.store.Get(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		in.logger.Info("dead channel report for an unknown installation", "installation", id)
		if err := in.kv.DeleteInstallation(ctx, id); err != nil {
			return fmt.Errorf("disable dead channel %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("disable dead channel %s: %w", id, err)
	}
	if cur.Status != registry.StatusDisabled {
		if cur, err = in.store.SetStatus(ctx, id, registry.StatusDisabled, reason); err != nil {
			return fmt.Errorf("disable dead channel %s: %w", id, err)
		}
		in.metrics.deadChannels.Inc()
		in.logger.Warn("installation disabled: Slack channel is gone", "installation", id, "reason", reason)
	}
	if err := in.publish(ctx, cur); err != nil {
		return fmt.Errorf("disable dead channel: %w", err)
	}
	return nil
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
