import { readFileSync, rmSync, statSync, unlinkSync } from 'node:fs'
import { basename, join } from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { Logger } from 'pino'
import { isMissingFile, readdirIfPresent } from '../core/storage/local-files.ts'
import { scanSegment } from '../core/storage/record-framing.ts'
import {
  COMPRESSED_SEGMENT_SUFFIX,
  type DrainableSegment,
  JOURNAL_SEGMENT,
  liveSegments,
  type SegmentState,
  segmentFileName,
  type UsageJournal,
} from '../core/usage/usage-journal.ts'
import { writeFileDurablySync } from './durable-write.ts'
import { SegmentDecoder } from './journal-segment-reader.ts'
import { chunkBounds, packChunk, packHeader, unpackSegment } from './packed-segment.ts'

/**
 * Compresses parked journal segments while they wait for ClickHouse (an
 * outage): a segment keeps its rows as JSON lines (about 360 bytes a row),
 * its compressed copy about 40, and the journal's bound (JOURNAL_MAX_BYTES)
 * counts what is on disk, so the bound holds an outage about 9 times as long.
 * The format: worker/packed-segment.ts.
 *
 * Only the drainer's (worker/journal-recovery.ts) segments are touched:
 * parked (`unsent`, `held`), not held by the drainer for its current insert
 * (`busy`), read cleanly (a damaged one stays as it is, for the drainer to
 * deliver what it can and quarantine byte for byte). Never the process's own
 * open or sealed batches. The drainer runs it while it waits for ClickHouse,
 * under its lock, so one process at a time compacts a journal directory.
 *
 * Crash-safe order: the compressed copy is written whole and made durable
 * (`.tmp`, fsync, rename, fsync of the directory), then the original is
 * deleted. A crash in between leaves both files of one segment:
 * `drainableSegments` lists it once, and `keepOneCopy` deletes one of them
 * before anything is delivered. A group intent names its members by segment
 * id, not file name, so a member compressed after the intent was written is
 * still found and redone.
 *
 * Why synchronous zlib in short steps: one chunk (128 KiB of the segment,
 * 1-4 ms) per turn of the event loop, and its lines decoded (to check them)
 * 32 KiB per turn, so answers go on between two steps. The async
 * zlib calls run on libuv's threadpool, which the embedded engine's queries
 * can fill (core/usage/usage-journal.ts, syncSegment): a compaction would
 * then wait behind them, holding the drainer's retry.
 */
export interface CompactionStats {
  /** Parked segments compressed by this process. */
  segments: number
  /** Their size before and after (bytes on disk). */
  bytesBefore: number
  bytesAfter: number
}

export interface JournalCompactor {
  /**
   * Compresses the parked segments waiting uncompressed, up to a budget of
   * bytes per call, one chunk per turn of the event loop. Does nothing
   * unless a segment was parked since the last call that found them all
   * done (or this is the first call: what a previous run left). Never throws:
   * a segment that cannot be compressed stays as it is (logged).
   */
  tick(): Promise<void>
  stats(): CompactionStats
}

export interface CompactorOptions {
  journal: UsageJournal
  logger: Logger
  /** Segments the drainer holds (read for its current insert, or unreadable): left as they are. */
  busy: (id: string) => boolean
  stopped: () => boolean
  /** Bytes of uncompressed segments one tick takes on (default 8 MiB: about 20,000 rows). */
  budgetBytes?: number
}

const TICK_BUDGET_BYTES = 8 * 1024 * 1024
/**
 * Rows decoded per step, in bytes (about 90 rows, 1-3 ms). A single record
 * larger than this (a turn of the event loop that appended more) is decoded
 * in one step.
 */
const DECODE_STEP_BYTES = 32 * 1024

interface Candidate {
  name: string
  id: string
  state: SegmentState
}

