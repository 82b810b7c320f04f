import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createCore } from '../../services/src/bootstrap.ts'
import { parseEnv } from '../../services/src/core/config/env.ts'
import { encodeRows } from '../../services/src/core/storage/warehouse.ts'
import { createUsageRecorder, type UsageRecorder } from '../../services/src/core/usage/usage-recorder.ts'
import { type UsageBatch, type UsageRow, usageRowSchema } from '../../services/src/core/usage/usage-row.ts'
import { createCatalogue } from '../../services/src/demo/usage-catalogue.ts'
import { generateUsageBatches } from '../../services/src/demo/usage-generator.ts'
import { decodeBatch, encodeBatch } from '../../services/src/worker/batch-codec.ts'
import { createRedisSpill } from '../../services/src/worker/redis-spill.ts'
import { createReplayWorker } from '../../services/src/worker/replay.worker.ts'
import { startRedis } from '../../tests/helpers/redis-server.ts'
import { commandFor, emit, errorLogger, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, measure, ratio } from './lib/stats.ts'

/**
 * Ingest and replay on the embedded engine, every rollup attached:
 * 1. baseline: warehouse.insertRows into a copy of `requests` with no view
 *    attached (what the engine takes at all on this machine, in this run);
 * 2. warehouse.insertRows into `requests` (4 materialized views fire);
 * 3. the product path: UsageRecorder.record() per row, batches cut at
 *    RECORDER_MAX_ROWS, inserted through the outage kit's batch inserter.
 * Then an outage: batches spilled to the disk spool and to Redis (real
 * redis-server), drained by the replay worker; Redis memory while it holds them.
 */
const args = parseArgs()
const ROWS = args.quick ? 200_000 : 1_000_000
const REPLAY_ROWS = args.quick ? 100_000 : 500_000
/** RECORDER_MAX_ROWS in force (its default unless --batch=N), and the old default for comparison. */
const BATCH_ARG = process.argv.find((a) => a.startsWith('--batch='))?.slice(8)
const OLD_BATCH = 5_000
const SETTLE_MS = args.quick ? 3_000 : 10_000
const TABLES = ['requests', 'usage_5m', 'usage_1h', 'usage_1d', 'latency_1d'] as const
const VIEWS = '4 rollup views'

const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-bench-ingest-'))
const redis = await startRedis().catch((err) => {
  log(`redis-server unavailable (${(err as Error).message}); Redis rows skipped`)
  return undefined
})
// If this benchmark fails half-way, its redis-server must not outlive it (stop() signals synchronously).
process.on('exit', () => void redis?.stop('SIGKILL'))
const env = parseEnv({
  DATA_DIR: dataDir,
  DEMO: 'false',
  LOG_LEVEL: 'silent',
  ROLES: 'api',
  ...(BATCH_ARG ? { RECORDER_MAX_ROWS: BATCH_ARG } : {}),
  ...(redis ? { REDIS_URL: redis.url } : {}),
})
const quietLogger = errorLogger()
const spillCauses = new Map<string, number>()
const core = await createCore(env, {
  logger: quietLogger,
  spill: {
    // Counts why the recorder spilled (it only should when ClickHouse failed), then spills for real.
    spill: async (batch, cause) => {
      const key = String((cause as Error)?.message ?? cause).slice(0, 160)
      spillCauses.set(key, (spillCauses.get(key) ?? 0) + 1)
      await core.outage.sink.spill(batch, cause)
    },
  },
})
const wh = core.warehouse
const BATCH = env.RECORDER_MAX_ROWS
await wh.command('CREATE TABLE IF NOT EXISTS bench_requests_nomv AS requests')

const catalogue = createCatalogue({ seed: 42, prefix: 'bench' })
/**
 * Rows as live traffic at `rate` requests/s would produce them: timestamps
 * packed into the last rows/rate seconds, so a batch falls into one or two
 * rollup buckets as it does in production (spreading them over 30 days
 * instead makes every rollup nearly as large as the raw table).
 */
