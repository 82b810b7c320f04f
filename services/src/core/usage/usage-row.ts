import { z } from 'zod'

/**
 * One usage row: what the gateway records per request and what the recorder,
 * spill queue, disk spool and replay worker carry. Field names are the
 * ClickHouse column names so a batch is inserted as-is.
 * Timestamps are 'YYYY-MM-DD hh:mm:ss.sss' UTC; cost is a decimal string with
 * nine places (exact nano-USD), never a float.
 */
export const usageRowSchema = z.object({
  request_id: z.uuid(),
  started_at: z.string().regex(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/),
  ended_at: z.string().regex(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/),
  key_id: z.string(),
  key_prefix: z.string(),
  user_id: z.string(),
  team_id: z.string(),
  project: z.string(),
  client_app: z.string(),
  tags: z.array(z.string()),
  provider: z.string(),
  model: z.string(),
  upstream_model: z.string(),
  endpoint: z.string(),
  streamed: z.boolean(),
  status_code: z.number().int().min(0).max(999),
  error_class: z.string(),
  input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
  cached_read_tokens: z.number().int().nonnegative(),
  cache_write_tokens: z.number().int().nonnegative(),
  /**
   * A part of output_tokens, never in addition to it (clickhouse/0007).
   * Optional here and 0 / false by column default, so batches spooled by an
   * older release stay valid and rows written without them read 0.
   */
  reasoning_tokens: z.number().int().nonnegative().optional(),
  tokens_estimated: z.boolean(),
  /** Forwarded without a facade and unknown to the price catalogue: cost_usd is 0 for lack of a price. */
  price_unknown: z.boolean().optional(),
  cost_usd: z.string().regex(/^\d+\.\d{9}$/),
  latency_ms: z.number().int().nonnegative(),
  ttft_ms: z.number().int().nonnegative(),
  batch_id: z.string().default(''),
})
export type UsageRow = z.infer<typeof usageRowSchema>

export const batchSchema = z.object({
  batchId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
  createdAt: z.number(),
  rows: z.array(usageRowSchema),
})
export type UsageBatch = z.infer<typeof batchSchema>

export function toClickHouseTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '')
}

/** Tags from the x-tags header: trimmed, lower-cased, de-duplicated, sorted (a set is one rollup key). */
export function normalizeTags(header: string | undefined): string[] {
  if (!header) return []
  const tags = header
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0 && t.length <= 64)
  return [...new Set(tags)].sort().slice(0, 20)
}
