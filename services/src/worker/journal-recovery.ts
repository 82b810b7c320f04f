import { readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { isAlive, isMissingFile, readdirIfPresent } from '../core/storage/local-files.ts'
import {
  type DrainableSegment,
  drainableSegments,
  JOURNAL_SEGMENT,
  segmentFileName,
  type UsageJournal,
} from '../core/usage/usage-journal.ts'
import type { DecodedBatch } from './batch-codec.ts'
import type { BatchInserter } from './batch-inserter.ts'
import { TransientInsertError } from './batch-inserter.ts'
import { writeFileDurably } from './durable-write.ts'
import { type CompactionStats, createJournalCompactor, keepOneCopy } from './journal-compaction.ts'
import { type ReadSegment, readJournalSegment, segmentDamage } from './journal-segment-reader.ts'
import type { QuarantineStore } from './quarantine-store.ts'
import { canJoin, mergeBatches, tokenOf } from './replay-groups.ts'
import { ReplayLoop } from './replay-loop.ts'

export interface RecoveryProgress {
  state: 'idle' | 'recovering' | 'waiting' | 'done' | 'stopped'
  /** Segments found to deliver (left by a crashed or stopped process, or parked during an outage) and delivered so far. */
  segmentsFound: number
  segmentsDone: number
  rowsFound: number
  rowsDone: number
  /** ClickHouse inserts that carried them: runs of parked segments go in one insert. */
  inserts: number
  /** Torn last records cut off (a crash mid-write) and damaged records skipped (a flipped byte). */
  tornTails: number
  damagedRecords: number
  /** Parked segments compressed while they waited (worker/journal-compaction.ts). */
  compaction: CompactionStats
  lastError: string | undefined
}

export interface JournalRecovery {
  progress(): RecoveryProgress
  /** Resolves once the segments found at start are delivered (or the recovery was stopped). */
  done(): Promise<void>
  /** Look for work now (a segment was parked; ops "replay now"). */
  wake(): void
  stop(): Promise<void>
}

export interface RecoveryOptions {
  journal: UsageJournal
  /** Inserts one batch exactly once per token; throws TransientInsertError when ClickHouse did not take it. */
  insertBatch: BatchInserter
  quarantine: QuarantineStore
  logger: Logger
  /** Whether ClickHouse answers: a backoff ends as soon as it does. */
  probe?: () => Promise<boolean>
  /** Most rows per merged insert (RECORDER_MAX_ROWS). */
  maxGroupRows?: number
  maxBackoffMs?: number
  pollMs?: number
}

/** A merged insert recorded before it is sent: `group-<token>.json` beside the segments. */
export interface GroupIntent {
  token: string
  /** Member segment ids, in insert order. */
  members: string[]
}

const INTENT = /^group-(grp-[0-9a-f]+)\.json$/
export const intentFile = (dir: string, token: string) => join(dir, `group-${token}.json`)

function readIntents(dir: string): GroupIntent[] {
  const names = readdirIfPresent(dir)
  const out: GroupIntent[] = []
  for (const name of names.sort()) {
    const m = INTENT.exec(name)
    if (!m) continue
    // Written whole or not at all (worker/durable-write.ts); one that does not parse is no
    // intent: it was not complete, so its insert never started.
    let v: GroupIntent | undefined
    try {
      v = JSON.parse(readFileSync(join(dir, name), 'utf8')) as GroupIntent
    } catch (err) {
      if (!(err instanceof SyntaxError) && !isMissingFile(err)) throw err
    }
    if (v && v.token === m[1] && Array.isArray(v.members) && v.members.every((x) => typeof x === 'string'))
      out.push(v)
    else rmSync(join(dir, name), { force: true })
  }
  return out
}

/** One segment read for delivery. */
interface Loaded {
  seg: DrainableSegment
  read: ReadSegment
  /** May share an insert with others: parked as never sent, and read without damage. */
  mergeable: boolean
}

const LOCK = 'drain.lock'
/** Drainer instances of this process (tests run several Cores, each with its own). */
const liveDrainers = new Set<string>()
let drainerSeq = 0

/**
 * One drainer per journal directory: groups are only exactly-once if one
 * process forms them. The lock names its holder; a dead holder's lock is
 * taken over.
 */
function holdLock(dir: string, me: string): boolean {
  const path = join(dir, LOCK)
  const mine = `${process.pid} ${me}`
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(path, mine, { flag: 'wx' })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      let owner = ''
      try {
        owner = readFileSync(path, 'utf8')
      } catch (readErr) {
        if (isMissingFile(readErr)) continue // released meanwhile: try to take it again
        throw readErr
      }
      if (owner === mine) return true
      const [pid, instance] = owner.split(' ')
      const held = Number(pid) === process.pid ? liveDrainers.has(instance ?? '') : isAlive(Number(pid))
      if (held && Number(pid) > 0) return false
      rmSync(path, { force: true })
    }
  }
  return false
}