function batchesOf(
  rows: number,
  seed: number,
  prefix: string,
  rate: number,
  batchSize = BATCH,
): UsageBatch[] {
  const out: UsageBatch[] = []
  const to = Date.now()
  for (const b of generateUsageBatches({
    catalogue,
    seed,
    from: to - Math.ceil((rows / rate) * 1000),
    to,
    rows,
    batchSize,
    batchId: (i) => `${prefix}-${i}`,
  })) {
    out.push({ batchId: `${prefix}-${b.index}`, createdAt: Date.now(), rows: b.rows })
  }
  return out
}

async function truncateAll() {
  for (const t of [...TABLES, 'bench_requests_nomv']) await wh.command(`TRUNCATE TABLE IF EXISTS ${t}`)
}

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const [raw] = await wh.query<{ n: string }>('SELECT count() AS n FROM requests')
  out.requests = Number(raw?.n ?? 0)
  for (const t of TABLES.slice(1)) {
    const [r] = await wh.query<{ n: string }>(`SELECT sum(requests) AS n FROM ${t}`)
    out[t] = Number(r?.n ?? 0)
  }
  return out
}

async function parts(): Promise<Record<string, number>> {
  const rows = await wh.query<{ table: string; n: string }>(
    `SELECT table, count() AS n FROM system.parts
     WHERE active AND database = currentDatabase() AND table IN {t:Array(String)} GROUP BY table`,
    { t: [...TABLES] },
  )
  return Object.fromEntries(rows.map((r) => [r.table, Number(r.n)]))
}

function checkCounts(label: string, c: Record<string, number>, expected: number) {
  for (const [t, n] of Object.entries(c)) {
    if (n !== expected) throw new Error(`${label}: ${t} holds ${n} requests, expected ${expected}`)
  }
}

log(`generating ${ROWS} rows`)
const batches = batchesOf(ROWS, 1, 'ing', 100_000)
const ingest: { label: string; rows: number; wallMs: number; cpuMs: number }[] = []
const note = (r: { label: string; rows: number; wallMs: number; cpuMs: number }) => {
  ingest.push(r)
  log(
    `${r.label}: ${fmt(r.rows / (r.wallMs / 1000), 0)} rows/s, ${fmt((r.cpuMs * 1000) / r.rows, 1)} CPU µs/row`,
  )
}

// 1. Baseline: the engine alone, no view attached.
await truncateAll()
{
  const m = await measure(async () => {
    for (const b of batches)
      await wh.insertRows('bench_requests_nomv', b.rows, { dedupToken: `nomv-${b.batchId}` })
  })
  note({ label: 'baseline: insertRows, raw table only (no views)', rows: ROWS, ...m })
}

// 2. The same batches into `requests`: four materialized views fire per insert.
await truncateAll()
{
  const m = await measure(async () => {
    for (const b of batches) await wh.insertRows('requests', b.rows, { dedupToken: `wh-${b.batchId}` })
  })
  checkCounts('insertRows', await counts(), ROWS)
  note({ label: `insertRows into requests + ${VIEWS}`, rows: ROWS, ...m })
}

// 3. The product path: record() per row as the gateway does, the recorder cuts and ships batches.
let partsAfter: Record<string, number> = {}
let partsSettled: Record<string, number> = {}
async function recorderRun(recorder: UsageRecorder, maxRows: number, label: string) {
  await truncateAll()
  const rows: UsageRow[] = batches.flatMap((b) => b.rows)
  const m = await measure(async () => {
    for (let i = 0; i < rows.length; i++) {
      recorder.record(rows[i]!)
      if (i % 1_000 !== 999) continue
      // Let inserts progress between bursts, as the gateway's event loop would,
      // and hold the source back while batches wait for an insert slot: this
      // measures the rate ClickHouse sustains, not the length of a queue.
      await yieldToLoop()
      while (recorder.stats().pendingRows > 2 * maxRows) await new Promise((r) => setTimeout(r, 2))
    }
    await recorder.flush()
  })
  const s = recorder.stats()
  if (s.spilled > 0) log(`spill causes: ${JSON.stringify([...spillCauses])}`)
  if (s.pendingRows > 0 || s.spilled > 0)
    throw new Error(`recorder spilled ${s.spilled}, pending ${s.pendingRows}`)
  checkCounts('recorder', await counts(), ROWS)
  note({ label, rows: ROWS, ...m })
}
/** The product's recorder and batch inserter, as the embedded default builds them (no REDIS_URL: no live-row publishing). */
const plainRecorder = (maxRows: number) =>
  createUsageRecorder({
    warehouse: wh,
    spill: core.outage.sink,
    insertBatch: core.outage.insertBatch,
    maxRows,
    flushMs: env.RECORDER_FLUSH_MS,
    insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
    logger: quietLogger,
  })
