import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { nanosToUsdString } from '../services/src/core/pricing/pricing.ts'
import { toClickHouseTime, type UsageRow } from '../services/src/core/usage/usage-row.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

// Thousands of generated rows through the real recorder into the embedded
// engine; every rollup must equal the raw table's aggregates, and a replayed
// batch (same insert_deduplication_token) must change nothing anywhere.

let stack: TestStack
beforeAll(async () => {
  // Large enough that each generated chunk goes out as one batch when flushed.
  stack = await startTestStack({
    roles: ['api'],
    env: { RECORDER_MAX_ROWS: '10000', RECORDER_FLUSH_MS: '60000' },
  })
})
afterAll(async () => stack?.close())

function prng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const NOW = Date.now()
const TEAMS = ['t-red', 't-blue', 't-green']
const USERS = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7']
const MODELS = [
  ['openai', 'gpt-4o'],
  ['openai', 'gpt-4o-mini'],
  ['anthropic', 'claude-sonnet-4-5'],
  ['simulated', 'sim-small'],
] as const
const TAGS = ['alpha', 'beta', 'gamma']

function generate(n: number, seed: number): UsageRow[] {
  const r = prng(seed)
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!
  const rows: UsageRow[] = []
  for (let i = 0; i < n; i++) {
    // Spread over three days so that every level has several buckets.
    const started = NOW - Math.floor(r() * 3 * 86_400_000)
    const latency = Math.floor(r() * 4000)
    const [provider, model] = pick(MODELS)
    const user = pick(USERS)
    const status = r() < 0.9 ? 200 : pick([400, 429, 500, 499])
    const tags = TAGS.filter(() => r() < 0.35)
    rows.push({
      request_id: randomUUID(),
      started_at: toClickHouseTime(started),
      ended_at: toClickHouseTime(started + latency),
      key_id: `key_${user}_${Math.floor(r() * 2)}`,
      key_prefix: 'tm_xxxxxxx…',
      user_id: user,
      team_id: TEAMS[USERS.indexOf(user) % TEAMS.length]!,
      project: pick(['', 'apollo', 'hermes']),
      client_app: pick(['', 'cli', 'web']),
      tags,
      provider,
      model,
      upstream_model: model,
      endpoint: provider === 'anthropic' ? '/v1/messages' : '/v1/chat/completions',
      streamed: r() < 0.5,
      status_code: status,
      error_class: status === 200 ? '' : status === 499 ? 'client_disconnected' : 'upstream_4xx',
      input_tokens: Math.floor(r() * 5000),
      output_tokens: Math.floor(r() * 2000),
      cached_read_tokens: Math.floor(r() * 1000),
      cache_write_tokens: Math.floor(r() * 300),
      tokens_estimated: r() < 0.1,
      cost_usd: nanosToUsdString(Math.floor(r() * 50_000_000)),
      latency_ms: latency,
      ttft_ms: Math.floor(latency / 3),
      reasoning_tokens: r() < 0.3 ? Math.floor(r() * 800) : 0,
      price_unknown: r() < 0.05,
      batch_id: '',
    })
  }
  return rows
}

const DIMS = 'team_id, user_id, key_id, provider, model, project, client_app, status_code, tags'
const LEVELS = [
  ['usage_5m', 'toStartOfFiveMinutes'],
  ['usage_1h', 'toStartOfHour'],
  ['usage_1d', 'toStartOfDay'],
] as const

/** Per bucket and dimension set: the raw table's aggregates and the rollup's, as comparable strings. */
async function compare(table: string, bucketFn: string) {
  const wh = stack.core.warehouse
  const raw = await wh.query<Record<string, unknown>>(
    `SELECT toString(${bucketFn}(started_at)) AS b, ${DIMS},
       toString(count()) AS requests, toString(countIf(status_code >= 400 OR error_class != '')) AS errors,
       toString(countIf(tokens_estimated)) AS estimated,
       toString(sum(input_tokens)) AS input, toString(sum(output_tokens)) AS output,
       toString(sum(cached_read_tokens)) AS cached, toString(sum(cache_write_tokens)) AS cache_write,
       toString(sum(reasoning_tokens)) AS reasoning, toString(countIf(price_unknown)) AS unpriced,
       toString(sum(toDecimal128(cost_usd, 9))) AS cost, toString(sum(latency_ms)) AS latency
     FROM requests GROUP BY b, ${DIMS} ORDER BY b, ${DIMS}`,
  )
  const rolled = await wh.query<Record<string, unknown>>(
    `SELECT toString(bucket) AS b, ${DIMS},
       toString(sum(requests)) AS requests, toString(sum(errors)) AS errors, toString(sum(estimated)) AS estimated,
       toString(sum(input_tokens)) AS input, toString(sum(output_tokens)) AS output,
       toString(sum(cached_read_tokens)) AS cached, toString(sum(cache_write_tokens)) AS cache_write,
       toString(sum(reasoning_tokens)) AS reasoning, toString(sum(unpriced)) AS unpriced,
       toString(sum(cost_usd)) AS cost, toString(sum(latency_ms_sum)) AS latency
     FROM ${table} GROUP BY b, ${DIMS} ORDER BY b, ${DIMS}`,
  )
  expect(rolled.length, table).toBe(raw.length)
  expect(rolled, table).toEqual(raw)
  // Distinct users per bucket and team, straight from rollup rows.
  const usersSql = (from: string, bucket: string) =>
    `SELECT toString(${bucket}) AS b, team_id, uniqExact(user_id) AS users FROM ${from} GROUP BY b, team_id ORDER BY b, team_id`
  expect(await wh.query(usersSql(table, 'bucket')), `${table} users`).toEqual(
    await wh.query(usersSql('requests', `${bucketFn}(started_at)`)),
  )
  return raw.length
}

