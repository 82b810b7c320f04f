import { type ChildProcess, spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { checkExactlyOnce, makeUsageRow, waitFor } from './helpers/clickhouse-http-checks.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'
import { seededRandom } from './helpers/test-seed.ts'

/**
 * The replay worker as its own process (`ROLES=worker node services/src/server.ts`,
 * server mode), killed with SIGKILL at random moments KILLS times while it
 * drains a backlog from Redis and from the disk spool; then one last worker
 * finishes. Every row must be in ClickHouse exactly once, rollups included.
 */
const KILLS = 8
const BATCHES_VIA_REDIS = 120
const BATCHES_VIA_DISK = 60
const ROWS_PER_BATCH = 20
// When each SIGKILL lands: seeded, the seed printed.
const { random } = seededRandom('replay-sigkill kill timings')

let ch: ClickHouseHttp
let redis: RedisProcess
let stack: TestStack
const accepted = new Set<string>()
let n = 0
const workers = new Set<ChildProcess>()

beforeAll(async () => {
  ch = await startClickHouseHttp()
  redis = await startRedis(['--appendonly', 'yes'])
  stack = await startTestStack({
    env: {
      CLICKHOUSE_URL: ch.url,
      REDIS_URL: redis.url,
      CLICKHOUSE_INSERT_TIMEOUT_MS: '1000',
      RECORDER_MAX_ROWS: String(ROWS_PER_BATCH),
      RECORDER_FLUSH_MS: '60000',
      // This process records and spills only; the replay runs in the children.
      ROLES: 'api',
      // Batches from a journaling recorder spill as "replay alone" (docs/OUTAGES.md,
      // the journal): without it they spill mergeable, and merged groups are what
      // this test interrupts.
      JOURNAL: 'off',
    },
    roles: ['api'],
  })
})
afterAll(async () => {
  for (const w of workers) w.kill('SIGKILL')
  await stack?.close()
  await redis?.stop()
  await ch?.close()
})

async function spillBatches(count: number) {
  for (let b = 0; b < count; b++) {
    for (let i = 0; i < ROWS_PER_BATCH; i++) {
      const row = makeUsageRow(n++)
      stack.core.recorder.record(row)
      accepted.add(row.request_id)
    }
  }
  await stack.core.recorder.flush()
}

function startWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['services/src/server.ts'], {
    env: {
      ...process.env,
      ROLES: 'worker',
      PORT: '0',
      DATA_DIR: stack.dataDir,
      CLICKHOUSE_URL: ch.url,
      REDIS_URL: redis.url,
      CLICKHOUSE_INSERT_TIMEOUT_MS: '1000',
      // Groups of two batches per replay insert: many inserts, so the kills
      // land mid-replay, and merged groups are what gets interrupted.
      RECORDER_MAX_ROWS: String(2 * ROWS_PER_BATCH),
      DEMO: 'false',
      LOG_LEVEL: 'silent',
      ADMIN_TOKEN: 'test-admin-token-0123456789',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  workers.add(child)
  child.on('exit', () => workers.delete(child))
  child.stderr!.resume()
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('Tokenmeter is running')) resolve(child)
    })
    child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)))
  })
}

async function kill(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

async function backlog() {
  const s = await stack.core.outage.status()
  return {
    redis: s.redis ? s.redis.jobs.waiting + s.redis.jobs.active + s.redis.jobs.delayed : 0,
    disk: s.disk.batches,
    failed: s.redis?.jobs.failed ?? 0,
  }
}

describe('replay worker killed with SIGKILL', () => {
  it('never loses or double-counts a batch, however often it dies', async () => {
    // A backlog in both stores: ClickHouse down, then Redis down too.
    await ch.stop()
    await spillBatches(BATCHES_VIA_REDIS)
    await redis.stop()
    await spillBatches(BATCHES_VIA_DISK)
    await redis.restart()
    await stack.core.outage.spool.seal()
    await waitFor(
      'the spill connection to see Redis again',
      async () => (await stack.core.outage.status()).redis?.connected === true,
    )
    const before = await backlog()
    expect(before.redis).toBe(BATCHES_VIA_REDIS)
    expect(before.disk).toBe(BATCHES_VIA_DISK)
    await ch.start()

    let killsDuringReplay = 0
    for (let k = 0; k < KILLS; k++) {
      const child = await startWorker()
      await new Promise((r) => setTimeout(r, 100 + random() * 900))
      const left = await backlog()
      if (left.redis + left.disk > 0) killsDuringReplay++
      await kill(child)
    }
    const last = await startWorker()
    await waitFor(
      'the last worker to drain both stores',
      async () => {
        const left = await backlog()
        if (left.redis + left.disk > 0) return false
        const [r] = await stack.core.warehouse.query<{ n: string }>(
          "SELECT count() AS n FROM requests WHERE project = 'outage-test'",
        )
        return Number(r?.n) >= accepted.size
      },
      90_000,
    )
    await kill(last)

    console.log(`replay worker: ${KILLS} SIGKILLs, ${killsDuringReplay} while a backlog remained`)
    expect(killsDuringReplay).toBeGreaterThan(0)
    expect((await backlog()).failed).toBe(0)
    const report = await checkExactlyOnce(stack.core.warehouse, accepted)
    expect(report.missing).toEqual([])
    expect(report.unexpected).toEqual([])
    expect(report.rawRows).toBe(accepted.size)
    for (const table of ['usage_5m', 'usage_1h', 'usage_1d'])
      expect(report.rollups[table]).toEqual(report.raw)
  })
})