/**
 * Delivers what the journal holds for ClickHouse: the segments a crashed (or
 * stopped) process left, and the batches parked while ClickHouse did not take
 * them (an outage). Oldest first, one insert in flight, as long as the
 * process runs.
 *
 * Runs of parked batches whose insert was never sent go together, up to
 * maxGroupRows rows per insert (worker/replay-groups.ts), which is what makes
 * a backlog of thousands of batches cheap to replay. Exactly once:
 * - Only segments parked as `unsent` (their insert was refused before it was
 *   sent) join a group. A segment whose insert may have landed (parked
 *   `held`, or left by a crash with or without its cut) goes alone under its
 *   own token, so ClickHouse drops it if it is already there.
 * - A group is recorded before its insert (`group-<token>.json`, fsynced,
 *   naming its members) and, after a crash, inserted again with exactly those
 *   members under the same token, however this drainer would group now.
 *   Members are deleted only after the group's insert succeeded, then the
 *   record: a record with a member missing is a group that landed.
 *
 * While it waits for ClickHouse, it compresses the parked segments it does
 * not hold (worker/journal-compaction.ts); a segment is listed and delivered
 * once whichever of its files (uncompressed, compressed, or both after a
 * crash) it finds.
 *
 * Damaged segments go to the quarantine after their good records are
 * delivered. Nothing here throws out of the loop: a start never fails, and
 * never loops on a crash, because of a bad segment.
 */
