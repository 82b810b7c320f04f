import { readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HEADER_BYTES, scanSegment } from '../services/src/core/storage/record-framing.ts'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { checkExactlyOnce, makeUsageRow, waitFor } from './helpers/clickhouse-http-checks.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * The stated policies (docs/OUTAGES.md), each made to happen and checked
 * through what ops see: the admin API and /metrics.
 * Budgets are tiny on purpose: a batch of 20 rows is about 1 KB compressed.
 */
let ch: ClickHouseHttp
let redis: RedisProcess
let stack: TestStack
const accepted = new Set<string>()
let n = 0
const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

beforeAll(async () => {
  ch = await startClickHouseHttp()
  redis = await startRedis() // no AOF, on purpose: the durability warning must show
  stack = await startTestStack({
    env: {
      CLICKHOUSE_URL: ch.url,
      REDIS_URL: redis.url,
      REDIS_SPILL_MAX_BYTES: '3000',
      SPOOL_MAX_BYTES: '5000',
      CLICKHOUSE_INSERT_TIMEOUT_MS: '1000',
      RECORDER_MAX_ROWS: '20',
      RECORDER_FLUSH_MS: '100',
      // The disk spool is the local outage store of JOURNAL=off; with the journal on,
      // the journal holds it (its full policy: tests/journal-merged.test.ts).
      JOURNAL: 'off',
    },
    roles: ['api'],
  })
})
afterAll(async () => {
  await stack?.close()
  await redis?.stop()
  await ch?.close()
})

const ops = async (url: string, method: 'GET' | 'POST' = 'GET') => {
  const res = await stack.app.inject({ method, url: `/api/admin/ops${url}`, headers: auth })
  return { status: res.statusCode, body: res.json() }
}
const metric = async (name: string) => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await stack.core.metrics.metrics())
  return Number(m?.[1])
}

function record(count: number, tweak?: (row: ReturnType<typeof makeUsageRow>, i: number) => void) {
  const rows = []
  for (let i = 0; i < count; i++) {
    const row = makeUsageRow(n++)
    tweak?.(row, i)
    stack.core.recorder.record(row)
    rows.push(row)
  }
  return rows
}

async function drained(expected: number) {
  await stack.core.recorder.flush()
  await waitFor('everything to land', async () => {
    await stack.core.recorder.flush()
    const s = await stack.core.outage.status()
    const redisLeft = s.redis ? s.redis.jobs.waiting + s.redis.jobs.active + s.redis.jobs.delayed : 0
    if (redisLeft + s.disk.batches > 0 || stack.core.recorder.stats().pendingRows > 0) return false
    const [r] = await stack.core.warehouse.query<{ n: string }>(
      "SELECT count() AS n FROM requests WHERE project = 'outage-test'",
    )
    return Number(r?.n) >= expected
  })
}

