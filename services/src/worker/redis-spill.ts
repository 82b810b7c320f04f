import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import type { ReportError } from '../core/errors/background-errors.ts'
import { SpillRefusedError } from '../core/storage/insert-errors.ts'
import type { SpillSink } from '../core/usage/usage-recorder.ts'
import type { UsageBatch } from '../core/usage/usage-row.ts'
import { encodeBatch } from './batch-codec.ts'
import type { DiskSpool } from './disk-spool.ts'
import { insertNeverSent } from './failure-classifier.ts'

export const SPILL_QUEUE = 'tokenmeter-spill'
/** Bytes of spilled payloads currently held in Redis; the budget is checked against it. */
export const SPILL_BYTES_KEY = 'tokenmeter:spill:bytes'

/** ioredis refusing a command it never wrote (offline queue off, connection not writable). */
const NOT_SENT = /Stream isn't writeable|enableOfflineQueue/

/** What a job carries: the whole batch, gzip'd, plus what ops and the budget need without decoding it. */
const RESERVE = `
local held = redis.call('INCRBY', KEYS[1], ARGV[1])
if held > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
return 1`

export interface SpillJobData {
  batchId: string
  createdAt: number
  rows: number
  bytes: number
  /** base64 of the gzip'd batch JSON */
  payload: string
}

export interface RedisSpillStatus {
  connected: boolean
  jobs: { waiting: number; active: number; delayed: number; failed: number }
  bytes: number
  maxBytes: number
  overBudget: boolean
  overBudgetSpills: number
  failedSpills: number
  oldestAt: number | undefined
  durabilityWarnings: string[]
  lastError: string | undefined
}

export interface RedisSpill extends SpillSink {
  readonly queue: Queue
  readonly redis: Redis
  status(): Promise<RedisSpillStatus>
  /** Lists the Redis settings that put spilled batches at risk (empty when AOF is on and eviction is off). */
  checkDurability(): Promise<string[]>
  close(): Promise<void>
}

/**
 * Fail-fast ioredis options: with the offline queue off, a command while Redis
 * is down rejects at once instead of piling up in memory, and the spill falls
 * through to the disk spool.
 */
export function failFastRedis(url: string, onError: (err: Error) => void): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    // Keep reconnecting in the background, at most every 2 s.
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    lazyConnect: false,
  })
  // While Redis is away every reconnect attempt errors: the caller counts them (and logs once per 10 s).
  redis.on('error', onError)
  return redis
}

