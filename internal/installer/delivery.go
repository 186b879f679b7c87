package installer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// deliveryFlags are the names of the `channels set` flags that change a
// channel's delivery settings.
var deliveryFlags = []string{"pace", "burst", "digest", "digest-after"}

// delivery returns cur with the delivery settings the flags give, and
// whether any was given. "default" (or 0 for --burst) goes back to the
// deployment's default. Bad values are a *UsageError.
func (f setFlags) delivery(cur registry.DeliverySettings) (registry.DeliverySettings, bool, error) {
	d, change := cur, false
	if f.given["pace"] {
		change = true
		if d.Interval = 0; !isDefault(f.pace) {
			interval, err := registry.ParsePace(f.pace)
			if err != nil {
				return d, false, &UsageError{Msg: "--pace: " + err.Error() + ", or default"}
			}
			d.Interval = interval
		}
	}
	if f.given["burst"] {
		change = true
		d.Burst = f.burst
	}
	if f.given["digest"] {
		change = true
		switch v := strings.ToLower(strings.TrimSpace(f.digest)); v {
		case "on", "off":
			d.Digests = registry.Digests(v)
		case "default":
			d.Digests = registry.DigestsDefault
		default:
			return d, false, &UsageError{Msg: fmt.Sprintf("--digest %q: give on, off or default", f.digest)}
		}
	}
	if f.given["digest-after"] {
		change = true
		if d.DigestAfter = 0; !isDefault(f.digestAfter) {
			after, err := time.ParseDuration(strings.TrimSpace(f.digestAfter))
			if err != nil || after <= 0 {
				return d, false, &UsageError{Msg: fmt.Sprintf("--digest-after %q: give a duration such as 10s, or default", f.digestAfter)}
			}
			d.DigestAfter = after
		}
	}
	if err := registry.CheckDelivery(d); err != nil {
		return d, false, &UsageError{Msg: err.Error()}
	}
	return d, change, nil
}

func isDefault(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "default") }

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
