import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import type { Logger } from 'pino'
import { isAlive, readdirIfPresent } from '../storage/local-files.ts'
import { HEADER_BYTES, RECORD_MAGIC } from '../storage/record-framing.ts'
import type { EncodedRows } from '../storage/warehouse.ts'
import type { UsageRow } from './usage-row.ts'

/**
 * The local write-ahead journal of usage rows (DATA_DIR/journal), and, with
 * the journal on, the local store of batches ClickHouse did not take.
 *
 * Every row is appended before the client receives the end of its answer.
 * The rows appended in one turn of the event loop are written together, one
 * record and one write() for all of them, at the end of that turn (the first
 * answer to end in a turn has its row written at once, see `durable()`); the
 * gateway waits for that write before it sends the end of the answer, so
 * from then on a crash of the process (SIGKILL, OOM) loses
 * nothing: the bytes are in the OS page cache. Power loss: the open segment
 * is fdatasync'ed every `fsyncMs` (group fsync); with fsyncMs = 0 `durable()`
 * resolves only after an fdatasync, so the answer waits for the disk.
 *
 * One segment is one recorder batch: when the recorder cuts a batch, the
 * journal writes a cut record naming the batch's dedup token, fdatasyncs the
 * segment (before the insert is sent, so a power loss cannot leave an
 * inserted batch whose journal copy would later be cut differently) and
 * starts a new segment. The token is the segment's name, `j-<segment id>`
 * (known from the first row on, so each row is written with its batch id),
 * so a restart that finds the segment unacknowledged re-inserts the same rows
 * under the same token and ClickHouse drops the repeat (raw table and every
 * rollup). Acknowledging a batch (its insert succeeded, or Redis took it)
 * deletes its segment.
 *
 * A batch ClickHouse did not take is parked: its segment is renamed to say
 * whether its insert can have stored anything (`<id>.unsent.jnl`: refused
 * before it was sent, so it may be inserted together with other such batches
 * under one group token; `<id>.held.jnl`: it may have landed, so it is only
 * ever inserted alone under its own token). From then on the segment belongs
 * to the journal's drainer (worker/journal-recovery.ts), like the segments a
 * dead process left. A rename lost to a power loss leaves `<id>.jnl`, which
 * is delivered alone: the safe side. While it waits (an outage), the drainer
 * compresses a parked segment to `<id>.<state>.jnlz` (worker/journal-compaction.ts):
 * JSON lines take about 360 bytes a row, compressed about 40, so
 * JOURNAL_MAX_BYTES holds an outage about 9 times as long.
 *
 * Record framing is the spool's (core/storage/record-framing.ts, shared):
 * magic, length, crc32, payload. A rows record's payload is one line per row
 * (the rows of one write): the row's values as a JSON array in the order of
 * the segment's columns, named once by a `{"k":[...]}` line before the first
 * row; a row of another shape is written as a JSON object. The array lines
 * are JSONCompactEachRow: the batch's insert sends them as they are
 * (`JournalCut.encoded`), so a row is serialised once, not once for the
 * journal and once for ClickHouse. A cut's payload is `{"c":"<token>"}`.
 * Older segments (one `{"i":<row index>,"r":<row>}` record per row, tokens
 * `j-<id>-<first row>-<end row>`) are still read.
 */
export const JOURNAL_SEGMENT = /^(\d{13})-(\d+)-(\d+)(?:\.(unsent|held)\.jnl(z)?|\.jnl)$/

/** The ending of a compressed (parked) segment's file name. */
export const COMPRESSED_SEGMENT_SUFFIX = '.jnlz'

/** Who may deliver a segment, and how (see above). */
export type SegmentState = 'own' | 'unsent' | 'held'

export interface JournalStatus {
  enabled: boolean
  dir: string
  /** Bytes of segments not yet acknowledged: this process's, parked ones and those left to recover. */
  bytes: number
  maxBytes: number
  segments: number
  /** Of the segments waiting for the drainer, those held compressed (worker/journal-compaction.ts). */
  compressedSegments: number
  /** When the oldest unacknowledged row was journaled (ms since epoch). */
  oldestAt: number | undefined
  /** Rows the journal could not take (full, or a write error): answered, only in memory. */
  rejectedRows: number
  /** Of those, the rows of the batch being collected (not cut yet). */
  pendingRefused: number
  lastError: string | undefined
  fsyncMs: number
}

