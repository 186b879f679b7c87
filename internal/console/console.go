// Package console is the Slack admin's console at /admin: Sign in with
// Slack (OpenID Connect), the channels of the member's own workspace with
// their health (what waits, the last event and delivery, digests, a 429's
// pause, failures, a dead channel with Slack's answer), and the fixes,
// each behind a confirmation and a CSRF token, each written to the audit
// log: rotate the Jamf URL, disable, enable, the Jamf Pro URL for links,
// the pace and digests, the event filter, inbound Basic auth, a test
// message, dead letters (each with its rendered preview) and resending a
// window of delivered events.
//
// It is a use case: it declares the interfaces it consumes (Channels,
// DeadLetters, AuditLog, Delivery, History) and cmd/ wires the installer,
// the bus and the registry store into them, so the console calls the very
// methods the `channels`, `dlq` and `history` commands call, and reads
// what an admin types with the parsers they use (registry.ParseDelivery,
// render.ParseFilter, registry.CheckBasicCredential).
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// Channels is the channel registry as the console reads and changes it:
// the use-case methods the `channels` commands call too.
// *installer.Installer satisfies it.
type Channels interface {
	Installations(ctx context.Context) ([]registry.Installation, error)
	Installation(ctx context.Context, id string) (registry.Installation, error)
	// Rotate returns the installation and its new Jamf URL, a secret.
	Rotate(ctx context.Context, id string) (registry.Installation, string, error)
	Disable(ctx context.Context, id, reason string) (registry.Installation, error)
	Enable(ctx context.Context, id string) (registry.Installation, error)
	SetJamfURL(ctx context.Context, id, jamfPro string) (registry.Installation, error)
	// SendTestMessage returns Slack's answer: nil when it took the
	// message, an error wrapping *slack.Error otherwise.
	SendTestMessage(ctx context.Context, id, by string) error
	// SetDelivery sets the channel's own pace and digest settings.
	SetDelivery(ctx context.Context, id string, d registry.DeliverySettings) (registry.Installation, error)
	// SetEventFilter sets which events the channel shows.
	SetEventFilter(ctx context.Context, id string, f registry.EventFilter) (registry.Installation, error)
	// SetBasicAuth makes Jamf Pro send HTTP Basic credentials besides the
	// token, SetHeaderAuth a header with a secret value; ClearInboundAuth
	// goes back to the token alone.
	SetBasicAuth(ctx context.Context, id, user, password string) (registry.Installation, error)
	SetHeaderAuth(ctx context.Context, id, name, value string) (registry.Installation, error)
	ClearInboundAuth(ctx context.Context, id string) (registry.Installation, error)
}

// DeadLetters is the dead-letter stream as the console and the `dlq`
// command use it. *bus.Conn satisfies it.
type DeadLetters interface {
	ListDead(ctx context.Context, installationID string) ([]jamf.DeadLetter, error)
	ReplayDead(ctx context.Context, installationID string, all bool) (int, error)
	DropDead(ctx context.Context, installationID string, all bool) (int, error)
	ReplayDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error)
	DropDeadLetter(ctx context.Context, installationID string, seq uint64) (int, error)
	// DeadCounts counts each installation's dead letters without reading
	// them, for the channels page.
	DeadCounts(ctx context.Context) (map[string]int, error)
}

// AuditLog keeps the console's changes. registry.Store satisfies it.
type AuditLog interface {
	AddAudit(ctx context.Context, e registry.AuditEntry) (registry.AuditEntry, error)
	ListAudit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error)
}

// Delivery is the delivery engine's view of each channel, from the read
// model and NATS. Nil hides its panels; so does a channel missing from the
// map.
type Delivery interface {
	DeliveryStates(ctx context.Context, installationIDs []string) (map[string]DeliveryState, error)
}

// DeliveryState is what the delivery engine knows of one channel, read
// from the read model and NATS (never from a scan of the streams).
type DeliveryState struct {
	Waiting       int       // events in the backlog
	LastReceived  time.Time // newest event received that is still kept; zero when none
	LastEvent     string    // its event name
	LastDelivered time.Time // last post Slack took; zero when none (or no history is kept)
	// Shared is the state every dispatcher shares: the pace, a 429's
	// pause, failures, the mark of a channel Slack called gone, digests.
	Shared registry.DeliveryState
}

// Paused reports whether a 429 holds the channel back at now.
func (d DeliveryState) Paused(now time.Time) bool { return d.Shared.Paused(now) }

// Digest reports whether the channel gets digests: its last turn carried
// many events and more wait.
func (d DeliveryState) Digest() bool { return !d.Shared.DigestSince.IsZero() && d.Waiting > 0 }

// History is the history of delivered events as the console and the
// `history` command use it. *bus.Conn satisfies it.
type History interface {
	// EachHistory calls f with each event of a channel delivered from
	// since to until, oldest first.
	EachHistory(ctx context.Context, installationID string, since, until time.Time, f func(jamf.DeadLetter) error) error
	// ResendHistory sends the same window again and returns how many.
	ResendHistory(ctx context.Context, installationID string, since, until time.Time) (int, error)
}

