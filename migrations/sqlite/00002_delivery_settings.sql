-- +goose Up
-- Each channel's own delivery settings, set with `channels set`: its pace
-- (one message per pace_interval_ms, pace_burst at once) and whether and
-- when it gets digests. 0 and '' take the deployment's defaults
-- (CHANNEL_PACE, CHANNEL_BURST, DIGESTS, DIGEST_AFTER).
ALTER TABLE installations ADD COLUMN pace_interval_ms INTEGER NOT NULL DEFAULT 0 CHECK (pace_interval_ms >= 0);
ALTER TABLE installations ADD COLUMN pace_burst INTEGER NOT NULL DEFAULT 0 CHECK (pace_burst >= 0);
ALTER TABLE installations ADD COLUMN digests TEXT NOT NULL DEFAULT '' CHECK (digests IN ('', 'on', 'off'));
ALTER TABLE installations ADD COLUMN digest_after_ms INTEGER NOT NULL DEFAULT 0 CHECK (digest_after_ms >= 0);

-- +goose Down
ALTER TABLE installations DROP COLUMN digest_after_ms;
ALTER TABLE installations DROP COLUMN digests;
ALTER TABLE installations DROP COLUMN pace_burst;
ALTER TABLE installations DROP COLUMN pace_interval_ms;
