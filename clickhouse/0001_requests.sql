-- Raw usage: one row per proxied request. Source of truth for the request log,
-- audits and every rollup.
--
-- PARTITION BY month: a 30-day dashboard range touches at most two partitions,
-- retention drops whole parts, and the part count stays small at high ingest.
-- ORDER BY (day, team, key, model, time): the raw table answers drill-downs
-- ("one day, one key, one model") and exact-dedup checks; the date prefix
-- prunes by range first, team/key/model narrow the granules inside a day.
-- Codecs: Delta on monotonic-ish timestamps and counters, ZSTD everywhere the
-- default LZ4 leaves easy bytes behind.
--
-- non_replicated_deduplication_window makes a replayed batch (same
-- insert_deduplication_token) a no-op; the rollup targets carry it too,
-- because a materialized view otherwise counts a replayed block again.
CREATE TABLE IF NOT EXISTS requests
(
    request_id          UUID,
    started_at          DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at            DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    key_id              LowCardinality(String),
    key_prefix          LowCardinality(String),
    user_id             LowCardinality(String),
    team_id             LowCardinality(String),
    project             LowCardinality(String),
    client_app          LowCardinality(String),
    -- sorted and de-duplicated at ingest so a tag set is one rollup dimension
    tags                Array(LowCardinality(String)),
    provider            LowCardinality(String),
    model               LowCardinality(String),
    upstream_model      LowCardinality(String),
    endpoint            LowCardinality(String),
    streamed            Bool,
    status_code         UInt16,
    error_class         LowCardinality(String),
    input_tokens        UInt32 CODEC(T64, ZSTD(1)),
    output_tokens       UInt32 CODEC(T64, ZSTD(1)),
    cached_read_tokens  UInt32 CODEC(T64, ZSTD(1)),
    cache_write_tokens  UInt32 CODEC(T64, ZSTD(1)),
    tokens_estimated    Bool,
    -- USD with 1e-9 resolution: exact sums, no float drift in money
    cost_usd            Decimal(18, 9) CODEC(ZSTD(1)),
    latency_ms          UInt32 CODEC(T64, ZSTD(1)),
    -- 0 when the request was not streamed or no byte reached the client
    ttft_ms             UInt32 CODEC(T64, ZSTD(1)),
    batch_id            String CODEC(ZSTD(1)),
    inserted_at         DateTime DEFAULT now() CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (toDate(started_at), team_id, key_id, model, started_at)
SETTINGS non_replicated_deduplication_window = 100000, index_granularity = 8192;
