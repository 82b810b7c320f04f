-- One view per rollup, each writing TO its explicit table (never an inner table),
-- so the target can be inspected, backfilled and deduplicated like any table.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_5m_mv TO usage_5m AS
SELECT
    toStartOfFiveMinutes(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_1h_mv TO usage_1h AS
SELECT
    toStartOfHour(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_1d_mv TO usage_1d AS
SELECT
    toStartOfDay(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

