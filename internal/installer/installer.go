// Package installer is the Slack admin's way in and the owner of the
// channel registry. It serves the "Add to Slack" page and the OAuth v2
// install flow, keeps the registry in SQL (the source of truth), publishes
// each installation's read model to the KV bucket that ingest and
// dispatchers watch, disables channels that dispatchers report gone, and
// runs the `channels …` commands for channels added by hand.
//
// Every change writes SQL first, then KV; Reconcile repairs KV from SQL.
package installer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
)

// Store is the part of the registry store the installer uses;
// registry.Store satisfies it.
type Store interface {
	Upsert(ctx context.Context, in registry.Installation) (registry.Installation, bool, error)
	Get(ctx context.Context, id string) (registry.Installation, error)
	List(ctx context.Context) ([]registry.Installation, error)
	SetStatus(ctx context.Context, id string, status registry.Status, reason string) (registry.Installation, error)
	RotateToken(ctx context.Context, id, tokenHash, tokenSealed string) (registry.Installation, error)
	SetJamfURL(ctx context.Context, id, jamfURL string) (registry.Installation, error)
	Delete(ctx context.Context, id string) error
	GetByChannel(ctx context.Context, teamID, channelID string) (registry.Installation, error)
	Rekey(ctx context.Context, id string, prev, next registry.Keyed) (registry.Installation, error)
	SetInboundAuth(ctx context.Context, id string, auth registry.InboundAuth, sealed string) (registry.Installation, error)
	SetDelivery(ctx context.Context, id string, d registry.DeliverySettings) (registry.Installation, error)
	SetEventFilter(ctx context.Context, id string, f registry.EventFilter) (registry.Installation, error)
}

// KV is the read model the installer publishes: the KV bucket
// "installations", keyed by installation ID; and the delivery state the
// dispatchers share, which it clears when a channel is enabled or
// reinstalled. *bus.Conn satisfies it.
type KV interface {
	PutInstallation(ctx context.Context, e registry.Entry) error
	DeleteInstallation(ctx context.Context, id string) error
	InstallationKeys(ctx context.Context) ([]string, error)
	GetInstallation(ctx context.Context, id string) (registry.Entry, error)
	ClearDeliveryState(ctx context.Context, id string) error
}

// Keyring is where the installer publishes the fingerprints of the keys
// that open what the registry holds (the KV bucket "keyring"), so that
// every service can check that it holds them. *bus.Conn satisfies it.
type Keyring interface {
	PublishKeys(ctx context.Context, current, previous string) error
}

// UsedStates remembers the OAuth states of finished installs for as long as
// a state lives, so that each is used once across installer replicas (the
// KV bucket "oauth_states"). *bus.Conn satisfies it.
type UsedStates interface {
	// ClaimState records state as used and reports false when it already
	// was.
	ClaimState(ctx context.Context, state string) (bool, error)
}

// Slack exchanges OAuth codes and posts the welcome message.
// *slack.Client satisfies it.
type Slack interface {
	Exchange(ctx context.Context, code, redirectURI string) (slack.OAuthResult, error)
	Post(ctx context.Context, webhookURL string, m slack.Message) error
}

// OAuth configures "Add to Slack". The client secret itself stays in the
// Slack client; the installer only needs to know whether it is set.
type OAuth struct {
	ClientID        string
	ClientSecretSet bool
	// AuthorizeURL is Slack's authorize page (SLACK_OAUTH_URL).
	AuthorizeURL string
	// Scopes are requested joined by ","; incoming-webhook when empty.
	Scopes []string
}

// Missing names the variables that must be set before "Add to Slack" works,
// none when it is configured.
func (o OAuth) Missing() []string {
	var missing []string
	if o.ClientID == "" {
		missing = append(missing, "SLACK_CLIENT_ID")
	}
	if !o.ClientSecretSet {
		missing = append(missing, "SLACK_CLIENT_SECRET")
	}
	return missing
}

// Options configures New. Store, KV, Keys and BaseURL are required.
type Options struct {
	Store Store
	KV    KV
	// Slack is nil in the `channels` commands, which add channels by hand;
	// the install flow then shows the "not configured" page.
	Slack Slack
	// Webhooks says where the webhook URLs of channels added by hand may
	// point (SLACK_WEBHOOK_HOSTS); the zero value allows hooks.slack.com.
	// Give the Slack client the same: it applies it to installs.
	Webhooks slack.WebhookPolicy
	Keys     *secret.Keys
	// BaseURL is the public base URL without a trailing slash; Jamf URLs
	// and the OAuth redirect URI are built from it.
	BaseURL string
	OAuth   OAuth
	Logger  *slog.Logger
	// Registerer receives the installer's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Keyring receives the key fingerprints (PublishKeys, Reseal); nil
	// publishes none.
	Keyring Keyring
	// UsedStates makes OAuth states single use across replicas; nil
	// remembers them in this process only.
	UsedStates UsedStates
	// CallbackTimeout bounds the work after Slack's redirect;
	// DefaultCallbackTimeout when zero.
	CallbackTimeout time.Duration
}

