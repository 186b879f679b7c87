// Package config parses Jackalope's environment once into a typed Config.
// Every problem is reported at once, each naming its variable, and secrets
// are masked whenever the Config is logged.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/redact"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// Database drivers.
const (
	DriverPostgres = "postgres"
	DriverSQLite   = "sqlite"
)

// Config is everything Jackalope's services read from the environment.
type Config struct {
	Debug     bool
	SecretKey string // masked in logs
	// SecretKeyPrevious is the key being rotated away from: it still opens
	// old seals and checks old token hashes and signatures. Masked in logs.
	SecretKeyPrevious string
	BaseURL           string // public base URL, no trailing slash
	ListenAddr        string
	MetricsAddr       string // side port for /healthz, /readyz, /metrics
	// MetricsAddrSet is true when METRICS_ADDR was given: the all-in-one
	// then serves /healthz, /readyz and /metrics there instead of on
	// ListenAddr.
	MetricsAddrSet  bool
	DataDir         string
	ShutdownTimeout time.Duration
	Slack           Slack
	Database        Database
	NATS            NATS
	Ingest          Ingest
	Dispatch        Dispatch
	Console         Console
	// Notes are remarks on the environment that are not errors (a
	// variable that is no longer read, say), for the start-up log.
	Notes []string
}

// Slack configures the OAuth app and the Slack endpoints.
type Slack struct {
	ClientID     string
	ClientSecret string // masked in logs
	ShareableURL string
	APIURL       string
	OAuthURL     string
	Scopes       []string
	Timeout      time.Duration
	// WebhookHosts are the hosts incoming webhook URLs may point at
	// (SLACK_WEBHOOK_HOSTS), in lower case; see slack.WebhookPolicy.
	WebhookHosts []string
	// OIDCIssuer is the OpenID Connect issuer the console's "Sign in with
	// Slack" discovers its endpoints from (SLACK_OIDC_ISSUER).
	OIDCIssuer string
}

// Configured reports whether the OAuth app is set up ("Add to Slack" works).
func (s Slack) Configured() bool { return s.ClientID != "" && s.ClientSecret != "" }

// Database says which registry store to open.
type Database struct {
	Driver string // DriverPostgres or DriverSQLite
	URL    string // PostgreSQL URL or DSN; masked in logs
	Path   string // SQLite file
}

// NATS configures the bus and what Provision creates.
type NATS struct {
	URL string // empty: embedded server under DataDir/nats
	// Credentials and TLS for an external server: paths of files, never
	// their contents, so they are logged as they are.
	Creds string // NATS_CREDS: a credentials file (user JWT and seed)
	NKey  string // NATS_NKEY: a user nkey seed file
	CA    string // NATS_CA: PEM CA certificates that verify the server
	Cert  string // NATS_CERT: client certificate, with Key
	Key   string // NATS_KEY: the client certificate's private key

	Replicas        int
	MaxAge          time.Duration
	MaxBytes        int64
	MaxMsgs         int64 // 0: no limit
	DedupWindow     time.Duration
	DeadMaxAge      time.Duration
	HistoryMaxAge   time.Duration // 0: no history
	HistoryMaxBytes int64
}

// Ingest configures the webhook receiver.
type Ingest struct {
	MaxBodyBytes   int64
	PublishTimeout time.Duration
}

// Dispatch configures the dispatcher pool.
type Dispatch struct {
	// Workers bounds the posts to Slack under way at once in a process.
	Workers int
	// Hold bounds the events a process holds in memory, three quarters of them
	// for one channel; beyond it they wait on the bus. 0: the process's
	// own default (dispatch.DefaultHoldTotal, less in the all-in-one).
	Hold int
	// AckWait is how long JetStream waits for a dispatcher that took an
	// event and went silent (killed, say) before another gets it.
	AckWait time.Duration
	// Deadline is how long an event may wait for a channel that fails
	// before it becomes a dead letter; RetryMaxDelay caps the backoff
	// between tries of a failing channel.
	Deadline      time.Duration
	RetryMaxDelay time.Duration
	// Interval and Burst are the default pace of a channel (one message
	// per Interval, Burst at once after a quiet spell); Digests and
	// DigestAfter say when a channel behind its pace gets digests.
	Interval    time.Duration
	Burst       int
	Digests     bool
	DigestAfter time.Duration
}

