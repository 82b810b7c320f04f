import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import {
  expectExactlyOnce as expectEveryRowOnce,
  makeUsageRow,
  waitFor,
} from './helpers/clickhouse-http-checks.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * Server mode, end to end over sockets: the product talks HTTP to a
 * ClickHouse endpoint (tests/helpers/clickhouse-http.ts over the embedded
 * engine) and BullMQ to a real redis-server; faults are injected by stopping
 * them. The outage is OUTAGE_MS long (the 30 s) with steady traffic
 * throughout: one row every TRAFFIC_EVERY_MS.
 */
const OUTAGE_MS = 30_000
const TRAFFIC_EVERY_MS = 5

let ch: ClickHouseHttp
let redis: RedisProcess
let stack: TestStack
const accepted = new Set<string>()
let n = 0

beforeAll(async () => {
  ch = await startClickHouseHttp()
  redis = await startRedis(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction'])
  stack = await startTestStack({
    env: {
      CLICKHOUSE_URL: ch.url,
      REDIS_URL: redis.url,
      CLICKHOUSE_INSERT_TIMEOUT_MS: '1000',
      RECORDER_FLUSH_MS: '100',
      RECORDER_MAX_ROWS: '50',
    },
    roles: ['api'],
  })
})
afterAll(async () => {
  await stack?.close()
  await redis?.stop()
  await ch?.close()
})

/** Steady traffic: records a row every few ms until stopped; an accepted row is a client that got its answer. */
function traffic() {
  let running = true
  const loop = (async () => {
    while (running) {
      const row = makeUsageRow(n++)
      stack.core.recorder.record(row)
      accepted.add(row.request_id)
      await new Promise((r) => setTimeout(r, TRAFFIC_EVERY_MS))
    }
  })()
  return async () => {
    running = false
    await loop
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function drained() {
  await stack.core.recorder.flush()
  await waitFor('the replay to drain Redis and the spool', async () => {
    const s = await stack.core.outage.status()
    const redisLeft = s.redis ? s.redis.jobs.waiting + s.redis.jobs.active + s.redis.jobs.delayed : 0
    const journalLeft = s.journal ? s.journal.segments : 0
    if (
      redisLeft > 0 ||
      s.disk.batches > 0 ||
      journalLeft > 0 ||
      stack.core.recorder.stats().pendingRows > 0
    ) {
      await stack.core.outage.replayNow()
      return false
    }
    const [r] = await stack.core.warehouse.query<{ n: string }>(
      "SELECT count() AS n FROM requests WHERE project = 'outage-test'",
    )
    return Number(r?.n) >= accepted.size
  })
}

async function expectExactlyOnce() {
  await expectEveryRowOnce(stack.core.warehouse, accepted)
  const metrics = await stack.core.metrics.metrics()
  expect(metrics).toMatch(/^tokenmeter_rows_dropped_total 0$/m)
}

describe('ClickHouse outages in server mode (HTTP + Redis)', () => {
  it('keeps every row through an outage under steady traffic, each once, rollups equal to raw, and shows it to ops', async () => {
    const inserted = () => stack.core.recorder.stats().inserted
    const stop = traffic()
    const insertedAtStart = inserted()
    await waitFor('traffic to reach ClickHouse before the outage', async () => inserted() > insertedAtStart)
    const spilledBefore = stack.core.recorder.stats().spilled
    await ch.stop()
    // The outage itself: OUTAGE_MS of steady traffic (a scenario length, not a wait for something).
    await sleep(OUTAGE_MS)
    let during = await stack.core.outage.status()
    await waitFor('Redis to hold the spilled batches', async () => {
      during = await stack.core.outage.status()
      return (during.redis?.jobs.waiting ?? 0) > 0
    })
    await ch.start()
    const insertedAtRestart = inserted()
    await waitFor('traffic to reach ClickHouse again', async () => inserted() > insertedAtRestart)
    await stop()
    await drained()
    // The outage really went through Redis.
    expect(stack.core.recorder.stats().spilled).toBeGreaterThan(spilledBefore)
    expect(during.redis?.jobs.waiting ?? 0).toBeGreaterThan(0)
    expect(during.clickhouse.reachable).toBe(false)
    await expectExactlyOnce()

    // Ops see the replay through the admin API.
    const res = await stack.app.inject({
      url: '/api/admin/ops/status',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    })
    expect(res.statusCode).toBe(200)
    const s = res.json()
    expect(s.mode).toBe('redis+disk')
    expect(s.replay.batches).toBeGreaterThan(0)
    expect(s.replay.rows).toBeGreaterThan(0)
    expect(s.rowsDropped).toBe(0)
    expect(s.redis.durabilityWarnings).toEqual([])
    const anon = await stack.app.inject({ url: '/api/admin/ops/status' })
    expect(anon.statusCode).toBe(401)
  }, 120_000)

  it('keeps the batches in the journal when ClickHouse and Redis are both gone, and replays from there', async () => {
    const stop = traffic()
    await ch.stop()
    await redis.stop()
    let parked: Awaited<ReturnType<typeof stack.core.outage.listBatches>> = []
    let during = await stack.core.outage.status()
    await waitFor('the journal to park the batches ClickHouse and Redis refused', async () => {
      parked = (await stack.core.outage.listBatches(1_000)).filter((b) => b.store === 'journal')
      during = await stack.core.outage.status()
      return parked.length > 0 && during.redis?.connected === false
    })
    await redis.restart()
    await ch.start()
    await stop()
    // The journal is the local outage store (docs/OUTAGES.md): no second copy in the disk spool.
    expect(parked.length).toBeGreaterThan(0)
    expect(during.journal?.bytes).toBeGreaterThan(0)
    expect(during.disk.batches + during.disk.bytes).toBe(0)
    expect(during.redis?.connected).toBe(false)
    await drained()
    await expectExactlyOnce()
  })

  it('retries an insert that committed but whose response was lost, without a double count', async () => {
    const before = ch.stats.lostResponses
    ch.loseResponses(3)
    for (let i = 0; i < 120; i++) {
      const row = makeUsageRow(n++)
      stack.core.recorder.record(row)
      accepted.add(row.request_id)
    }
    await drained()
    expect(ch.stats.lostResponses - before).toBe(3)
    await expectExactlyOnce()
  })
})