export function createJournalCompactor(opts: CompactorOptions): JournalCompactor {
  const { journal, logger } = opts
  const dir = journal.dir
  const budget = opts.budgetBytes ?? TICK_BUDGET_BYTES
  const stats: CompactionStats = { segments: 0, bytesBefore: 0, bytesAfter: 0 }
  /** Left uncompressed for good: damaged (the drainer quarantines it) or failed once (logged once). */
  const skip = new Set<string>()
  /** A segment may have been parked since the last look; the first look finds what a previous run left. */
  let dirty = true
  let firstLook = true
  journal.onPark(() => {
    dirty = true
  })

  function candidates(): Candidate[] {
    const names = readdirIfPresent(dir).sort()
    const present = new Set(names)
    const out: Candidate[] = []
    for (const name of names) {
      // A compressed copy a crash interrupted before its rename: never complete, never read.
      if (firstLook && name.endsWith(`${COMPRESSED_SEGMENT_SUFFIX}.tmp`)) {
        rmSync(join(dir, name), { force: true })
        continue
      }
      const m = JOURNAL_SEGMENT.exec(name)
      const state = m?.[4] as SegmentState | undefined
      if (!m || m[5] === 'z' || (state !== 'unsent' && state !== 'held') || liveSegments.has(name)) continue
      const id = `${m[1]}-${m[2]}-${m[3]}`
      // Both files of one segment (a crash between the write and the delete): the drainer keeps one.
      if (present.has(`${name}z`) || skip.has(id) || opts.busy(id)) continue
      out.push({ name, id, state })
    }
    firstLook = false
    return out
  }

  /** Compresses one segment; the uncompressed bytes it took on. */
  async function compact(c: Candidate): Promise<number> {
    const path = join(dir, c.name)
    let file: Buffer
    try {
      file = readFileSync(path)
    } catch (err) {
      if (isMissingFile(err)) return 0 // delivered meanwhile
      throw err
    }
    const { records, problems } = scanSegment(file)
    if (problems.length > 0) {
      skip.add(c.id)
      logger.warn(
        { segment: c.name, problems: problems.length },
        'usage journal: a damaged parked segment is left uncompressed (the drainer delivers its good records and quarantines it)',
      )
      return file.length
    }
    // Decoded as well as compressed: one with undecodable lines is left for the drainer to quarantine.
    const decoder = new SegmentDecoder(c.id)
    const parts: Buffer[] = []
    let next = 0
    let decoded = 0
    for (const [from, to] of chunkBounds(records)) {
      while (next < records.length && records[next]!.end <= to) {
        const r = records[next++]!
        decoder.add(r.payload)
        decoded += r.payload.length
        // Parsing costs several times what gzip does per byte (JSON.parse of each line): smaller steps.
        if (decoded >= DECODE_STEP_BYTES) {
          decoded = 0
          await yieldToLoop()
          if (opts.stopped()) return 0
        }
      }
      parts.push(packChunk(file.subarray(from, to)))
      // One chunk per turn: the answers being served go on in between.
      await yieldToLoop()
      if (opts.stopped()) return 0
    }
    if (decoder.undecodable > 0) {
      skip.add(c.id)
      logger.warn(
        { segment: c.name, undecodable: decoder.undecodable },
        'usage journal: a parked segment with undecodable lines is left uncompressed (the drainer quarantines it)',
      )
      return file.length
    }
    const header = packHeader({
      bytes: file.length,
      chunks: parts.length,
      rows: decoder.rows.length,
      token: decoder.token(),
    })
    writeFileDurablySync(join(dir, segmentFileName(c.id, c.state, true)), [header, ...parts])
    // The compressed copy is durable: the original may go. A crash before this
    // line leaves both files; the drainer keeps one (keepOneCopy).
    unlinkSync(path)
    const after = parts.reduce((n, p) => n + p.length, header.length)
    journal.compacted(file.length, after)
    stats.segments++
    stats.bytesBefore += file.length
    stats.bytesAfter += after
    return file.length
  }

  return {
    async tick() {
      if (!dirty || opts.stopped()) return
      dirty = false
      let list: Candidate[]
      try {
        list = candidates()
      } catch (err) {
        // The drainer reports an unreadable directory from its own listing; here only noted.
        logger.warn({ err: String(err), dir }, 'usage journal: could not list parked segments to compress')
        return
      }
      let spent = 0
      for (const c of list) {
        if (opts.stopped() || spent >= budget) {
          dirty = true
          return
        }
        try {
          spent += await compact(c)
        } catch (err) {
          // Not retried (once logged): it waits uncompressed, as before compaction existed.
          skip.add(c.id)
          logger.warn(
            { err: String(err), segment: c.name },
            'usage journal: could not compress a parked segment; it waits uncompressed',
          )
        }
      }
    },
    stats: () => ({ ...stats }),
  }
}

/**
 * A crash between writing a compressed copy and deleting its original leaves
 * both; `drainableSegments` lists such a segment once, the original as its
 * `leftover`. Before anything is delivered, one of the two is deleted: the
 * original when the compressed copy is whole (it was made durable before the
 * original was touched), else the compressed copy (the original is then the
 * whole one). One file per segment, so it cannot be delivered twice.
 * Segments the drainer holds are left to its cleanup (it deletes every file
 * of a segment it settled).
 */
export function keepOneCopy(
  segs: DrainableSegment[],
  busy: (id: string) => boolean,
  logger: Logger,
): DrainableSegment[] {
  return segs.map((seg) => {
    const leftover = seg.leftover
    if (!leftover || busy(seg.id)) return seg
    try {
      if (unpackSegment(readFileSync(seg.path)).problems.length === 0) {
        rmSync(leftover, { force: true })
        logger.warn(
          { segment: seg.name },
          'usage journal: deleted the original of a segment compressed just before a crash',
        )
        return { ...seg, leftover: undefined }
      }
      rmSync(seg.path, { force: true })
      logger.warn(
        { segment: seg.name },
        'usage journal: a compressed copy left by a crash is damaged; its original is kept',
      )
      return {
        ...seg,
        name: basename(leftover),
        path: leftover,
        compressed: false,
        bytes: statSync(leftover).size,
        leftover: undefined,
      }
    } catch (err) {
      // Both stay listed as one segment; settling it deletes both files.
      logger.warn(
        { err: String(err), segment: seg.name },
        'usage journal: could not resolve a segment left twice',
      )
      return seg
    }
  })
}
