-- +goose Up
-- installations is the channel registry: one row per Slack channel that
-- receives Jamf Pro events. Secrets (webhook URL, Jamf URL token) are stored
-- sealed; tokens are looked up by their HMAC.
CREATE TABLE installations (
    id                 uuid        NOT NULL,
    team_id            text        NOT NULL DEFAULT '',
    team_name          text        NOT NULL DEFAULT '',
    channel_id         text        NOT NULL,
    channel_name       text        NOT NULL DEFAULT '',
    webhook_url_sealed text        NOT NULL,
    configuration_url  text        NOT NULL DEFAULT '',
    installing_user    text        NOT NULL DEFAULT '',
    token_hash         text        NOT NULL,
    token_sealed       text        NOT NULL,
    status             text        NOT NULL DEFAULT 'active',
    status_reason      text        NOT NULL DEFAULT '',
    jamf_url           text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT installations_pkey PRIMARY KEY (id),
    CONSTRAINT installations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT installations_team_channel_key UNIQUE (team_id, channel_id),
    CONSTRAINT installations_status_check CHECK (status IN ('active', 'disabled'))
);

-- installations_created_at_id_idx serves List, which orders by created_at, id.
CREATE INDEX installations_created_at_id_idx ON installations (created_at, id);

-- +goose Down
DROP TABLE installations;
