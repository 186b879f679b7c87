package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

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
	out, err := scanAudit(s.writer.QueryRowContext(ctx, `INSERT INTO audit_log (
			at, team_id, installation_id, channel_name, user_id, user_name, action, detail, address)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+auditColumns,
		formatTime(e.At), e.TeamID, e.InstallationID, e.ChannelName, e.UserID, e.UserName, e.Action, e.Detail, e.Address))
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
		where, args = append(where, "team_id = ?"), append(args, f.TeamID)
	}
	if f.InstallationID != "" {
		where, args = append(where, "installation_id = ?"), append(args, f.InstallationID)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.reader.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, f.Count())...)
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
func scanAudit(row scanner) (registry.AuditEntry, error) {
	var (
		e  registry.AuditEntry
		at string
	)
	if err := row.Scan(&e.ID, &at, &e.TeamID, &e.InstallationID, &e.ChannelName,
		&e.UserID, &e.UserName, &e.Action, &e.Detail, &e.Address); err != nil {
		return registry.AuditEntry{}, err
	}
	var err error
	if e.At, err = time.Parse(timeLayout, at); err != nil {
		return registry.AuditEntry{}, fmt.Errorf("audit entry %d: bad at: %w", e.ID, err)
	}
	return e, nil
}
