-- Reasoning tokens and requests priced by no one (issue 12).
--
-- reasoning_tokens: OpenAI's completion_tokens_details / output_tokens_details
-- reasoning_tokens, Anthropic's thinking tokens where reported. They are a
-- part of output_tokens (both providers bill them as output), shown on their
-- own, never added to output or cost again.
-- price_unknown: the model was forwarded without a facade and the price
-- catalogue does not know it, so cost_usd is 0 only for lack of a price.
--
-- Backfill: rows and rollup rows written before this migration read 0 / false
-- (a column's DEFAULT is computed on read for parts that predate it; nothing
-- is rewritten). Columns first, then each view's query, so a view never reads
-- or writes a column that does not exist yet. ALTER ... MODIFY QUERY swaps a
-- view's SELECT in place (no window without a view, unlike DROP + CREATE).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS reasoning_tokens UInt32 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER cache_write_tokens;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS price_unknown Bool DEFAULT false AFTER tokens_estimated;
ALTER TABLE usage_5m ADD COLUMN IF NOT EXISTS reasoning_tokens SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER cache_write_tokens;
ALTER TABLE usage_5m ADD COLUMN IF NOT EXISTS unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER estimated;
ALTER TABLE usage_1h ADD COLUMN IF NOT EXISTS reasoning_tokens SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER cache_write_tokens;
ALTER TABLE usage_1h ADD COLUMN IF NOT EXISTS unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER estimated;
ALTER TABLE usage_1d ADD COLUMN IF NOT EXISTS reasoning_tokens SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER cache_write_tokens;
ALTER TABLE usage_1d ADD COLUMN IF NOT EXISTS unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER estimated;

ALTER TABLE usage_5m_mv MODIFY QUERY
SELECT
    toStartOfFiveMinutes(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    countIf(price_unknown) AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

ALTER TABLE usage_1h_mv MODIFY QUERY
SELECT
    toStartOfHour(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    countIf(price_unknown) AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

ALTER TABLE usage_1d_mv MODIFY QUERY
SELECT
    toStartOfDay(started_at) AS bucket,
    team_id, user_id, key_id, provider, model, project, client_app, status_code, tags,
    count() AS requests,
    countIf(status_code >= 400 OR error_class != '') AS errors,
    countIf(tokens_estimated) AS estimated,
    countIf(price_unknown) AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_read_tokens) AS cached_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    quantileTDigestState(latency_ms) AS latency
FROM requests
GROUP BY bucket, team_id, user_id, key_id, provider, model, project, client_app, status_code, tags;

-- A facade that only aliases (no prices of its own) is priced from the catalogue.
ALTER TABLE model_facades ADD COLUMN IF NOT EXISTS price_from_catalogue Bool DEFAULT false;
