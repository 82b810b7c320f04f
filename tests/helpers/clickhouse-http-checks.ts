import { randomUUID } from 'node:crypto'
import { expect } from 'vitest'
import type { Warehouse } from '../../services/src/core/storage/warehouse.ts'
import type { UsageRow } from '../../services/src/core/usage/usage-row.ts'
import { toClickHouseTime } from '../../services/src/core/usage/usage-row.ts'

/** A valid usage row with small varied numbers, spread over a few keys and models. */
export function makeUsageRow(i: number, at = Date.now()): UsageRow {
  return {
    request_id: randomUUID(),
    started_at: toClickHouseTime(at - 100),
    ended_at: toClickHouseTime(at),
    key_id: `key_${i % 3}`,
    key_prefix: `tm_k${i % 3}`,
    user_id: `user_${i % 4}`,
    team_id: `team_${i % 2}`,
    project: 'outage-test',
    client_app: 'vitest',
    tags: i % 5 === 0 ? ['a', 'b'] : [],
    provider: 'openai',
    model: i % 2 ? 'gpt-4o-mini' : 'gpt-4o',
    upstream_model: 'gpt-4o',
    endpoint: '/v1/chat/completions',
    streamed: i % 2 === 0,
    status_code: i % 17 === 0 ? 500 : 200,
    error_class: '',
    input_tokens: 10 + (i % 50),
    output_tokens: 5 + (i % 30),
    cached_read_tokens: i % 3,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: `0.${String(1000 + (i % 9000)).padStart(9, '0')}`,
    latency_ms: 100 + (i % 200),
    ttft_ms: 20,
    batch_id: '',
  }
}

export interface ExactnessReport {
  rawRows: number
  distinctIds: number
  missing: string[]
  unexpected: string[]
  rollups: Record<string, { requests: number; input: number; output: number; cost: string }>
  raw: { requests: number; input: number; output: number; cost: string }
}

/**
 * Compares the raw table with the set of request ids the clients were
 * answered for, and every rollup with the raw table's aggregates.
 */
export async function checkExactlyOnce(
  wh: Warehouse,
  accepted: ReadonlySet<string>,
): Promise<ExactnessReport> {
  const ids = await wh.query<{ id: string; n: string }>(
    "SELECT toString(request_id) AS id, count() AS n FROM requests WHERE project = 'outage-test' GROUP BY id",
  )
  const seen = new Set(ids.map((r) => r.id))
  const [raw] = await wh.query<{ requests: string; input: string; output: string; cost: string }>(
    `SELECT count() AS requests, sum(input_tokens) AS input, sum(output_tokens) AS output, toString(sum(cost_usd)) AS cost
     FROM requests WHERE project = 'outage-test'`,
  )
  const rollups: ExactnessReport['rollups'] = {}
  for (const table of ['usage_5m', 'usage_1h', 'usage_1d']) {
    const [r] = await wh.query<{ requests: string; input: string; output: string; cost: string }>(
      `SELECT sum(requests) AS requests, sum(input_tokens) AS input, sum(output_tokens) AS output, toString(sum(cost_usd)) AS cost
       FROM ${table} WHERE project = 'outage-test'`,
    )
    rollups[table] = {
      requests: Number(r?.requests),
      input: Number(r?.input),
      output: Number(r?.output),
      cost: normCost(r?.cost),
    }
  }
  return {
    rawRows: Number(raw?.requests),
    distinctIds: seen.size,
    missing: [...accepted].filter((id) => !seen.has(id)),
    unexpected: [...seen].filter((id) => !accepted.has(id)),
    rollups,
    raw: {
      requests: Number(raw?.requests),
      input: Number(raw?.input),
      output: Number(raw?.output),
      cost: normCost(raw?.cost),
    },
  }
}

/** Every accepted row exactly once in the raw table, and the rollups agreeing with it. */
export async function expectExactlyOnce(wh: Warehouse, accepted: ReadonlySet<string>): Promise<void> {
  const report = await checkExactlyOnce(wh, accepted)
  expect(report.missing).toEqual([])
  expect(report.unexpected).toEqual([])
  expect(report.rawRows).toBe(accepted.size)
  for (const table of ['usage_5m', 'usage_1h', 'usage_1d']) expect(report.rollups[table]).toEqual(report.raw)
}

function normCost(c: string | undefined): string {
  return Number(c ?? 0).toFixed(9)
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}
