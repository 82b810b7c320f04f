import { crc32 } from 'node:zlib'

/**
 * Record framing of the append-only segment files on local disk: the disk
 * spool's (worker/disk-spool.ts) and the usage journal's
 * (core/usage/usage-journal.ts). Each record:
 *   magic 'TMS1' (4 bytes) | payload length u32 LE | crc32(payload) u32 LE | payload
 * Segments are append-only; the crc catches torn or flipped bytes, and the
 * magic lets a reader resynchronise after a damaged record so the records
 * behind it are still replayed.
 */
export const RECORD_MAGIC = Buffer.from('TMS1')
export const HEADER_BYTES = 12
/** A single batch never comes near this; a larger length field means the header itself is damaged. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024

export function encodeRecord(payload: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES)
  RECORD_MAGIC.copy(header, 0)
  header.writeUInt32LE(payload.length, 4)
  header.writeUInt32LE(crc32(payload), 8)
  return Buffer.concat([header, payload])
}

export interface SegmentRecord {
  /** Byte offset of the record's header; `end` is where the next record starts. */
  offset: number
  end: number
  payload: Buffer
}

export interface SegmentProblem {
  offset: number
  kind: 'bad-magic' | 'bad-length' | 'bad-crc' | 'truncated'
  /** Bytes skipped until the next valid record (or the end of the file). */
  skipped: number
}

export interface ScanResult {
  records: SegmentRecord[]
  problems: SegmentProblem[]
}

function recordAt(buf: Buffer, offset: number): SegmentRecord | SegmentProblem['kind'] {
  if (offset + HEADER_BYTES > buf.length) return 'truncated'
  if (!buf.subarray(offset, offset + 4).equals(RECORD_MAGIC)) return 'bad-magic'
  const len = buf.readUInt32LE(offset + 4)
  if (len > MAX_RECORD_BYTES) return 'bad-length'
  const end = offset + HEADER_BYTES + len
  if (end > buf.length) return 'truncated'
  const payload = buf.subarray(offset + HEADER_BYTES, end)
  if (crc32(payload) !== buf.readUInt32LE(offset + 8)) return 'bad-crc'
  return { offset, end, payload }
}

/** Reads every intact record from `from` on, skipping damaged stretches to the next intact record. */
export function scanSegment(buf: Buffer, from = 0): ScanResult {
  const records: SegmentRecord[] = []
  const problems: SegmentProblem[] = []
  let offset = from
  while (offset < buf.length) {
    const r = recordAt(buf, offset)
    if (typeof r !== 'string') {
      records.push(r)
      offset = r.end
      continue
    }
    // Resynchronise: the next offset holding a record whose crc checks out.
    let next = offset + 1
    let found: SegmentRecord | undefined
    while (next < buf.length) {
      next = buf.indexOf(RECORD_MAGIC, next)
      if (next < 0) break
      const candidate = recordAt(buf, next)
      if (typeof candidate !== 'string') {
        found = candidate
        break
      }
      next++
    }
    const resume = found ? found.offset : buf.length
    problems.push({ offset, kind: r, skipped: resume - offset })
    offset = resume
  }
  return { records, problems }
}