export function startJournalRecovery(opts: RecoveryOptions): JournalRecovery {
  const { journal, logger } = opts
  const dir = journal.dir
  const maxGroupRows = opts.maxGroupRows ?? 50_000
  const pollMs = opts.pollMs ?? 500
  const me = `d${drainerSeq++}`
  liveDrainers.add(me)
  const stopping = new AbortController()
  const loop = new ReplayLoop(stopping.signal, opts.maxBackoffMs ?? 10_000)
  const p: RecoveryProgress = {
    state: 'idle',
    segmentsFound: 0,
    segmentsDone: 0,
    rowsFound: 0,
    rowsDone: 0,
    inserts: 0,
    tornTails: 0,
    damagedRecords: 0,
    compaction: { segments: 0, bytesBefore: 0, bytesAfter: 0 },
    lastError: undefined,
  }
  /** Segment ids counted in segmentsFound/rowsFound already. */
  const seen = new Set<string>()
  /** Segments that could not be read: left on disk for the next start, not retried in a loop. */
  const unreadable = new Set<string>()
  /** Segments read and not delivered yet (the next group's first member was read to see it would not join). */
  const loaded = new Map<string, Loaded>()
  let firstPass: (() => void) | undefined
  const firstPassDone = new Promise<void>((resolve) => {
    firstPass = resolve
  })
  journal.onPark(() => loop.wake())
  /** Segments held here (read for the insert being tried, or unreadable) are not compressed under it. */
  const busy = (id: string) => loaded.has(id) || unreadable.has(id)
  const compactor = createJournalCompactor({ journal, logger, busy, stopped: () => loop.stopped })
  // Temporary files of intents whose write a crash interrupted (worker/durable-write.ts): never complete, never read.
  try {
    for (const name of readdirSync(dir))
      if (name.startsWith('group-') && name.endsWith('.tmp')) rmSync(join(dir, name), { force: true })
  } catch (err) {
    logger.warn({ err: String(err), dir }, 'usage journal: could not clean up temporary files')
  }

  function updateBacklog(segs: DrainableSegment[]) {
    journal.setBacklog({
      bytes: segs.reduce((n, s) => n + s.bytes, 0),
      segments: segs.length,
      compressed: segs.reduce((n, s) => n + (s.compressed ? 1 : 0), 0),
      oldestAt: segs[0]?.createdAt,
    })
  }

  function load(seg: DrainableSegment): Loaded | undefined {
    const cached = loaded.get(seg.id)
    if (cached) return cached
    try {
      const read = readJournalSegment(seg.path, seg.id)
      if (read.truncatedAt !== undefined) {
        p.tornTails++
        logger.warn(
          { segment: seg.name, at: read.truncatedAt, bytes: seg.bytes - read.truncatedAt },
          'usage journal: torn last record cut off (a crash mid-write; its answer had not ended)',
        )
      }
      const l = { seg, read, mergeable: seg.state === 'unsent' && segmentDamage(read) === undefined }
      if (!seen.has(seg.id)) {
        seen.add(seg.id)
        p.segmentsFound++
        p.rowsFound += read.rows.length
      }
      loaded.set(seg.id, l)
      return l
    } catch (err) {
      unreadable.add(seg.id)
      p.lastError = `segment ${seg.name}: ${String(err)}`.slice(0, 300)
      logger.error({ segment: seg.name, err: String(err) }, 'usage journal: could not read a segment')
      return undefined
    }
  }

  /** The next insert's worth of segments: a run of mergeable ones up to maxGroupRows, or one alone. */
  function nextGroup(segs: DrainableSegment[]): Loaded[] {
    const members: Loaded[] = []
    let rows = 0
    for (const seg of segs) {
      if (unreadable.has(seg.id)) continue
      const l = load(seg)
      if (!l) continue
      // canJoin reads the group's first member only.
      const head = members.length > 0 ? [asBatch(members[0]!)] : []
      if (!canJoin(head, rows, asBatch(l), maxGroupRows)) break
      members.push(l)
      rows += l.read.rows.length
      if (!l.mergeable) break
    }
    return members
  }

  function asBatch(l: Loaded): DecodedBatch {
    return { batchId: l.read.token, createdAt: l.seg.createdAt, rows: l.read.rows, mergeable: l.mergeable }
  }

  /** Inserts until ClickHouse took it (or the drainer stops): false when stopped first. */
  async function insert(token: string, members: Loaded[]): Promise<boolean> {
    const batch =
      members.length === 1 && members[0]!.read.token === token
        ? asBatch(members[0]!)
        : { ...mergeBatches(members.map(asBatch)), batchId: token }
    if (batch.rows.length === 0) return true
    while (!loop.stopped) {
      try {
        const out = await opts.insertBatch(batch, { rowsChecked: false })
        loop.done(out.inserted, out.quarantined, members.length)
        p.inserts++
        p.state = 'recovering'
        return true
      } catch (err) {
        if (!(err instanceof TransientInsertError)) {
          logger.error({ err: String(err), token }, 'usage journal: delivery failed unexpectedly')
        }
        p.lastError = String((err as Error)?.message ?? err).slice(0, 300)
        p.state = 'waiting'
        await pause(loop.failed(err))
        p.state = 'recovering'
      }
    }
    return false
  }

  /**
   * Waits out a backoff; ends as soon as ClickHouse answers a probe again
   * (checked twice a second). Meanwhile the parked segments are compressed
   * (worker/journal-compaction.ts: at most 8 MiB of them per tick, in steps
   * of a few ms): what waits for ClickHouse takes about a ninth of the room.
   */
  async function pause(ms: number) {
    const until = Date.now() + ms
    while (!loop.stopped && Date.now() < until) {
      await compactor.tick()
      if (await loop.sleep(Math.max(0, Math.min(500, until - Date.now())))) return
      if (opts.probe && (await opts.probe().catch(() => false))) return
    }
  }

  /**
   * Delivered: damaged segments to the quarantine, the rest deleted, with
   * every other file of the segment (the original of a compressed copy a
   * crash left behind): a segment is delivered once.
   */
  async function settle(members: Loaded[]) {
    for (const l of members) {
      const { seg, read } = l
      const damage = segmentDamage(read)
      if (damage) {
        p.damagedRecords += damage.count
        const reason = `damaged ${seg.compressed ? 'compressed ' : ''}journal segment: ${damage.description}; ${read.rows.length} good rows delivered`
        logger.error({ segment: seg.name, reason }, 'usage journal segment quarantined')
        await opts.quarantine.putSegment(seg.path, {
          id: `journal-${seg.id}`,
          batchId: read.token,
          reason,
          rowCount: read.rows.length,
          problems: damage.problems,
        })
      } else rmSync(seg.path, { force: true })
      if (seg.state !== 'own')
        rmSync(join(dir, segmentFileName(seg.id, seg.state, !seg.compressed)), { force: true })
      loaded.delete(seg.id)
      seen.delete(seg.id)
      p.segmentsDone++
      p.rowsDone += read.rows.length
    }
  }

  /** A group recorded by an earlier run (or attempt): inserted again exactly as recorded. */
  async function redo(intent: GroupIntent, segs: DrainableSegment[]): Promise<boolean> {
    const byId = new Map(segs.map((s) => [s.id, s]))
    const present = intent.members.map((id) => byId.get(id)).filter((s) => s !== undefined)
    if (present.length < intent.members.length) {
      // Members go only after the insert succeeded: this group landed; finish its cleanup.
      await settle(present.map((s) => load(s)).filter((l) => l !== undefined))
    } else {
      const members = present.map((s) => load(s))
      if (members.some((l) => l === undefined)) {
        p.lastError = `group ${intent.token}: a member cannot be read; left for the next start`
        return false
      }
      if (!(await insert(intent.token, members as Loaded[]))) return false
      await settle(members as Loaded[])
    }
    rmSync(intentFile(dir, intent.token), { force: true })
    return true
  }

  /** One insert's worth of work; false when there was none (or the drainer stopped). */
  async function step(): Promise<boolean> {
    const segs = keepOneCopy(drainableSegments(dir), busy, logger)
    updateBacklog(segs)
    for (const intent of readIntents(dir)) {
      if (loop.stopped) return false
      return await redo(intent, segs)
    }
    const members = nextGroup(segs)
    if (members.length === 0) return false
    p.state = 'recovering'
    const token = tokenOf(members.map(asBatch))
    // Every insert of mergeable segments is recorded, a group of one too: a
    // segment inserted alone under its token and grouped after a crash would
    // land under two tokens.
    if (members[0]!.mergeable) {
      await writeFileDurably(
        intentFile(dir, token),
        JSON.stringify({ token, members: members.map((l) => l.seg.id) } satisfies GroupIntent),
      )
    }
    if (!(await insert(token, members))) return false
    await settle(members)
    if (members[0]!.mergeable) rmSync(intentFile(dir, token), { force: true })
    updateBacklog(drainableSegments(dir))
    return true
  }

  async function run() {
    while (!loop.stopped) {
      if (!holdLock(dir, me)) {
        // Another process drains this journal (it shares the data directory).
        firstPass?.()
        p.state = 'idle'
        await loop.sleep(pollMs * 4)
        continue
      }
      let worked = false
      try {
        worked = await step()
      } catch (err) {
        p.lastError = String(err).slice(0, 300)
        logger.error({ err: String(err) }, 'usage journal: delivery step failed')
        await pause(loop.failed(err))
        continue
      }
      if (worked) continue
      if (!loop.stopped) {
        if (p.segmentsDone > 0 && p.state === 'recovering') {
          logger.warn({ segments: p.segmentsDone, rows: p.rowsDone }, 'usage journal: delivered')
        }
        p.state = 'done'
        firstPass?.()
        await loop.sleep(pollMs)
      }
    }
    firstPass?.()
  }

  const running = run().catch((err) => {
    p.lastError = String(err)
    logger.error({ err: String(err) }, 'usage journal recovery stopped')
    firstPass?.()
  })

  return {
    progress: () => ({ ...p, compaction: compactor.stats() }),
    done: () => firstPassDone,
    wake: () => loop.wake(),
    async stop() {
      stopping.abort()
      p.state = p.state === 'done' ? 'done' : 'stopped'
      await running
      liveDrainers.delete(me)
      try {
        if (readFileSync(join(dir, LOCK), 'utf8') === `${process.pid} ${me}`) unlinkSync(join(dir, LOCK))
      } catch (err) {
        // No lock file: nothing to release. Anything else is only logged (a stale lock is taken over).
        if (!isMissingFile(err)) logger.warn({ err, dir }, 'usage journal: could not release the drain lock')
      }
    },
  }
}

/** Names in the journal directory that are segments (for ops listings). */
export const isSegmentName = (name: string) => JOURNAL_SEGMENT.test(name)
