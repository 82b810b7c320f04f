-- Latency per day at a few dimensions, for the dashboard's p50/p95.
--
-- A 30-day KPI read from usage_1d merges one t-digest state per usage_1d row
-- (hundreds of thousands at 10M requests; most of the query's time). This
-- table keeps only the dimensions the common dashboard filters name (team,
-- provider, model, status code), so the same KPI merges a few thousand fuller
-- states. Queries use it only when every filter and the caller's scope can be
-- answered from these columns exactly, and fall back to usage_1d otherwise
-- (services/src/api/queries/kpis.ts). Day buckets in UTC, the same as usage_1d.
--
-- Fed straight from `requests` like the other rollups, with the same insert
-- deduplication window, so a replayed batch is not counted twice here either.
CREATE TABLE IF NOT EXISTS latency_1d
(
    bucket       DateTime('UTC'),
    team_id      LowCardinality(String),
    provider     LowCardinality(String),
    model        LowCardinality(String),
    status_code  UInt16,
    requests     SimpleAggregateFunction(sum, UInt64),
    latency      AggregateFunction(quantileTDigest, UInt32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (bucket, team_id, provider, model, status_code)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE MATERIALIZED VIEW IF NOT EXISTS latency_1d_mv TO latency_1d AS
SELECT
    toStartOfDay(started_at) AS bucket,
    team_id, provider, model, status_code,
    count() AS requests,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, provider, model, status_code;
