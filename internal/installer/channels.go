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
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
)

const (
	// manualChannelLabel separates manual channel keys from other uses of
	// the signing key.
	manualChannelLabel = "manual channel\x00"
	// manualChannelPrefix marks the channel key of a channel added by hand.
	manualChannelPrefix = "manual-"
)

// OperatorReason is why an installation disabled by hand is disabled when
// whoever disabled it gave no reason.
const OperatorReason = "disabled by an operator"

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
	if !created {
		// A reinstalled channel is deliverable again at once, everywhere:
		// a dead mark, a pause or a backoff was for the old webhook.
		if err := in.kv.ClearDeliveryState(ctx, stored.ID); err != nil {
			in.logger.Warn("cannot clear the reinstalled channel's delivery state", "installation", stored.ID, "err", err)
		}
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

// Installations returns every installation, ordered by creation.
func (in *Installer) Installations(ctx context.Context) ([]registry.Installation, error) {
	all, err := in.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	return all, nil
}

// Installation returns one installation; an unknown id is
// registry.ErrNotFound.
func (in *Installer) Installation(ctx context.Context, id string) (registry.Installation, error) {
	inst, err := in.store.Get(ctx, id)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation: %w", err)
	}
	return inst, nil
}

// Rotate gives an installation a new token and returns it with its new
// Jamf URL, a secret to show once. The old Jamf URL stops working as soon
// as KV has the new hash.
func (in *Installer) Rotate(ctx context.Context, id string) (registry.Installation, string, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, "", fmt.Errorf("rotate token: %w", registry.ErrNotFound)
	}
	token, hash, sealed := in.newToken(key)
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.RotateToken(ctx, key, hash, sealed)
	if err != nil {
		return registry.Installation{}, "", fmt.Errorf("rotate token: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, "", fmt.Errorf("rotate token: %w", err)
	}
	in.logger.Info("jamf url rotated", "installation", inst.ID)
	return inst, in.jamfURL(token), nil
}

// Disable stops posting to an installation's channel; ingest answers 410
// with reason (OperatorReason when empty).
func (in *Installer) Disable(ctx context.Context, id, reason string) (registry.Installation, error) {
	if reason = strings.TrimSpace(reason); reason == "" {
		reason = OperatorReason
	}
	return in.setStatus(ctx, id, registry.StatusDisabled, reason)
}

// Enable posts to an installation's channel again.
func (in *Installer) Enable(ctx context.Context, id string) (registry.Installation, error) {
	return in.setStatus(ctx, id, registry.StatusActive, "")
}

// SendTestMessage posts render.TestMessage(by) to an installation's
// channel, whatever its status, and returns Slack's answer: nil when Slack
// took it, otherwise the error of slack.Client.Post, an *slack.Error that
// carries Slack's status and body. Nothing is changed either way.
func (in *Installer) SendTestMessage(ctx context.Context, id, by string) error {
	if in.slack == nil {
		return errors.New("send test message: slack is not configured")
	}
	inst, err := in.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("send test message: %w", err)
	}
	hook, err := in.keys.OpenWebhook(inst.ID, inst.WebhookURLSealed)
	if err != nil {
		return fmt.Errorf("send test message: webhook url of installation %s: %w", inst.ID, err)
	}
	if err := in.slack.Post(ctx, hook, render.TestMessage(by)); err != nil {
		in.logger.Info("test message not taken", "installation", inst.ID, "class", slack.Class(err), "err", err)
		return fmt.Errorf("send test message: %w", err)
	}
	in.logger.Info("test message posted", "installation", inst.ID)
	return nil
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
	if status == registry.StatusActive {
		// Enabling makes the channel deliverable again at once, in every
		// dispatcher: its dead mark goes.
		if err := in.kv.ClearDeliveryState(ctx, inst.ID); err != nil {
			return registry.Installation{}, fmt.Errorf("set status: %w", err)
		}
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

// SetJamfURL sets the Jamf Pro base URL that notifications link to, as
// registry.CheckJamfURL accepts it (callers check it first, to say what is
// wrong); empty clears it.
func (in *Installer) SetJamfURL(ctx context.Context, id, jamfPro string) (registry.Installation, error) {
	jamfPro, err := registry.CheckJamfURL(jamfPro)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set jamf pro url: %w", err)
	}
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

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == ""
}