// Console configures the Slack admin's console.
type Console struct {
	// Admins are the Slack user IDs that may change every channel of their
	// workspace (ADMIN_SLACK_USERS), not only those they installed.
	Admins []string
}

// Variable documents one environment variable: the README's configuration
// table is checked against this list.
type Variable struct {
	Name    string
	Default string
	Usage   string
}

// Variables lists every variable Load reads, in the README's order.
var Variables = []Variable{
	{"SECRET_KEY", "(none; the all-in-one generates one in DATA_DIR)", "keys for sealing webhook URLs, hashing tokens and signing cookies; at least 32 random characters, never a placeholder"},
	{"SECRET_KEY_PREVIOUS", "(none)", "during a key rotation, the old SECRET_KEY: still opens what it sealed until keys reseal"},
	{"SERVER_NAME", "http://localhost:<LISTEN_ADDR port>", "public base URL, or a host name meaning https://host"},
	{"DEBUG", "(off)", "debug logging when set to anything"},
	{"LISTEN_ADDR", ":5000", "HTTP address of the installer, ingest and the all-in-one"},
	{"METRICS_ADDR", ":9090 (all-in-one: LISTEN_ADDR)", "address of /healthz, /readyz and /metrics, apart from the public LISTEN_ADDR"},
	{"DATA_DIR", "./data", "SQLite file, embedded NATS store and generated secret key"},
	{"SHUTDOWN_TIMEOUT", "25s", "how long a stopping service waits for work in flight"},
	{"SLACK_CLIENT_ID", "(none)", "Slack app client ID"},
	{"SLACK_CLIENT_SECRET", "(none)", "Slack app client secret"},
	{"SLACK_SHAREABLE_URL", "(none)", "Slack's shareable install URL; only its scopes are used"},
	{"SLACK_API_URL", "https://slack.com/api", "Slack Web API base"},
	{"SLACK_OAUTH_URL", "https://slack.com/oauth/v2/authorize", "Slack authorize page"},
	{"SLACK_TIMEOUT", "10s", "timeout of each request to Slack"},
	{"SLACK_WEBHOOK_HOSTS", "hooks.slack.com", "comma-separated hosts a Slack incoming webhook URL may point at (https only; plain http to loopback hosts listed here)"},
	{"SLACK_OIDC_ISSUER", "https://slack.com", "OpenID Connect issuer of the console's Sign in with Slack"},
	{"ADMIN_SLACK_USERS", "(none)", "Slack user IDs that may change every channel of their workspace in the console"},
	{"DATABASE_URL", "(none: SQLite in DATA_DIR)", "PostgreSQL URL or DSN, or host:port with DATABASE_NAME, DATABASE_USER, DATABASE_PASSWD"},
	{"DATABASE_NAME", "(none)", "database name for the host:port form"},
	{"DATABASE_USER", "(none)", "user for the host:port form"},
	{"DATABASE_PASSWD", "(none)", "password for the host:port form"},
	{"NATS_URL", "(none: embedded server)", "NATS server URL(s), comma-separated; may carry user:password@ or token@"},
	{"NATS_CREDS", "(none)", "NATS credentials file (user JWT and nkey seed) for NATS_URL"},
	{"NATS_NKEY", "(none)", "NATS user nkey seed file for NATS_URL (jackalope nats-creds writes them)"},
	{"NATS_CA", "(none: system roots)", "PEM CA certificates that verify the NATS server; requires TLS"},
	{"NATS_CERT", "(none)", "client certificate for NATS servers that verify clients, with NATS_KEY"},
	{"NATS_KEY", "(none)", "private key of NATS_CERT"},
	{"STREAM_REPLICAS", "1", "replicas of the streams and KV bucket (3 on a JetStream cluster)"},
	{"STREAM_MAX_AGE", "168h", "how long an event may wait in the backlog (JAMF_EVENTS)"},
	{"STREAM_MAX_BYTES", "1073741824", "size limit of the backlog of undelivered events; when full, ingest answers 503"},
	{"STREAM_MAX_MSGS", "(no limit)", "event count limit of the backlog; when full, ingest answers 503"},
	{"DEDUP_WINDOW", "2m", "a repeated body within this window is stored once"},
	{"DEAD_MAX_AGE", "720h", "how long dead letters are kept in JAMF_DEAD"},
	{"HISTORY_MAX_AGE", "24h", "how long delivered events are kept in JAMF_HISTORY for resending; 0 keeps none"},
	{"HISTORY_MAX_BYTES", "1073741824", "size limit of JAMF_HISTORY; its oldest events make room"},
	{"MAX_BODY_BYTES", "1048576", "largest webhook body ingest takes (413 above)"},
	{"PUBLISH_TIMEOUT", "1500ms", "how long ingest waits for JetStream before answering 503"},
	{"DISPATCH_WORKERS", "256", "posts to Slack under way at once per dispatcher process"},
	{"DISPATCH_HOLD", "20000 (2000 in the all-in-one)", "events a dispatcher process holds in memory, three quarters of them for one channel; the rest wait on the bus"},
	{"DISPATCH_MAX_ATTEMPTS", "(ignored)", "deprecated and ignored: DELIVERY_DEADLINE decides when an event is given up"},
	{"ACK_WAIT", "30s", "how long an event held by a dispatcher that died waits before another takes it"},
	{"DELIVERY_DEADLINE", "24h", "how long an event may wait for a failing channel before it becomes a dead letter; at most STREAM_MAX_AGE minus 10m"},
	{"RETRY_MAX_DELAY", "5m", "longest backoff between tries of a failing channel"},
	{"CHANNEL_PACE", "1/s", "default pace of a channel, shared by all dispatchers (N/s, N/min, N/h)"},
	{"CHANNEL_BURST", "3", "messages a channel may get at once after a quiet spell"},
	{"DIGESTS", "on", "whether a channel behind its pace gets digests (on or off)"},
	{"DIGEST_AFTER", "5s", "a channel whose waiting events cannot go out at its pace within this gets digests"},
}

