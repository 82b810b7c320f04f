import { type Job, Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { ReportError } from '../core/errors/background-errors.ts'
import { type DecodedBatch, decodeBatch, UndecodableBatchError } from './batch-codec.ts'
import type { QuarantineStore } from './quarantine-store.ts'
import { SPILL_BYTES_KEY, SPILL_QUEUE, type SpillJobData } from './redis-spill.ts'
import { canJoin, mergeBatches, tokenOf } from './replay-groups.ts'

/** Field on a job's hash naming the group its batch was inserted with (BullMQ ignores it). */
export const GROUP_FIELD = 'tokenmeterGroup'
/**
 * A group whose insert may have been sent, kept until it is acknowledged: the
 * members' payloads as spilled (JSON array of base64 strings), so recording a
 * group costs no re-compression.
 */
export const groupKey = (token: string) => `tokenmeter:replay:group:${token}`
/** Safety net for a group record orphaned by a crash before any job was marked with it. */
const GROUP_TTL_S = 7 * 86_400
/** Jobs held at once: enough to fill the next group while one is being inserted. */
const CONCURRENCY = 32
/** How long a group that is not full waits for more jobs when nothing else is being inserted. */
const COLLECT_MS = 20

export interface RedisReplayOptions {
  url: string
  quarantine: QuarantineStore
  maxGroupRows: number
  lockDuration: number
  /** Connection, worker and close failures: logged and counted (core/errors/background-errors.ts). */
  onError: ReportError
  /**
   * Inserts the members as one insert (their merged rows and group token),
   * waiting out ClickHouse outages; throws to give the jobs back (on stop).
   */
  insert(members: DecodedBatch[], queue: Queue): Promise<void>
}

interface Member {
  batch: DecodedBatch
  job: Job<SpillJobData>
  /** Set when redoing a group recorded by an earlier attempt: its record is removed once inserted. */
  redoOf?: string
  settle(err?: unknown): void
}

/**
 * Drains the BullMQ spill queue into ClickHouse, runs of mergeable batches as
 * one insert (replay-groups.ts), one insert in flight.
 *
 * Before a group's insert, one Redis transaction stores the group's rows and
 * marks each member job with the group token. A marked job that comes back
 * (its worker died, or completing it failed) redoes exactly that group from the
 * stored rows, under the same token, so ClickHouse drops it if it landed. The
 * stored rows are deleted only after the group's insert succeeded, so a marked
 * job whose group record is gone is already in ClickHouse and just completes.
 */
export function startRedisReplay(opts: RedisReplayOptions) {
  const redis = new Redis(opts.url, { maxRetriesPerRequest: null, enableOfflineQueue: true })
  // While Redis is away every reconnect attempt errors: counted, logged once per 10 s.
  redis.on('error', (err) => opts.onError('redis_replay_connection', err))
  const blocking = redis.duplicate()
  blocking.on('error', (err) => opts.onError('redis_replay_connection', err))
  const queue = new Queue(SPILL_QUEUE, { connection: redis })
  queue.on('error', (err) => opts.onError('redis_replay_queue', err))

  let open: Member[] = []
  let openRows = 0
  const ready: Member[][] = []
  let inserting = false
  let collectTimer: NodeJS.Timeout | undefined
  const roomWaiters: (() => void)[] = []

  const heldRows = () =>
    openRows + ready.reduce((n, g) => n + g.reduce((k, m) => k + m.batch.rows.length, 0), 0)

  function seal() {
    if (open.length > 0) ready.push(open)
    open = []
    openRows = 0
  }

  function join(member: Member) {
    const batches = open.map((m) => m.batch)
    if (!canJoin(batches, openRows, member.batch, opts.maxGroupRows)) seal()
    open.push(member)
    openRows += member.batch.rows.length
    if (!member.batch.mergeable || openRows >= opts.maxGroupRows) seal()
    kick()
  }

  function kick() {
    if (inserting) return
    if (ready.length === 0 && open.length > 0) {
      // Nothing being inserted: give a burst of jobs a moment to join, then go.
      collectTimer ??= setTimeout(() => {
        collectTimer = undefined
        seal()
        kick()
      }, COLLECT_MS)
      return
    }
    const group = ready.shift()
    if (!group) return
    inserting = true
    void insertGroup(group).finally(() => {
      inserting = false
      for (const wake of roomWaiters.splice(0)) wake()
      kick()
    })
  }

  async function insertGroup(members: Member[]) {
    try {
      // Every insert of mergeable batches is recorded, a group of one too: a
      // batch inserted alone under its id and then merged after a crash
      // would land under two tokens.
      const batches = members.map((m) => m.batch)
      const token = batches[0]!.mergeable ? tokenOf(batches) : undefined
      if (token) {
        const payloads = JSON.stringify(members.map((m) => m.job.data.payload))
        const tx = redis.multi().set(groupKey(token), payloads, 'EX', GROUP_TTL_S)
        for (const m of members) tx.hset(queue.toKey(String(m.job.id)), GROUP_FIELD, token)
        const results = await tx.exec()
        const failed = results?.find(([err]) => err)
        if (!results || failed) throw failed?.[0] ?? new Error('group record transaction aborted')
      }
      await opts.insert(batches, queue)
      // Recorded groups (new or redone) are deleted only now that they landed.
      const recorded = token ?? members[0]?.redoOf
      if (recorded) await redis.del(groupKey(recorded))
      for (const m of members) m.settle()
    } catch (err) {
      for (const m of members) m.settle(err)
    }
  }

  /** Waits while two groups' worth of rows are already held (memory stays bounded). */
  async function room() {
    while (heldRows() >= 2 * opts.maxGroupRows) await new Promise<void>((r) => roomWaiters.push(r))
  }

  /** The group's rows again, as one batch under its token (never joins another group). */
  function recordedGroup(token: string, stored: string): DecodedBatch {
    const members = (JSON.parse(stored) as string[]).map((b64) => decodeBatch(Buffer.from(b64, 'base64')))
    const merged = mergeBatches(members)
    // Same members, same token: anything else would be a different group.
    if (merged.batchId !== token) throw new Error(`group record ${token} does not match its members`)
    return { ...merged, rows: [...merged.rows], mergeable: false }
  }

  const run = (member: Omit<Member, 'settle'>) =>
    new Promise<void>((resolve, reject) =>
      join({ ...member, settle: (err) => (err ? reject(err) : resolve()) }),
    )

  const worker = new Worker(
    SPILL_QUEUE,
    async (job: Job<SpillJobData>) => {
      const marker = await redis.hget(queue.toKey(String(job.id)), GROUP_FIELD)
      if (marker) {
        const stored = await redis.get(groupKey(marker))
        // No record: it is deleted only after the group's insert succeeded.
        if (stored) await run({ batch: recordedGroup(marker, stored), job, redoOf: marker })
      } else {
        await room()
        let batch: DecodedBatch
        try {
          batch = decodeBatch(Buffer.from(job.data.payload, 'base64'))
        } catch (err) {
          if (!(err instanceof UndecodableBatchError)) throw err
          await opts.quarantine.put({
            id: String(job.id),
            kind: 'rows',
            batchId: String(job.id),
            reason: `undecodable job payload: ${err.message}`,
            rowCount: job.data.rows ?? 0,
            rows: [{ payload: job.data.payload }],
          })
          await redis.decrby(SPILL_BYTES_KEY, job.data.bytes ?? 0)
          return
        }
        await run({ batch, job })
      }
      await redis.decrby(SPILL_BYTES_KEY, job.data.bytes ?? 0)
    },
    {
      connection: blocking,
      concurrency: CONCURRENCY,
      lockDuration: opts.lockDuration,
      stalledInterval: Math.ceil(opts.lockDuration / 2),
      // A job stalled because its worker was killed must go back to wait,
      // however many times that happens; it must never end up "failed".
      maxStalledCount: 1_000_000,
      drainDelay: 1,
    },
  )
  worker.on('error', (err) => opts.onError('redis_replay', err))

  return {
    queue,
    async close() {
      await worker.close().catch((e) => opts.onError('redis_replay_close', e))
      clearTimeout(collectTimer)
      await queue.close().catch((e) => opts.onError('redis_replay_close', e))
      redis.disconnect()
      blocking.disconnect()
    },
  }
}