export interface JournalCut {
  token: string
  /** Resolves once the segment holding the batch is on disk (fdatasync). */
  synced: Promise<void>
  /** Every row recorded since the previous cut is in this segment (none refused). */
  complete: boolean
  /** The batch's rows as the insert sends them (present when complete and all of one shape). */
  encoded: EncodedRows | undefined
}

export interface JournalBacklog {
  /** Bytes on disk: a compressed segment counts its compressed size. */
  bytes: number
  segments: number
  /** Of those segments, the compressed ones. */
  compressed: number
  oldestAt: number | undefined
}

export interface UsageJournal {
  readonly dir: string
  readonly fsyncMs: number
  /**
   * Takes the row for the open segment; it is written at the end of this
   * turn of the event loop (or by `cut()`). False when the journal refused it
   * (full, closed).
   */
  append(row: UsageRow): boolean
  /**
   * What the end of an answer waits for: the write of the rows appended so
   * far (and, with fsyncMs = 0, their fdatasync). The first call of a turn of
   * the event loop writes them at once (nothing to wait for: undefined);
   * later calls in the same turn wait for one write at the end of the turn.
   * Rejects when that write (or fdatasync) failed: the
   * rows are then only in the recorder's memory (counted and logged here;
   * the gateway ends the answer anyway and reports it, gateway.routes.ts).
   */
  durable(): Promise<void> | undefined
  /** Ends the open segment's batch; undefined when no row of it was journaled. */
  cut(): JournalCut | undefined
  /** The batch under this token is in ClickHouse or Redis: its segment goes. */
  ack(token: string): void
  /**
   * The batch under this token was not taken: its segment is handed to the
   * drainer, as `mergeable` (no insert of it can have stored anything) or
   * not. False when the segment is not this journal's to park.
   */
  park(token: string, opts: { mergeable: boolean }): boolean
  /** Called when a segment was parked (the drainer wakes up). */
  onPark(listener: () => void): void
  /** The drainer's view of the segments it has to deliver (parked and left by dead processes). */
  setBacklog(backlog: JournalBacklog): void
  /**
   * A parked segment of the backlog was compressed from `bytesBefore` to
   * `bytesAfter` bytes on disk: the bound counts the smaller size from now on.
   */
  compacted(bytesBefore: number, bytesAfter: number): void
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
  // `j-<id>`, or `j-<id>-<first row>-<end row>` from journals written before.
  const m = /^j-(\d{13}-\d+-\d+)(?:-\d+-\d+)?$/.exec(token)
  return m?.[1]
}

export function journalToken(segmentId: string): string {
  return `j-${segmentId}`
}

export function segmentFileName(id: string, state: SegmentState, compressed = false): string {
  if (state === 'own') return `${id}.jnl`
  return `${id}.${state}${compressed ? COMPRESSED_SEGMENT_SUFFIX : '.jnl'}`
}

interface Segment {
  id: string
  name: string
  token: string
  fd: number
  /** Bytes written (the pending group is not counted until written). */
  bytes: number
  /** Rows in the segment, those of the pending group included. */
  rows: number
  createdAt: number
  /** Written since the last fdatasync. */
  dirty: boolean
  /** Column order of the array lines; written (`{"k":...}`) with the first rows. */
  columns: string[] | undefined
  columnsWritten: boolean
  /** Copies of the written array lines: the insert's body. */
  body: Buffer[]
  /** Every row so far as an array line (none as an object): `body` is the whole batch. */
  encodable: boolean
}

/**
 * The row's values in the segment's column order, or undefined when the row
 * has other keys (then it is written as an object): the same test as the
 * insert's encoding (core/storage/warehouse.ts, encodeRows).
 */
