import { mkdirSync, readdirSync, renameSync, statSync } from 'node:fs'
import { type FileHandle, open, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { isAlive, isMissingFile, readFileIfPresent } from '../core/storage/local-files.ts'
import { encodeRecord } from '../core/storage/record-framing.ts'
import type { SpillSink } from '../core/usage/usage-recorder.ts'
import type { UsageBatch } from '../core/usage/usage-row.ts'
import { encodeBatch } from './batch-codec.ts'
import { writeFileDurably } from './durable-write.ts'
import { insertNeverSent } from './failure-classifier.ts'

/**
 * The local spill store: append-only segment files under DATA_DIR/spool.
 *
 * Writing: one open segment per process (`seg-<ms>-<pid>-<seq>.open`).
 * Concurrent spills are written together and fsynced once (group commit); a
 * spill resolves only after its bytes are on disk. A segment is sealed
 * (renamed to `.seg`, atomic) when it reaches SEGMENT_MAX_BYTES or a second
 * after its first record, so a replay worker in another process can take it.
 * Segments left `.open` by a dead process are sealed by the next one to start.
 *
 * Bound: the spool never grows past maxBytes. When full (or when the disk
 * itself is full: ENOSPC), spill() rejects with SpoolFullError; the recorder
 * then keeps the batch in memory and retries it on every flush, so nothing is
 * dropped while the process lives, and ops see `full: true` and
 * tokenmeter_spool_rejected_total rising.
 *
 * Reading: names sort by creation time, so listing gives oldest first.
 */
export class SpoolFullError extends Error {}

export interface SegmentInfo {
  name: string
  path: string
  bytes: number
  createdAt: number
}

export interface SpoolStatus {
  dir: string
  segments: number
  bytes: number
  maxBytes: number
  full: boolean
  oldestAt: number | undefined
  rejected: number
  lastError: string | undefined
}

export interface DiskSpool extends SpillSink {
  readonly dir: string
  /** Sealed segments, oldest first. */
  sealedSegments(): Promise<SegmentInfo[]>
  /** Seals the open segment now (a replay wants everything, tests want determinism). */
  seal(): Promise<void>
  status(): Promise<SpoolStatus>
  close(): Promise<void>
}

export interface DiskSpoolOptions {
  dir: string
  maxBytes: number
  segmentMaxBytes?: number
  sealAfterMs?: number
  logger: Logger
}

const SEGMENT = /^seg-(\d{13})-(\d+)-(\d+)\.(open|seg)$/
/** Segments this process has open: an .open file with our pid but not in here is from an earlier run (pid 1 in containers). */
const ownOpenSegments = new Set<string>()
let seq = 0

export function createDiskSpool(opts: DiskSpoolOptions): DiskSpool {
  const { dir, maxBytes } = opts
  const segmentMaxBytes = opts.segmentMaxBytes ?? 8 * 1024 * 1024
  const sealAfterMs = opts.sealAfterMs ?? 1_000
  mkdirSync(dir, { recursive: true })

  // Seal what dead writers left open: their fsynced records are valid, a torn
  // tail is found by the reader's crc check and reported.
  for (const name of readdirSync(dir)) {
    const m = SEGMENT.exec(name)
    const stale = Number(m?.[2]) === process.pid ? !ownOpenSegments.has(name) : !isAlive(Number(m?.[2]))
    if (m?.[4] === 'open' && stale) {
      renameSync(join(dir, name), join(dir, name.replace(/\.open$/, '.seg')))
    }
  }

  let active: { fh: FileHandle; name: string; bytes: number; timer?: NodeJS.Timeout } | undefined
  let queue: { buf: Buffer; resolve: () => void; reject: (e: unknown) => void }[] = []
  // Writes and seals run one at a time on this chain, so a seal never races a write.
  let chain: Promise<void> = Promise.resolve()
  let scheduled = false
  let usedBytes = scanBytes()
  let lastScan = Date.now()
  let rejected = 0
  let reserved = 0
  /** The last spill was refused for lack of room; cleared by the next write that fits. */
  let refusing = false
  let lastError: string | undefined
  let closed = false

  function scanBytes(): number {
    let n = 0
    for (const name of readdirSync(dir)) {
      if (SEGMENT.test(name)) n += statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0
    }
    return n
  }

  async function sealActive() {
    const a = active
    if (!a) return
    active = undefined
    ownOpenSegments.delete(a.name)
    if (a.timer) clearTimeout(a.timer)
    await a.fh.close()
    const sealed = a.name.replace(/\.open$/, '.seg')
    if (a.bytes === 0) await rm(join(dir, a.name), { force: true })
    else renameSync(join(dir, a.name), join(dir, sealed))
  }

  async function openActive() {
    const name = `seg-${String(Date.now()).padStart(13, '0')}-${process.pid}-${seq++}.open`
    const fh = await open(join(dir, name), 'a')
    ownOpenSegments.add(name)
    active = { fh, name, bytes: 0 }
  }

  async function writeGroup() {
    while (queue.length > 0) {
      const group = queue
      queue = []
      const data = Buffer.concat(group.map((g) => g.buf))
      try {
        if (!active) await openActive()
        const a = active!
        const before = a.bytes
        try {
          await a.fh.write(data)
          await a.fh.datasync()
        } catch (err) {
          // Leave no torn record behind, then start a fresh segment next time.
          // The write's error is rethrown; a cleanup failure is logged beside it, not lost.
          await a.fh
            .truncate(before)
            .catch((e) =>
              opts.logger.warn({ err: String(e), segment: a.name }, 'spool: truncating a torn record failed'),
            )
          await sealActive().catch((e) =>
            opts.logger.warn({ err: String(e) }, 'spool: sealing the segment failed'),
          )
          throw err
        }
        a.bytes += data.length
        usedBytes += data.length
        refusing = false
        if (a.bytes >= segmentMaxBytes) await sealActive()
        else if (!a.timer) {
          a.timer = setTimeout(() => void enqueueSeal(), sealAfterMs)
          a.timer.unref()
        }
        for (const g of group) g.resolve()
      } catch (err) {
        const full = (err as NodeJS.ErrnoException).code === 'ENOSPC'
        if (full) refusing = true
        lastError = `${full ? 'disk full' : 'write failed'}: ${(err as Error).message}`
        rejected += group.length
        opts.logger.warn({ err: lastError }, 'disk spool write failed')
        for (const g of group) g.reject(full ? new SpoolFullError(lastError) : err)
      }
    }
    // No await between the empty check above and this line: a spill queued
    // after it schedules a new group.
    scheduled = false
  }

  function serialize(fn: () => Promise<void>): Promise<void> {
    const p = chain.then(fn)
    // The caller gets p's error; the chain only must not stay rejected for the next write.
    chain = p.catch(() => {})
    return p
  }

  function enqueueSeal(): Promise<void> {
    return serialize(sealActive)
  }

  function kick() {
    if (scheduled) return
    scheduled = true
    void serialize(writeGroup)
  }

  return {
    dir,
    async spill(batch: UsageBatch, cause?: unknown) {
      if (closed) throw new Error('disk spool is closed')
      const buf = encodeRecord(encodeBatch(batch, { mergeable: insertNeverSent(cause) }))
      if (Date.now() - lastScan > 1_000) {
        // Another process (the replay worker) deletes what it replayed.
        usedBytes = scanBytes()
        lastScan = Date.now()
      }
      if (usedBytes + reserved + buf.length > maxBytes) {
        rejected++
        refusing = true
        lastError = `spool full: ${usedBytes} of ${maxBytes} bytes (SPOOL_MAX_BYTES)`
        throw new SpoolFullError(lastError)
      }
      // Counted from acceptance until written (then in usedBytes) or refused.
      reserved += buf.length
      try {
        await new Promise<void>((resolve, reject) => {
          queue.push({ buf, resolve, reject })
          kick()
        })
      } finally {
        reserved -= buf.length
      }
    },
    async sealedSegments() {
      const out: SegmentInfo[] = []
      for (const name of (await readdir(dir)).sort()) {
        const m = name.endsWith('.seg') ? SEGMENT.exec(name) : null
        if (!m) continue
        // Gone since readdir: a replay finished it and deleted it.
        const s = await stat(join(dir, name)).catch((err) => {
          if (isMissingFile(err)) return undefined
          throw err
        })
        if (s) out.push({ name, path: join(dir, name), bytes: s.size, createdAt: Number(m[1]) })
      }
      return out
    },
    seal: enqueueSeal,
    async status() {
      usedBytes = scanBytes()
      lastScan = Date.now()
      let oldestAt: number | undefined
      let segments = 0
      for (const name of await readdir(dir)) {
        const m = SEGMENT.exec(name)
        if (!m) continue
        segments++
        const t = Number(m[1])
        if (oldestAt === undefined || t < oldestAt) oldestAt = t
      }
      return {
        dir,
        segments,
        bytes: usedBytes,
        maxBytes,
        full: refusing && usedBytes > 0,
        oldestAt,
        rejected,
        lastError,
      }
    },
    async close() {
      closed = true
      await serialize(sealActive)
    },
  }
}

/** Replay bookkeeping beside a segment: the offset of the first record not yet acknowledged by ClickHouse. */
export const ackPath = (segPath: string) => `${segPath}.ack`
export const lockPath = (segPath: string) => `${segPath}.lock`

export async function readAck(segPath: string): Promise<number> {
  // No ack file yet: nothing of the segment is acknowledged.
  const raw = (await readFileIfPresent(ackPath(segPath), 'utf8')) ?? '0'
  const n = Number(raw)
  return Number.isInteger(n) && n >= 0 ? n : 0
}

/**
 * Not fsynced by default: losing an ack after a crash only means the record
 * is inserted again with the same dedup token, which ClickHouse drops. After
 * a merged group it is `durable` (fsync, then an atomic rename): from then on
 * the group's intent may be overwritten, and the ack alone must keep its
 * batches from being grouped differently after a power loss.
 */
export async function writeAck(
  segPath: string,
  offset: number,
  opts: { durable?: boolean } = {},
): Promise<void> {
  if (opts.durable) await writeFileDurably(ackPath(segPath), String(offset))
  else await writeFile(ackPath(segPath), String(offset))
}

/** The merged group being replayed from a segment (worker/replay-groups.ts), recorded before its insert. */
export interface GroupIntent {
  from: number
  to: number
  token: string
}

export const intentPath = (segPath: string) => `${segPath}.group`

export async function readGroupIntent(segPath: string): Promise<GroupIntent | undefined> {
  const raw = await readFileIfPresent(intentPath(segPath), 'utf8')
  if (raw === undefined) return undefined
  try {
    const v = JSON.parse(raw) as GroupIntent
    // A torn write is no intent: it was not complete, so its insert never started.
    return Number.isInteger(v.from) && Number.isInteger(v.to) && typeof v.token === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

export async function writeGroupIntent(segPath: string, intent: GroupIntent): Promise<void> {
  await writeFileDurably(intentPath(segPath), JSON.stringify(intent))
}

/** One replayer per segment across processes; a lock whose owner died is taken over. */
export async function lockSegment(segPath: string): Promise<boolean> {
  const path = lockPath(segPath)
  for (let i = 0; i < 2; i++) {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // Held: by us, by a live process, or by a dead one (taken over). Released since: try again.
      const owner = Number((await readFileIfPresent(path, 'utf8')) ?? '0')
      if (owner === process.pid) return true
      if (owner > 0 && isAlive(owner)) return false
      await rm(path, { force: true })
    }
  }
  return false
}

export async function unlockSegment(segPath: string): Promise<void> {
  await rm(lockPath(segPath), { force: true })
}
