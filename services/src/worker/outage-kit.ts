import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Env } from '../core/config/env.ts'
import type { ReportError } from '../core/errors/background-errors.ts'
import { readFileIfPresent } from '../core/storage/local-files.ts'
import { scanSegment } from '../core/storage/record-framing.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import { drainableSegments, type JournalStatus } from '../core/usage/usage-journal.ts'
import type { SpillSink } from '../core/usage/usage-recorder.ts'
import { type DecodedBatch, decodeBatch, UndecodableBatchError } from './batch-codec.ts'
import { type BatchInserter, createBatchInserter } from './batch-inserter.ts'
import { createDiskSpool, type DiskSpool, readAck, type SpoolStatus } from './disk-spool.ts'
import type { RecoveryProgress } from './journal-recovery.ts'
import { peekJournalSegment, readJournalSegment } from './journal-segment-reader.ts'
import { createQuarantineStore, type QuarantineStore } from './quarantine-store.ts'
import { createRedisSpill, type RedisSpill, type RedisSpillStatus, type SpillJobData } from './redis-spill.ts'
import {
  createReplayWorker,
  type ReplayProgress,
  type ReplayWorker,
  stoppedProgress,
} from './replay.worker.ts'

export interface SpilledBatch {
  batchId: string
  /** `journal`: parked in the journal (or left there by a crash), delivered by its drainer. */
  store: 'redis' | 'disk' | 'journal'
  createdAt: number
  rows: number
  bytes: number
  /** Redis job state, the spool segment, or the journal segment holding the batch. */
  location: string
}

/** The write-ahead journal as ops see it (core/usage/usage-journal.ts, worker/journal-recovery.ts). */
export type OpsJournalStatus = JournalStatus & {
  oldestAgeSeconds: number | undefined
  recovery: RecoveryProgress
}

export interface OpsStatus {
  mode: 'redis+disk' | 'disk'
  /** Undefined with JOURNAL=off. */
  journal: OpsJournalStatus | undefined
  clickhouse: { reachable: boolean }
  redis: (RedisSpillStatus & { oldestAgeSeconds: number | undefined }) | undefined
  disk: SpoolStatus & { batches: number; oldestAgeSeconds: number | undefined }
  replay: ReplayProgress & { runsHere: boolean }
  quarantine: { entries: number; rows: number }
  rowsDropped: number
  policies: { redisOverBudget: string; spoolFull: string; corruptSegment: string }
}

/**
 * Everything that keeps usage through an outage, built once per process:
 * the spill sink the recorder uses (Redis when configured, the disk spool
 * behind it), the batch inserter (classification + quarantine), the replay
 * worker when this process has the 'worker' role (bootstrap.ts starts it),
 * and the ops operations
 * the admin API and CLI drive.
 */
export interface OutageKit {
  sink: SpillSink
  insertBatch: BatchInserter
  spool: DiskSpool
  redis: RedisSpill | undefined
  quarantine: QuarantineStore
  worker: ReplayWorker | undefined
  /** Rows that left our custody without reaching ClickHouse or the quarantine; must stay 0. */
  rowsDropped: { value: number }
  status(): Promise<OpsStatus>
  listBatches(limit?: number): Promise<SpilledBatch[]>
  inspect(batchId: string): Promise<(SpilledBatch & { rowsData: unknown[] }) | undefined>
  replayNow(): Promise<void>
  retryQuarantined(id: string): Promise<{ inserted: number; quarantined: number }>
  stopWorker(): Promise<void>
  close(): Promise<void>
}

export const POLICIES = {
  redisOverBudget:
    'Above REDIS_SPILL_MAX_BYTES of spilled payload in Redis, new spills go to the disk spool; nothing is evicted.',
  spoolFull:
    'At JOURNAL_MAX_BYTES (SPOOL_MAX_BYTES with JOURNAL=off) or ENOSPC the journal (the spool) refuses new rows; the recorder keeps them in memory and retries every flush. Rows are lost only if the process then dies.',
  corruptSegment:
    'A damaged spool segment is replayed up to and past the damage (crc-checked records only), then moved to the quarantine with the byte ranges skipped.',
}

