import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { costNanos, nanosToUsdString } from '../services/src/core/pricing/pricing.ts'
import { normalizeTags, usageRowSchema } from '../services/src/core/usage/usage-row.ts'
import {
  DEMO_BATCH_PREFIX,
  DEMO_TEAM_IDS,
  type DemoSeedResult,
  demoHistoryKeys,
  insertDemoHistory,
  seedDemo,
} from '../services/src/demo/demo-seed.ts'
import { startDemoTraffic } from '../services/src/demo/demo-traffic.ts'
import { createCatalogue } from '../services/src/demo/usage-catalogue.ts'
import { fastUsdString, generateUsage, generateUsageBatches } from '../services/src/demo/usage-generator.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

const to = Date.UTC(2025, 4, 1)
const from = to - 14 * 86_400_000

describe('usage generator', () => {
  const catalogue = createCatalogue({ seed: 3, teams: 4, usersPerTeam: 6 })
  const rows = generateUsage({ catalogue, seed: 11, from, to, rows: 20_000 })

  it('is deterministic for a seed and differs across seeds', () => {
    const again = generateUsage({
      catalogue: createCatalogue({ seed: 3, teams: 4, usersPerTeam: 6 }),
      seed: 11,
      from,
      to,
      rows: 20_000,
    })
    expect(again).toEqual(rows)
    const other = generateUsage({ catalogue, seed: 12, from, to, rows: 20_000 })
    expect(other.map((r) => r.request_id)).not.toEqual(rows.map((r) => r.request_id))
  })

  it('gives exactly the asked rows, valid, in range, in time order, with unique ids', () => {
    expect(rows).toHaveLength(20_000)
    for (const r of rows) usageRowSchema.parse(r)
    const starts = rows.map((r) => Date.parse(`${r.started_at.replace(' ', 'T')}Z`))
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(from)
    expect(Math.max(...starts)).toBeLessThan(to)
    expect(starts.every((t, i) => i === 0 || t >= (starts[i - 1] as number))).toBe(true)
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(rows.length)
    for (const r of rows) expect(r.ended_at >= r.started_at).toBe(true)
  })

  it('prices every row exactly as pricing.ts does', () => {
    const models = new Map(catalogue.models.map((m) => [m.facade.model, m.facade]))
    for (const r of rows) {
      const facade = models.get(r.model)
      expect(facade).toBeDefined()
      const nanos = costNanos(
        {
          input: r.input_tokens,
          output: r.output_tokens,
          cachedRead: r.cached_read_tokens,
          cacheWrite: r.cache_write_tokens,
        },
        facade!,
      )
      expect(r.cost_usd).toBe(nanosToUsdString(nanos))
    }
    for (const n of [0, 1, 999, 1_000_000_000, 1_234_567_890_123, 9_007_199_254_740_000]) {
      expect(fastUsdString(n)).toBe(nanosToUsdString(n))
    }
  })

  it('looks like real traffic: skewed keys, quiet weekends, normalised tags, some errors and streams', () => {
    const perKey = new Map<string, number>()
    for (const r of rows) perKey.set(r.key_id, (perKey.get(r.key_id) ?? 0) + 1)
    const counts = [...perKey.values()].sort((a, b) => b - a)
    const top = counts.slice(0, Math.ceil(counts.length / 10)).reduce((a, b) => a + b, 0)
    expect(top / rows.length).toBeGreaterThan(0.3)
    const day = (r: (typeof rows)[number]) => new Date(`${r.started_at.slice(0, 10)}T00:00:00Z`).getUTCDay()
    const weekend = rows.filter((r) => [0, 6].includes(day(r))).length / 4
    const weekday = rows.filter((r) => ![0, 6].includes(day(r))).length / 10
    expect(weekend).toBeLessThan(weekday / 2)
    for (const r of rows) expect(r.tags).toEqual(normalizeTags(r.tags.join(',')))
    const errors = rows.filter((r) => r.status_code >= 400).length / rows.length
    expect(errors).toBeGreaterThan(0.005)
    expect(errors).toBeLessThan(0.1)
    expect(rows.some((r) => r.streamed && r.ttft_ms > 0)).toBe(true)
    expect(rows.some((r) => r.cached_read_tokens > 0)).toBe(true)
    expect(new Set(rows.map((r) => r.client_app)).size).toBeGreaterThanOrEqual(5)
    expect(new Set(rows.map((r) => r.provider))).toEqual(new Set(['openai', 'anthropic']))
  })

  it('hour slices generated apart join into the rows of one run', () => {
    const cut = from + 5 * 86_400_000 + 7 * 3_600_000
    const part = (slice: { from: number; to: number }) =>
      [...generateUsageBatches({ catalogue, seed: 11, from, to, rows: 20_000, slice })].flatMap((b) => b.rows)
    expect([...part({ from, to: cut }), ...part({ from: cut, to })]).toEqual(rows)
  })

  it('batches concatenate to the same rows, whatever the batch size', () => {
    const joined = [
      ...generateUsageBatches({ catalogue, seed: 11, from, to, rows: 20_000, batchSize: 777 }),
    ].flatMap((b) => b.rows)
    expect(joined).toEqual(rows)
  })
})

