import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import type { Logger } from 'pino'
import { isMissingFile } from '../storage/local-files.ts'
import { HEADER_BYTES, RECORD_MAGIC } from '../storage/record-framing.ts'
import type { UsageRow } from './usage-row.ts'

/**
 * The local write-ahead journal of usage rows (DATA_DIR/journal).
 *
 * Every row is appended, with a synchronous write() to the open segment, before
 * the client receives the end of its answer: from then on a crash of the
 * process (SIGKILL, OOM) loses nothing, the bytes are in the OS page cache.
 * Power loss: the open segment is fdatasync'ed every `fsyncMs` (group fsync);
 * with fsyncMs = 0 `durable()` resolves only after an fdatasync, so the answer
 * waits for the disk.
 *
 * One segment is one recorder batch: when the recorder cuts a batch, the
 * journal writes a cut record naming the batch's dedup token, fdatasyncs the
 * segment (before the insert is sent, so a power loss cannot leave an
 * inserted batch whose journal copy would later be cut differently) and
 * starts a new segment. The token is derived from the segment's position:
 * `j-<segment id>-<first row>-<end row>`, so a restart that finds the segment
 * unacknowledged re-inserts the same rows under the same token and ClickHouse
 * drops the repeat (raw table and every rollup). Acknowledging a batch (its
 * insert succeeded, or a spill store took it) deletes its segment.
 *
 * Record framing is the spool's (core/storage/record-framing.ts, shared): magic, length,
 * crc32, payload; payloads are JSON: `{"i":<row index>,"r":<row>}` for a row,
 * `{"c":"<token>"}` for a cut.
 */
export const JOURNAL_SEGMENT = /^(\d{13})-(\d+)-(\d+)\.jnl$/

export interface JournalStatus {
  enabled: boolean
  dir: string
  /** Bytes of segments not yet acknowledged (this process's and those left to recover). */
  bytes: number
  maxBytes: number
  segments: number
  /** When the oldest unacknowledged row was journaled (ms since epoch). */
  oldestAt: number | undefined
  /** Rows the journal could not take (full, or a write error): answered, only in memory. */
  rejectedRows: number
  lastError: string | undefined
  fsyncMs: number
}

export interface JournalCut {
  token: string
  /** Resolves once the segment holding the batch is on disk (fdatasync). */
  synced: Promise<void>
}

export interface UsageJournal {
  readonly dir: string
  readonly fsyncMs: number
  /** Writes the row to the open segment; false when the journal refused it (full, write error). */
  append(row: UsageRow): boolean
  /** Undefined when nothing needs waiting for; with fsyncMs = 0, resolves after the rows written so far are fdatasync'ed. */
  durable(): Promise<void> | undefined
  /** Ends the open segment's batch; undefined when no row of it was journaled. */
  cut(): JournalCut | undefined
  /** The batch under this token is in ClickHouse or a spill store: its segment goes. */
  ack(token: string): void
  /** Adds bytes of recovered segments still to deliver (and takes them off once delivered). */
  trackRecovered(bytes: number, createdAt: number | undefined): void
  status(): JournalStatus
  close(): Promise<void>
}

export interface JournalOptions {
  dir: string
  maxBytes: number
  fsyncMs: number
  logger: Logger
}

/** Segment names owned by open journals of this process (tests run several Cores in one process). */
export const liveSegments = new Set<string>()
let seq = 0

export function segmentIdOf(token: string): string | undefined {
  const m = /^j-(\d{13}-\d+-\d+)-\d+-\d+$/.exec(token)
  return m?.[1]
}

export function journalToken(segmentId: string, from: number, to: number): string {
  return `j-${segmentId}-${from}-${to}`
}

interface Segment {
  id: string
  name: string
  fd: number
  bytes: number
  rows: number
  createdAt: number
  /** Written since the last fdatasync. */
  dirty: boolean
}

