import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { scanSegment } from '../services/src/core/storage/record-framing.ts'
import type { UsageBatch } from '../services/src/core/usage/usage-row.ts'
import { decodeBatch, encodeBatch } from '../services/src/worker/batch-codec.ts'
import { readAck, writeGroupIntent } from '../services/src/worker/disk-spool.ts'
import { GROUP_FIELD, groupKey } from '../services/src/worker/redis-replay.ts'
import { SPILL_QUEUE } from '../services/src/worker/redis-spill.ts'
import { createReplayWorker, type ReplayWorker } from '../services/src/worker/replay.worker.ts'
import { mergeBatches } from '../services/src/worker/replay-groups.ts'
import {
  expectExactlyOnce as expectEveryRowOnce,
  makeUsageRow,
  waitFor,
} from './helpers/clickhouse-http-checks.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

/**
 * Replay inserts runs of spilled batches together (worker/replay-groups.ts).
 * These tests stage the crashes that could make that count a batch twice and
 * check that it does not: a batch whose own insert may have landed, and a
 * group whose insert landed before its worker died, replayed by a worker that
 * would now group differently.
 */
const ROWS = 10
let stack: TestStack
let redis: RedisProcess
let accepted: Set<string>
let n = 0
const workers: ReplayWorker[] = []

/** What an outage leaves: the insert was refused, nothing can have been stored. */
const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })
/** What a lost response leaves: the insert may have landed. */
const timedOut = () => new Error('Timeout error.')

function batch(): UsageBatch {
  const batchId = `grp-test-${n}`
  const rows = Array.from({ length: ROWS }, () => ({ ...makeUsageRow(n++), batch_id: batchId }))
  for (const r of rows) accepted.add(r.request_id)
  return { batchId, createdAt: Date.now(), rows }
}

function worker(maxGroupRows: number, redisUrl?: string) {
  const w = createReplayWorker({
    insertBatch: stack.core.outage.insertBatch,
    spool: stack.core.outage.spool,
    quarantine: stack.core.outage.quarantine,
    redisUrl,
    insertTimeoutMs: 10_000,
    logger: pino({ enabled: false }),
    onError: stack.core.backgroundErrors.report,
    probe: () => stack.core.warehouse.ping(),
    pollMs: 20,
    maxGroupRows,
  })
  workers.push(w)
  w.start()
  return w
}

/** Waits until both spill stores are empty, then stops the worker. */
async function drained(w: ReplayWorker) {
  await waitFor(
    'the replay to drain both stores',
    async () => {
      const s = await stack.core.outage.status()
      return s.disk.batches === 0 && (s.redis?.jobs.waiting ?? 0) + (s.redis?.jobs.active ?? 0) === 0
    },
    30_000,
  )
  await w.stop()
}

async function expectExactlyOnce() {
  await expectEveryRowOnce(stack.core.warehouse, accepted)
  // latency_1d has no project column: every row in it is this test's (tables truncated per test).
  const [lat] = await stack.core.warehouse.query<{ n: string }>('SELECT sum(requests) AS n FROM latency_1d')
  expect(Number(lat?.n)).toBe(accepted.size)
}

beforeAll(async () => {
  redis = await startRedis()
  stack = await startTestStack({ env: { REDIS_URL: redis.url, ROLES: 'api' }, roles: ['api'] })
})
afterAll(async () => {
  for (const w of workers) await w.stop()
  await stack?.close()
  await redis?.stop()
})
beforeEach(async () => {
  accepted = new Set()
  for (const t of ['requests', 'usage_5m', 'usage_1h', 'usage_1d', 'latency_1d'])
    await stack.core.warehouse.command(`TRUNCATE TABLE ${t}`)
})

describe('replay of merged batches', () => {
  it('merges refused batches from the disk spool, and replays a possibly-landed one alone', async () => {
    const spool = stack.core.outage.spool
    const batches = Array.from({ length: 12 }, batch)
    // Batch 5's insert timed out after ClickHouse stored it: it is in the table already.
    await stack.core.warehouse.insertRows('requests', batches[5]!.rows, { dedupToken: batches[5]!.batchId })
    for (const [i, b] of batches.entries()) await spool.spill(b, i === 5 ? timedOut() : refused())
    await spool.seal()

    const w = worker(4 * ROWS)
    await drained(w)
    await expectExactlyOnce()
    // 0-3, 4 (stops before the lone batch), 5 alone, 6-9, 10-11.
    expect(w.progress().inserts).toBe(5)
    expect(await spool.sealedSegments()).toEqual([])
  })

  it('redoes a recorded group exactly after a crash, even when it would now group differently', async () => {
    const spool = stack.core.outage.spool
    const batches = Array.from({ length: 8 }, batch)
    for (const b of batches) await spool.spill(b, refused())
    await spool.seal()
    const [seg] = await spool.sealedSegments()
    const { records } = scanSegment(readFileSync(seg!.path))
    expect(records).toHaveLength(8)

    // A worker with a 6-batch cap recorded its first group, inserted it, and died before the ack.
    const group = records.slice(0, 6).map((r) => decodeBatch(r.payload))
    const merged = mergeBatches(group)
    await writeGroupIntent(seg!.path, {
      from: records[0]!.offset,
      to: records[5]!.end,
      token: merged.batchId,
    })
    await stack.core.outage.insertBatch(merged)
    expect(await readAck(seg!.path)).toBe(0)

    // The next worker runs with a 4-batch cap: without the intent it would insert 0-3 under a new token.
    const w = worker(4 * ROWS)
    await drained(w)
    await expectExactlyOnce()
  })

  it('merges Redis jobs, and a job marked with a landed group is not inserted again', async () => {
    const spill = stack.core.outage.redis!
    const batches = Array.from({ length: 10 }, batch)
    for (const b of batches) await spill.spill(b, refused())

    // A worker grouped jobs 0-5, marked them, inserted the group and died before completing them.
    const group = batches.slice(0, 6).map((b) => ({ ...b, mergeable: true }))
    const merged = mergeBatches(group)
    const r = new Redis(redis.url)
    const jobKey = (id: string) => `bull:${SPILL_QUEUE}:${id}`
    const payloads = group.map((b) => encodeBatch(b, { mergeable: true }).toString('base64'))
    await r.set(groupKey(merged.batchId), JSON.stringify(payloads))
    for (const b of group) await r.hset(jobKey(b.batchId), GROUP_FIELD, merged.batchId)
    await stack.core.outage.insertBatch(merged)

    const w = worker(4 * ROWS, redis.url)
    await drained(w)
    await waitFor(
      'the group record to be removed',
      async () => (await r.exists(groupKey(merged.batchId))) === 0,
    )
    r.disconnect()
    await expectExactlyOnce()
    // Jobs 6-9 went in one insert, not four.
    expect(w.progress().inserts).toBeLessThan(batches.length)
  })

  it('completes jobs of a group whose record is gone (deleted once the group landed)', async () => {
    const spill = stack.core.outage.redis!
    const batches = Array.from({ length: 5 }, batch)
    for (const b of batches) await spill.spill(b, refused())
    const merged = mergeBatches(batches.map((b) => ({ ...b, mergeable: true })))
    const r = new Redis(redis.url)
    for (const b of batches) await r.hset(`bull:${SPILL_QUEUE}:${b.batchId}`, GROUP_FIELD, merged.batchId)
    r.disconnect()
    await stack.core.outage.insertBatch(merged)

    const w = worker(100 * ROWS, redis.url)
    await drained(w)
    expect(w.progress().inserts).toBe(0)
    await expectExactlyOnce()
  })
})