for (const maxRows of BATCH !== OLD_BATCH ? [OLD_BATCH, BATCH] : [BATCH]) {
  const recorder = plainRecorder(maxRows)
  await recorderRun(
    recorder,
    maxRows,
    `UsageRecorder -> requests + ${VIEWS}, ${maxRows.toLocaleString('en-US')}-row batches${maxRows === OLD_BATCH ? ' (old default)' : ' (RECORDER_MAX_ROWS)'}`,
  )
  await recorder.close()
}
// With REDIS_URL set, the core's recorder also publishes every row for the
// live views of other processes (core/row-feed.ts): that cost, on the same path.
if (env.REDIS_URL) {
  await recorderRun(
    core.recorder,
    BATCH,
    `same, REDIS_URL set: every row also published to Redis for other processes' live views`,
  )
}
partsAfter = await parts()
await new Promise((r) => setTimeout(r, SETTLE_MS))
partsSettled = await parts()
// The replay below must not pay for garbage collections over these rows.
const ingestBatches = batches.length
batches.length = 0

const base = ingest[0]!
const ingestTable: Table = {
  id: 'ingest',
  title: 'Ingest into ClickHouse (embedded engine), rows per second',
  command: commandFor('ingest', args),
  columns: ['Path', 'Rows', 'Wall s', 'Rows/s', 'CPU s (all threads)', 'CPU µs/row', 'Rows/s vs baseline'],
  rows: ingest.map((r) => [
    r.label,
    r.rows.toLocaleString('en-US'),
    fmt(r.wallMs / 1000, 2),
    fmt(r.rows / (r.wallMs / 1000), 0),
    fmt(r.cpuMs / 1000, 2),
    fmt((r.cpuMs * 1000) / r.rows, 1),
    ratio(r.rows / r.wallMs, base.rows / base.wallMs),
  ]),
  notes: [
    `Rows from the synthetic generator (services/src/demo), timestamped as live traffic at 100,000 rows/s; ${ingestBatches} batches of ${BATCH} rows (RECORDER_MAX_ROWS), generated before timing.`,
    'Every row counted in `requests` and in `sum(requests)` of usage_5m, usage_1h, usage_1d and latency_1d after each run (the benchmark fails otherwise).',
    `Active parts right after the recorder run: ${JSON.stringify(partsAfter)}; ${SETTLE_MS / 1000} s later: ${JSON.stringify(partsSettled)}.`,
    'CPU is process.cpuUsage() of the benchmark process, which hosts the engine: it includes ClickHouse worker threads and background merges.',
  ],
}