// Installer serves the install flow and changes the registry. It is safe
// for concurrent use.
type Installer struct {
	store    Store
	kv       KV
	slack    Slack
	webhooks slack.WebhookPolicy
	keys     *secret.Keys
	baseURL  string
	oauth    OAuth
	logger   *slog.Logger
	metrics  *metrics
	now      func() time.Time
	states   *states
	keyring  Keyring
	pages    *pages
	// callbackTimeout bounds the work after Slack's redirect.
	callbackTimeout time.Duration
	// basePath is the path of the base URL, "" at the root; the state
	// cookie's path and the pages' links start with it.
	basePath string

	// mu serialises every write of SQL and then KV with Reconcile, so that
	// KV never ends up holding an older version than SQL because of a race
	// inside this process.
	mu sync.Mutex
}

// New returns an Installer, or an error when a required option is missing
// or the metrics cannot be registered.
func New(opts Options) (*Installer, error) {
	var problems []string
	if opts.Store == nil {
		problems = append(problems, "store is nil")
	}
	if opts.KV == nil {
		problems = append(problems, "kv is nil")
	}
	if opts.Keys == nil {
		problems = append(problems, "keys are nil")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if !isHTTPURL(base) {
		problems = append(problems, fmt.Sprintf("base url %q is not an http(s) URL", opts.BaseURL))
	}
	if len(problems) > 0 {
		return nil, errors.New("installer: " + strings.Join(problems, "; "))
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	u, _ := url.Parse(base) // checked by isHTTPURL above
	p, err := parsePages(u.Path)
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	oauth := opts.OAuth
	if len(oauth.Scopes) == 0 {
		oauth.Scopes = []string{"incoming-webhook"}
	}
	used := opts.UsedStates
	if used == nil {
		used = newMemStates(now, maxPendingStates)
	}
	callbackTimeout := opts.CallbackTimeout
	if callbackTimeout <= 0 {
		callbackTimeout = DefaultCallbackTimeout
	}
	return &Installer{
		store:           opts.Store,
		kv:              opts.KV,
		slack:           opts.Slack,
		webhooks:        opts.Webhooks,
		keys:            opts.Keys,
		baseURL:         base,
		oauth:           oauth,
		logger:          logger,
		metrics:         m,
		now:             now,
		states:          newStates(opts.Keys, now, used),
		keyring:         opts.Keyring,
		pages:           p,
		basePath:        u.Path,
		callbackTimeout: callbackTimeout,
	}, nil
}

// configured reports whether the OAuth flow can run.
func (in *Installer) configured() bool {
	return in.slack != nil && len(in.oauth.Missing()) == 0
}

// redirectURI is where Slack sends the admin back after the consent screen.
func (in *Installer) redirectURI() string { return in.baseURL + "/install" }

// jamfURL is the URL Jamf Pro posts an installation's events to.
func (in *Installer) jamfURL(token string) string { return in.baseURL + "/jamf/" + token }

// newToken returns a fresh Jamf URL token (a random UUID, as the original)
// with its hash and its form sealed for installation id.
func (in *Installer) newToken(id string) (token, hash, sealed string) {
	token = uuid.NewString()
	return token, in.keys.HashToken(token), in.keys.Seal(secret.JamfToken, id, token)
}

// token returns the Jamf URL token of inst. A token that cannot be opened
// was sealed under another SECRET_KEY, or for another installation (a
// record copied from elsewhere); either way it is not shown, and the
// installation gets a new token: a hash made with another key would not
// find the old Jamf URL anyway. It must be called with mu held.
func (in *Installer) token(ctx context.Context, inst registry.Installation) (string, registry.Installation, error) {
	token, _, err := in.keys.Open(secret.JamfToken, inst.ID, inst.TokenSealed)
	if err == nil {
		return token, inst, nil
	}
	if !errors.Is(err, secret.ErrOpen) {
		return "", inst, fmt.Errorf("open token of installation %s: %w", inst.ID, err)
	}
	in.logger.Warn("installation token does not open under SECRET_KEY or SECRET_KEY_PREVIOUS; issuing a new Jamf URL", "installation", inst.ID)
	token, hash, sealed := in.newToken(inst.ID)
	rotated, err := in.store.RotateToken(ctx, inst.ID, hash, sealed)
	if err != nil {
		return "", inst, fmt.Errorf("replace unreadable token: %w", err)
	}
	return token, rotated, nil
}

// publish writes inst's read model to KV, sealing its secrets again first
// when they are stale (sealed before seals were bound, or under
// SECRET_KEY_PREVIOUS). It must be called with mu held, after the SQL
// write it reflects.
func (in *Installer) publish(ctx context.Context, inst registry.Installation) error {
	inst = in.refresh(ctx, inst)
	if err := in.kv.PutInstallation(ctx, inst.Entry()); err != nil {
		return fmt.Errorf("publish installation %s: %w", inst.ID, err)
	}
	return nil
}
