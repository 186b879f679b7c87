package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// auditColumns lists the audit_log columns in the order scanAudit reads them.
const auditColumns = `id, at, team_id, installation_id, channel_name, user_id, user_name, action, detail, address`

// AddAudit implements registry.Store.
func (s *Store) AddAudit(ctx context.Context, e registry.AuditEntry) (registry.AuditEntry, error) {
	e, err := registry.CheckAudit(e, time.Now())
	if err != nil {
		return registry.AuditEntry{}, fmt.Errorf("add audit entry: %w", err)
	}
	out, err := scanAudit(s.pool.QueryRow(ctx, `INSERT INTO audit_log (
			at, team_id, installation_id, channel_name, user_id, user_name, action, detail, address)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING `+auditColumns,
		e.At, e.TeamID, e.InstallationID, e.ChannelName, e.UserID, e.UserName, e.Action, e.Detail, e.Address))
	if err != nil {
		return registry.AuditEntry{}, fmt.Errorf("add audit entry: %w", err)
	}
	return out, nil
}

// ListAudit implements registry.Store.
func (s *Store) ListAudit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if f.TeamID != "" {
		args = append(args, f.TeamID)
		where = append(where, "team_id = $"+strconv.Itoa(len(args)))
	}
	if f.InstallationID != "" {
		args = append(args, f.InstallationID)
		where = append(where, "installation_id = $"+strconv.Itoa(len(args)))
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, f.Count())
	rows, err := s.pool.Query(ctx, q+` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	out := []registry.AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// scanAudit reads one audit entry in the order of auditColumns.
func scanAudit(row pgx.Row) (registry.AuditEntry, error) {
	var e registry.AuditEntry
	if err := row.Scan(&e.ID, &e.At, &e.TeamID, &e.InstallationID, &e.ChannelName,
		&e.UserID, &e.UserName, &e.Action, &e.Detail, &e.Address); err != nil {
		return registry.AuditEntry{}, err
	}
	e.At = e.At.UTC()
	return e, nil
}