// Load reads the environment through getenv and returns the Config, or an
// error listing every problem found, each naming its variable.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		Debug:             getenv("DEBUG") != "",
		SecretKey:         getenv("SECRET_KEY"),
		SecretKeyPrevious: getenv("SECRET_KEY_PREVIOUS"),
		ListenAddr:        p.addr("LISTEN_ADDR", ":5000"),
		MetricsAddr:       p.addr("METRICS_ADDR", ":9090"),
		MetricsAddrSet:    strings.TrimSpace(getenv("METRICS_ADDR")) != "",
		DataDir:           p.str("DATA_DIR", "./data"),
		ShutdownTimeout:   p.duration("SHUTDOWN_TIMEOUT", 25*time.Second),
		Slack: Slack{
			ClientID:     getenv("SLACK_CLIENT_ID"),
			ClientSecret: getenv("SLACK_CLIENT_SECRET"),
			ShareableURL: getenv("SLACK_SHAREABLE_URL"),
			APIURL:       p.httpURL("SLACK_API_URL", "https://slack.com/api"),
			OAuthURL:     p.httpURL("SLACK_OAUTH_URL", "https://slack.com/oauth/v2/authorize"),
			Timeout:      p.duration("SLACK_TIMEOUT", 10*time.Second),
			WebhookHosts: p.hosts("SLACK_WEBHOOK_HOSTS", "hooks.slack.com"),
			OIDCIssuer:   p.httpURL("SLACK_OIDC_ISSUER", "https://slack.com"),
		},
		Console: Console{Admins: p.slackUsers("ADMIN_SLACK_USERS")},
		NATS: NATS{
			URL:             getenv("NATS_URL"),
			Creds:           p.file("NATS_CREDS"),
			NKey:            p.file("NATS_NKEY"),
			CA:              p.file("NATS_CA"),
			Cert:            p.file("NATS_CERT"),
			Key:             p.file("NATS_KEY"),
			Replicas:        p.intRange("STREAM_REPLICAS", 1, 1, 5),
			MaxAge:          p.duration("STREAM_MAX_AGE", 168*time.Hour),
			MaxBytes:        p.bytes("STREAM_MAX_BYTES", 1<<30),
			MaxMsgs:         p.count("STREAM_MAX_MSGS", 0),
			DedupWindow:     p.duration("DEDUP_WINDOW", 2*time.Minute),
			DeadMaxAge:      p.duration("DEAD_MAX_AGE", 720*time.Hour),
			HistoryMaxAge:   p.durationOrZero("HISTORY_MAX_AGE", 24*time.Hour),
			HistoryMaxBytes: p.bytes("HISTORY_MAX_BYTES", 1<<30),
		},
		Ingest: Ingest{
			MaxBodyBytes:   p.bytes("MAX_BODY_BYTES", 1<<20),
			PublishTimeout: p.duration("PUBLISH_TIMEOUT", 1500*time.Millisecond),
		},
		Dispatch: Dispatch{
			Workers:       p.intRange("DISPATCH_WORKERS", 256, 1, 4096),
			Hold:          p.intRange("DISPATCH_HOLD", 0, 100, 1_000_000),
			AckWait:       p.duration("ACK_WAIT", 30*time.Second),
			RetryMaxDelay: p.duration("RETRY_MAX_DELAY", 5*time.Minute),
			Interval:      p.pace("CHANNEL_PACE", time.Second),
			Burst:         p.intRange("CHANNEL_BURST", 3, 1, 100),
			Digests:       p.onOff("DIGESTS", true),
			DigestAfter:   p.duration("DIGEST_AFTER", 5*time.Second),
		},
	}
	if v := strings.TrimSpace(getenv("DISPATCH_MAX_ATTEMPTS")); v != "" {
		c.Notes = append(c.Notes, "DISPATCH_MAX_ATTEMPTS is no longer read: events are given up after DELIVERY_DEADLINE (see the README, Upgrading)")
	}
	c.Dispatch.Deadline = p.deadline(c.NATS.MaxAge)
	if c.SecretKey != "" {
		if err := secret.CheckKey(c.SecretKey); err != nil {
			p.fail("SECRET_KEY", fmt.Sprintf("refused, %v; make one with: openssl rand -hex 32", err))
		}
	}
	// SECRET_KEY_PREVIOUS is a key already in use, perhaps one from before
	// keys had to pass secret.CheckKey: it only has to be long enough to
	// derive keys from.
	if c.SecretKeyPrevious != "" && len(c.SecretKeyPrevious) < secret.MinKeyLength {
		p.fail("SECRET_KEY_PREVIOUS", fmt.Sprintf("must be at least %d characters: it is an old SECRET_KEY", secret.MinKeyLength))
	}
	if c.SecretKeyPrevious != "" && c.SecretKeyPrevious == c.SecretKey {
		p.fail("SECRET_KEY_PREVIOUS", "is the same as SECRET_KEY; set it to the old key, or unset it once keys reseal ran")
	}
	if c.Dispatch.AckWait < 5*time.Second {
		p.fail("ACK_WAIT", "must be at least 5s (dispatchers renew it every third of it while Slack answers)")
	}
	if c.NATS.DedupWindow > c.NATS.MaxAge {
		p.fail("DEDUP_WINDOW", "must not be longer than STREAM_MAX_AGE")
	}
	p.natsAuth(c.NATS)
	c.BaseURL = p.baseURL(c.ListenAddr)
	c.Slack.Scopes = p.scopes()
	c.Database = p.database(c.DataDir)
	if len(p.errs) > 0 {
		return Config{}, &Error{Problems: p.errs}
	}
	return c, nil
}

