-- +goose Up
-- audit_log records every change a Slack admin made in the console: who
-- (Slack user ID and name), what, to which installation, when and from
-- which address. It does not reference installations: the log outlives the
-- channels it names.
CREATE TABLE audit_log (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    at              timestamptz NOT NULL,
    team_id         text        NOT NULL DEFAULT '',
    installation_id text        NOT NULL DEFAULT '',
    channel_name    text        NOT NULL DEFAULT '',
    user_id         text        NOT NULL DEFAULT '',
    user_name       text        NOT NULL DEFAULT '',
    action          text        NOT NULL,
    detail          text        NOT NULL DEFAULT '',
    address         text        NOT NULL DEFAULT '',
    CONSTRAINT audit_log_pkey PRIMARY KEY (id)
);

-- The console lists a workspace's log and a channel's log, newest first.
CREATE INDEX audit_log_team_idx ON audit_log (team_id, id);
CREATE INDEX audit_log_installation_idx ON audit_log (installation_id, id);

-- +goose Down
DROP TABLE audit_log;
