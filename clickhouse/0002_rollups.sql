-- Rollups at 5 minutes, 1 hour and 1 day. Each is fed straight from `requests`
-- (not cascaded) so that insert deduplication covers every level the same way.
--
-- Dimensions include user_id, so "distinct users" is uniqExact(user_id) over
-- rollup rows; no sketch is needed. `tags` is the request's whole, sorted tag
-- set: filtering by tags is hasAny(tags, ...) over rows that each count a
-- request once, and a per-tag breakdown ARRAY JOINs at query time. Totals are
-- therefore never multiplied by the number of tags.
-- Latency keeps a mergeable t-digest so p50/p95 can be read at any level.
CREATE TABLE IF NOT EXISTS usage_5m
(
    bucket              DateTime('UTC'),
    team_id             LowCardinality(String),
    user_id             LowCardinality(String),
    key_id              LowCardinality(String),
    provider            LowCardinality(String),
    model               LowCardinality(String),
    project             LowCardinality(String),
    client_app          LowCardinality(String),
    status_code         UInt16,
    tags                Array(LowCardinality(String)),
    requests            SimpleAggregateFunction(sum, UInt64),
    errors              SimpleAggregateFunction(sum, UInt64),
    estimated           SimpleAggregateFunction(sum, UInt64),
    input_tokens        SimpleAggregateFunction(sum, UInt64),
    output_tokens       SimpleAggregateFunction(sum, UInt64),
    cached_read_tokens  SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens  SimpleAggregateFunction(sum, UInt64),
    cost_usd            SimpleAggregateFunction(sum, Decimal(38, 9)),
    latency_ms_sum      SimpleAggregateFunction(sum, UInt64),
    latency             AggregateFunction(quantileTDigest, UInt32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS usage_1h AS usage_5m
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS usage_1d AS usage_5m
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags)
SETTINGS non_replicated_deduplication_window = 100000;
