-- Organisation-wide settings an admin changes at run time (not configuration:
-- those are environment variables), one row per setting, read whole into each
-- process's memory with the other admin tables and refreshed the same way.
-- name: a setting the API knows (`leaderboard_visibility`); value: its
-- value as text, checked by the API's schema on write and on read.
CREATE TABLE IF NOT EXISTS settings
(
    name        String,
    value       String,
    updated_at  DateTime64(3, 'UTC'),
    deleted     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name;
