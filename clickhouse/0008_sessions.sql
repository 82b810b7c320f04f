-- Web sessions: a signed cookie carries only session_id; this row says who it
-- is, where it came from and whether it has ended. Every instance reads the
-- live rows into memory on the admin refresh (every second in server mode),
-- so an ended session stops working everywhere within a second.
-- source: 'admin-token' (source_id = fingerprint of ADMIN_TOKEN, never the
-- token), 'key' (a virtual key id) or 'signin' (a one-time sign-in token id).
CREATE TABLE IF NOT EXISTS sessions
(
    session_id  String,
    user_id     String,
    team_id     String,
    role        LowCardinality(String),
    source      LowCardinality(String),
    source_id   String,
    created_at  DateTime64(3, 'UTC'),
    expires_at  DateTime64(3, 'UTC'),
    ended_at    Nullable(DateTime64(3, 'UTC')),
    end_reason  String DEFAULT '',
    updated_at  DateTime64(3, 'UTC'),
    deleted     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY session_id
TTL toDateTime(expires_at) + INTERVAL 7 DAY;
