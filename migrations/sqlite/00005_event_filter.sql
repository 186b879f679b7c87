-- +goose Up
-- Each channel's event filter, set in the console or with `channels set`:
-- the event types it shows (comma-separated, in the catalog's spelling;
-- '' shows every type) and the types of which it shows only the events
-- that did not succeed ('' for none). Events the filter hides are settled
-- by the dispatchers without a post.
ALTER TABLE installations ADD COLUMN filter_events TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN filter_failures_only TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE installations DROP COLUMN filter_failures_only;
ALTER TABLE installations DROP COLUMN filter_events;
