// Package sqlite keeps the channel registry in an SQLite file: the store of
// the all-in-one binary and of a newcomer's first run. It implements
// registry.Store with the same behaviour as package postgres; the
// conformance suite in package registrytest pins both.
//
// SQLite takes one writer at a time, so the store writes through a pool of
// a single connection (writes queue in the process instead of failing with
// SQLITE_BUSY) and reads through a separate read-only pool, which WAL mode
// lets run alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/migrations"
)

// timeLayout is how times are stored: UTC, fixed width, microseconds. Fixed
// width makes text order equal time order (List sorts on it), and
// microseconds match PostgreSQL's timestamptz, so both stores return the
// same times.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// busyTimeout is how long a statement waits for a lock held by another
// connection (another process on the same file) before failing.
const busyTimeout = 5 * time.Second

// columns lists the installation columns in the order scanRow reads them.
const columns = `id, team_id, team_name, channel_id, channel_name, webhook_url_sealed,
	configuration_url, installing_user, token_hash, token_sealed, status, status_reason,
	jamf_url, created_at, updated_at, inbound_auth_scheme, inbound_auth_headers,
	inbound_auth_hash, inbound_auth_sealed, pace_interval_ms, pace_burst, digests, digest_after_ms,
	filter_events, filter_failures_only`

// Store is the SQLite registry store. It is safe for concurrent use.
type Store struct {
	writer *sql.DB // exactly one connection: the only one that writes
	reader *sql.DB // read-only connections
}

var _ registry.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the SQLite database
// at path, in WAL mode with foreign keys on and a busy timeout, and applies
// pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: database path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolve path %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create database directory: %w", err)
	}

	// The path is percent-escaped so that '?', '#' and '%' in it are not read
	// as the start of URI parameters. Parameters are applied on every new
	// connection.
	base := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs) +
		fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", busyTimeout.Milliseconds())
	// _txlock=immediate makes transactions take the write lock when they
	// begin, so a read-then-write transaction never fails half way on a lock
	// upgrade.
	writeDSN := base + "&_pragma=journal_mode(WAL)&_txlock=immediate"
	readDSN := base + "&_pragma=query_only(1)"

	if err := migrate(ctx, writeDSN); err != nil {
		return nil, fmt.Errorf("sqlite: migrate %q: %w", abs, err)
	}

	writer, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", abs, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	reader, err := sql.Open("sqlite", readDSN)
	if err != nil {
		_ = writer.Close() // the open error is the one to report
		return nil, fmt.Errorf("sqlite: open %q: %w", abs, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)

	s := &Store{writer: writer, reader: reader}
	if err := errors.Join(writer.PingContext(ctx), reader.PingContext(ctx)); err != nil {
		_ = s.Close() // the ping error is the one to report
		return nil, fmt.Errorf("sqlite: open %q: %w", abs, err)
	}
	return s, nil
}

// migrate applies pending migrations through a connection pool of its own,
// closed afterwards: goose may hold one connection while it uses another,
// which the single-connection writer pool could not give it.
func migrate(ctx context.Context, dsn string) (err error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	p, err := migrations.NewProvider(goose.DialectSQLite3, db)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return err
	}
	for _, r := range results {
		slog.InfoContext(ctx, "applied registry migration",
			"dialect", "sqlite", "version", r.Source.Version, "duration", r.Duration.String())
	}
	return nil
}

// Ping implements registry.Store: both pools reach the file.
func (s *Store) Ping(ctx context.Context) error {
	if err := errors.Join(s.writer.PingContext(ctx), s.reader.PingContext(ctx)); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	return errors.Join(s.writer.Close(), s.reader.Close())
}

