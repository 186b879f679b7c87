-- +goose Up
-- Each channel's own delivery settings, set with `channels set`: its pace
-- (one message per pace_interval_ms, pace_burst at once) and whether and
-- when it gets digests. 0 and '' take the deployment's defaults
-- (CHANNEL_PACE, CHANNEL_BURST, DIGESTS, DIGEST_AFTER).
ALTER TABLE installations
    ADD COLUMN pace_interval_ms bigint  NOT NULL DEFAULT 0,
    ADD COLUMN pace_burst       integer NOT NULL DEFAULT 0,
    ADD COLUMN digests          text    NOT NULL DEFAULT '',
    ADD COLUMN digest_after_ms  bigint  NOT NULL DEFAULT 0,
    ADD CONSTRAINT installations_delivery_check CHECK (
        pace_interval_ms >= 0 AND pace_burst >= 0 AND digest_after_ms >= 0 AND digests IN ('', 'on', 'off'));

-- +goose Down
ALTER TABLE installations
    DROP CONSTRAINT installations_delivery_check,
    DROP COLUMN digest_after_ms,
    DROP COLUMN digests,
    DROP COLUMN pace_burst,
    DROP COLUMN pace_interval_ms;
