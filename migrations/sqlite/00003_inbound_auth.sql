-- +goose Up
-- Inbound authentication, optional per installation: what Jamf Pro must send
-- with each webhook besides the token in the URL (HTTP Basic or headers).
-- inbound_auth_hash is a keyed hash of the credentials, which ingest checks;
-- inbound_auth_sealed holds them sealed, so a key rotation can hash them
-- again. Neither is ever the plain credential.
ALTER TABLE installations ADD COLUMN inbound_auth_scheme TEXT NOT NULL DEFAULT ''
    CHECK (inbound_auth_scheme IN ('', 'basic', 'header'));
ALTER TABLE installations ADD COLUMN inbound_auth_headers TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN inbound_auth_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN inbound_auth_sealed TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE installations DROP COLUMN inbound_auth_sealed;
ALTER TABLE installations DROP COLUMN inbound_auth_hash;
ALTER TABLE installations DROP COLUMN inbound_auth_headers;
ALTER TABLE installations DROP COLUMN inbound_auth_scheme;
