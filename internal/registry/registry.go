// Package registry holds the channel registry's model: an Installation is one
// Slack channel that receives the events Jamf Pro posts to its Jamf URL.
// It is a leaf package: it imports nothing of the project's own.
package registry

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by stores when no installation matches.
var ErrNotFound = errors.New("installation not found")

// Status says whether an installation takes events.
type Status string

// The statuses an installation can have.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool { return s == StatusActive || s == StatusDisabled }

// Installation is one channel's row in the registry. Secrets are kept sealed
// (see package secret): WebhookURLSealed and TokenSealed never hold plain text.
type Installation struct {
	ID               string // UUID, stable for the life of the installation
	TeamID           string // Slack team (workspace) ID; empty for channels added by hand
	TeamName         string
	ChannelID        string // Slack channel ID, or a stable key for channels added by hand
	ChannelName      string
	WebhookURLSealed string // sealed Slack incoming webhook URL
	ConfigurationURL string // Slack's page to manage the incoming webhook
	InstallingUser   string // Slack user ID of who installed it
	TokenHash        string // HMAC of the Jamf URL token, hex; unique
	TokenSealed      string // sealed Jamf URL token, so the Jamf URL can be shown again
	Status           Status
	StatusReason     string // why it is disabled; empty when active
	JamfURL          string // Jamf Pro base URL for deep links; optional
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Store is the behaviour every registry store (PostgreSQL, SQLite) shares.
// The conformance suite in package registrytest pins it.
type Store interface {
	// Upsert inserts in by (TeamID, ChannelID) or, when that pair exists,
	// updates names, webhook URL, configuration URL and installing user and
	// sets it active again, keeping ID, token and JamfURL. It returns the
	// stored row and whether it was created.
	Upsert(ctx context.Context, in Installation) (Installation, bool, error)
	Get(ctx context.Context, id string) (Installation, error)
	GetByTokenHash(ctx context.Context, tokenHash string) (Installation, error)
	// List returns every installation ordered by CreatedAt, then ID.
	List(ctx context.Context) ([]Installation, error)
	SetStatus(ctx context.Context, id string, status Status, reason string) (Installation, error)
	RotateToken(ctx context.Context, id, tokenHash, tokenSealed string) (Installation, error)
	SetJamfURL(ctx context.Context, id, jamfURL string) (Installation, error)
	Delete(ctx context.Context, id string) error
	Close() error
}

// Entry is the read model of an installation that the installer publishes
// to the KV bucket "installations" (key: ID) and that ingest and dispatchers
// watch into memory. It holds what they need and nothing else.
type Entry struct {
	ID               string `json:"id"`
	Status           Status `json:"status"`
	StatusReason     string `json:"status_reason,omitempty"`
	TokenHash        string `json:"token_hash"`
	WebhookURLSealed string `json:"webhook_url_sealed"`
	TeamName         string `json:"team_name,omitempty"`
	ChannelName      string `json:"channel_name,omitempty"`
	JamfURL          string `json:"jamf_url,omitempty"`
}

// Entry returns the read model of i.
func (i Installation) Entry() Entry {
	return Entry{
		ID:               i.ID,
		Status:           i.Status,
		StatusReason:     i.StatusReason,
		TokenHash:        i.TokenHash,
		WebhookURLSealed: i.WebhookURLSealed,
		TeamName:         i.TeamName,
		ChannelName:      i.ChannelName,
		JamfURL:          i.JamfURL,
	}
}
