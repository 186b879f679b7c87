// Package postgres keeps the channel registry in PostgreSQL, the source of
// truth of split deployments. It implements registry.Store with the same
// behaviour as package sqlite; the conformance suite in package
// registrytest pins both.
//
// The tables live in the first schema of the connection's search_path, so
// a URL with ?search_path=name puts the registry in schema name.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/jackalope-app/jackalope/internal/redact"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/migrations"
)

// defaultConnectTimeout bounds each connection attempt when the URL sets no
// connect_timeout, so an unreachable host fails Open instead of hanging.
const defaultConnectTimeout = 10 * time.Second

// Names of the unique constraints, as the migrations declare them.
const (
	constraintPrimaryKey = "installations_pkey"
	constraintTokenHash  = "installations_token_hash_key"
	constraintChannel    = "installations_team_channel_key"
)

// uniqueViolation is the SQLSTATE of a unique constraint failure.
const uniqueViolation = "23505"

// columns lists the installation columns in the order scanRow reads them.
const columns = `id::text, team_id, team_name, channel_id, channel_name, webhook_url_sealed,
	configuration_url, installing_user, token_hash, token_sealed, status, status_reason,
	jamf_url, created_at, updated_at, inbound_auth_scheme, inbound_auth_headers,
	inbound_auth_hash, inbound_auth_sealed, pace_interval_ms, pace_burst, digests, digest_after_ms,
	filter_events, filter_failures_only`

// Store is the PostgreSQL registry store. It is safe for concurrent use.
type Store struct {
	pool        *pgxpool.Pool
	credentials []string // what errors must not show
}

var _ registry.Store = (*Store)(nil)

// Open connects to the database at databaseURL (a postgres:// URL or a
// keyword/value DSN, as pgx takes them, including pool_* settings), checks
// the connection and applies pending migrations. Errors name the host and
// database, never the password.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error is not wrapped: it carries the unredacted URL in a
		// field. pgx redacts its message, but not a quoted password whole.
		return nil, fmt.Errorf("postgres: invalid database url: %s", redact.Text(err.Error(), redact.Credentials(databaseURL)...))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	target := describe(cfg.ConnConfig)
	// The password may also come from PGPASSWORD or a passfile.
	credentials := append(redact.Credentials(databaseURL), cfg.ConnConfig.Password)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", target, redact.Error(err, credentials...))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", target, redact.Error(err, credentials...))
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", target, redact.Error(err, credentials...))
	}
	return &Store{pool: pool, credentials: credentials}, nil
}

// migrate applies pending migrations through a database/sql handle (goose
// needs one), closed afterwards. A PostgreSQL advisory lock keyed by the
// schema serialises installers starting together.
func migrate(ctx context.Context, cc *pgx.ConnConfig) (err error) {
	db := stdlib.OpenDB(*cc.Copy())
	defer func() { err = errors.Join(err, db.Close()) }()

	var schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("find schema: %w", err)
	}
	if !schema.Valid {
		return errors.New("no schema to create tables in: search_path names no existing schema")
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID(schema.String)),
		lock.WithLockTimeout(1, 300), // retry every second for five minutes
	)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := migrations.NewProvider(goose.DialectPostgres, db, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return err
	}
	for _, r := range results {
		slog.InfoContext(ctx, "applied registry migration",
			"dialect", "postgres", "schema", schema.String, "version", r.Source.Version, "duration", r.Duration.String())
	}
	return nil
}

// lockID returns the advisory lock ID for migrating schema: one per schema,
// so that stores in different schemas of one database migrate independently.
func lockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("jackalope registry migrations\x00" + schema))
	return int64(h.Sum64())
}

// Ping implements registry.Store: the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", redact.Error(err, s.credentials...))
	}
	return nil
}

