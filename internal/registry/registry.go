// Package registry holds the channel registry's model: an Installation is one
// Slack channel that receives the events Jamf Pro posts to its Jamf URL.
// It is a leaf package: it imports nothing of the project's own.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
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
	Delivery         DeliverySettings
	Filter           EventFilter // which events the channel shows; zero shows all
	CreatedAt        time.Time
	UpdatedAt        time.Time
	// InboundAuth is what Jamf Pro must send besides the token; zero when
	// the token alone is enough.
	InboundAuth InboundAuth
	// InboundAuthSealed holds the inbound credentials sealed, so that a
	// key rotation can hash them again; empty without inbound auth.
	InboundAuthSealed string
}

// Store is the behaviour every registry store (PostgreSQL, SQLite) shares.
// The conformance suite in package registrytest pins it.
type Store interface {
	// Upsert inserts in by (TeamID, ChannelID) or, when that pair exists,
	// updates names, webhook URL, configuration URL and installing user and
	// sets it active again, keeping ID, token, JamfURL and inbound auth. A
	// new row never has inbound auth. It returns the stored row and whether
	// it was created.
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

	// GetByChannel returns the installation of (teamID, channelID).
	GetByChannel(ctx context.Context, teamID, channelID string) (Installation, error)
	// Rekey replaces the values derived from SECRET_KEY (see Keyed) of
	// installation id with next, only if they are still prev: it fails with
	// ErrChanged when another write got there first, ErrNotFound when the
	// installation is gone, ErrTokenInUse or a channel conflict when next
	// takes a value another installation has.
	Rekey(ctx context.Context, id string, prev, next Keyed) (Installation, error)
	// SetInboundAuth sets the credentials Jamf Pro must send (auth, and
	// sealed, the same credentials sealed); the zero InboundAuth and ""
	// clear them. Upsert never changes them.
	SetInboundAuth(ctx context.Context, id string, auth InboundAuth, sealed string) (Installation, error)
	// SetDelivery sets the channel's own pace and digest settings (see
	// CheckDelivery); the zero DeliverySettings goes back to the defaults.
	// Upsert never changes them.
	SetDelivery(ctx context.Context, id string, d DeliverySettings) (Installation, error)
	// SetEventFilter sets which events the channel shows (see
	// CheckEventFilter); the zero EventFilter shows all. Upsert never
	// changes it.
	SetEventFilter(ctx context.Context, id string, f EventFilter) (Installation, error)
	// Ping reports whether the database answers, for readiness.
	Ping(ctx context.Context) error
}

// ErrChanged is returned by Store.Rekey when the installation no longer
// holds the values the caller read.
var ErrChanged = errors.New("installation changed since it was read")

// Keyed holds an installation's values that depend on SECRET_KEY: its
// seals, its keyed hashes, and the channel key of a channel added by hand
// (a keyed hash of its webhook URL). A key rotation makes them again.
type Keyed struct {
	ChannelID         string
	WebhookURLSealed  string
	TokenHash         string
	TokenSealed       string
	InboundAuthHash   string
	InboundAuthSealed string
}

// Keyed returns i's values that depend on SECRET_KEY.
func (i Installation) Keyed() Keyed {
	return Keyed{
		ChannelID:         i.ChannelID,
		WebhookURLSealed:  i.WebhookURLSealed,
		TokenHash:         i.TokenHash,
		TokenSealed:       i.TokenSealed,
		InboundAuthHash:   i.InboundAuth.Hash,
		InboundAuthSealed: i.InboundAuthSealed,
	}
}

// Inbound authentication schemes: what Jamf Pro's webhook "Authentication
// Type" sends.
const (
	// AuthBasic is HTTP Basic authentication (Authorization: Basic).
	AuthBasic = "basic"
	// AuthHeader is Jamf Pro's "Header Authentication": headers of the
	// admin's choosing with secret values.
	AuthHeader = "header"
)

// InboundAuth is what Jamf Pro must send with each webhook of an
// installation besides the token in the URL. It holds no secret: only the
// scheme, the names of the headers and a keyed hash of the credentials.
// The zero value means none.
type InboundAuth struct {
	// Scheme is AuthBasic or AuthHeader; empty means no inbound auth.
	Scheme string `json:"scheme"`
	// Headers are the header names of AuthHeader, canonical, sorted and
	// joined by ",".
	Headers string `json:"headers,omitempty"`
	// Hash is the keyed hash (secret.Keys.HashInboundAuth) of the
	// credentials in the form of BasicCredential or HeaderCredential.
	Hash string `json:"hash"`
}

// Enabled reports whether Jamf Pro must send credentials.
func (a InboundAuth) Enabled() bool { return a.Scheme != "" }

// BasicCredential is the canonical form of HTTP Basic credentials that is
// hashed. Lengths come first, so no two pairs share a form.
func BasicCredential(user, password string) string {
	return AuthBasic + ":" + lengthPrefixed(user) + lengthPrefixed(password)
}

// MaxCredentialLength bounds each user name, password, header name and
// header value of inbound auth.
const MaxCredentialLength = 1024

// CheckBasicUser checks the user name of HTTP Basic inbound auth:
// non-empty, at most MaxCredentialLength, printable and without a colon,
// which would end it (RFC 7617). The error never repeats it.
func CheckBasicUser(user string) error {
	switch {
	case user == "":
		return errors.New("the user name is empty")
	case len(user) > MaxCredentialLength:
		return fmt.Errorf("the user name is longer than %d characters", MaxCredentialLength)
	case strings.Contains(user, ":") || !Printable(user):
		return errors.New("the user name must be printable text without a colon")
	}
	return nil
}