describe('demo seed (embedded engine)', () => {
  let stack: TestStack
  let first: DemoSeedResult
  const size = { rows: 12_000, days: 10, insertRows: 5_000 }

  beforeAll(async () => {
    // DEMO=true, as in the product's demo: the built-in simulated provider serves the demo's facades.
    stack = await startTestStack({ listen: true, env: { DEMO: 'true' } })
    first = await seedDemo(stack.core, size)
  })
  afterAll(async () => stack?.close())

  /** The seeded history's rows (live demo traffic comes through the gateway under other batch ids). */
  const demoCount = async () => {
    const [row] = await stack.core.warehouse.query<{ n: string }>(
      'SELECT count() AS n FROM requests WHERE team_id IN {t:Array(String)} AND startsWith(batch_id, {p:String})',
      { t: DEMO_TEAM_IDS, p: DEMO_BATCH_PREFIX },
    )
    return Number(row?.n)
  }

  it('creates labelled entities and the history once; a second seed adds nothing', async () => {
    expect(first.insertedRows).toBe(size.rows)
    expect(first.historyRows).toBe(size.rows)
    expect(await demoCount()).toBe(size.rows)
    const { store } = stack.core
    expect(store.teams().filter((t) => t.name.startsWith('Demo')).length).toBe(3)
    expect(store.users().some((u) => u.role === 'admin' && u.teamId.startsWith('demo-'))).toBe(true)
    expect(store.model('gpt-4o')?.provider).toBe('simulated')

    const second = await seedDemo(stack.core, size)
    expect(second.insertedRows).toBe(0)
    expect(await demoCount()).toBe(size.rows)
    expect(store.teams().filter((t) => t.name.startsWith('Demo')).length).toBe(3)
    // The first boot's live keys are revoked: their plaintexts are gone.
    for (const k of first.liveKeys) expect(store.authenticate(k.plaintext)).toEqual({ error: 'revoked' })
    expect(store.authenticate(second.liveKeys[0]!.plaintext)).toHaveProperty('key')
    expect(store.authenticate(second.signInToken)).toHaveProperty('key')
    first = second
  })

  it('replaying an interrupted history insert counts nothing twice', async () => {
    await insertDemoHistory(stack.core, demoHistoryKeys(stack.core), { seed: 20_240_601, ...size })
    expect(await demoCount()).toBe(size.rows)
  })

  it('every rollup equals the raw aggregates per bucket, team, key, model and status', async () => {
    const wh = stack.core.warehouse
    const dims = 'team_id, key_id, model, status_code'
    const metrics = (
      fn: string,
    ) => `sum(requests) AS requests, sum(errors) AS errors, sum(input_tokens) AS input, sum(output_tokens) AS output,
      sum(cached_read_tokens) AS cached, sum(cache_write_tokens) AS writes, toString(sum(cost_usd)) AS cost, ${fn}`
    for (const [table, bucketFn] of [
      ['usage_5m', 'toStartOfFiveMinutes'],
      ['usage_1h', 'toStartOfHour'],
      ['usage_1d', 'toStartOfDay'],
    ] as const) {
      const rollup = await wh.query(
        `SELECT toString(bucket) AS b, ${dims}, ${metrics('1 AS x')} FROM ${table}
         WHERE team_id IN {t:Array(String)} GROUP BY b, ${dims} ORDER BY b, ${dims}`,
        { t: DEMO_TEAM_IDS },
      )
      const raw = await wh.query(
        `SELECT toString(toDateTime(${bucketFn}(started_at), 'UTC')) AS b, ${dims}, count() AS requests,
           countIf(status_code >= 400 OR error_class != '') AS errors, sum(input_tokens) AS input, sum(output_tokens) AS output,
           sum(cached_read_tokens) AS cached, sum(cache_write_tokens) AS writes, toString(sum(toDecimal128(cost_usd, 9))) AS cost, 1 AS x
         FROM requests WHERE team_id IN {t:Array(String)} GROUP BY b, ${dims} ORDER BY b, ${dims}`,
        { t: DEMO_TEAM_IDS },
      )
      expect(rollup.length, table).toBeGreaterThan(0)
      expect(rollup, table).toEqual(raw)
    }
    const [tagged] = await wh.query<{ n: string }>(
      `SELECT count() AS n FROM requests WHERE team_id IN {t:Array(String)} AND has(tags, 'demo')
         AND startsWith(project, 'demo-') AND startsWith(batch_id, {p:String})`,
      { t: DEMO_TEAM_IDS, p: DEMO_BATCH_PREFIX },
    )
    expect(Number(tagged?.n)).toBe(size.rows)
  })

  it('live demo traffic goes through the gateway and lands one row per request', async () => {
    const traffic = startDemoTraffic({
      gatewayUrl: stack.url,
      keys: first.liveKeys,
      rps: 0,
      logger: pino({ enabled: false }),
    })
    const statuses: number[] = []
    for (let i = 0; i < 24; i++) statuses.push(await traffic.sendOne())
    await traffic.stop()
    expect(statuses.every((s) => s > 0)).toBe(true)
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(12)
    await stack.core.recorder.flush()
    const rows = await stack.core.warehouse.query<{
      key_id: string
      project: string
      client_app: string
      tags: string[]
    }>('SELECT key_id, project, client_app, tags FROM requests WHERE key_id IN {k:Array(String)}', {
      k: first.liveKeys.map((k) => k.keyId),
    })
    expect(rows).toHaveLength(24)
    for (const r of rows) {
      expect(r.project.startsWith('demo-')).toBe(true)
      expect(r.tags).toContain('demo')
      expect(r.client_app).not.toBe('')
    }
    expect(traffic.stats().sent).toBe(24)
  })
})