export async function createOutageKit(deps: {
  env: Env
  warehouse: Warehouse
  logger: Logger
  /** Failures of background housekeeping (Redis spill/replay): logged and counted. */
  onBackgroundError: ReportError
  runWorker: boolean
  /** The journal's status, once Core has built it (it needs this kit's inserter and sinks). */
  journalStatus?: () => { status: JournalStatus; recovery: RecoveryProgress } | undefined
  /** Ops "replay now" reaches the journal's drainer too. */
  wakeJournal?: () => void
}): Promise<OutageKit> {
  const { env, warehouse, logger } = deps
  const quarantine = await createQuarantineStore(join(env.DATA_DIR, 'quarantine'), logger)
  const spool = createDiskSpool({ dir: join(env.DATA_DIR, 'spool'), maxBytes: env.SPOOL_MAX_BYTES, logger })
  const redis = env.REDIS_URL
    ? createRedisSpill({
        url: env.REDIS_URL,
        maxBytes: env.REDIS_SPILL_MAX_BYTES,
        // With the journal on, a batch Redis does not take stays in the journal (one local durable log).
        fallback: env.JOURNAL === 'on' ? undefined : spool,
        onError: deps.onBackgroundError,
      })
    : undefined
  if (redis) {
    // Warn, don't refuse: a dev Redis without AOF still beats no spill path.
    const check = async () => {
      for (const w of await redis.checkDurability()) logger.warn({ redis: 'durability' }, `WARNING: ${w}`)
    }
    await new Promise<void>((resolve) => {
      if (redis.redis.status === 'ready') return resolve()
      redis.redis.once('ready', () => resolve())
      setTimeout(resolve, 2_000).unref()
    })
    await check().catch((err) =>
      logger.warn({ err: String(err) }, 'WARNING: could not check Redis durability settings (Redis down?)'),
    )
  }
  const insertBatch = createBatchInserter({
    warehouse,
    quarantine,
    timeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
  })
  const worker = deps.runWorker
    ? createReplayWorker({
        insertBatch,
        spool,
        quarantine,
        redisUrl: env.REDIS_URL,
        insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
        logger,
        onError: deps.onBackgroundError,
        probe: () => warehouse.ping(),
        maxGroupRows: env.RECORDER_MAX_ROWS,
      })
    : undefined
  const rowsDropped = { value: 0 }
  const sink: SpillSink = redis ?? spool
  const segmentBatchCounts = new Map<string, number>()

  /**
   * A spooled batch, or undefined for a damaged record: the replay quarantines
   * and reports those (replay.worker.ts); listing them is not the place.
   */
  function decodeListed(payload: Buffer): DecodedBatch | undefined {
    try {
      return decodeBatch(payload)
    } catch (err) {
      if (err instanceof UndecodableBatchError) return undefined
      throw err
    }
  }

  async function spoolBatches(limit: number): Promise<SpilledBatch[]> {
    const out: SpilledBatch[] = []
    for (const seg of await spool.sealedSegments()) {
      // Gone since the listing: replayed and deleted.
      const buf = await readFileIfPresent(seg.path)
      if (!buf) continue
      const from = await readAck(seg.path)
      for (const r of scanSegment(buf).records) {
        if (r.offset < from) continue
        if (out.length >= limit) return out
        const b = decodeListed(r.payload)
        if (!b) continue
        out.push({
          batchId: b.batchId,
          store: 'disk',
          createdAt: b.createdAt,
          rows: b.rows.length,
          bytes: r.end - r.offset,
          location: seg.name,
        })
      }
    }
    return out
  }

  async function countSpoolBatches(): Promise<number> {
    let n = 0
    const seen = new Set<string>()
    for (const seg of await spool.sealedSegments()) {
      const key = `${seg.name}:${seg.bytes}`
      seen.add(key)
      let count = segmentBatchCounts.get(key)
      if (count === undefined) {
        const buf = (await readFileIfPresent(seg.path)) ?? Buffer.alloc(0)
        count = scanSegment(buf).records.length
        segmentBatchCounts.set(key, count)
      }
      const from = await readAck(seg.path)
      if (from > 0) {
        const buf = (await readFileIfPresent(seg.path)) ?? Buffer.alloc(0)
        count = scanSegment(buf).records.filter((r) => r.offset >= from).length
      }
      n += count
    }
    for (const k of segmentBatchCounts.keys()) if (!seen.has(k)) segmentBatchCounts.delete(k)
    return n
  }

  const journalDir = env.JOURNAL === 'on' ? join(env.DATA_DIR, 'journal') : undefined

  /** Batches the journal holds for its drainer (parked during an outage, or left by a crash). */
  function journalBatches(limit: number, only?: string) {
    const out: (SpilledBatch & { rowsData?: unknown[] })[] = []
    if (!journalDir) return out
    for (const seg of drainableSegments(journalDir)) {
      if (out.length >= limit) break
      try {
        const peek = peekJournalSegment(seg.path, seg.id)
        if (only !== undefined && peek.token !== only) continue
        out.push({
          batchId: peek.token,
          store: 'journal',
          createdAt: seg.createdAt,
          rows: peek.rows,
          bytes: seg.bytes,
          location: seg.name,
          ...(only !== undefined
            ? { rowsData: readJournalSegment(seg.path, seg.id, { truncate: false }).rows }
            : {}),
        })
      } catch (err) {
        // Gone meanwhile (delivered), or unreadable: the drainer reports the latter.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          logger.warn({ err: String(err), segment: seg.name }, 'ops: could not read a journal segment')
      }
    }
    return out
  }

  const age = (t: number | undefined) => (t === undefined ? undefined : Math.max(0, (Date.now() - t) / 1000))

  const kit: OutageKit = {
    sink,
    insertBatch,
    spool,
    redis,
    quarantine,
    worker,
    rowsDropped,
    async status() {
      const [reachable, r, d, batches] = await Promise.all([
        warehouse.ping(),
        // Shown as no Redis section rather than failing the whole status; the cause is logged and counted.
        redis?.status().catch((err) => void deps.onBackgroundError('ops_status_redis', err)),
        spool.status(),
        countSpoolBatches(),
      ])
      const progress = worker?.progress()
      const j = deps.journalStatus?.()
      return {
        mode: redis ? 'redis+disk' : 'disk',
        journal: j
          ? { ...j.status, oldestAgeSeconds: age(j.status.oldestAt), recovery: j.recovery }
          : undefined,
        clickhouse: { reachable },
        redis: r ? { ...r, oldestAgeSeconds: age(r.oldestAt) } : undefined,
        disk: { ...d, batches, oldestAgeSeconds: age(d.oldestAt) },
        replay: {
          ...(progress ?? stoppedProgress()),
          runsHere: worker !== undefined,
        },
        quarantine: quarantine.count(),
        rowsDropped: rowsDropped.value,
        policies: POLICIES,
      }
    },
    async listBatches(limit = 100) {
      const out: SpilledBatch[] = []
      if (redis && redis.redis.status === 'ready') {
        const jobs = await redis.queue.getJobs(
          ['active', 'wait', 'delayed', 'prioritized', 'failed'],
          0,
          limit - 1,
          true,
        )
        for (const job of jobs) {
          const d = job.data as SpillJobData
          out.push({
            batchId: d.batchId,
            store: 'redis',
            createdAt: d.createdAt,
            rows: d.rows,
            bytes: d.bytes,
            location: (await job.getState()) as string,
          })
        }
      }
      out.push(...(await spoolBatches(limit)))
      out.push(...journalBatches(limit))
      return out.sort((a, b) => a.createdAt - b.createdAt).slice(0, limit)
    },
    async inspect(batchId) {
      if (redis && redis.redis.status === 'ready') {
        const job = await redis.queue.getJob(batchId)
        if (job) {
          const d = job.data as SpillJobData
          const b = decodeBatch(Buffer.from(d.payload, 'base64'))
          return {
            batchId,
            store: 'redis',
            createdAt: d.createdAt,
            rows: d.rows,
            bytes: d.bytes,
            location: (await job.getState()) as string,
            rowsData: b.rows,
          }
        }
      }
      const [parked] = journalBatches(1, batchId)
      if (parked) return { ...parked, rowsData: parked.rowsData ?? [] }
      for (const seg of await spool.sealedSegments()) {
        const buf = await readFileIfPresent(seg.path)
        if (!buf) continue
        for (const r of scanSegment(buf).records) {
          const b = decodeListed(r.payload)
          if (b?.batchId !== batchId) continue
          return {
            batchId,
            store: 'disk',
            createdAt: b.createdAt,
            rows: b.rows.length,
            bytes: r.end - r.offset,
            location: seg.name,
            rowsData: b.rows,
          }
        }
      }
      return undefined
    },
    async replayNow() {
      await spool.seal()
      if (redis && redis.redis.status === 'ready') {
        // The wake below still ends any backoff; only the queue's own rate limit stays.
        await redis.queue
          .removeRateLimitKey()
          .catch((err) => deps.onBackgroundError('replay_now_rate_limit', err))
      }
      worker?.wake()
      deps.wakeJournal?.()
    },
    async retryQuarantined(id) {
      const entry = await quarantine.get(id)
      if (!entry) throw new Error('not found')
      if (entry.kind !== 'rows') throw new Error('segment')
      const retries = ((entry as { retries?: number }).retries ?? 0) + 1
      // A fresh token per retry: the original batch id already names the rows
      // that landed, reusing it would make ClickHouse drop these as repeats.
      const rows = (entry.rows ?? []).map((r) => (r as { row?: unknown }).row ?? r)
      const out = await createBatchInserter({
        warehouse,
        quarantine: {
          ...quarantine,
          put: (e) => quarantine.put({ ...e, id, batchId: entry.batchId, retries } as never),
        },
        timeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
      })({ batchId: `${entry.batchId || id}-q${retries}`, createdAt: Date.now(), rows })
      if (out.quarantined === 0) await quarantine.remove(id)
      return out
    },
    async stopWorker() {
      await worker?.stop()
    },
    async close() {
      await worker?.stop()
      await spool.close()
      await redis?.close()
    },
  }
  return kit
}
