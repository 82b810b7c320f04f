import { readFileSync, truncateSync } from 'node:fs'
import { type SegmentProblem, scanSegment } from '../core/storage/record-framing.ts'
import { COMPRESSED_SEGMENT_SUFFIX, journalToken } from '../core/usage/usage-journal.ts'
import type { UsageRow } from '../core/usage/usage-row.ts'
import { type PackedProblem, readPackedHeader, unpackSegment } from './packed-segment.ts'

/**
 * Reading journal segments (core/usage/usage-journal.ts), uncompressed or
 * compressed while parked (worker/packed-segment.ts): for delivery
 * (worker/journal-recovery.ts), for compaction (worker/journal-compaction.ts)
 * and for ops listings (worker/outage-kit.ts).
 */
export interface ReadSegment {
  token: string
  rows: UsageRow[]
  /** Damage found in the segment's records (offsets in the uncompressed bytes). */
  problems: SegmentProblem[]
  /** Where the file was cut back to after a torn last record (never for a compressed one). */
  truncatedAt: number | undefined
  undecodable: number
  compressed: boolean
  /** Damage found in a compressed segment's file (lost chunks; offsets in the compressed file). */
  packedProblems: PackedProblem[]
  /** The rows a compressed segment held when it was written (its header), when known. */
  packedRows: number | undefined
}

/**
 * Decodes a segment's record payloads in order: a cut, or rows, one per
 * line: a `{"k":[...]}` line names the columns of the array lines after it;
 * an object line is a row as is (or, in older segments,
 * `{"i":<index>,"r":<row>}`). Fed a record at a time, so that compaction can
 * decode a segment in short steps.
 */
export class SegmentDecoder {
  readonly rows: UsageRow[] = []
  undecodable = 0
  #cut: string | undefined
  #columns: string[] | undefined
  readonly #segmentId: string

  constructor(segmentId: string) {
    this.#segmentId = segmentId
  }

  add(payload: Buffer): void {
    const text = payload.toString('utf8')
    if (text.startsWith('{"c":')) {
      try {
        const v = JSON.parse(text) as { c?: unknown }
        if (typeof v.c === 'string') this.#cut = v.c
        else this.undecodable++
      } catch (err) {
        // A cut record that does not parse: counted and reported like an undecodable row.
        if (!(err instanceof SyntaxError)) throw err
        this.undecodable++
      }
      return
    }
    for (const line of text.split('\n')) {
      if (line === '') continue
      try {
        this.#line(JSON.parse(line) as unknown)
      } catch (err) {
        // Counted, and reported with the segment's quarantine entry.
        if (!(err instanceof SyntaxError)) throw err
        this.undecodable++
      }
    }
  }

  #line(v: unknown): void {
    if (Array.isArray(v)) {
      const columns = this.#columns
      if (!columns || columns.length !== v.length) {
        this.undecodable++
        return
      }
      const row: Record<string, unknown> = {}
      for (let i = 0; i < columns.length; i++) row[columns[i]!] = v[i]
      this.rows.push(row as unknown as UsageRow)
      return
    }
    if (typeof v !== 'object' || v === null) {
      this.undecodable++
      return
    }
    const o = v as { k?: unknown; i?: unknown; r?: UsageRow; request_id?: unknown }
    if (Array.isArray(o.k) && o.request_id === undefined) this.#columns = o.k as string[]
    else if (o.r && typeof o.r === 'object' && Number.isInteger(o.i)) this.rows.push(o.r)
    else if (typeof o.request_id === 'string') this.rows.push(o as UsageRow)
    else this.undecodable++
  }

  /**
   * The batch token: the cut's, or, when the batch was never cut (so never
   * sent), derived from the segment id the same way (older journals:
   * `j-<id>-<from>-<to>`). Every row carries it as its batch id.
   */
  token(): string {
    const cut = this.#cut
    const own =
      cut !== undefined && (cut === `j-${this.#segmentId}` || cut.startsWith(`j-${this.#segmentId}-`))
    const token = own ? cut! : journalToken(this.#segmentId)
    for (const row of this.rows) row.batch_id = token
    return token
  }
}

export const isCompressedSegment = (path: string) => path.endsWith(COMPRESSED_SEGMENT_SUFFIX)