// RequireSecretKey reports the error the split services stop with when
// SECRET_KEY is unset.
func (c Config) RequireSecretKey() error {
	if c.SecretKey == "" {
		return &Error{Problems: []string{fmt.Sprintf("SECRET_KEY: required (at least %d random characters; try: openssl rand -hex 32)", secret.MinNewKeyLength)}}
	}
	return nil
}

// Error lists every configuration problem, one per line.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "configuration: " + strings.Join(e.Problems, "; ")
}

// LogValue masks secrets, so a Config can be logged whole at start-up.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("debug", c.Debug),
		slog.String("secret_key", mask(c.SecretKey)),
		slog.String("secret_key_previous", mask(c.SecretKeyPrevious)),
		slog.String("base_url", c.BaseURL),
		slog.String("listen_addr", c.ListenAddr),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("data_dir", c.DataDir),
		slog.String("slack_client_id", c.Slack.ClientID),
		slog.String("slack_client_secret", mask(c.Slack.ClientSecret)),
		slog.String("slack_api_url", c.Slack.APIURL),
		slog.String("slack_oauth_url", c.Slack.OAuthURL),
		slog.String("slack_scopes", strings.Join(c.Slack.Scopes, ",")),
		slog.String("slack_webhook_hosts", strings.Join(c.Slack.WebhookHosts, ",")),
		slog.String("slack_oidc_issuer", c.Slack.OIDCIssuer),
		slog.String("admin_slack_users", strings.Join(c.Console.Admins, ",")),
		slog.String("database", c.Database.Describe()),
		slog.String("nats_url", redact.URL(c.NATS.URL)),
		slog.String("nats_creds", c.NATS.Creds),
		slog.String("nats_nkey", c.NATS.NKey),
		slog.String("nats_ca", c.NATS.CA),
		slog.String("nats_cert", c.NATS.Cert),
		slog.String("nats_key", c.NATS.Key),
		slog.Int("stream_replicas", c.NATS.Replicas),
		slog.String("stream_max_age", c.NATS.MaxAge.String()),
		slog.Int64("stream_max_bytes", c.NATS.MaxBytes),
		slog.Int64("max_body_bytes", c.Ingest.MaxBodyBytes),
		slog.Int64("stream_max_msgs", c.NATS.MaxMsgs),
		slog.String("history_max_age", c.NATS.HistoryMaxAge.String()),
		slog.Int("dispatch_workers", c.Dispatch.Workers),
		slog.String("ack_wait", c.Dispatch.AckWait.String()),
		slog.String("delivery_deadline", c.Dispatch.Deadline.String()),
		slog.String("retry_max_delay", c.Dispatch.RetryMaxDelay.String()),
		slog.String("channel_pace", registry.FormatPace(c.Dispatch.Interval)),
		slog.Int("channel_burst", c.Dispatch.Burst),
		slog.Bool("digests", c.Dispatch.Digests),
		slog.String("digest_after", c.Dispatch.DigestAfter.String()),
	)
}

