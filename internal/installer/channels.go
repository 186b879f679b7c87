package installer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

const (
	// maxURLLength bounds the URLs an admin types in.
	maxURLLength = 2048
	// manualChannelLabel separates manual channel keys from other uses of
	// the signing key.
	manualChannelLabel = "manual channel\x00"
	// manualChannelPrefix marks the channel key of a channel added by hand.
	manualChannelPrefix = "manual-"
	// operatorReason is the reason of `channels disable` without --reason.
	operatorReason = "disabled by an operator"
)

// saved is the outcome of a save: the stored installation, whether it is
// new, and its Jamf URL token.
type saved struct {
	inst    registry.Installation
	created bool
	token   string
}

// save upserts inst by (team, channel) with webhookURL and publishes it. A
// new installation gets a new token; an existing one keeps its token, ID
// and Jamf Pro URL while its webhook URL and names are updated. Secrets are
// sealed for the installation's ID, so it is chosen first: the existing
// one's, or a new one.
func (in *Installer) save(ctx context.Context, inst registry.Installation, webhookURL string) (saved, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	existing, err := in.store.GetByChannel(ctx, inst.TeamID, inst.ChannelID)
	switch {
	case err == nil:
		inst.ID = existing.ID
	case errors.Is(err, registry.ErrNotFound):
		inst.ID = uuid.NewString()
	default:
		return saved{}, fmt.Errorf("save installation: %w", err)
	}
	token, hash, sealed := in.newToken(inst.ID)
	inst.TokenHash, inst.TokenSealed = hash, sealed
	inst.WebhookURLSealed = in.keys.Seal(secret.WebhookURL, inst.ID, webhookURL)
	stored, created, err := in.store.Upsert(ctx, inst)
	if err != nil {
		return saved{}, fmt.Errorf("save installation: %w", err)
	}
	if stored.ID != inst.ID {
		// Another installer created the channel between the look-up and
		// the upsert: the webhook URL is sealed again for the ID it kept.
		next := stored.Keyed()
		next.WebhookURLSealed = in.keys.Seal(secret.WebhookURL, stored.ID, webhookURL)
		if stored, err = in.store.Rekey(ctx, stored.ID, stored.Keyed(), next); err != nil {
			return saved{}, fmt.Errorf("save installation: seal the webhook url for %s: %w", inst.ID, err)
		}
	}
	if !created {
		if token, stored, err = in.token(ctx, stored); err != nil {
			return saved{}, fmt.Errorf("save installation: %w", err)
		}
	}
	if err := in.publish(ctx, stored); err != nil {
		return saved{}, fmt.Errorf("save installation: %w", err)
	}
	return saved{inst: stored, created: created, token: token}, nil
}

// addChannel adds (or, for a webhook added before, updates) a channel
// whose incoming webhook was made by hand in Slack. Its channel key is
// derived from the webhook URL, so adding the same webhook again keeps its
// Jamf URL, also during a key rotation, when the key may still be the one
// SECRET_KEY_PREVIOUS made.
func (in *Installer) addChannel(ctx context.Context, webhookURL, channel, team string) (saved, error) {
	channelID := manualChannelID(in.keys, webhookURL)
	if prev := in.keys.Previous(); prev != nil {
		old := manualChannelID(prev, webhookURL)
		if _, err := in.store.GetByChannel(ctx, "", old); err == nil {
			channelID = old
		} else if !errors.Is(err, registry.ErrNotFound) {
			return saved{}, fmt.Errorf("add channel: %w", err)
		}
	}
	return in.save(ctx, registry.Installation{
		ChannelID:   channelID,
		ChannelName: channelName(channel),
		TeamName:    team,
	}, webhookURL)
}

// manualChannelID is the stable channel key of a webhook added by hand: a
// keyed hash, so the key reveals nothing of the webhook URL.
func manualChannelID(keys *secret.Keys, webhookURL string) string {
	mac := keys.Sign([]byte(manualChannelLabel + webhookURL))
	return manualChannelPrefix + hex.EncodeToString(mac[:16])
}

// channelName shows a channel name the way Slack does, with its '#'.
func channelName(name string) string {
	name = strings.TrimSpace(name)
	if name == "" || strings.HasPrefix(name, "#") || strings.HasPrefix(name, "@") {
		return name
	}
	return "#" + name
}

// rotate gives an installation a new token. The old Jamf URL stops working
// as soon as KV has the new hash.
func (in *Installer) rotate(ctx context.Context, id string) (saved, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return saved{}, fmt.Errorf("rotate token: %w", registry.ErrNotFound)
	}
	token, hash, sealed := in.newToken(key)
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.RotateToken(ctx, key, hash, sealed)
	if err != nil {
		return saved{}, fmt.Errorf("rotate token: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return saved{}, fmt.Errorf("rotate token: %w", err)
	}
	in.logger.Info("jamf url rotated", "installation", inst.ID)
	return saved{inst: inst, token: token}, nil
}

// setStatus enables or disables an installation by hand.
func (in *Installer) setStatus(ctx context.Context, id string, status registry.Status, reason string) (registry.Installation, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.SetStatus(ctx, id, status, clip(reason, maxReasonLength))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set status: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, fmt.Errorf("set status: %w", err)
	}
	in.logger.Info("installation status set", "installation", inst.ID, "status", inst.Status, "reason", inst.StatusReason)
	return inst, nil
}

// remove deletes an installation from SQL, then from KV.
func (in *Installer) remove(ctx context.Context, id string) (registry.Installation, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.Get(ctx, id)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("remove: %w", err)
	}
	if err := in.store.Delete(ctx, inst.ID); err != nil {
		return registry.Installation{}, fmt.Errorf("remove: %w", err)
	}
	if err := in.kv.DeleteInstallation(ctx, inst.ID); err != nil {
		return registry.Installation{}, fmt.Errorf("remove: unpublish installation %s: %w", inst.ID, err)
	}
	in.logger.Info("installation removed", "installation", inst.ID)
	return inst, nil
}

// setJamfURL sets the Jamf Pro base URL used for deep links; jamfPro must
// have passed checkJamfProURL. Empty clears it.
func (in *Installer) setJamfURL(ctx context.Context, id, jamfPro string) (registry.Installation, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.SetJamfURL(ctx, id, jamfPro)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set jamf pro url: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, fmt.Errorf("set jamf pro url: %w", err)
	}
	return inst, nil
}

// checkWebhookURL returns raw, trimmed, when the webhook policy
// (SLACK_WEBHOOK_HOSTS) lets a channel added by hand post there: https to
// hooks.slack.com by default. The error never contains the URL.
func (in *Installer) checkWebhookURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("the webhook URL is empty")
	}
	if err := in.webhooks.Check(raw); err != nil {
		return "", fmt.Errorf("--webhook-url: %w", err)
	}
	return raw, nil
}

// checkJamfProURL accepts an http or https base URL (with a host, without
// user info, query or fragment) and returns it without a trailing slash.
// Empty is accepted and clears the setting.
func checkJamfProURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	if len(raw) > maxURLLength {
		return "", fmt.Errorf("the Jamf Pro URL is longer than %d characters", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !isHTTPURL(raw) || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("the Jamf Pro URL must be an http or https address, like https://yourcompany.jamfcloud.com")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == ""
}