function valuesOf(row: UsageRow, columns: string[], into: unknown[]): unknown[] | undefined {
  const r = row as unknown as Record<string, unknown>
  let keys = 0
  for (const _ in r) keys++
  if (keys !== columns.length) return undefined
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!
    const v = r[c]
    if (v === undefined && !(c in r)) return undefined
    into[i] = v
  }
  into.length = columns.length
  return into
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function deferred(): Deferred {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** A pending group larger than this is written at once rather than at the end of the turn. */
const GROUP_MAX_BYTES = 4 * 1024 * 1024

export function createUsageJournal(opts: JournalOptions): UsageJournal {
  const { dir, maxBytes, fsyncMs, logger } = opts
  mkdirSync(dir, { recursive: true })
  let active: Segment | undefined
  /** Sealed, unacknowledged segments of this process: id -> bytes, createdAt. */
  const sealed = new Map<string, { bytes: number; createdAt: number }>()
  let backlog: JournalBacklog = { bytes: 0, segments: 0, compressed: 0, oldestAt: undefined }
  const parkListeners = new Set<() => void>()
  let rejectedRows = 0
  /** Rows refused since the last cut: that batch's segment does not hold all of it. */
  let refusedSinceCut = 0
  let lastError: string | undefined
  let lastErrorLogged = 0
  let dirDirty = false
  let closed = false

  // The pending group: one record (header reserved at 0) holding the rows appended this turn.
  let chunk = Buffer.allocUnsafe(64 * 1024)
  let pos = 0
  let groupRows = 0
  /** Where the pending group's array lines start (after a columns line). */
  let groupBodyFrom = 0
  const values: unknown[] = []
  let flushScheduled = false
  /** An answer of this turn already had its rows written at once (durable()); the others wait for the turn's end. */
  let wroteEarlyThisTurn = false
  /** The answers waiting for the pending group's write (and fsync with fsyncMs = 0). */
  let waiting: Deferred | undefined
  /** Why the current turn's rows are not (all) in the journal, for the answers waiting on them. */
  let turnError: unknown

  function usedBytes(): number {
    let n = backlog.bytes + (active?.bytes ?? 0) + pos
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
    return {
      id,
      name,
      token: journalToken(id),
      fd,
      bytes: 0,
      rows: 0,
      createdAt,
      dirty: false,
      columns: undefined,
      columnsWritten: false,
      body: [],
      encodable: true,
    }
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

  function writeAll(fd: number, buf: Buffer, length: number): void {
    let off = 0
    while (off < length) off += writeSync(fd, buf, off, length - off)
  }

  /**
   * Writes the pending group as one record. A failed write is cut back off
   * the segment (no torn record left behind for the rows that follow); its
   * rows are counted as refused and stay in the recorder's memory.
   */
  function writeGroup(): void {
    if (groupRows === 0) return
    const seg = active!
    const len = pos - HEADER_BYTES
    RECORD_MAGIC.copy(chunk, 0)
    chunk.writeUInt32LE(len, 4)
    chunk.writeUInt32LE(crc32(chunk.subarray(HEADER_BYTES, pos)), 8)
    try {
      writeAll(seg.fd, chunk, pos)
      seg.bytes += pos
      seg.dirty = true
      seg.columnsWritten = true
      // A copy: the chunk is reused by the next group.
      if (seg.encodable) seg.body.push(Buffer.from(chunk.subarray(groupBodyFrom, pos)))
    } catch (err) {
      try {
        ftruncateSync(seg.fd, seg.bytes)
      } catch (truncErr) {
        // A torn record stays; recovery finds it by its crc and skips it.
        logger.warn(
          { err: String(truncErr), segment: seg.name },
          'usage journal: could not cut a failed write back',
        )
      }
      seg.rows -= groupRows
      rejectedRows += groupRows
      refusedSinceCut += groupRows
      turnError = err
      // The columns line went with the failed write: the next group writes it again.
      fail(err, 'journal write failed')
    }
    pos = 0
    groupRows = 0
  }

  /** Ends the turn's group: written, then the waiting answers let go (after an fdatasync with fsyncMs = 0). */
  function endTurn(): void {
    flushScheduled = false
    wroteEarlyThisTurn = false
    writeGroup()
    if (fsyncMs === 0 && waiting && active && !turnError) {
      try {
        syncSegment(active)
      } catch (err) {
        // fail() logged it; the answers waiting on it are told (they report it).
        turnError = err
      }
    }
    settleTurn()
  }

  function settleTurn(): void {
    const w = waiting
    const err = turnError
    waiting = undefined
    turnError = undefined
    if (!w) return
    if (err === undefined) w.resolve()
    else w.reject(err)
  }

  function schedule(): void {
    if (flushScheduled) return
    flushScheduled = true
    setImmediate(endTurn)
  }

  function ensure(bytes: number): void {
    if (bytes <= chunk.length) return
    const next = Buffer.allocUnsafe(Math.max(bytes, chunk.length * 2))
    chunk.copy(next, 0, 0, pos)
    chunk = next
  }

  return {
    dir,
    fsyncMs,
    append(row) {
      if (closed) return false
      if (usedBytes() >= maxBytes) {
        rejectedRows++
        refusedSinceCut++
        fail(new Error(`${usedBytes()} of ${maxBytes} bytes (JOURNAL_MAX_BYTES)`), 'journal full')
        return false
      }
      try {
        active ??= open()
      } catch (err) {
        rejectedRows++
        refusedSinceCut++
        fail(err, 'journal segment could not be opened')
        return false
      }
      const seg = active
      // The batch id is the segment's token from the start (the recorder sets the same at the cut).
      row.batch_id = seg.token
      seg.columns ??= Object.keys(row)
      if (pos === 0) {
        pos = HEADER_BYTES
        if (!seg.columnsWritten) {
          const k = `{"k":${JSON.stringify(seg.columns)}}\n`
          ensure(pos + k.length * 3)
          pos += chunk.write(k, pos)
        }
        groupBodyFrom = pos
      }
      const asArray = valuesOf(row, seg.columns, values)
      if (!asArray) seg.encodable = false
      const json = JSON.stringify(asArray ?? row)
      // UTF-16 to UTF-8: at most 3 bytes per code unit, plus the newline.
      ensure(pos + json.length * 3 + 1)
      pos += chunk.write(json, pos)
      chunk[pos++] = 0x0a
      groupRows++
      active.rows++
      if (pos >= GROUP_MAX_BYTES) writeGroup()
      schedule()
      return true
    },
    durable() {
      // The first answer to end in a turn of the event loop is written at once:
      // when it is the only one (a quiet gateway), its end goes out in the same
      // turn as the rest of the answer (a stream's final event in the same
      // packet as the events before it). Answers that end later in the same
      // turn (a busy gateway) share one write at the end of the turn: a write
      // per answer cost 15-20 % of the peak throughput on these VMs
      // (docs/BENCHMARKS.md, section 6).
      if (fsyncMs > 0 && !wroteEarlyThisTurn && groupRows > 0) {
        wroteEarlyThisTurn = true
        schedule()
        const refusedBefore = rejectedRows
        writeGroup()
        if (rejectedRows === refusedBefore) return undefined
        const err = turnError
        turnError = undefined
        return Promise.reject(err)
      }
      if (groupRows === 0 && (fsyncMs > 0 || !active?.dirty)) return undefined
      waiting ??= deferred()
      schedule()
      return waiting.promise
    },
    cut() {
      // The batch's rows still pending belong to this segment.
      writeGroup()
      const complete = refusedSinceCut === 0
      refusedSinceCut = 0
      const seg = active
      active = undefined
      if (!seg) return undefined
      if (seg.rows === 0) {
        closeSync(seg.fd)
        liveSegments.delete(seg.name)
        unlinkSync(join(dir, seg.name))
        return undefined
      }
      const token = seg.token
      try {
        const payload = Buffer.from(`{"c":"${token}"}`)
        const rec = Buffer.allocUnsafe(HEADER_BYTES + payload.length)
        RECORD_MAGIC.copy(rec, 0)
        rec.writeUInt32LE(payload.length, 4)
        rec.writeUInt32LE(crc32(payload), 8)
        payload.copy(rec, HEADER_BYTES)
        writeAll(seg.fd, rec, rec.length)
        seg.bytes += rec.length
        seg.dirty = true
      } catch (err) {
        // The token is derived from the rows again at recovery; only logged.
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
        // Answers promised an fdatasync (JOURNAL_FSYNC_MS=0) are told.
        if (fsyncMs === 0) turnError ??= err
      } finally {
        closeSync(seg.fd)
      }
      // Answers waiting for this turn's write: done (and synced) above.
      settleTurn()
      const encoded =
        complete && seg.encodable && seg.columns
          ? { columns: seg.columns, body: Buffer.concat(seg.body) }
          : undefined
      seg.body = []
      return { token, synced, complete, encoded }
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
    park(token, { mergeable }) {
      const id = segmentIdOf(token)
      const s = id ? sealed.get(id) : undefined
      if (!id || !s) return false
      try {
        renameSync(join(dir, `${id}.jnl`), join(dir, segmentFileName(id, mergeable ? 'unsent' : 'held')))
      } catch (err) {
        logger.warn({ err: String(err), segment: id }, 'usage journal: could not park a segment')
        return false
      }
      sealed.delete(id)
      liveSegments.delete(`${id}.jnl`)
      backlog = {
        ...backlog,
        bytes: backlog.bytes + s.bytes,
        segments: backlog.segments + 1,
        oldestAt: Math.min(backlog.oldestAt ?? s.createdAt, s.createdAt),
      }
      for (const l of parkListeners) l()
      return true
    },
    onPark(listener) {
      parkListeners.add(listener)
    },
    setBacklog(b) {
      backlog = b
    },
    compacted(bytesBefore, bytesAfter) {
      // Until the drainer's next listing (setBacklog) sets the figures afresh.
      backlog = {
        ...backlog,
        bytes: Math.max(0, backlog.bytes - (bytesBefore - bytesAfter)),
        compressed: Math.min(backlog.segments, backlog.compressed + 1),
      }
    },
    status() {
      let oldestAt = backlog.bytes > 0 ? backlog.oldestAt : undefined
      for (const s of sealed.values())
        if (oldestAt === undefined || s.createdAt < oldestAt) oldestAt = s.createdAt
      if (active && (oldestAt === undefined || active.createdAt < oldestAt)) oldestAt = active.createdAt
      return {
        enabled: true,
        dir,
        bytes: usedBytes(),
        maxBytes,
        segments: sealed.size + (active ? 1 : 0) + backlog.segments,
        compressedSegments: backlog.compressed,
        oldestAt,
        rejectedRows,
        pendingRefused: refusedSinceCut,
        lastError,
        fsyncMs,
      }
    },
    async close() {
      if (closed) return
      closed = true
      if (timer) clearInterval(timer)
      writeGroup()
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
      settleTurn()
      for (const id of sealed.keys()) liveSegments.delete(`${id}.jnl`)
    },
  }
}

export interface DrainableSegment {
  name: string
  path: string
  id: string
  state: SegmentState
  createdAt: number
  /** Size on disk (compressed, for a compressed segment). */
  bytes: number
  /** Held compressed (`.jnlz`): gzip'd chunks of the segment's bytes (worker/packed-segment.ts). */
  compressed: boolean
  /**
   * The uncompressed file of the same segment, when a crash came between
   * writing the compressed copy and deleting the original: one segment, two
   * files. Listed once; the drainer keeps one of them (worker/journal-compaction.ts).
   */
  leftover: string | undefined
}

/**
 * Segments the drainer may deliver, oldest first: parked ones (whoever wrote
 * them) and those a dead writer left. A live writer's own segments are not
 * ours to deliver. A segment is listed once even when a crash left both its
 * compressed and its uncompressed file (the compressed one, with the other
 * as `leftover`): listing it twice would deliver it twice.
 */
export function drainableSegments(dir: string): DrainableSegment[] {
  // No journal directory yet: nothing was left. Anything else (EACCES) must stop the start.
  const names = readdirIfPresent(dir)
  const out: DrainableSegment[] = []
  const byId = new Map<string, DrainableSegment>()
  const alive = new Map<number, boolean>()
  for (const name of names.sort()) {
    const m = JOURNAL_SEGMENT.exec(name)
    if (!m || liveSegments.has(name)) continue
    const state = (m[4] ?? 'own') as SegmentState
    if (state === 'own') {
      const pid = Number(m[2])
      if (pid !== process.pid) {
        if (!alive.has(pid)) alive.set(pid, isAlive(pid))
        if (alive.get(pid)) continue
      }
    }
    const size = statSync(join(dir, name), { throwIfNoEntry: false })?.size
    if (size === undefined) continue
    const seg: DrainableSegment = {
      name,
      path: join(dir, name),
      id: `${m[1]}-${m[2]}-${m[3]}`,
      state,
      createdAt: Number(m[1]),
      bytes: size,
      compressed: m[5] === 'z',
      leftover: undefined,
    }
    const twin = byId.get(seg.id)
    // `<id>.<state>.jnl` sorts before `<id>.<state>.jnlz`: the compressed copy takes the original's place.
    if (twin && twin.state === seg.state && !twin.compressed && seg.compressed) {
      Object.assign(twin, seg, { leftover: twin.path })
      continue
    }
    byId.set(seg.id, seg)
    out.push(seg)
  }
  return out
}