// Upsert implements registry.Store. It reads and writes in one IMMEDIATE
// transaction, so concurrent upserts of one channel serialise, also across
// processes sharing the file.
func (s *Store) Upsert(ctx context.Context, in registry.Installation) (_ registry.Installation, created bool, err error) {
	id, err := registry.CheckUpsert(in)
	if err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: %w", err)
	}
	now := formatTime(time.Now())

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that led here is the one to report
		}
	}()

	var existing string
	err = tx.QueryRowContext(ctx,
		`SELECT id FROM installations WHERE team_id = ? AND channel_id = ?`,
		in.TeamID, in.ChannelID).Scan(&existing)
	var row *sql.Row
	switch {
	case errors.Is(err, sql.ErrNoRows):
		created = true
		row = tx.QueryRowContext(ctx, `INSERT INTO installations (`+columns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, '', '', '', '', 0, 0, '', 0, '', '')
			RETURNING `+columns,
			id, in.TeamID, in.TeamName, in.ChannelID, in.ChannelName, in.WebhookURLSealed,
			in.ConfigurationURL, in.InstallingUser, in.TokenHash, in.TokenSealed,
			string(registry.StatusActive), in.JamfURL, now, now)
	case err != nil:
		return registry.Installation{}, false, fmt.Errorf("upsert installation: find channel: %w", err)
	default:
		row = tx.QueryRowContext(ctx, `UPDATE installations SET
			team_name = ?, channel_name = ?, webhook_url_sealed = ?, configuration_url = ?,
			installing_user = ?, status = ?, status_reason = '', updated_at = ?
			WHERE id = ?
			RETURNING `+columns,
			in.TeamName, in.ChannelName, in.WebhookURLSealed, in.ConfigurationURL,
			in.InstallingUser, string(registry.StatusActive), now, existing)
	}
	out, err := scanRow(row)
	if err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: %w", uniqueError(err))
	}
	if err := tx.Commit(); err != nil {
		return registry.Installation{}, false, fmt.Errorf("upsert installation: commit: %w", err)
	}
	return out, created, nil
}

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, id string) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("get installation: %w", registry.ErrNotFound)
	}
	in, err := scanRow(s.reader.QueryRowContext(ctx,
		`SELECT `+columns+` FROM installations WHERE id = ?`, key))
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
	in, err := scanRow(s.reader.QueryRowContext(ctx,
		`SELECT `+columns+` FROM installations WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation by token: %w", err)
	}
	return in, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context) ([]registry.Installation, error) {
	rows, err := s.reader.QueryContext(ctx,
		`SELECT `+columns+` FROM installations ORDER BY created_at, id`)
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
		`status = ?, status_reason = ?`, string(status), reason)
}

// RotateToken implements registry.Store.
func (s *Store) RotateToken(ctx context.Context, id, tokenHash, tokenSealed string) (registry.Installation, error) {
	if tokenHash == "" || tokenSealed == "" {
		return registry.Installation{}, errors.New("rotate installation token: token hash and sealed token are required")
	}
	return s.update(ctx, "rotate installation token", id,
		`token_hash = ?, token_sealed = ?`, tokenHash, tokenSealed)
}

// SetJamfURL implements registry.Store. An empty jamfURL clears it.
func (s *Store) SetJamfURL(ctx context.Context, id, jamfURL string) (registry.Installation, error) {
	return s.update(ctx, "set installation jamf url", id, `jamf_url = ?`, jamfURL)
}

// GetByChannel implements registry.Store.
func (s *Store) GetByChannel(ctx context.Context, teamID, channelID string) (registry.Installation, error) {
	in, err := scanRow(s.reader.QueryRowContext(ctx,
		`SELECT `+columns+` FROM installations WHERE team_id = ? AND channel_id = ?`, teamID, channelID))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("get installation by channel: %w", err)
	}
	return in, nil
}