// Describe names the store without its credentials: "sqlite
// data/jackalope.db" or "postgres postgres://user:xxxxx@host:5432/db".
func (d Database) Describe() string {
	if d.Driver == DriverSQLite {
		return "sqlite " + d.Path
	}
	return "postgres " + redact.URL(d.URL)
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "********"
}

type parser struct {
	getenv func(string) string
	errs   []string
}

func (p *parser) fail(name, problem string) {
	p.errs = append(p.errs, name+": "+problem)
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

// file reads a variable that names a file, which must be readable now:
// better to stop at start than at the first reconnect. The error names the
// path, never what the file holds.
func (p *parser) file(name string) string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return ""
	}
	f, err := os.Open(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("cannot read %s: %v", v, errors.Unwrap(err)))
		return v
	}
	if info, err := f.Stat(); err == nil && info.IsDir() {
		p.fail(name, fmt.Sprintf("%s is a directory, not a file", v))
	}
	_ = f.Close() // opened for reading only
	return v
}

// natsAuth checks that the NATS credential and TLS variables fit together.
func (p *parser) natsAuth(n NATS) {
	set := func(name, v string) bool {
		if v != "" && n.URL == "" {
			p.fail(name, "only with NATS_URL: the embedded server makes its own credentials")
		}
		return v != ""
	}
	creds, nkey := set("NATS_CREDS", n.Creds), set("NATS_NKEY", n.NKey)
	set("NATS_CA", n.CA)
	cert, key := set("NATS_CERT", n.Cert), set("NATS_KEY", n.Key)
	if creds && nkey {
		p.fail("NATS_NKEY", "set NATS_CREDS or NATS_NKEY, not both")
	}
	if cert != key {
		p.fail("NATS_CERT", "NATS_CERT and NATS_KEY go together (a client certificate and its key)")
	}
}