// CheckBasicCredential checks the credentials of HTTP Basic inbound auth:
// a user name as CheckBasicUser wants it and a non-empty, printable
// password of at most MaxCredentialLength. The error never repeats them.
func CheckBasicCredential(user, password string) error {
	if err := CheckBasicUser(user); err != nil {
		return err
	}
	switch {
	case password == "":
		return errors.New("the password is empty")
	case len(password) > MaxCredentialLength:
		return fmt.Errorf("the password is longer than %d characters", MaxCredentialLength)
	case !Printable(password):
		return errors.New("the password must be printable text")
	}
	return nil
}

// reservedHeaders are headers Jamf Pro or the HTTP transport set
// themselves, so they cannot carry a secret of the admin's.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Type": true, "Content-Length": true, "Transfer-Encoding": true,
	"Connection": true, "Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
}

// CanonicalAuthHeader checks the name of a header that header inbound auth
// requires and returns it canonical (textproto's form): an HTTP header
// name (an RFC 9110 token) of at most MaxCredentialLength that Jamf Pro
// and HTTP do not set themselves.
func CanonicalAuthHeader(name string) (string, error) {
	name = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
	switch {
	case name == "":
		return "", errors.New("the header name is empty")
	case len(name) > MaxCredentialLength:
		return "", fmt.Errorf("the header name is longer than %d characters", MaxCredentialLength)
	case !headerToken(name):
		return "", fmt.Errorf("%q is not a header name", name)
	case reservedHeaders[name]:
		return "", fmt.Errorf("%s is set by Jamf Pro or HTTP itself; choose another header, such as X-Jamf-Secret", name)
	}
	return name, nil
}

// headerToken reports whether s is an RFC 9110 token.
func headerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Printable reports whether s has no control characters, so that it fits
// in a header and on one line.
func Printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// HeaderCredential is the canonical form of header credentials that is
// hashed: names (canonical, in the order of InboundAuth.Headers) with
// their values.
func HeaderCredential(names, values []string) string {
	var b strings.Builder
	b.WriteString(AuthHeader + ":")
	for i, name := range names {
		b.WriteString(lengthPrefixed(name))
		if i < len(values) {
			b.WriteString(lengthPrefixed(values[i]))
		}
	}
	return b.String()
}

func lengthPrefixed(s string) string { return strconv.Itoa(len(s)) + ":" + s }

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
	// InboundAuth is checked by ingest before it reads the body.
	InboundAuth InboundAuth `json:"inbound_auth,omitzero"`
	// Delivery is the channel's own pace and digest settings.
	Delivery DeliverySettings `json:"delivery,omitzero"`
	// Filter is which events the channel shows; dispatchers settle the
	// others without posting them.
	Filter EventFilter `json:"filter,omitzero"`
}

// Equal reports whether e and o are the same read model.
func (e Entry) Equal(o Entry) bool {
	return e.ID == o.ID && e.Status == o.Status && e.StatusReason == o.StatusReason &&
		e.TokenHash == o.TokenHash && e.WebhookURLSealed == o.WebhookURLSealed &&
		e.TeamName == o.TeamName && e.ChannelName == o.ChannelName && e.JamfURL == o.JamfURL &&
		e.InboundAuth == o.InboundAuth && e.Delivery == o.Delivery && e.Filter.Equal(o.Filter)
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
		InboundAuth:      i.InboundAuth,
		Delivery:         i.Delivery,
		Filter:           i.Filter,
	}
}

// Conflicts a store reports, so callers can tell them with errors.Is.
var (
	ErrTokenInUse = errors.New("token hash already belongs to another installation")
	ErrIDInUse    = errors.New("installation id already in use by another channel")
	// ErrChannelInUse is returned by Store.Rekey when the new channel key
	// belongs to another installation of the team.
	ErrChannelInUse = errors.New("channel already belongs to another installation")
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

// CheckKeyed validates the values Store.Rekey writes, reporting every
// problem at once.
func CheckKeyed(k Keyed) error {
	var problems []string
	for _, f := range []struct{ name, value string }{
		{"channel id", k.ChannelID}, {"sealed webhook url", k.WebhookURLSealed},
		{"token hash", k.TokenHash}, {"sealed token", k.TokenSealed},
	} {
		if f.value == "" {
			problems = append(problems, f.name+" is empty")
		}
	}
	if (k.InboundAuthHash == "") != (k.InboundAuthSealed == "") {
		problems = append(problems, "inbound auth hash and sealed credentials must be set together")
	}
	if len(problems) > 0 {
		return errors.New("invalid keyed values: " + strings.Join(problems, "; "))
	}
	return nil
}

// CheckInboundAuth validates what Store.SetInboundAuth writes: the zero
// InboundAuth with no sealed credentials, or a known scheme with its hash,
// its sealed credentials and, for AuthHeader only, header names.
func CheckInboundAuth(a InboundAuth, sealed string) error {
	if a == (InboundAuth{}) && sealed == "" {
		return nil
	}
	var problems []string
	switch a.Scheme {
	case AuthBasic:
		if a.Headers != "" {
			problems = append(problems, "basic auth takes no header names")
		}
	case AuthHeader:
		if a.Headers == "" {
			problems = append(problems, "header auth needs header names")
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown scheme %q", a.Scheme))
	}
	if a.Hash == "" {
		problems = append(problems, "hash is empty")
	}
	if sealed == "" {
		problems = append(problems, "sealed credentials are empty")
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("invalid inbound auth: " + strings.Join(problems, "; "))
}