// Rekey implements registry.Store in one IMMEDIATE transaction: the
// update only matches while the row still holds prev; when it does not, a
// second look tells a changed row from a missing one.
func (s *Store) Rekey(ctx context.Context, id string, prev, next registry.Keyed) (_ registry.Installation, err error) {
	if err := registry.CheckKeyed(next); err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", err)
	}
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", registry.ErrNotFound)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that led here is the one to report
		}
	}()
	cur, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM installations WHERE id = ?`, key))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", err)
	}
	if cur.Keyed() != prev {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", registry.ErrChanged)
	}
	// SQLite names no constraint in its error, so a channel key taken by
	// another installation is told from a token hash in use here.
	if next.ChannelID != cur.ChannelID {
		var other string
		err = tx.QueryRowContext(ctx, `SELECT id FROM installations WHERE team_id = ? AND channel_id = ?`,
			cur.TeamID, next.ChannelID).Scan(&other)
		if err == nil {
			return registry.Installation{}, fmt.Errorf("rekey installation: %w", registry.ErrChannelInUse)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return registry.Installation{}, fmt.Errorf("rekey installation: find channel: %w", err)
		}
	}
	out, err := scanRow(tx.QueryRowContext(ctx, `UPDATE installations SET
			channel_id = ?, webhook_url_sealed = ?, token_hash = ?, token_sealed = ?,
			inbound_auth_hash = ?, inbound_auth_sealed = ?, updated_at = ?
		WHERE id = ?
		RETURNING `+columns,
		next.ChannelID, next.WebhookURLSealed, next.TokenHash, next.TokenSealed,
		next.InboundAuthHash, next.InboundAuthSealed, formatTime(time.Now()), key))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: %w", uniqueError(err))
	}
	if err := tx.Commit(); err != nil {
		return registry.Installation{}, fmt.Errorf("rekey installation: commit: %w", err)
	}
	return out, nil
}

// SetInboundAuth implements registry.Store.
func (s *Store) SetInboundAuth(ctx context.Context, id string, auth registry.InboundAuth, sealed string) (registry.Installation, error) {
	if err := registry.CheckInboundAuth(auth, sealed); err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	return s.update(ctx, "set inbound auth", id,
		`inbound_auth_scheme = ?, inbound_auth_headers = ?, inbound_auth_hash = ?, inbound_auth_sealed = ?`,
		auth.Scheme, auth.Headers, auth.Hash, sealed)
}

// SetDelivery implements registry.Store.
func (s *Store) SetDelivery(ctx context.Context, id string, d registry.DeliverySettings) (registry.Installation, error) {
	if err := registry.CheckDelivery(d); err != nil {
		return registry.Installation{}, fmt.Errorf("set delivery settings: %w", err)
	}
	return s.update(ctx, "set delivery settings", id,
		`pace_interval_ms = ?, pace_burst = ?, digests = ?, digest_after_ms = ?`,
		d.Interval.Milliseconds(), d.Burst, string(d.Digests), d.DigestAfter.Milliseconds())
}

// SetEventFilter implements registry.Store.
func (s *Store) SetEventFilter(ctx context.Context, id string, f registry.EventFilter) (registry.Installation, error) {
	if err := registry.CheckEventFilter(f); err != nil {
		return registry.Installation{}, fmt.Errorf("set event filter: %w", err)
	}
	return s.update(ctx, "set event filter", id, `filter_events = ?, filter_failures_only = ?`,
		registry.JoinEventNames(f.Events), registry.JoinEventNames(f.FailuresOnly))
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return fmt.Errorf("delete installation: %w", registry.ErrNotFound)
	}
	res, err := s.writer.ExecContext(ctx, `DELETE FROM installations WHERE id = ?`, key)
	if err != nil {
		return fmt.Errorf("delete installation: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete installation: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("delete installation: %w", registry.ErrNotFound)
	}
	return nil
}

// update sets the columns in set (with their args) and updated_at on the row
// with id, and returns the row. op names the operation in errors.
func (s *Store) update(ctx context.Context, op, id, set string, args ...any) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	args = append(args, formatTime(time.Now()), key)
	in, err := scanRow(s.writer.QueryRowContext(ctx,
		`UPDATE installations SET `+set+`, updated_at = ? WHERE id = ? RETURNING `+columns, args...))
	if err != nil {
		return registry.Installation{}, fmt.Errorf("%s: %w", op, uniqueError(err))
	}
	return in, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanRow reads one installation in the order of columns. No row is
// registry.ErrNotFound.
func scanRow(row scanner) (registry.Installation, error) {
	var (
		in                        registry.Installation
		status, digests           string
		created, updated          string
		intervalMS, digestAfterMS int64
		events, failuresOnly      string
	)
	err := row.Scan(&in.ID, &in.TeamID, &in.TeamName, &in.ChannelID, &in.ChannelName,
		&in.WebhookURLSealed, &in.ConfigurationURL, &in.InstallingUser, &in.TokenHash,
		&in.TokenSealed, &status, &in.StatusReason, &in.JamfURL, &created, &updated,
		&in.InboundAuth.Scheme, &in.InboundAuth.Headers, &in.InboundAuth.Hash, &in.InboundAuthSealed,
		&intervalMS, &in.Delivery.Burst, &digests, &digestAfterMS, &events, &failuresOnly)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Installation{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Installation{}, err
	}
	in.Status = registry.Status(status)
	in.Delivery.Interval = time.Duration(intervalMS) * time.Millisecond
	in.Delivery.Digests = registry.Digests(digests)
	in.Delivery.DigestAfter = time.Duration(digestAfterMS) * time.Millisecond
	in.Filter = registry.EventFilter{Events: registry.SplitEventNames(events), FailuresOnly: registry.SplitEventNames(failuresOnly)}
	if in.CreatedAt, err = time.Parse(timeLayout, created); err != nil {
		return registry.Installation{}, fmt.Errorf("installation %s: bad created_at: %w", in.ID, err)
	}
	if in.UpdatedAt, err = time.Parse(timeLayout, updated); err != nil {
		return registry.Installation{}, fmt.Errorf("installation %s: bad updated_at: %w", in.ID, err)
	}
	return in, nil
}

// formatTime returns t as stored: UTC, truncated to microseconds.
func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(timeLayout)
}

// uniqueError turns a unique-constraint failure into an error that says
// which value is taken; any other error is returned as is. Inside Upsert's
// transaction the (team_id, channel_id) pair is known to be free, so a
// UNIQUE failure there (as in RotateToken) can only be the token hash.
func uniqueError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return registry.ErrTokenInUse
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return registry.ErrIDInUse
	}
	return err
}
