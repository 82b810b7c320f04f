import { rm } from 'node:fs/promises'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { type Queue, Worker } from 'bullmq'
import type { Logger } from 'pino'
import type { ReportError } from '../core/errors/background-errors.ts'
import { readFileIfPresent } from '../core/storage/local-files.ts'
import { type SegmentRecord, scanSegment } from '../core/storage/record-framing.ts'
import { type DecodedBatch, decodeBatch, UndecodableBatchError } from './batch-codec.ts'
import { type BatchInserter, TransientInsertError } from './batch-inserter.ts'
import {
  ackPath,
  type DiskSpool,
  intentPath,
  lockSegment,
  readAck,
  readGroupIntent,
  type SegmentInfo,
  unlockSegment,
  writeAck,
  writeGroupIntent,
} from './disk-spool.ts'
import type { QuarantineStore } from './quarantine-store.ts'
import { startRedisReplay } from './redis-replay.ts'
import { canJoin, mergeBatches, tokenOf } from './replay-groups.ts'
import { idleStoreProgress, ReplayLoop, type StoreProgress } from './replay-loop.ts'

export interface ReplayProgress {
  state: 'idle' | 'replaying' | 'backing-off' | 'stopped'
  startedAt: number | undefined
  batches: number
  /** ClickHouse inserts that carried them: fewer than batches when runs of batches were merged. */
  inserts: number
  rows: number
  quarantinedRows: number
  corruptSegments: number
  /** Rows replayed per second over the last 10 s. */
  rowsPerSecond: number
  backoffMs: number
  lastError: string | undefined
  lastBatchAt: number | undefined
  /** Each store's own loop; the fields above sum them (backoffMs: the longer one). */
  stores: { disk: StoreProgress; redis: StoreProgress }
}

/** Progress of a worker that has not replayed anything (or does not run in this process). */
export function stoppedProgress(): ReplayProgress {
  return {
    state: 'stopped',
    startedAt: undefined,
    batches: 0,
    inserts: 0,
    rows: 0,
    quarantinedRows: 0,
    corruptSegments: 0,
    rowsPerSecond: 0,
    backoffMs: 0,
    lastError: undefined,
    lastBatchAt: undefined,
    stores: { disk: idleStoreProgress(), redis: idleStoreProgress() },
  }
}

export interface ReplayWorker {
  start(): void
  /** Skips any backoff and looks for work now (ops "replay now"). */
  wake(): void
  progress(): ReplayProgress
  stop(): Promise<void>
}

export interface ReplayWorkerOptions {
  insertBatch: BatchInserter
  spool: DiskSpool
  quarantine: QuarantineStore
  redisUrl?: string
  insertTimeoutMs: number
  logger: Logger
  /** Redis replay connection failures: logged and counted (core/errors/background-errors.ts). */
  onError: ReportError
  /** Whether ClickHouse answers (never throws: Warehouse.ping); lets a backoff end as soon as it is back. */
  probe: () => Promise<boolean>
  pollMs?: number
  maxBackoffMs?: number
  /** Most rows per insert when spilled batches are replayed together (RECORDER_MAX_ROWS). */
  maxGroupRows?: number
}

/**
 * Drains the Redis queue and the disk spool into ClickHouse, each oldest
 * first, one insert in flight per store: replay runs as fast as ClickHouse
 * acknowledges, and live inserts always get the rest of its capacity.
 *
 * Exactly once: a batch is acknowledged (job completed, spool offset
 * advanced) only after ClickHouse acknowledged its insert, and every insert
 * carries the batch id as its dedup token. A worker killed anywhere in
 * between makes the batch replay again, and ClickHouse drops the repeat in
 * the raw table and in every rollup.
 */
