import { randomUUID } from 'node:crypto'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR, migrate } from '../services/src/core/storage/migrations.ts'
import { createWarehouse, type Warehouse } from '../services/src/core/storage/warehouse.ts'
import { toClickHouseTime } from '../services/src/core/usage/usage-row.ts'

// Migration 0007 on a database that already holds usage: rows written by the
// schema of 0001-0006 read reasoning_tokens 0 and price_unknown false after
// it, in the raw table and every rollup; rows written after it are rolled up
// with their reasoning tokens and unpriced flags, equal to the raw table.

let dir: string
let wh: Warehouse
const LEVELS = [
  ['usage_5m', 'toStartOfFiveMinutes'],
  ['usage_1h', 'toStartOfHour'],
  ['usage_1d', 'toStartOfDay'],
] as const

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokenmeter-mig7-'))
  wh = createWarehouse({ path: join(dir, 'clickhouse') })
})
afterAll(async () => {
  await wh?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A row as a release before 0007 wrote it: no reasoning_tokens, no price_unknown. */
function oldRow(i: number, startedMs: number) {
  return {
    request_id: randomUUID(),
    started_at: toClickHouseTime(startedMs),
    ended_at: toClickHouseTime(startedMs + 100),
    key_id: `key_${i % 3}`,
    key_prefix: 'tm_x',
    user_id: `u${i % 4}`,
    team_id: 't1',
    project: '',
    client_app: '',
    tags: i % 2 ? ['a'] : [],
    provider: 'openai',
    model: 'gpt-4o',
    upstream_model: 'gpt-4o',
    endpoint: '/v1/chat/completions',
    streamed: false,
    status_code: 200,
    error_class: '',
    input_tokens: 100 + i,
    output_tokens: 50 + i,
    cached_read_tokens: 0,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: '0.000100000',
    latency_ms: 100,
    ttft_ms: 0,
    batch_id: `old-${i}`,
  }
}

async function rollupVsRaw(table: string, bucketFn: string) {
  const raw = await wh.query(
    `SELECT toString(${bucketFn}(started_at)) AS b, key_id, user_id, tags,
       toString(sum(reasoning_tokens)) AS reasoning, toString(countIf(price_unknown)) AS unpriced,
       toString(sum(output_tokens)) AS output
     FROM requests GROUP BY b, key_id, user_id, tags ORDER BY b, key_id, user_id, tags`,
  )
  const rolled = await wh.query(
    `SELECT toString(bucket) AS b, key_id, user_id, tags,
       toString(sum(reasoning_tokens)) AS reasoning, toString(sum(unpriced)) AS unpriced,
       toString(sum(output_tokens)) AS output
     FROM ${table} GROUP BY b, key_id, user_id, tags ORDER BY b, key_id, user_id, tags`,
  )
  expect(rolled, table).toEqual(raw)
}

describe('migration 0007 (reasoning_tokens, price_unknown)', () => {
  it('reads 0 for rows written before it, and rolls up rows written after it like the raw table', async () => {
    const before = join(dir, 'before-0007')
    mkdirSync(before)
    for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql') && f < '0007')) {
      cpSync(join(MIGRATIONS_DIR, f), join(before, f))
    }
    await migrate(wh, { retentionDays: 400, dir: before })
    const now = Date.now()
    for (let i = 0; i < 12; i++) {
      await wh.insertRows('requests', [oldRow(i, now - i * 3_600_000)], { dedupToken: `old-${i}` })
    }

    const { applied } = await migrate(wh, { retentionDays: 400 })
    expect(applied).toContain(7)
    const old = await wh.query<{ r: number; p: boolean | number }>(
      'SELECT reasoning_tokens AS r, price_unknown AS p FROM requests',
    )
    expect(old).toHaveLength(12)
    expect(old.every((o) => Number(o.r) === 0 && !o.p)).toBe(true)
    for (const [table] of LEVELS) {
      const [z] = await wh.query<{ r: string; u: string; n: string }>(
        `SELECT toString(sum(reasoning_tokens)) AS r, toString(sum(unpriced)) AS u, toString(sum(requests)) AS n FROM ${table}`,
      )
      expect(z, table).toEqual({ r: '0', u: '0', n: '12' })
    }

    // After the migration: the views carry the new columns.
    const fresh = Array.from({ length: 30 }, (_, i) => ({
      ...oldRow(i, now - i * 1_800_000),
      batch_id: 'new-1',
      reasoning_tokens: i * 7,
      price_unknown: i % 5 === 0,
    }))
    await wh.insertRows('requests', fresh, { dedupToken: 'new-1' })
    // A replay of the same batch is still counted once in every rollup.
    await wh.insertRows('requests', fresh, { dedupToken: 'new-1' })
    const [sum] = await wh.query<{ r: string; u: string }>(
      'SELECT toString(sum(reasoning_tokens)) AS r, toString(countIf(price_unknown)) AS u FROM requests',
    )
    expect(sum).toEqual({ r: String(fresh.reduce((n, r) => n + r.reasoning_tokens, 0)), u: '6' })
    for (const [table, fn] of LEVELS) await rollupVsRaw(table, fn)
  })
})