// OIDC configures Sign in with Slack: the same Slack app as "Add to Slack".
type OIDC struct {
	Issuer       string // SLACK_OIDC_ISSUER
	ClientID     string
	ClientSecret string // never logged
	// HTTPClient talks to Slack (discovery, keys, token); it must have a
	// timeout. A client with a 10 s timeout when nil.
	HTTPClient *http.Client
}

// missing names the variables Sign in with Slack still needs.
func (o OIDC) missing() []string {
	var out []string
	if o.ClientID == "" {
		out = append(out, "SLACK_CLIENT_ID")
	}
	if o.ClientSecret == "" {
		out = append(out, "SLACK_CLIENT_SECRET")
	}
	return out
}

// Options configures New. Channels, DeadLetters, Audit, Keys and BaseURL
// are required.
type Options struct {
	Channels    Channels
	DeadLetters DeadLetters
	Audit       AuditLog
	Delivery    Delivery // optional; see Delivery
	// History and HistoryMaxAge (HISTORY_MAX_AGE) offer to resend
	// delivered events; without either the panel says none are kept.
	History       History
	HistoryMaxAge time.Duration
	// Defaults are the deployment's pace and digest settings
	// (CHANNEL_PACE, CHANNEL_BURST, DIGESTS, DIGEST_AFTER), shown where a
	// channel has none of its own; a zero field shows as "default".
	Defaults registry.DeliverySettings
	// IconBaseURL is where message icons are served (BaseURL +
	// "/static/images"), for the previews of dead letters.
	IconBaseURL string
	Keys        *secret.Keys
	// BaseURL is the public base URL (SERVER_NAME); the sign-in redirect
	// is BaseURL + "/admin/callback" and cookies are Secure behind https.
	BaseURL string
	OIDC    OIDC
	// Admins are Slack user IDs that may change every channel of their
	// workspace, and the channels added by hand (ADMIN_SLACK_USERS).
	Admins     []string
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil registers no metrics
	Now        func() time.Time      // time.Now when nil
}

// Console serves /admin. It is safe for concurrent use.
type Console struct {
	channels Channels
	dead     DeadLetters
	audit    AuditLog
	delivery Delivery
	history  History
	maxAge   time.Duration
	defaults registry.DeliverySettings
	icons    string
	keys     *secret.Keys
	baseURL  string
	basePath string
	secure   bool
	oidc     OIDC
	provider *provider
	admins   map[string]bool
	logger   *slog.Logger
	metrics  *metrics
	now      func() time.Time
	pages    *pages
}

// New returns a Console, or an error naming what is missing.
func New(opts Options) (*Console, error) {
	var problems []string
	if opts.Channels == nil {
		problems = append(problems, "channels are nil")
	}
	if opts.DeadLetters == nil {
		problems = append(problems, "dead letters are nil")
	}
	if opts.Audit == nil {
		problems = append(problems, "audit log is nil")
	}
	if opts.Keys == nil {
		problems = append(problems, "keys are nil")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("base url %q is not an http(s) URL", opts.BaseURL))
	}
	if len(problems) > 0 {
		return nil, errors.New("console: " + strings.Join(problems, "; "))
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
		return nil, fmt.Errorf("console: %w", err)
	}
	p, err := parsePages(u.Path)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	hc := opts.OIDC.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	opts.OIDC.HTTPClient = hc
	admins := make(map[string]bool, len(opts.Admins))
	for _, a := range opts.Admins {
		admins[a] = true
	}
	return &Console{
		channels: opts.Channels,
		dead:     opts.DeadLetters,
		audit:    opts.Audit,
		delivery: opts.Delivery,
		history:  opts.History,
		maxAge:   opts.HistoryMaxAge,
		defaults: opts.Defaults,
		icons:    strings.TrimRight(opts.IconBaseURL, "/"),
		keys:     opts.Keys,
		baseURL:  base,
		basePath: u.Path,
		secure:   u.Scheme == "https",
		oidc:     opts.OIDC,
		provider: newProvider(strings.TrimRight(opts.OIDC.Issuer, "/"), hc, now),
		admins:   admins,
		logger:   logger,
		metrics:  m,
		now:      now,
		pages:    p,
	}, nil
}

// Register adds the console's routes to e: GET /admin (the channels of
// the member's workspace), GET /admin/login, GET /admin/callback, POST
// /admin/logout, GET /admin/changes, GET /admin/channels/:id, POST
// /admin/channels/:id/:action and the console's stylesheet under
// /admin/assets/. The pages also use the installer's /assets/ (the style
// of the "Add to Slack" page), so both serve from the same server.
func (c *Console) Register(e *echo.Echo) {
	e.GET("/admin", c.handleChannels)
	e.GET("/admin/", c.handleChannels)
	e.GET("/admin/login", c.handleLogin)
	e.GET("/admin/callback", c.handleCallback)
	e.POST("/admin/logout", c.handleLogout)
	e.GET("/admin/changes", c.handleChanges)
	e.GET("/admin/channels/:id", c.handleChannel)
	e.POST("/admin/channels/:id/:action", c.handleAction)
	e.StaticFS("/admin/assets", assets())
}

// link returns the absolute path of a console page, under the base path.
func (c *Console) link(path string) string { return c.basePath + path }