export function createRedisSpill(opts: {
  url: string
  maxBytes: number
  /**
   * Where a batch Redis does not take goes (JOURNAL=off: the disk spool).
   * Without one (the journal is the local store), spill() rejects with
   * SpillRefusedError when Redis certainly holds no copy.
   */
  fallback?: DiskSpool
  /** Connection and housekeeping failures: logged and counted (core/errors/background-errors.ts). */
  onError: ReportError
}): RedisSpill {
  const report = opts.onError
  const redis = failFastRedis(opts.url, (err) => report('redis_spill_connection', err))
  const queue = new Queue(SPILL_QUEUE, { connection: redis })
  // Connection errors also surface as failed spills (counted there); this keeps their cause visible.
  queue.on('error', (err) => report('redis_spill_queue', err))
  let overBudgetSpills = 0
  let failedSpills = 0
  let lastError: string | undefined
  let durabilityWarnings: string[] = []

  async function checkDurability(): Promise<string[]> {
    const warnings: string[] = []
    const info = await redis.info()
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim()
    if (field('aof_enabled') !== '1') {
      warnings.push('Redis runs without AOF (appendonly no): spilled batches are lost if Redis restarts')
    }
    const policy = field('maxmemory_policy')
    if (policy && policy !== 'noeviction') {
      warnings.push(`Redis maxmemory-policy is ${policy}: it may evict spilled batches; set noeviction`)
    }
    durabilityWarnings = warnings
    return warnings
  }

  return {
    queue,
    redis,
    checkDurability,
    async spill(batch: UsageBatch, cause: unknown) {
      const payload = encodeBatch(batch, { mergeable: insertNeverSent(cause) })
      let reserved = false
      try {
        // Reserve the bytes atomically: concurrent spills must not all see room.
        reserved = (await redis.eval(RESERVE, 1, SPILL_BYTES_KEY, payload.length, opts.maxBytes)) === 1
        if (reserved) {
          const data: SpillJobData = {
            batchId: batch.batchId,
            createdAt: batch.createdAt,
            rows: batch.rows.length,
            bytes: payload.length,
            payload: payload.toString('base64'),
          }
          await queue.add('batch', data, {
            jobId: batch.batchId,
            removeOnComplete: true,
            removeOnFail: false,
            // ClickHouse being away costs no attempt (the worker waits with the
            // job active); attempts only count unexpected errors.
            attempts: 1_000,
            backoff: { type: 'fixed', delay: 5_000 },
          })
          return
        }
        overBudgetSpills++
        lastError = `over budget: ${opts.maxBytes} bytes of spilled batches held (REDIS_SPILL_MAX_BYTES)`
      } catch (err) {
        failedSpills++
        lastError = `redis unavailable: ${(err as Error).message}`
        // An add that was sent may have landed (a timeout, a connection lost
        // before the reply). A copy on disk too could then be replayed in two
        // different merged groups (worker/replay-groups.ts): counted twice. So
        // the batch stays with the recorder, which spills it again next flush:
        // to Redis, where the same job id makes a repeated add a no-op, or to
        // disk once Redis refuses outright.
        if (reserved && !NOT_SENT.test((err as Error).message)) throw err
        // A leaked reservation only overstates usage until the queue drains; still reported.
        if (reserved)
          await redis
            .decrby(SPILL_BYTES_KEY, payload.length)
            .catch((e) => report('redis_spill_reservation', e, { batchId: batch.batchId }))
      }
      if (!opts.fallback) throw new SpillRefusedError(lastError ?? 'redis did not take the batch')
      await opts.fallback.spill(batch, cause)
    },
    async status() {
      const connected = redis.status === 'ready'
      if (!connected) {
        return {
          connected,
          jobs: { waiting: 0, active: 0, delayed: 0, failed: 0 },
          bytes: 0,
          maxBytes: opts.maxBytes,
          overBudget: false,
          overBudgetSpills,
          failedSpills,
          oldestAt: undefined,
          durabilityWarnings,
          lastError,
        }
      }
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized')
      const waiting = (c.waiting ?? 0) + (c.prioritized ?? 0)
      let bytes = Number((await redis.get(SPILL_BYTES_KEY)) ?? 0)
      if (waiting + (c.active ?? 0) + (c.delayed ?? 0) === 0 && bytes !== 0) {
        await redis.set(SPILL_BYTES_KEY, 0)
        bytes = 0
      }
      // Either end of each list may be the oldest depending on the state's
      // ordering; reading both ends is cheap and needs no knowledge of it.
      let oldestAt: number | undefined
      for (const state of ['active', 'wait', 'delayed', 'prioritized'] as const) {
        for (const asc of [true, false]) {
          const [job] = await queue.getJobs([state], 0, 0, asc)
          const t = (job?.data as SpillJobData | undefined)?.createdAt
          if (t !== undefined && (oldestAt === undefined || t < oldestAt)) oldestAt = t
        }
      }
      return {
        connected,
        jobs: { waiting, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 },
        bytes,
        maxBytes: opts.maxBytes,
        overBudget: bytes >= opts.maxBytes,
        overBudgetSpills,
        failedSpills,
        oldestAt,
        durabilityWarnings,
        lastError,
      }
    },
    async close() {
      await queue.close().catch((e) => report('redis_spill_close', e))
      redis.disconnect()
    },
  }
}
