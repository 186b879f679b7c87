package installer

import (
	"context"
	"fmt"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// delivery returns cur with the delivery settings the flags give
// (registry.ParseDelivery reads them, as it reads the console's form), and
// whether any was given. Bad values are a *UsageError.
func (f setFlags) delivery(cur registry.DeliverySettings) (registry.DeliverySettings, bool, error) {
	given := map[string]string{}
	for _, name := range registry.DeliverySettingNames {
		if f.given[name] {
			given[name] = f.values[name]
		}
	}
	if len(given) == 0 {
		return cur, false, nil
	}
	d, err := registry.ParseDelivery(cur, given)
	if err != nil {
		return cur, false, &UsageError{Msg: err.Error()}
	}
	return d, true, nil
}

// SetDelivery sets a channel's own pace and digest settings and publishes
// them to the read model, where every dispatcher picks them up.
func (in *Installer) SetDelivery(ctx context.Context, id string, d registry.DeliverySettings) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("set delivery settings: %w", registry.ErrNotFound)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.SetDelivery(ctx, key, d)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set delivery settings: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, fmt.Errorf("set delivery settings: %w", err)
	}
	in.logger.Info("delivery settings set", "installation", inst.ID, "pace", inst.Delivery.DescribePace(), "digests", inst.Delivery.DescribeDigests())
	return inst, nil
}