describe('outage policies, visible to ops', () => {
  it('warns at start when Redis is not durable', async () => {
    const { body } = await ops('/status')
    expect(body.redis.durabilityWarnings.join(' ')).toMatch(/AOF/)
  })

  it('Redis over budget -> disk spool; spool full -> kept in memory; then all of it lands once', async () => {
    await ch.stop()
    for (const row of record(30 * 20)) accepted.add(row.request_id)
    await stack.core.recorder.flush()
    const { body } = await ops('/status')
    expect(body.redis.overBudgetSpills).toBeGreaterThan(0)
    expect(body.redis.bytes).toBeLessThanOrEqual(3000)
    expect(body.disk.full).toBe(true)
    expect(body.disk.rejected).toBeGreaterThan(0)
    expect(body.disk.bytes).toBeLessThanOrEqual(5000)
    expect(body.policies.spoolFull).toMatch(/memory/)
    expect(stack.core.recorder.stats().pendingRows).toBeGreaterThan(0)
    expect(await metric('tokenmeter_spill_redis_over_budget_total')).toBeGreaterThan(0)
    expect(await metric('tokenmeter_spool_full')).toBe(1)
    expect(await metric('tokenmeter_rows_dropped_total')).toBe(0)
    await stack.core.outage.spool.seal() // the open segment is sealed within a second anyway
    const listed = await ops('/batches?limit=1000')
    expect(new Set(listed.body.batches.map((b: { store: string }) => b.store))).toEqual(
      new Set(['redis', 'disk']),
    )
    const one = await ops(`/batches/${listed.body.batches[0].batchId}`)
    expect(one.body.rowsData).toHaveLength(one.body.rows)

    await ch.start()
    await drained(accepted.size)
    const report = await checkExactlyOnce(stack.core.warehouse, accepted)
    expect(report.missing).toEqual([])
    expect(report.unexpected).toEqual([])
    for (const table of ['usage_5m', 'usage_1h', 'usage_1d'])
      expect(report.rollups[table]).toEqual(report.raw)
    expect((await ops('/status')).body.disk.full).toBe(false)
  })

  it('quarantines a corrupt spool segment, replays its intact records, reports it', async () => {
    await ch.stop()
    const batches = [0, 1, 2].map((b) => ({
      batchId: `corrupt-test-${b}`,
      createdAt: Date.now(),
      rows: Array.from({ length: 5 }, () => makeUsageRow(n++)),
    }))
    for (const b of batches) await stack.core.outage.spool.spill(b, 'test')
    await stack.core.outage.spool.seal()
    const seg = (await stack.core.outage.spool.sealedSegments()).at(-1)
    const buf = readFileSync(seg!.path)
    const second = scanSegment(buf).records[1]!
    const at = second.offset + HEADER_BYTES + 10
    buf[at] = (buf[at] ?? 0) ^ 0xff
    writeFileSync(seg!.path, buf)
    for (const b of [batches[0]!, batches[2]!]) for (const r of b.rows) accepted.add(r.request_id)
    await ch.start()

    await waitFor(
      'the segment to be quarantined',
      async () => (await ops('/quarantine')).body.entries.length > 0,
    )
    await drained(accepted.size)
    const report = await checkExactlyOnce(stack.core.warehouse, accepted)
    expect(report.missing).toEqual([])
    expect(report.unexpected).toEqual([])
    const { body } = await ops('/quarantine')
    const entry = body.entries.find((e: { kind: string }) => e.kind === 'segment')
    expect(entry.reason).toMatch(/bad-crc/)
    expect((await ops('/status')).body.quarantine.entries).toBeGreaterThan(0)
    expect(await metric('tokenmeter_replay_corrupt_segments_total')).toBe(1)
    expect((await ops(`/quarantine/${entry.id}/retry`, 'POST')).status).toBe(409)
  })

  it('quarantines a row ClickHouse rejects and still lands the rest of its batch', async () => {
    const rows = record(20, (row, i) => {
      // Passes our row schema, overflows Decimal(18, 9) in ClickHouse.
      if (i === 7) row.cost_usd = '99999999999.000000000'
    })
    for (const r of rows.filter((_, i) => i !== 7)) accepted.add(r.request_id)
    await drained(accepted.size)
    const report = await checkExactlyOnce(stack.core.warehouse, accepted)
    expect(report.missing).toEqual([])
    expect(report.unexpected).toEqual([])
    const { body } = await ops('/quarantine')
    const entry = body.entries.find((e: { kind: string; rowCount: number }) => e.kind === 'rows')
    expect(entry.rowCount).toBe(1)
    const full = await ops(`/quarantine/${entry.id}`)
    expect(full.body.rows[0].row.request_id).toBe(rows[7]!.request_id)
    // Still bad: a retry keeps it quarantined and counts nothing.
    const retry = await ops(`/quarantine/${entry.id}/retry`, 'POST')
    expect(retry.body).toMatchObject({ inserted: 0, quarantined: 1, resolved: false })
    expect((await checkExactlyOnce(stack.core.warehouse, accepted)).unexpected).toEqual([])
  })
})