// What one insert costs whatever its size: the same number of inserts of 1,
// 100 and 2,000 rows, into the raw table alone and into `requests` (four
// views, five parts written per insert). Explains the small-batch rows above
// and below: below a few thousand rows per insert the fixed cost dominates.
const INSERTS = args.quick ? 30 : 100
const perInsert: (string | number)[][] = []
for (const size of [1, 100, 2_000]) {
  const sized = batchesOf(INSERTS * size, 5 + size, `pi${size}`, 100_000, size)
  for (const table of ['bench_requests_nomv', 'requests']) {
    await truncateAll()
    const m = await measure(async () => {
      for (const b of sized) await wh.insertRows(table, b.rows, { dedupToken: `${table}-${b.batchId}` })
    })
    perInsert.push([
      table === 'requests' ? `requests + ${VIEWS}` : 'raw table only (no views)',
      size.toLocaleString('en-US'),
      INSERTS,
      fmt(m.cpuMs / INSERTS, 1),
      fmt((m.cpuMs * 1000) / (INSERTS * size), 1),
    ])
  }
}
const perInsertTable: Table = {
  id: 'ingest-per-insert',
  title: 'CPU per insert by insert size (embedded engine)',
  command: commandFor('ingest', args),
  columns: ['Target', 'Rows per insert', 'Inserts', 'CPU ms per insert', 'CPU µs/row'],
  rows: perInsert,
  notes: [
    'Sequential warehouse.insertRows calls, each with its own dedup token; CPU of the whole process (engine threads and background merges included).',
  ],
}

// Outage: the same kind of batches spilled, then drained by the replay worker.
const replay: {
  store: string
  rows: number
  batches: number
  inserts: number
  spillMs: number
  drainMs: number
  cpuMs: number
  note: string
}[] = []
// An outage at 2,000 req/s: the recorder cuts one batch per RECORDER_FLUSH_MS (1 s), 2,000 rows each.
const REPLAY_BATCH = 2_000
// Generated when spilled and dropped after: a heap holding millions of rows
// makes every garbage collection in the replay (JSON.parse of whole batches)
// slower, which would be charged to the replay (3x CPU per row, measured).
const replayBatches = () => batchesOf(REPLAY_ROWS, 2, 'rep', 2_000, REPLAY_BATCH)
const REPLAY_BATCHES = Math.ceil(REPLAY_ROWS / REPLAY_BATCH)
// A burst at full speed spills full batches of RECORDER_MAX_ROWS.
const bigReplayBatches = () => batchesOf(REPLAY_ROWS, 4, 'big', 100_000)
/**
 * Why the recorder spilled decides how the replay may insert (worker/replay-groups.ts):
 * a refused connection (ClickHouse down) stored nothing, so such batches are
 * merged; a timeout may have stored the batch, so it replays alone.
 */
const REFUSED = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })
const TIMED_OUT = new Error('Timeout error.')

async function drain(redisUrl: string | undefined, expected: number) {
  const worker = createReplayWorker({
    insertBatch: core.outage.insertBatch,
    spool: core.outage.spool,
    quarantine: core.outage.quarantine,
    redisUrl,
    insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
    logger: quietLogger,
    onError: core.backgroundErrors.report,
    probe: () => wh.ping(),
    pollMs: 20,
    maxGroupRows: BATCH,
  })
  const m = await measure(async () => {
    worker.start()
    while (worker.progress().rows < expected) await new Promise((r) => setTimeout(r, 20))
  })
  await worker.stop()
  return { ...m, inserts: worker.progress().inserts }
}

for (const [set, cause, why] of [
  [replayBatches, REFUSED, 'refused (ClickHouse down): merged'],
  [replayBatches, TIMED_OUT, 'timed out (may have landed): one insert each'],
  [bigReplayBatches, REFUSED, 'refused (ClickHouse down)'],
] as const) {
  await truncateAll()
  const spilled = set()
  const spill = await measure(async () => {
    for (const b of spilled) await core.outage.spool.spill(b, cause)
    await core.outage.spool.seal()
  })
  const batchRows = spilled[0]!.rows.length
  const batchCount = spilled.length
  spilled.length = 0
  const spoolBytes = (await core.outage.spool.status()).bytes
  const d = await drain(undefined, REPLAY_ROWS)
  checkCounts('replay (disk)', await counts(), REPLAY_ROWS)
  replay.push({
    store: `disk spool, ${batchRows.toLocaleString('en-US')}-row batches, ${why}`,
    rows: REPLAY_ROWS,
    batches: batchCount,
    inserts: d.inserts,
    spillMs: spill.wallMs,
    drainMs: d.wallMs,
    cpuMs: d.cpuMs,
    note: `${fmt(spoolBytes / 2 ** 20, 1)} MiB on disk`,
  })
}