func (p *parser) addr(name, def string) string {
	v := p.str(name, def)
	if _, port, err := net.SplitHostPort(v); err != nil {
		p.fail(name, fmt.Sprintf("%q is not host:port (e.g. :5000 or 127.0.0.1:5000)", v))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.fail(name, fmt.Sprintf("%q has no valid port", v))
	}
	return v
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive duration (e.g. 90s, 5m, 168h)", v))
		return def
	}
	return d
}

// durationOrZero reads a duration that may be 0 (off).
func (p *parser) durationOrZero(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	if v == "0" {
		return 0
	}
	return p.duration(name, def)
}

// deadline reads DELIVERY_DEADLINE, which must leave deadlineMargin before
// the backlog's max age, so that an event is parked before the stream
// expires it. Unset, it is 24h, or less when STREAM_MAX_AGE is short.
func (p *parser) deadline(maxAge time.Duration) time.Duration {
	const deadlineMargin = 10 * time.Minute
	limit := maxAge - deadlineMargin
	if strings.TrimSpace(p.getenv("DELIVERY_DEADLINE")) == "" {
		return max(min(24*time.Hour, limit), time.Minute)
	}
	d := p.duration("DELIVERY_DEADLINE", 24*time.Hour)
	if d > limit {
		p.fail("DELIVERY_DEADLINE", fmt.Sprintf("%v must leave at least %v before STREAM_MAX_AGE (%v), so that an event is parked before the backlog drops it", d, deadlineMargin, maxAge))
	}
	return d
}

// pace reads a pace such as 1/s (see registry.ParsePace) as an interval.
func (p *parser) pace(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := registry.ParsePace(v)
	if err != nil {
		p.fail(name, err.Error())
		return def
	}
	return d
}

// onOff reads on/off (also true/false, yes/no, 1/0).
func (p *parser) onOff(name string, def bool) bool {
	switch v := strings.ToLower(strings.TrimSpace(p.getenv(name))); v {
	case "":
		return def
	case "on", "true", "yes", "1":
		return true
	case "off", "false", "no", "0":
		return false
	default:
		p.fail(name, fmt.Sprintf("%q is neither on nor off", v))
		return def
	}
}

// count reads a non-negative whole number; 0 means no limit.
func (p *parser) count(name string, def int64) int64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		p.fail(name, fmt.Sprintf("%q is not a whole number of 0 or more", v))
		return def
	}
	return n
}

func (p *parser) intRange(name string, def, lo, hi int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("%q is not a whole number from %d to %d", v, lo, hi))
		return def
	}
	return n
}

func (p *parser) bytes(name string, def int64) int64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive number of bytes", v))
		return def
	}
	return n
}

// httpURL reads an https URL; plain http only to a loopback host (a local
// fake of Slack), since what is sent there (the client secret) would
// otherwise cross the network in clear.
func (p *parser) httpURL(name, def string) string {
	v := strings.TrimRight(p.str(name, def), "/")
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.fail(name, fmt.Sprintf("%q is not an http(s) URL", redact.URL(v)))
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		p.fail(name, fmt.Sprintf("%q: plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost); use https", redact.URL(v)))
	}
	return v
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hosts reads a comma-separated list of host names or IP addresses, in
// lower case, without brackets or a trailing dot.
func (p *parser) hosts(name, def string) []string {
	var out []string
	for _, h := range strings.Split(p.str(name, def), ",") {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			out = append(out, ip.String())
			continue
		}
		if strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" || strings.HasPrefix(h, ".") || strings.HasPrefix(h, "-") {
			p.fail(name, fmt.Sprintf("%q is not a host name or IP address (no scheme, port or path)", h))
			continue
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		p.fail(name, "lists no host")
	}
	return out
}

