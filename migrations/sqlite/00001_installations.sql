-- +goose Up
-- installations is the channel registry: one row per Slack channel that
-- receives Jamf Pro events. Secrets (webhook URL, Jamf URL token) are stored
-- sealed; tokens are looked up by their HMAC. Times are UTC text in the
-- fixed-width form 2006-01-02T15:04:05.000000Z, so they sort as they compare
-- and keep the microsecond precision PostgreSQL has.
CREATE TABLE installations (
    id                 TEXT NOT NULL,
    team_id            TEXT NOT NULL DEFAULT '',
    team_name          TEXT NOT NULL DEFAULT '',
    channel_id         TEXT NOT NULL,
    channel_name       TEXT NOT NULL DEFAULT '',
    webhook_url_sealed TEXT NOT NULL,
    configuration_url  TEXT NOT NULL DEFAULT '',
    installing_user    TEXT NOT NULL DEFAULT '',
    token_hash         TEXT NOT NULL,
    token_sealed       TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active',
    status_reason      TEXT NOT NULL DEFAULT '',
    jamf_url           TEXT NOT NULL DEFAULT '',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CONSTRAINT installations_pkey PRIMARY KEY (id),
    CONSTRAINT installations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT installations_team_channel_key UNIQUE (team_id, channel_id),
    CONSTRAINT installations_status_check CHECK (status IN ('active', 'disabled'))
) STRICT;

-- installations_created_at_id_idx serves List, which orders by created_at, id.
CREATE INDEX installations_created_at_id_idx ON installations (created_at, id);

-- +goose Down
DROP TABLE installations;