export function createUsageJournal(opts: JournalOptions): UsageJournal {
  const { dir, maxBytes, fsyncMs, logger } = opts
  mkdirSync(dir, { recursive: true })
  let active: Segment | undefined
  /** Sealed, unacknowledged segments of this process: id -> bytes, createdAt. */
  const sealed = new Map<string, { bytes: number; createdAt: number }>()
  let recoveredBytes = 0
  let recoveredOldest: number | undefined
  let rejectedRows = 0
  let lastError: string | undefined
  let lastErrorLogged = 0
  let dirDirty = false
  let closed = false

  function usedBytes(): number {
    let n = recoveredBytes + (active?.bytes ?? 0)
    for (const s of sealed.values()) n += s.bytes
    return n
  }

  function fail(err: unknown, what: string) {
    lastError = `${what}: ${(err as Error).message ?? String(err)}`
    // One log line per 10 s: a full disk would otherwise log once per request.
    if (Date.now() - lastErrorLogged > 10_000) {
      lastErrorLogged = Date.now()
      logger.error({ err: lastError, dir }, 'usage journal refused rows; they are kept in memory only')
    }
  }

  function open(): Segment {
    const createdAt = Date.now()
    const id = `${String(createdAt).padStart(13, '0')}-${process.pid}-${seq++}`
    const name = `${id}.jnl`
    const fd = openSync(join(dir, name), 'a')
    liveSegments.add(name)
    dirDirty = true
    return { id, name, fd, bytes: 0, rows: 0, createdAt, dirty: false }
  }

  /**
   * fdatasync on the main thread, on purpose: the async fs calls run on libuv's
   * threadpool, which the embedded engine's queries can fill; an insert then
   * waited for its segment's fsync queued behind queries waiting for that
   * insert (a test hung on it). A small segment's fdatasync takes about a
   * millisecond on an idle disk, once per JOURNAL_FSYNC_MS and once per batch.
   */
  function syncSegment(seg: Segment): void {
    if (!seg.dirty && !dirDirty) return
    try {
      fdatasyncSync(seg.fd)
      seg.dirty = false
      // A new segment's directory entry must survive a power loss too.
      if (dirDirty) {
        const d = openSync(dir, 'r')
        try {
          fsyncSync(d)
        } finally {
          closeSync(d)
        }
        dirDirty = false
      }
    } catch (err) {
      fail(err, 'fsync failed')
      throw err
    }
  }

  const timer =
    fsyncMs > 0
      ? setInterval(() => {
          if (!active?.dirty) return
          try {
            syncSegment(active)
          } catch {
            // fail() logged it; the next tick tries again.
          }
        }, fsyncMs).unref()
      : undefined
  /** JOURNAL_FSYNC_MS=0: the answers waiting at the same moment share one fdatasync (group commit). */
  let groupSync: Promise<void> | undefined

  function write(seg: Segment, payload: string): number {
    const len = Buffer.byteLength(payload)
    const buf = Buffer.allocUnsafe(HEADER_BYTES + len)
    RECORD_MAGIC.copy(buf, 0)
    buf.writeUInt32LE(len, 4)
    buf.write(payload, HEADER_BYTES, 'utf8')
    buf.writeUInt32LE(crc32(buf.subarray(HEADER_BYTES)), 8)
    let off = 0
    while (off < buf.length) off += writeSync(seg.fd, buf, off)
    seg.bytes += buf.length
    seg.dirty = true
    return buf.length
  }

  return {
    dir,
    fsyncMs,
    append(row) {
      if (closed) return false
      try {
        if (usedBytes() >= maxBytes) {
          rejectedRows++
          fail(new Error(`${usedBytes()} of ${maxBytes} bytes (JOURNAL_MAX_BYTES)`), 'journal full')
          return false
        }
        active ??= open()
        write(active, `{"i":${active.rows},"r":${JSON.stringify(row)}}`)
        active.rows++
        return true
      } catch (err) {
        // A torn write (ENOSPC mid-record) is found by its crc at recovery and cut off there.
        rejectedRows++
        fail(err, 'journal write failed')
        return false
      }
    },
    durable() {
      if (fsyncMs > 0 || !active?.dirty) return undefined
      groupSync ??= new Promise<void>((resolve, reject) =>
        setImmediate(() => {
          groupSync = undefined
          try {
            if (active) syncSegment(active)
            resolve()
          } catch (err) {
            reject(err)
          }
        }),
      )
      return groupSync
    },
    cut() {
      const seg = active
      active = undefined
      if (!seg) return undefined
      if (seg.rows === 0) {
        closeSync(seg.fd)
        liveSegments.delete(seg.name)
        unlinkSync(join(dir, seg.name))
        return undefined
      }
      const token = journalToken(seg.id, 0, seg.rows)
      try {
        write(seg, `{"c":"${token}"}`)
      } catch (err) {
        // The cut is derived from the rows again at recovery; only logged.
        fail(err, 'journal cut write failed')
      }
      sealed.set(seg.id, { bytes: seg.bytes, createdAt: seg.createdAt })
      let synced: Promise<void> = Promise.resolve()
      try {
        syncSegment(seg)
      } catch (err) {
        synced = Promise.reject(err)
        // fail() logged it; handled here so that it is not an unhandled rejection until ship() awaits it.
        synced.catch(() => {})
      } finally {
        closeSync(seg.fd)
      }
      return { token, synced }
    },
    ack(token) {
      const id = segmentIdOf(token)
      if (!id || !sealed.has(id)) return
      sealed.delete(id)
      liveSegments.delete(`${id}.jnl`)
      try {
        unlinkSync(join(dir, `${id}.jnl`))
      } catch (err) {
        // Left behind, the segment is delivered again at the next start under the same token: a no-op.
        logger.warn({ err: String(err), segment: id }, 'could not delete an acknowledged journal segment')
      }
    },
    trackRecovered(bytes, createdAt) {
      recoveredBytes = Math.max(0, recoveredBytes + bytes)
      recoveredOldest = createdAt
    },
    status() {
      let oldestAt = recoveredBytes > 0 ? recoveredOldest : undefined
      for (const s of sealed.values())
        if (oldestAt === undefined || s.createdAt < oldestAt) oldestAt = s.createdAt
      if (active && (oldestAt === undefined || active.createdAt < oldestAt)) oldestAt = active.createdAt
      return {
        enabled: true,
        dir,
        bytes: usedBytes(),
        maxBytes,
        segments: sealed.size + (active ? 1 : 0),
        oldestAt,
        rejectedRows,
        lastError,
        fsyncMs,
      }
    },
    async close() {
      if (closed) return
      closed = true
      if (timer) clearInterval(timer)
      // Unacknowledged segments stay on disk: the next start delivers them.
      const seg = active
      active = undefined
      if (seg) {
        try {
          syncSegment(seg)
        } catch {
          // logged by fail(); the segment stays for the next start either way
        }
        closeSync(seg.fd)
        if (seg.rows === 0) unlinkSync(join(dir, seg.name))
        liveSegments.delete(seg.name)
      }
      for (const id of sealed.keys()) liveSegments.delete(`${id}.jnl`)
    },
  }
}

/** Journal segments another (dead) writer left, oldest first: live writers' segments are not ours to deliver. */
export function leftoverSegments(
  dir: string,
): { name: string; path: string; id: string; createdAt: number; bytes: number }[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    // No journal directory yet: nothing was left. Anything else (EACCES) must stop the start.
    if (isMissingFile(err)) return []
    throw err
  }
  const out = []
  for (const name of names.sort()) {
    const m = JOURNAL_SEGMENT.exec(name)
    if (!m || liveSegments.has(name)) continue
    const pid = Number(m[2])
    if (pid !== process.pid && alive(pid)) continue
    const size = statSync(join(dir, name), { throwIfNoEntry: false })?.size
    if (size === undefined) continue
    out.push({ name, path: join(dir, name), id: name.slice(0, -4), createdAt: Number(m[1]), bytes: size })
  }
  return out
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