// slackUsers reads a comma-separated list of Slack user IDs (U… or W…,
// upper-case letters and digits).
func (p *parser) slackUsers(name string) []string {
	var ids []string
	for _, id := range strings.Split(p.getenv(name), ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !slackUserID.MatchString(id) {
			p.fail(name, fmt.Sprintf("%q is not a Slack user ID (like U012AB3CD4; find it in the member's Slack profile, under More > Copy member ID)", id))
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// slackUserID matches a Slack user ID: U or W (Enterprise Grid), then
// upper-case letters and digits.
var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,31}$`)

// baseURL reads SERVER_NAME: a host ("jackalope.example.com", meaning
// https://host) or a base URL. Unset, it is http://localhost:<port>.
func (p *parser) baseURL(listen string) string {
	v := strings.TrimSpace(p.getenv("SERVER_NAME"))
	if v == "" {
		_, port, _ := net.SplitHostPort(listen)
		if port == "" || port == "0" {
			port = "5000"
		}
		return "http://localhost:" + port
	}
	if !strings.Contains(v, "://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.fail("SERVER_NAME", fmt.Sprintf("%q is neither a host name nor an http(s) base URL", redact.URL(p.getenv("SERVER_NAME"))))
		return ""
	}
	return strings.TrimRight(u.String(), "/")
}

// scopes takes the OAuth scopes from SLACK_SHAREABLE_URL, which is otherwise
// unused: the button always goes through /install so that state is set.
func (p *parser) scopes() []string {
	v := strings.TrimSpace(p.getenv("SLACK_SHAREABLE_URL"))
	if v == "" {
		return []string{"incoming-webhook"}
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		p.fail("SLACK_SHAREABLE_URL", fmt.Sprintf("%q is not a URL", v))
		return []string{"incoming-webhook"}
	}
	var scopes []string
	for _, s := range strings.Split(u.Query().Get("scope"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) == 0 {
		return []string{"incoming-webhook"}
	}
	return scopes
}

// database reads DATABASE_URL and its original companions. A postgres://
// URL or key=value DSN is used as is; host:port needs DATABASE_NAME (and
// takes DATABASE_USER, DATABASE_PASSWD); sqlite:PATH names an SQLite file;
// nothing at all means SQLite at DATA_DIR/jackalope.db.
func (p *parser) database(dataDir string) Database {
	raw := strings.TrimSpace(p.getenv("DATABASE_URL"))
	name, user, pass := p.getenv("DATABASE_NAME"), p.getenv("DATABASE_USER"), p.getenv("DATABASE_PASSWD")
	switch {
	case raw == "":
		if name != "" || user != "" || pass != "" {
			p.fail("DATABASE_URL", "required when DATABASE_NAME, DATABASE_USER or DATABASE_PASSWD is set (host:port)")
		}
		return Database{Driver: DriverSQLite, Path: filepath.Join(dataDir, "jackalope.db")}
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		if path == "" {
			p.fail("DATABASE_URL", "sqlite: needs a file path, e.g. sqlite:/var/lib/jackalope/jackalope.db")
		}
		return Database{Driver: DriverSQLite, Path: path}
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			p.fail("DATABASE_URL", "is not a valid PostgreSQL URL (postgres://user:password@host:5432/db)")
		}
		return Database{Driver: DriverPostgres, URL: raw}
	case strings.Contains(raw, "="):
		return Database{Driver: DriverPostgres, URL: raw}
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		host, port = raw, "5432"
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		p.fail("DATABASE_URL", "is neither a PostgreSQL URL, a DSN, sqlite:PATH nor host:port")
		return Database{}
	}
	if _, err := strconv.Atoi(port); err != nil {
		p.fail("DATABASE_URL", fmt.Sprintf("port %q is not a number", port))
	}
	if name == "" {
		p.fail("DATABASE_NAME", "required with DATABASE_URL in host:port form")
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, port), Path: "/" + name}
	switch {
	case user != "" && pass != "":
		u.User = url.UserPassword(user, pass)
	case user != "":
		u.User = url.User(user)
	case pass != "":
		p.fail("DATABASE_USER", "required when DATABASE_PASSWD is set")
	}
	return Database{Driver: DriverPostgres, URL: u.String()}
}
