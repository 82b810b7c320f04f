import { readFileSync, truncateSync, unlinkSync } from 'node:fs'
import type { Logger } from 'pino'
import { JournaledBatchError } from '../core/storage/insert-errors.ts'
import { type SegmentProblem, scanSegment } from '../core/storage/record-framing.ts'
import { journalToken, leftoverSegments, type UsageJournal } from '../core/usage/usage-journal.ts'
import type { SpillSink } from '../core/usage/usage-recorder.ts'
import type { UsageBatch, UsageRow } from '../core/usage/usage-row.ts'
import type { QuarantineStore } from './quarantine-store.ts'

export interface RecoveryProgress {
  state: 'idle' | 'recovering' | 'waiting' | 'done' | 'stopped'
  /** Segments found at start (left by a crashed or stopped process) and delivered so far. */
  segmentsFound: number
  segmentsDone: number
  rowsFound: number
  rowsDone: number
  /** Torn last records cut off (a crash mid-write) and damaged records skipped (a flipped byte). */
  tornTails: number
  damagedRecords: number
  lastError: string | undefined
}

export interface JournalRecovery {
  progress(): RecoveryProgress
  /** Resolves once every leftover segment is delivered (or the recovery was stopped). */
  done(): Promise<void>
  stop(): Promise<void>
}

export interface RecoveryOptions {
  journal: UsageJournal
  insertBatch: (batch: UsageBatch, opts: { rowsChecked: boolean }) => Promise<{ inserted: number }>
  spill?: SpillSink
  quarantine: QuarantineStore
  logger: Logger
  maxBackoffMs?: number
}

export interface ReadSegment {
  token: string
  rows: UsageRow[]
  problems: SegmentProblem[]
  /** Where the file was cut back to after a torn last record. */
  truncatedAt: number | undefined
  undecodable: number
}

/**
 * Reads one segment: every record whose crc checks out. A torn tail (the
 * damage runs to the end of the file: a crash in the middle of a write) is
 * truncated away at the last good record; damage in the middle (a flipped
 * byte) is skipped, the records behind it kept (the reader resynchronises on
 * the next record magic). The batch token is the cut's, or, when the batch
 * was never cut (so never sent), derived from the rows the same way.
 */
export function readJournalSegment(path: string, segmentId: string): ReadSegment {
  const buf = readFileSync(path)
  const { records, problems } = scanSegment(buf)
  let truncatedAt: number | undefined
  const last = problems.at(-1)
  if (last && last.offset + last.skipped === buf.length && !records.some((r) => r.offset > last.offset)) {
    truncatedAt = last.offset
    truncateSync(path, truncatedAt)
  }
  const rows: UsageRow[] = []
  let cut: string | undefined
  let end = 0
  let undecodable = 0
  for (const r of records) {
    try {
      const v = JSON.parse(r.payload.toString('utf8')) as { i?: number; r?: UsageRow; c?: string }
      if (typeof v.c === 'string') cut = v.c
      else if (v.r && typeof v.r === 'object' && Number.isInteger(v.i)) {
        rows.push(v.r)
        end = Math.max(end, v.i! + 1)
      } else undecodable++
    } catch {
      undecodable++
    }
  }
  const token = cut?.startsWith(`j-${segmentId}-`) ? cut : journalToken(segmentId, 0, end)
  for (const row of rows) row.batch_id = token
  return { token, rows, problems, truncatedAt, undecodable }
}

/**
 * Delivers the segments a crashed (or stopped) process left in the journal,
 * oldest first, in the background: each under its own token, into ClickHouse,
 * else to the spill path as a batch that replays alone (its insert may have
 * landed before the crash). A segment is deleted only after that; a crash
 * during the recovery delivers it again under the same token, a no-op in
 * ClickHouse. Damaged segments go to the quarantine after their good records
 * are delivered. Nothing here throws out of the loop: a start never fails, and
 * never loops on a crash, because of a bad segment.
 */
