package installer

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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
	in.logger.Info("delivery settings set", "installation", inst.ID, "pace", describePace(inst.Delivery), "digests", describeDigests(inst.Delivery))
	return inst, nil
}

// describePace shows a channel's pace as `channels list` prints it: "1/s
// burst 3", or "default".
func describePace(d registry.DeliverySettings) string {
	var parts []string
	if d.Interval > 0 {
		parts = append(parts, registry.FormatPace(d.Interval))
	}
	if d.Burst > 0 {
		parts = append(parts, "burst "+strconv.Itoa(d.Burst))
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, " ")
}

// describeDigests shows whether and when a channel gets digests: "on after
// 10s", "off", or "default".
func describeDigests(d registry.DeliverySettings) string {
	s := string(d.Digests)
	if s == "" {
		s = "default"
	}
	if d.DigestAfter > 0 && d.Digests != registry.DigestsOff {
		s += " after " + d.DigestAfter.String()
	}
	return s
}