const redisMemory: (string | number)[][] = []
if (redis && core.outage.redis) {
  await truncateAll()
  const info = new Redis(redis.url)
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await info.info('memory'))?.[1] ?? 0)
  const before = await usedMemory()
  const spill = await measure(async () => {
    for (const b of replayBatches()) await core.outage.redis!.spill(b, REFUSED)
  })
  const held = await usedMemory()
  const status = await core.outage.redis.status()
  redisMemory.push([
    `${REPLAY_ROWS.toLocaleString('en-US')} rows spilled (${REPLAY_BATCHES} batches)`,
    fmt((held - before) / 2 ** 20, 1),
    fmt(status.bytes / 2 ** 20, 1),
    fmt((held - before) / REPLAY_ROWS, 0),
    fmt(env.REDIS_SPILL_MAX_BYTES / 2 ** 20, 0),
  ])
  const d = await drain(redis.url, REPLAY_ROWS)
  checkCounts('replay (redis)', await counts(), REPLAY_ROWS)
  const after = await usedMemory()
  redisMemory.push([
    'after the replay drained the queue',
    fmt((after - before) / 2 ** 20, 1),
    '0.0',
    '—',
    '—',
  ])
  replay.push({
    store: `Redis (BullMQ), ${REPLAY_BATCH.toLocaleString('en-US')}-row batches, refused (ClickHouse down): merged`,
    rows: REPLAY_ROWS,
    batches: REPLAY_BATCHES,
    inserts: d.inserts,
    spillMs: spill.wallMs,
    drainMs: d.wallMs,
    cpuMs: d.cpuMs,
    note: `${fmt(status.bytes / 2 ** 20, 1)} MiB of payload in Redis`,
  })

  // A long outage in miniature: a Redis budget of a quarter of the spilled payload.
  await truncateAll()
  const budget = Math.ceil(status.bytes / 4)
  const small = createRedisSpill({
    url: redis.url,
    maxBytes: budget,
    fallback: core.outage.spool,
    onError: core.backgroundErrors.report,
  })
  const base2 = await usedMemory()
  for (const b of replayBatches()) await small.spill({ ...b, batchId: `${b.batchId}-small` }, REFUSED)
  await core.outage.spool.seal()
  const heldSmall = await usedMemory()
  const smallStatus = await small.status()
  const onDisk = (await core.outage.spool.status()).bytes
  redisMemory.push([
    `same rows, REDIS_SPILL_MAX_BYTES = ${fmt(budget / 2 ** 20, 1)} MiB: ${smallStatus.overBudgetSpills} of ${REPLAY_BATCHES} batches went to the disk spool (${fmt(onDisk / 2 ** 20, 1)} MiB)`,
    fmt((heldSmall - base2) / 2 ** 20, 1),
    fmt(smallStatus.bytes / 2 ** 20, 1),
    '—',
    fmt(budget / 2 ** 20, 1),
  ])
  await drain(redis.url, REPLAY_ROWS)
  checkCounts('replay (redis + disk)', await counts(), REPLAY_ROWS)
  await small.close()
  info.disconnect()
}