async function totals() {
  const q = (t: string, c: string) =>
    stack.core.warehouse
      .query<{ n: string }>(`SELECT toString(sum(${c})) AS n FROM ${t}`)
      .then((r) => r[0]!.n)
  return {
    raw: await q('requests', '1'),
    m5: await q('usage_5m', 'requests'),
    h1: await q('usage_1h', 'requests'),
    d1: await q('usage_1d', 'requests'),
  }
}

describe('rollups', () => {
  // Four batches of 1,500 rows through the real recorder; every test starts from them.
  const chunks: UsageRow[][] = []
  beforeAll(async () => {
    for (let i = 0; i < 4; i++) {
      const rows = generate(1500, 1000 + i)
      chunks.push(rows)
      for (const row of rows) stack.core.recorder.record(row)
      await stack.core.recorder.flush()
    }
  })

  it('equal the raw table per dimension and bucket after thousands of rows in several batches', async () => {
    const [recorded] = await stack.core.warehouse.query<{ batches: number; rows: number }>(
      'SELECT count(DISTINCT batch_id) AS batches, count() AS rows FROM requests WHERE request_id IN {ids:Array(UUID)}',
      { ids: chunks.flat().map((r) => r.request_id) },
    )
    expect(Number(recorded!.batches)).toBe(4)
    expect(Number(recorded!.rows)).toBe(6000)
    const t = await totals()
    expect(Number(t.raw)).toBeGreaterThanOrEqual(6000)
    expect(t).toEqual({ raw: t.raw, m5: t.raw, h1: t.raw, d1: t.raw })
    for (const [table, fn] of LEVELS) expect(await compare(table, fn)).toBeGreaterThan(10)
  })

  it('a replayed batch (same batch id) changes nothing anywhere', async () => {
    const rows = chunks[1]!
    const [{ batch_id: batchId }] = (await stack.core.warehouse.query<{ batch_id: string }>(
      'SELECT batch_id FROM requests WHERE request_id = {id:UUID}',
      { id: rows[0]!.request_id },
    )) as [{ batch_id: string }]
    // The journal's position is the batch id (docs/OUTAGES.md); without the journal, a UUID.
    expect(batchId).toMatch(/^(j-[0-9-]+|[0-9a-f-]{36})$/)
    const before = await totals()
    // Exactly what the recorder shipped: the rows stamped with their batch id.
    await stack.core.warehouse.insertRows(
      'requests',
      rows.map((r) => ({ ...r, batch_id: batchId })),
      { dedupToken: batchId },
    )
    expect(await totals()).toEqual(before)
    for (const [table, fn] of LEVELS) await compare(table, fn)
  })

  it('a plain insert after a deduplicated one is kept (no setting leaks between calls)', async () => {
    const before = await totals()
    const replayed = chunks[2]!.slice(0, 10)
    const [{ batch_id: batchId }] = (await stack.core.warehouse.query<{ batch_id: string }>(
      'SELECT batch_id FROM requests WHERE request_id = {id:UUID}',
      { id: replayed[0]!.request_id },
    )) as [{ batch_id: string }]
    await stack.core.warehouse.insertRows(
      'requests',
      chunks[2]!.map((r) => ({ ...r, batch_id: batchId })),
      { dedupToken: batchId },
    )
    // In embedded mode a session-wide token would silently drop these two.
    await stack.core.warehouse.insertRows('requests', generate(2, 7))
    stack.core.recorder.record(generate(1, 8)[0]!)
    await stack.core.recorder.flush()
    const after = await totals()
    const expectN = String(Number(before.raw) + 3)
    expect(after).toEqual({ raw: expectN, m5: expectN, h1: expectN, d1: expectN })
    for (const [table, fn] of LEVELS) await compare(table, fn)
  })
})
