-- Admin state: small tables, read whole into each process's memory and
-- refreshed on change. ReplacingMergeTree keeps the latest version of a row;
-- readers use FINAL. `deleted` tombstones instead of DELETE so that every
-- instance sees a removal the same way it sees an update.
CREATE TABLE IF NOT EXISTS teams
(
    team_id     String,
    name        String,
    updated_at  DateTime64(3, 'UTC'),
    deleted     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY team_id;

CREATE TABLE IF NOT EXISTS users
(
    user_id     String,
    email       String,
    name        String,
    team_id     String,
    role        LowCardinality(String),
    updated_at  DateTime64(3, 'UTC'),
    deleted     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY user_id;

-- Only the SHA-256 of a key is stored; the plaintext is shown once at creation.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id          String,
    key_hash        String,
    key_prefix      String,
    name            String,
    user_id         String,
    team_id         String,
    allowed_models  Array(String),
    created_at      DateTime64(3, 'UTC'),
    expires_at      Nullable(DateTime64(3, 'UTC')),
    revoked_at      Nullable(DateTime64(3, 'UTC')),
    -- 'key' for virtual keys, 'signin' for one-time web sign-in tokens
    kind            LowCardinality(String) DEFAULT 'key',
    updated_at      DateTime64(3, 'UTC'),
    deleted         Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;

-- A model facade is the name clients send; it maps to a provider's model and
-- carries the per-million-token prices used for cost.
CREATE TABLE IF NOT EXISTS model_facades
(
    model               String,
    provider            LowCardinality(String),
    upstream_model      String,
    input_per_m         Decimal(18, 9),
    output_per_m        Decimal(18, 9),
    cached_read_per_m   Decimal(18, 9),
    cache_write_per_m   Decimal(18, 9),
    updated_at          DateTime64(3, 'UTC'),
    deleted             Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY model;

CREATE TABLE IF NOT EXISTS budgets
(
    budget_id   String,
    scope       LowCardinality(String),
    scope_id    String,
    period      LowCardinality(String),
    cap_usd     Decimal(18, 9),
    timezone    String,
    thresholds  Array(UInt8),
    updated_at  DateTime64(3, 'UTC'),
    deleted     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY budget_id;
