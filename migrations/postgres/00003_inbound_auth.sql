-- +goose Up
-- Inbound authentication, optional per installation: what Jamf Pro must send
-- with each webhook besides the token in the URL (HTTP Basic or headers).
-- inbound_auth_hash is a keyed hash of the credentials, which ingest checks;
-- inbound_auth_sealed holds them sealed, so a key rotation can hash them
-- again. Neither is ever the plain credential.
ALTER TABLE installations
    ADD COLUMN inbound_auth_scheme  text NOT NULL DEFAULT '',
    ADD COLUMN inbound_auth_headers text NOT NULL DEFAULT '',
    ADD COLUMN inbound_auth_hash    text NOT NULL DEFAULT '',
    ADD COLUMN inbound_auth_sealed  text NOT NULL DEFAULT '',
    ADD CONSTRAINT installations_inbound_auth_scheme_check CHECK (inbound_auth_scheme IN ('', 'basic', 'header'));

-- +goose Down
ALTER TABLE installations
    DROP CONSTRAINT installations_inbound_auth_scheme_check,
    DROP COLUMN inbound_auth_sealed,
    DROP COLUMN inbound_auth_hash,
    DROP COLUMN inbound_auth_headers,
    DROP COLUMN inbound_auth_scheme;