// Close closes every connection. It is safe to call more than once.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Upsert implements registry.Store in one statement: ON CONFLICT serialises
// concurrent installs of a channel, and xmax = 0 tells an inserted row from
// an updated one.
func (s *Store) Upsert(ctx context.Context, in registry.Installation) (registry.Installation, bool, error) {
	id, err := registry.CheckUpsert(in)
	if err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: %w", err)
	}
	now := timestamp()
	var created bool
	out, err := scanRow(s.pool.QueryRow(ctx, `INSERT INTO installations (
			id, team_id, team_name, channel_id, channel_name, webhook_url_sealed,
			configuration_url, installing_user, token_hash, token_sealed, status, status_reason,
			jamf_url, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', $12, $13, $13)
		ON CONFLICT (team_id, channel_id) DO UPDATE SET
			team_name = EXCLUDED.team_name,
			channel_name = EXCLUDED.channel_name,
			webhook_url_sealed = EXCLUDED.webhook_url_sealed,
			configuration_url = EXCLUDED.configuration_url,
			installing_user = EXCLUDED.installing_user,
			status = EXCLUDED.status,
			status_reason = '',
			updated_at = EXCLUDED.updated_at
		RETURNING `+columns+`, xmax = 0`,
		id, in.TeamID, in.TeamName, in.ChannelID, in.ChannelName, in.WebhookURLSealed,
		in.ConfigurationURL, in.InstallingUser, in.TokenHash, in.TokenSealed,
		string(registry.StatusActive), in.JamfURL, now), &created)
	if err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: %w", uniqueError(err))
	}
	return out, created, nil
}

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, id string) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("get installation: %w", registry.ErrNotFound)
	}
	in, err := scanRow(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM installations WHERE id = $1`, key))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation: %w", err)
	}
	return in, nil
}

// GetByTokenHash implements registry.Store.
func (s *Store) GetByTokenHash(ctx context.Context, tokenHash string) (registry.Installation, error) {
	if tokenHash == "" {
		return registry.Installation{}, fmt.Errorf("get installation by token: %w", registry.ErrNotFound)
	}
	in, err := scanRow(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM installations WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation by token: %w", err)
	}
	return in, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context) ([]registry.Installation, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM installations ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	defer rows.Close()
	var out []registry.Installation
	for rows.Next() {
		in, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("list installations: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	return out, nil
}

// SetStatus implements registry.Store. Setting an installation active
// clears its reason.
func (s *Store) SetStatus(ctx context.Context, id string, status registry.Status, reason string) (registry.Installation, error) {
	if !status.Valid() {
		return registry.Installation{}, fmt.Errorf("set installation status: invalid status %q", status)
	}
	if status == registry.StatusActive {
		reason = ""
	}
	return s.update(ctx, "set installation status", id,
		`status = $3, status_reason = $4`, string(status), reason)
}

// RotateToken implements registry.Store.
func (s *Store) RotateToken(ctx context.Context, id, tokenHash, tokenSealed string) (registry.Installation, error) {
	if tokenHash == "" || tokenSealed == "" {
		return registry.Installation{}, errors.New("rotate installation token: token hash and sealed token are required")
	}
	return s.update(ctx, "rotate installation token", id,
		`token_hash = $3, token_sealed = $4`, tokenHash, tokenSealed)
}

// SetJamfURL implements registry.Store. An empty jamfURL clears it.
func (s *Store) SetJamfURL(ctx context.Context, id, jamfURL string) (registry.Installation, error) {
	return s.update(ctx, "set installation jamf url", id, `jamf_url = $3`, jamfURL)
}

// GetByChannel implements registry.Store.
func (s *Store) GetByChannel(ctx context.Context, teamID, channelID string) (registry.Installation, error) {
	in, err := scanRow(s.pool.QueryRow(ctx,
		`SELECT `+columns+` FROM installations WHERE team_id = $1 AND channel_id = $2`, teamID, channelID))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation by channel: %w", err)
	}
	return in, nil
}

// Rekey implements registry.Store in one statement: the update only
// matches while the row still holds prev; when it does not, a second look
// tells a changed row from a missing one.
func (s *Store) Rekey(ctx context.Context, id string, prev, next registry.Keyed) (registry.Installation, error) {
	if err := registry.CheckKeyed(next); err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", err)
	}
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", registry.ErrNotFound)
	}
	in, err := scanRow(s.pool.QueryRow(ctx, `UPDATE installations SET
			channel_id = $2, webhook_url_sealed = $3, token_hash = $4, token_sealed = $5,
			inbound_auth_hash = $6, inbound_auth_sealed = $7, updated_at = $8
		WHERE id = $1 AND channel_id = $9 AND webhook_url_sealed = $10 AND token_hash = $11
			AND token_sealed = $12 AND inbound_auth_hash = $13 AND inbound_auth_sealed = $14
		RETURNING `+columns,
		key, next.ChannelID, next.WebhookURLSealed, next.TokenHash, next.TokenSealed,
		next.InboundAuthHash, next.InboundAuthSealed, timestamp(),
		prev.ChannelID, prev.WebhookURLSealed, prev.TokenHash, prev.TokenSealed,
		prev.InboundAuthHash, prev.InboundAuthSealed))
	if errors.Is(err, registry.ErrNotFound) {
		if _, err := s.Get(ctx, key); err != nil {
			return registry.Installation{}, fmt.Errorf("rekey installation: %w", err)
		}
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", registry.ErrChanged)
	}
	if err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", uniqueError(err))
	}
	return in, nil
}

// SetInboundAuth implements registry.Store.
func (s *Store) SetInboundAuth(ctx context.Context, id string, auth registry.InboundAuth, sealed string) (registry.Installation, error) {
	if err := registry.CheckInboundAuth(auth, sealed); err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	return s.update(ctx, "set inbound auth", id,
		`inbound_auth_scheme = $3, inbound_auth_headers = $4, inbound_auth_hash = $5, inbound_auth_sealed = $6`,
		auth.Scheme, auth.Headers, auth.Hash, sealed)
}

// SetDelivery implements registry.Store.
func (s *Store) SetDelivery(ctx context.Context, id string, d registry.DeliverySettings) (registry.Installation, error) {
	if err := registry.CheckDelivery(d); err != nil {
		return registry.Installation{}, fmt.Errorf("set delivery settings: %w", err)
	}
	return s.update(ctx, "set delivery settings", id,
		`pace_interval_ms = $3, pace_burst = $4, digests = $5, digest_after_ms = $6`,
		d.Interval.Milliseconds(), d.Burst, string(d.Digests), d.DigestAfter.Milliseconds())
}

// SetEventFilter implements registry.Store.
func (s *Store) SetEventFilter(ctx context.Context, id string, f registry.EventFilter) (registry.Installation, error) {
	if err := registry.CheckEventFilter(f); err != nil {
		return registry.Installation{}, fmt.Errorf("set event filter: %w", err)
	}
	return s.update(ctx, "set event filter", id, `filter_events = $3, filter_failures_only = $4`,
		registry.JoinEventNames(f.Events), registry.JoinEventNames(f.FailuresOnly))
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return fmt.Errorf("delete installation: %w", registry.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM installations WHERE id = $1`, key)
	if err != nil {
		return fmt.Errorf("delete installation: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete installation: %w", registry.ErrNotFound)
	}
	return nil
}