const live = ingest.find((r) => r.label.includes('(RECORDER_MAX_ROWS)'))!
const replayTable: Table = {
  id: 'replay',
  title: 'Replay drain rate after an outage (embedded engine, every rollup attached)',
  command: commandFor('ingest', args),
  columns: [
    'Spill store, why the batches were spilled',
    'Rows',
    'Batches',
    'Inserts',
    'Spill rows/s',
    'Drain s',
    'Drain rows/s',
    'CPU µs/row',
    'vs live ingest',
    'Note',
  ],
  rows: replay.map((r) => [
    r.store,
    r.rows.toLocaleString('en-US'),
    r.batches.toLocaleString('en-US'),
    r.inserts.toLocaleString('en-US'),
    fmt(r.rows / (r.spillMs / 1000), 0),
    fmt(r.drainMs / 1000, 2),
    fmt(r.rows / (r.drainMs / 1000), 0),
    fmt((r.cpuMs * 1000) / r.rows, 1),
    ratio(r.rows / r.drainMs, live.rows / live.wallMs),
    r.note,
  ]),
  notes: [
    `${REPLAY_ROWS.toLocaleString('en-US')} rows timestamped as 2,000 req/s of traffic, spilled whole per batch with the batch id (gzip'd JSON), then drained by createReplayWorker (one insert in flight per store, rows re-validated). ${REPLAY_BATCH.toLocaleString('en-US')}-row batches are what an outage at 2,000 req/s produces (one batch per RECORDER_FLUSH_MS); ${BATCH.toLocaleString('en-US')}-row batches what a burst at full speed produces.`,
    `Batches whose insert was refused are inserted together, up to RECORDER_MAX_ROWS (${BATCH.toLocaleString('en-US')}) rows per insert under one group token; a batch whose insert may have landed replays alone under its own id (worker/replay-groups.ts).`,
    `"vs live ingest" divides by the recorder row with ${BATCH.toLocaleString('en-US')}-row batches (no REDIS_URL) of the ingest table in the same run.`,
  ],
}

// Where the JS side of a batch goes (main thread, one 50,000-row batch, best of 3):
// what the recorder and the replay spend per row before ClickHouse sees a byte.
const sample = batchesOf(50_000, 3, 'cpu', 100_000).flatMap((b) => b.rows)
const sampleBatch: UsageBatch = { batchId: 'cpu', createdAt: Date.now(), rows: sample }
const best = (fn: () => unknown) => {
  let min = Number.POSITIVE_INFINITY
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now()
    fn()
    min = Math.min(min, performance.now() - t0)
  }
  return (min * 1000) / sample.length
}
const encoded = encodeBatch(sampleBatch)
const steps: [string, string, number][] = [
  ['JSONEachRow text (before)', 'live insert', best(() => sample.map((r) => JSON.stringify(r)).join('\n'))],
  ['JSONCompactEachRow text (encodeRows, now)', 'live insert, replay', best(() => encodeRows(sample))],
  [
    'row schema check (usageRowSchema.safeParse)',
    'replay (rows read back from a spill store)',
    best(() => {
      for (const r of sample) usageRowSchema.safeParse(r)
    }),
  ],
  ['spill encode (JSON + gzip)', 'outage', best(() => encodeBatch(sampleBatch))],
  ['spill decode (gunzip + JSON.parse)', 'replay', best(() => decodeBatch(encoded))],
]
const cpuTable: Table = {
  id: 'ingest-cpu',
  title: 'Where the JavaScript side of ingest goes (µs per row, main thread)',
  command: commandFor('ingest', args),
  columns: ['Step', 'Paid by', 'µs/row'],
  rows: steps.map(([a, b, us]) => [a, b, fmt(us, 2)]),
  notes: [
    'One 50,000-row batch, best of 3 runs, in the benchmark process; ClickHouse parsing, the views and merges run on engine threads and are in the CPU column of the ingest table.',
  ],
}

const tables = [ingestTable, perInsertTable, replayTable, cpuTable]
if (redisMemory.length > 0) {
  tables.push({
    id: 'memory-redis',
    title: 'Redis memory while it holds spilled batches (real redis-server)',
    command: commandFor('ingest', args),
    columns: [
      'Moment',
      'used_memory growth MiB',
      'Spilled payload MiB',
      'Bytes per row',
      'Budget MiB (REDIS_SPILL_MAX_BYTES)',
    ],
    rows: redisMemory,
    notes: [
      'Above the budget new spills go to the disk spool (bounded by SPOOL_MAX_BYTES), so Redis memory is bounded by REDIS_SPILL_MAX_BYTES plus BullMQ bookkeeping.',
    ],
  })
}
emit(tables)

await core.close()
if (redis) {
  await redis.stop()
  await (redis as unknown as AsyncDisposable)[Symbol.asyncDispose]?.()
}
rmSync(dataDir, { recursive: true, force: true })