export function createReplayWorker(opts: ReplayWorkerOptions): ReplayWorker {
  const pollMs = opts.pollMs ?? 500
  const maxBackoffMs = opts.maxBackoffMs ?? 10_000
  const maxGroupRows = opts.maxGroupRows ?? 50_000
  // The insert must give up well before the lock does, or a second worker
  // could take the job over while the first one's insert is still running.
  const lockDuration = Math.max(2 * opts.insertTimeoutMs + 1_000, 2_000)
  // Aborted while stopped; each start gets a fresh one, and each store its own loop state.
  let stopping = new AbortController()
  stopping.abort()
  let disk = new ReplayLoop(stopping.signal, maxBackoffMs)
  let redis = new ReplayLoop(stopping.signal, maxBackoffMs)
  let spoolLoop: Promise<void> | undefined
  let redisReplay: ReturnType<typeof startRedisReplay> | undefined
  const recent: { at: number; rows: number }[] = []
  let spoolError: unknown
  let corruptSegments = 0
  let startedAt: number | undefined

  function done(loop: ReplayLoop, rows: number, quarantined: number, batches: number) {
    const now = Date.now()
    loop.done(rows, quarantined, batches, now)
    startedAt ??= now
    recent.push({ at: now, rows })
  }

  async function answers(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 1_000)
    })
    const ok = await Promise.race([opts.probe(), timeout])
    clearTimeout(timer)
    return ok
  }

  /**
   * Waits out a backoff. When ClickHouse did not answer at all, the wait ends
   * as soon as it answers again (probed twice a second), so a replay starts
   * within a second of the outage's end; when it answered but refused
   * (overload: too many parts, memory), the whole backoff is honoured.
   */
  async function pause(loop: ReplayLoop, ms: number): Promise<void> {
    const down = !(await answers())
    const until = Date.now() + ms
    while (!loop.stopped && Date.now() < until) {
      const woken = await loop.sleep(Math.min(500, until - Date.now()))
      if (woken) return
      if (down && (await answers())) return
    }
  }

  /** One insert of a group (or a single batch); returns the transient error when ClickHouse did not take it. */
  async function insertGroup(
    loop: ReplayLoop,
    members: DecodedBatch[],
  ): Promise<TransientInsertError | undefined> {
    try {
      const out = await opts.insertBatch(mergeBatches(members))
      done(loop, out.inserted, out.quarantined, members.length)
      return undefined
    } catch (err) {
      if (err instanceof TransientInsertError) return err
      throw err
    }
  }

  /**
   * Replays a sealed segment from its ack, oldest record first, runs of
   * mergeable batches as one insert (replay-groups.ts). A group's range and
   * token are recorded (fsynced) before its insert and redone as recorded
   * while the ack has not passed it. Returns false when ClickHouse is
   * unavailable and the loop should back off.
   */
  async function replaySegment(seg: SegmentInfo): Promise<boolean> {
    // Gone: another worker finished it since the listing.
    const buf = await readFileIfPresent(seg.path)
    if (!buf) return true
    const from = await readAck(seg.path)
    const intent = await readGroupIntent(seg.path)
    const { records, problems } = scanSegment(buf)
    const undecodable: { offset: number; reason: string }[] = []
    const decode = (r: SegmentRecord): DecodedBatch | undefined => {
      try {
        return decodeBatch(r.payload)
      } catch (err) {
        if (!(err instanceof UndecodableBatchError)) throw err
        undecodable.push({ offset: r.offset, reason: err.message })
        return undefined
      }
    }
    let i = records.findIndex((r) => r.offset >= from)
    if (i < 0) i = records.length
    /** The next group from record i on: the recorded one if it starts there, else as many as may join. */
    const nextGroup = () => {
      const start = records[i]!.offset
      const members: DecodedBatch[] = []
      let rows = 0
      let end = start
      const recorded = intent?.from === start ? intent : undefined
      for (; i < records.length; i++) {
        // A recorded range is taken again exactly (undecodable records in it were skipped then too).
        if (recorded && records[i]!.offset >= recorded.to) break
        const batch = decode(records[i]!)
        if (!recorded && batch && !canJoin(members, rows, batch, maxGroupRows)) break
        if (batch) {
          members.push(batch)
          rows += batch.rows.length
        }
        end = records[i]!.end
      }
      return { start, end, members, recorded: recorded !== undefined }
    }
    let next = i < records.length ? nextGroup() : undefined
    while (next) {
      if (disk.stopped) return true
      const group = next
      // Every insert of mergeable batches is recorded, a group of one too (a
      // batch inserted alone and then grouped after a crash would land under
      // two tokens); a new intent only after the previous durable ack.
      const mergeable = group.members[0]?.mergeable === true
      if (!group.recorded && mergeable) {
        await writeGroupIntent(seg.path, { from: group.start, to: group.end, token: tokenOf(group.members) })
      }
      const inserting =
        group.members.length > 0 ? insertGroup(disk, group.members) : Promise.resolve(undefined)
      // Decode the next group while ClickHouse works on this one.
      next = i < records.length ? nextGroup() : undefined
      const unavailable = await inserting
      if (unavailable) {
        spoolError = unavailable
        return false
      }
      await writeAck(seg.path, group.end, { durable: mergeable || group.recorded })
      await yieldToLoop()
    }
    if (problems.length > 0 || undecodable.length > 0) {
      // Intact records before and after the damage were replayed above; the
      // file itself is kept for forensics and reported, never retried in a loop.
      corruptSegments++
      const reason =
        problems.length > 0
          ? `damaged segment: ${problems.map((x) => `${x.kind} at byte ${x.offset} (${x.skipped} bytes skipped)`).join('; ')}`
          : `undecodable record(s): ${undecodable[0]!.reason}`
      opts.logger.error({ segment: seg.name, reason }, 'spool segment quarantined')
      await opts.quarantine.putSegment(seg.path, {
        id: seg.name.replace(/\.seg$/, ''),
        batchId: '',
        reason,
        rowCount: 0,
        problems: [...problems, ...undecodable],
      })
    } else {
      await rm(seg.path, { force: true })
    }
    await rm(ackPath(seg.path), { force: true })
    await rm(intentPath(seg.path), { force: true })
    return true
  }

  async function runSpool() {
    while (!disk.stopped) {
      let progressed = false
      let unavailable = false
      try {
        for (const seg of await opts.spool.sealedSegments()) {
          if (disk.stopped) break
          if (!(await lockSegment(seg.path))) continue
          try {
            const before = disk.progress.batches
            if (!(await replaySegment(seg))) {
              unavailable = true
              break
            }
            progressed ||= disk.progress.batches > before
          } finally {
            await unlockSegment(seg.path)
          }
        }
      } catch (err) {
        opts.logger.error({ err: String(err) }, 'spool replay failed')
        spoolError = err
        unavailable = true
      }
      if (unavailable) {
        await pause(disk, disk.failed(spoolError))
        continue
      }
      if (!progressed && disk.progress.state !== 'stopped') disk.progress.state = 'idle'
      if (!progressed) await disk.sleep(pollMs)
    }
  }

  /**
   * Inserts members as one insert, waiting out ClickHouse outages: the jobs
   * stay active (their locks renewed) meanwhile, as the oldest ones, which
   * every other job would fail behind. On stop they go back to the wait list
   * without spending an attempt.
   */
  async function insertPatiently(members: DecodedBatch[], queue: Queue): Promise<void> {
    for (let err = await insertGroup(redis, members); err; err = await insertGroup(redis, members)) {
      await pause(redis, redis.failed(err))
      if (redis.stopped) {
        await queue.rateLimit(100)
        throw Worker.RateLimitError()
      }
    }
  }

  return {
    start() {
      if (!stopping.signal.aborted) return
      stopping = new AbortController()
      disk = new ReplayLoop(stopping.signal, maxBackoffMs)
      redis = new ReplayLoop(stopping.signal, maxBackoffMs)
      if (!opts.redisUrl) redis.progress.state = 'stopped'
      spoolLoop = runSpool()
      if (opts.redisUrl) {
        redisReplay = startRedisReplay({
          url: opts.redisUrl,
          quarantine: opts.quarantine,
          maxGroupRows,
          lockDuration,
          onError: opts.onError,
          insert: insertPatiently,
        })
      }
    },
    wake() {
      disk.wake()
      redis.wake()
    },
    progress() {
      const cutoff = Date.now() - 10_000
      while (recent.length > 0 && recent[0]!.at < cutoff) recent.shift()
      const quietMs = Math.max(2 * pollMs, 1_000)
      const stores = { disk: disk.snapshot(quietMs), redis: redis.snapshot(quietMs) }
      const both = [stores.disk, stores.redis]
      const sum = (k: 'batches' | 'inserts' | 'rows' | 'quarantinedRows') => both[0]![k] + both[1]![k]
      const states = both.map((x) => x.state)
      const latest = both.reduce((a, b) => ((b.lastBatchAt ?? 0) > (a.lastBatchAt ?? 0) ? b : a))
      return {
        state: stopping.signal.aborted
          ? 'stopped'
          : states.includes('backing-off')
            ? 'backing-off'
            : states.includes('replaying')
              ? 'replaying'
              : 'idle',
        startedAt,
        batches: sum('batches'),
        inserts: sum('inserts'),
        rows: sum('rows'),
        quarantinedRows: sum('quarantinedRows'),
        corruptSegments,
        rowsPerSecond: Math.round(recent.reduce((n, r) => n + r.rows, 0) / 10),
        backoffMs: Math.max(stores.disk.backoffMs, stores.redis.backoffMs),
        lastError:
          (both.find((x) => x.state === 'backing-off') ?? latest).lastError ??
          stores.disk.lastError ??
          stores.redis.lastError,
        lastBatchAt: latest.lastBatchAt,
        stores,
      }
    },
    async stop() {
      stopping.abort()
      disk.progress.state = 'stopped'
      redis.progress.state = 'stopped'
      await redisReplay?.close()
      redisReplay = undefined
      await spoolLoop
    },
  }
}