export function startJournalRecovery(opts: RecoveryOptions): JournalRecovery {
  const maxBackoffMs = opts.maxBackoffMs ?? 10_000
  const p: RecoveryProgress = {
    state: 'idle',
    segmentsFound: 0,
    segmentsDone: 0,
    rowsFound: 0,
    rowsDone: 0,
    tornTails: 0,
    damagedRecords: 0,
    lastError: undefined,
  }
  let stopped = false
  let wake: (() => void) | undefined
  const segments = leftoverSegments(opts.journal.dir)
  p.segmentsFound = segments.length
  let pendingBytes = segments.reduce((n, s) => n + s.bytes, 0)
  opts.journal.trackRecovered(pendingBytes, segments[0]?.createdAt)

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      wake = () => {
        clearTimeout(t)
        resolve()
      }
    })

  async function deliver(batch: UsageBatch): Promise<void> {
    let backoff = 200
    while (!stopped) {
      try {
        await opts.insertBatch(batch, { rowsChecked: false })
        return
      } catch (insertError) {
        if (opts.spill) {
          try {
            await opts.spill.spill(batch, new JournaledBatchError(insertError))
            return
          } catch (spillError) {
            p.lastError = `spill failed: ${String(spillError)}`.slice(0, 300)
          }
        } else p.lastError = String(insertError).slice(0, 300)
      }
      p.state = 'waiting'
      await sleep(backoff)
      backoff = Math.min(backoff * 2, maxBackoffMs)
      p.state = 'recovering'
    }
  }

  async function run() {
    if (segments.length === 0) {
      p.state = 'done'
      return
    }
    p.state = 'recovering'
    opts.logger.warn(
      { segments: segments.length, bytes: pendingBytes },
      'usage journal: delivering rows left by a previous run',
    )
    for (const seg of segments) {
      if (stopped) break
      try {
        const read = readJournalSegment(seg.path, seg.id)
        p.rowsFound += read.rows.length
        const damaged = read.problems.filter((x) => x.offset !== read.truncatedAt)
        if (read.truncatedAt !== undefined) {
          p.tornTails++
          opts.logger.warn(
            { segment: seg.name, at: read.truncatedAt, bytes: seg.bytes - read.truncatedAt },
            'usage journal: torn last record cut off (a crash mid-write; its answer had not ended)',
          )
        }
        if (read.rows.length > 0) {
          await deliver({ batchId: read.token, createdAt: seg.createdAt, rows: read.rows })
          if (stopped) break
        }
        p.rowsDone += read.rows.length
        if (damaged.length > 0 || read.undecodable > 0) {
          p.damagedRecords += damaged.length + read.undecodable
          const reason = `damaged journal segment: ${damaged.map((x) => `${x.kind} at byte ${x.offset} (${x.skipped} bytes skipped)`).join('; ') || `${read.undecodable} undecodable record(s)`}; ${read.rows.length} good rows delivered`
          opts.logger.error({ segment: seg.name, reason }, 'usage journal segment quarantined')
          await opts.quarantine.putSegment(seg.path, {
            id: `journal-${seg.id}`,
            batchId: read.token,
            reason,
            rowCount: read.rows.length,
            problems: damaged,
          })
        } else unlinkSync(seg.path)
      } catch (err) {
        // Reported and left on disk for the next start; the loop goes on.
        p.lastError = `segment ${seg.name}: ${String(err)}`.slice(0, 300)
        opts.logger.error(
          { segment: seg.name, err: String(err) },
          'usage journal: could not recover a segment',
        )
      }
      p.segmentsDone++
      pendingBytes -= seg.bytes
      opts.journal.trackRecovered(-seg.bytes, segments[p.segmentsDone]?.createdAt)
    }
    if (!stopped) p.state = 'done'
  }

  const running = run().catch((err) => {
    p.lastError = String(err)
    opts.logger.error({ err: String(err) }, 'usage journal recovery stopped')
  })

  return {
    progress: () => ({ ...p }),
    done: () => running,
    async stop() {
      stopped = true
      p.state = p.state === 'done' ? 'done' : 'stopped'
      wake?.()
      await running
    },
  }
}
