// Package registry holds the channel registry's model: an Installation is one
// Slack channel that receives the events Jamf Pro posts to its Jamf URL.
// It is a leaf package: it imports nothing of the project's own.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
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
	// AddAudit appends e (see CheckAudit) to the audit log and returns it
	// as stored, with ID and At set.
	AddAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// ListAudit returns the entries f selects, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
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

// Conflicts a store reports, so callers can tell them with errors.Is.
var (
	ErrTokenInUse = errors.New("token hash already belongs to another installation")
	ErrIDInUse    = errors.New("installation id already in use by another channel")
)

// CanonicalID returns id in canonical UUID form, or false if it is not a
// UUID (and so cannot match a row).
func CanonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// CheckUpsert validates the fields Store.Upsert needs and returns the ID to
// insert with: in.ID in canonical form, or a new random UUID. It reports
// every problem at once.
func CheckUpsert(in Installation) (string, error) {
	var problems []string
	if in.ChannelID == "" {
		problems = append(problems, "channel id is empty")
	}
	if in.WebhookURLSealed == "" {
		problems = append(problems, "sealed webhook url is empty")
	}
	if in.TokenHash == "" {
		problems = append(problems, "token hash is empty")
	}
	if in.TokenSealed == "" {
		problems = append(problems, "sealed token is empty")
	}
	id := uuid.NewString()
	if in.ID != "" {
		var ok bool
		if id, ok = CanonicalID(in.ID); !ok {
			problems = append(problems, fmt.Sprintf("id %q is not a UUID", in.ID))
		}
	}
	if len(problems) > 0 {
		return "", errors.New("invalid installation: " + strings.Join(problems, "; "))
	}
	return id, nil
}
