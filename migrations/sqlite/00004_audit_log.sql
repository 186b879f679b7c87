-- +goose Up
-- audit_log records every change a Slack admin made in the console: who
-- (Slack user ID and name), what, to which installation, when and from
-- which address. It does not reference installations: the log outlives the
-- channels it names. Times are UTC text as in installations.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    team_id         TEXT NOT NULL DEFAULT '',
    installation_id TEXT NOT NULL DEFAULT '',
    channel_name    TEXT NOT NULL DEFAULT '',
    user_id         TEXT NOT NULL DEFAULT '',
    user_name       TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '',
    address         TEXT NOT NULL DEFAULT ''
) STRICT;

-- The console lists a workspace's log and a channel's log, newest first.
CREATE INDEX audit_log_team_idx ON audit_log (team_id, id);
CREATE INDEX audit_log_installation_idx ON audit_log (installation_id, id);

-- +goose Down
DROP TABLE audit_log;