/**
 * Reads one segment: every record whose crc checks out. A torn tail (the
 * damage runs to the end of the file: a crash in the middle of a write) is
 * truncated away at the last good record; damage in the middle (a flipped
 * byte) is skipped, the records behind it kept (the reader resynchronises on
 * the next record magic). A compressed segment is decompressed chunk by
 * chunk first (a damaged chunk skipped and reported), then read the same
 * way; it is never truncated: it was written whole from a segment that read
 * cleanly, so any damage in it is damage, kept byte for byte for the quarantine.
 */
export function readJournalSegment(
  path: string,
  segmentId: string,
  opts: { truncate?: boolean } = {},
): ReadSegment {
  const file = readFileSync(path)
  const compressed = isCompressedSegment(path)
  const unpacked = compressed ? unpackSegment(file) : undefined
  const buf = unpacked?.bytes ?? file
  const { records, problems } = scanSegment(buf)
  let truncatedAt: number | undefined
  const last = problems.at(-1)
  if (
    !compressed &&
    last &&
    last.offset + last.skipped === buf.length &&
    !records.some((r) => r.offset > last.offset)
  ) {
    truncatedAt = last.offset
    // Ops listings only look (truncate: false); the drainer cuts it off before delivering.
    if (opts.truncate !== false) truncateSync(path, truncatedAt)
  }
  const decoder = new SegmentDecoder(segmentId)
  for (const r of records) decoder.add(r.payload)
  return {
    token: decoder.token(),
    rows: decoder.rows,
    problems,
    truncatedAt,
    undecodable: decoder.undecodable,
    compressed,
    packedProblems: unpacked?.problems ?? [],
    packedRows: unpacked?.header?.rows,
  }
}

/** What is wrong with a segment read for delivery (a torn tail cut off is not damage), or undefined. */
export function segmentDamage(
  read: ReadSegment,
): { count: number; description: string; problems: (SegmentProblem | PackedProblem)[] } | undefined {
  const inner = read.problems.filter((x) => x.offset !== read.truncatedAt)
  const count = read.packedProblems.length + inner.length + read.undecodable
  if (count === 0) return undefined
  const parts = [
    ...read.packedProblems.map(
      (x) => `${x.kind} at byte ${x.offset} of the compressed file (${x.skipped} bytes skipped)`,
    ),
    ...inner.map((x) => `${x.kind} at byte ${x.offset} (${x.skipped} bytes skipped)`),
  ]
  if (read.undecodable > 0) parts.push(`${read.undecodable} undecodable record(s)`)
  if (read.packedRows !== undefined && read.packedRows > read.rows.length)
    parts.push(`${read.packedRows - read.rows.length} of its ${read.packedRows} rows lost`)
  return { count, description: parts.join('; '), problems: [...read.packedProblems, ...inner] }
}

/** A segment's token and row count from its bytes, without parsing a row. */
function peekBytes(buf: Buffer, segmentId: string): { token: string; rows: number } {
  const { records } = scanSegment(buf)
  let rows = 0
  let cut: string | undefined
  for (const r of records) {
    const p = r.payload
    if (p.subarray(0, 5).toString() === '{"c":') {
      const v = JSON.parse(p.toString('utf8')) as { c?: unknown }
      if (typeof v.c === 'string') cut = v.c
      continue
    }
    for (let at = 0; at < p.length; ) {
      let end = p.indexOf(0x0a, at)
      if (end < 0) end = p.length
      if (end > at && p.subarray(at, Math.min(at + 5, end)).toString() !== '{"k":') rows++
      at = end + 1
    }
  }
  const own = cut !== undefined && (cut === `j-${segmentId}` || cut.startsWith(`j-${segmentId}-`))
  return { token: own ? cut! : journalToken(segmentId), rows }
}

/**
 * A segment's token and row count for ops listings, without parsing a row
 * (an outage's journal can hold thousands of batches, and the dashboard's
 * "buffered" count lists them on every refused query): lines are counted,
 * columns lines and the cut left out; a compressed segment's header says
 * both, so it is not decompressed. Never truncates.
 */
export function peekJournalSegment(path: string, segmentId: string): { token: string; rows: number } {
  const file = readFileSync(path)
  if (!isCompressedSegment(path)) return peekBytes(file, segmentId)
  const header = readPackedHeader(file)
  if (header) return { token: header.token, rows: header.rows }
  // Its header is damaged: what its intact chunks hold (the drainer reports the damage).
  return peekBytes(unpackSegment(file).bytes, segmentId)
}