// update sets the columns in set and updated_at on the row with id, and
// returns the row. In set, $1 and $2 are taken (id, updated_at); its own
// arguments start at $3. op names the operation in errors.
func (s *Store) update(ctx context.Context, op, id, set string, args ...any) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	args = append([]any{key, timestamp()}, args...)
	in, err := scanRow(s.pool.QueryRow(ctx,
		`UPDATE installations SET `+set+`, updated_at = $2 WHERE id = $1 RETURNING `+columns, args...))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("%s: %w", op, uniqueError(err))
	}
	return in, nil
}

// scanRow reads one installation in the order of columns, then extra. No
// row is registry.ErrNotFound.
func scanRow(row pgx.Row, extra ...any) (registry.Installation, error) {
	var (
		in                        registry.Installation
		status, digests           string
		intervalMS, digestAfterMS int64
		events, failuresOnly      string
	)
	dest := append([]any{&in.ID, &in.TeamID, &in.TeamName, &in.ChannelID, &in.ChannelName,
		&in.WebhookURLSealed, &in.ConfigurationURL, &in.InstallingUser, &in.TokenHash,
		&in.TokenSealed, &status, &in.StatusReason, &in.JamfURL, &in.CreatedAt, &in.UpdatedAt,
		&in.InboundAuth.Scheme, &in.InboundAuth.Headers, &in.InboundAuth.Hash, &in.InboundAuthSealed,
		&intervalMS, &in.Delivery.Burst, &digests, &digestAfterMS, &events, &failuresOnly}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return registry.Installation{}, registry.ErrNotFound
		}
		return registry.Installation{}, err
	}
	in.Status = registry.Status(status)
	in.Delivery.Interval = time.Duration(intervalMS) * time.Millisecond
	in.Delivery.Digests = registry.Digests(digests)
	in.Delivery.DigestAfter = time.Duration(digestAfterMS) * time.Millisecond
	in.Filter = registry.EventFilter{Events: registry.SplitEventNames(events), FailuresOnly: registry.SplitEventNames(failuresOnly)}
	in.CreatedAt = in.CreatedAt.UTC()
	in.UpdatedAt = in.UpdatedAt.UTC()
	return in, nil
}

// timestamp returns the current time as stored: UTC, truncated to the
// microseconds timestamptz keeps, so that what a write returns equals what
// a read returns.
func timestamp() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// uniqueError turns a unique-constraint failure into an error that says
// which value is taken; any other error is returned as is. The
// (team_id, channel_id) constraint fails only in Rekey: Upsert resolves it.
func uniqueError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation {
		return err
	}
	switch pgErr.ConstraintName {
	case constraintTokenHash:
		return registry.ErrTokenInUse
	case constraintPrimaryKey:
		return registry.ErrIDInUse
	case constraintChannel:
		return registry.ErrChannelInUse
	}
	return err
}

// describe names the server and database of cc for errors: host:port/db,
// without user or password.
func describe(cc *pgx.ConnConfig) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database
}
