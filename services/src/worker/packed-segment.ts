import { gunzipSync, gzipSync } from 'node:zlib'
import { encodeRecord, type SegmentRecord, scanSegment } from '../core/storage/record-framing.ts'

/**
 * The format of a compressed journal segment (`<id>.<state>.jnlz`, written by
 * worker/journal-compaction.ts): the segment's own bytes, records, crcs and
 * all, cut into chunks of about PACKED_CHUNK_BYTES at record boundaries,
 * each chunk gzip'd and framed as a record of its own (the same framing,
 * core/storage/record-framing.ts), after a header record:
 *   record({"jnlz":1,"bytes":N,"chunks":C,"rows":R,"token":"j-..."}) | record(gzip(chunk 1)) | ...
 * Reading is: scan the outer records, gunzip each chunk, concatenate, then the
 * same scan and decoding as an uncompressed segment.
 *
 * Why chunks, not one gzip of the whole file: a damaged byte then costs the
 * rows of one chunk (about 360 rows of 360 bytes), not the whole batch (the
 * outer crc finds the chunk, the scan resynchronises on the next one); and
 * compressing one chunk is a short synchronous step (about 1-4 ms), so the
 * event loop is never held for a whole segment. The header's counts tell a
 * chunk lost at the end from a complete file; its token and row count let
 * ops listings show the segment without decompressing it.
 */
export const PACKED_CHUNK_BYTES = 128 * 1024

export interface PackedHeader {
  jnlz: 1
  /** Length of the uncompressed segment. */
  bytes: number
  chunks: number
  rows: number
  token: string
}

/** Damage of the compressed file itself; offsets are in the compressed file. */
export interface PackedProblem {
  offset: number
  kind: 'bad-magic' | 'bad-length' | 'bad-crc' | 'truncated' | 'bad-header' | 'bad-gzip' | 'missing-chunks'
  /** Compressed bytes skipped (lost) at that offset. */
  skipped: number
}

/**
 * Where to cut a segment whose records are `records` (contiguous, from 0):
 * at the last record boundary within PACKED_CHUNK_BYTES of the chunk's start;
 * a single record larger than that (a turn of the event loop with more than
 * 128 KiB of rows) is cut into pieces of that size, which the inner crc
 * still covers as one record.
 */
export function chunkBounds(records: readonly SegmentRecord[]): [number, number][] {
  const out: [number, number][] = []
  let start = 0
  let boundary = 0
  for (const r of records) {
    if (r.end - start <= PACKED_CHUNK_BYTES) {
      boundary = r.end
      continue
    }
    if (boundary > start) {
      out.push([start, boundary])
      start = boundary
    }
    while (r.end - start > PACKED_CHUNK_BYTES) {
      out.push([start, start + PACKED_CHUNK_BYTES])
      start += PACKED_CHUNK_BYTES
    }
    boundary = r.end
  }
  if (boundary > start) out.push([start, boundary])
  return out
}

/** One chunk of a segment, compressed and framed. */
export function packChunk(bytes: Buffer): Buffer {
  return encodeRecord(gzipSync(bytes))
}

export function packHeader(header: Omit<PackedHeader, 'jnlz'>): Buffer {
  return encodeRecord(Buffer.from(JSON.stringify({ jnlz: 1, ...header } satisfies PackedHeader)))
}

function parseHeader(payload: Buffer): PackedHeader | undefined {
  if (payload[0] !== 0x7b) return undefined
  try {
    const h = JSON.parse(payload.toString('utf8')) as Partial<PackedHeader>
    return h.jnlz === 1 &&
      Number.isInteger(h.bytes) &&
      Number.isInteger(h.chunks) &&
      Number.isInteger(h.rows) &&
      typeof h.token === 'string'
      ? (h as PackedHeader)
      : undefined
  } catch (err) {
    // A header whose crc checked out but does not parse: reported as damage by the caller.
    if (!(err instanceof SyntaxError)) throw err
    return undefined
  }
}

/** The header of a compressed segment, when its first record is intact (ops listings). */
export function readPackedHeader(file: Buffer): PackedHeader | undefined {
  const first = scanSegment(file).records[0]
  return first && first.offset === 0 ? parseHeader(first.payload) : undefined
}

/**
 * The segment's bytes from its compressed file: every chunk whose crc checks
 * out, decompressed, in order. A damaged chunk is skipped (its rows are lost,
 * the records after it are kept) and reported; so is a missing header and a
 * chunk missing at the end. Never throws on damage.
 */
export function unpackSegment(file: Buffer): {
  bytes: Buffer
  header: PackedHeader | undefined
  problems: PackedProblem[]
} {
  const { records, problems: scanned } = scanSegment(file)
  const problems: PackedProblem[] = scanned.map((p) => ({ ...p }))
  let header: PackedHeader | undefined
  const parts: Buffer[] = []
  for (const [i, r] of records.entries()) {
    if (i === 0 && r.offset === 0 && r.payload[0] === 0x7b) {
      header = parseHeader(r.payload)
      if (!header) problems.push({ offset: 0, kind: 'bad-header', skipped: r.end })
      continue
    }
    try {
      parts.push(gunzipSync(r.payload))
    } catch (err) {
      // zlib's verdict on the data (Z_DATA_ERROR, Z_BUF_ERROR): reported with the segment's
      // damage (its crc checked out, so it is not a chunk we wrote). Anything else is ours.
      if (!String((err as NodeJS.ErrnoException).code).startsWith('Z_')) throw err
      problems.push({ offset: r.offset, kind: 'bad-gzip', skipped: r.end - r.offset })
    }
  }
  const bytes = Buffer.concat(parts)
  if (problems.length === 0) {
    if (!header) problems.push({ offset: 0, kind: 'bad-header', skipped: 0 })
    else if (parts.length !== header.chunks || bytes.length !== header.bytes)
      problems.push({ offset: file.length, kind: 'missing-chunks', skipped: 0 })
  }
  problems.sort((a, b) => a.offset - b.offset)
  return { bytes, header, problems }
}
