import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { encodeRecord, scanSegment } from '../core/storage/record-framing.ts'
import { chunkBounds, PACKED_CHUNK_BYTES, packChunk, packHeader, unpackSegment } from './packed-segment.ts'

/** A segment of records of these payload sizes (random bytes: they do not compress). */
function segmentOf(sizes: number[]): Buffer {
  return Buffer.concat(sizes.map((n) => encodeRecord(randomBytes(n))))
}

function pack(segment: Buffer): { file: Buffer; bounds: [number, number][] } {
  const bounds = chunkBounds(scanSegment(segment).records)
  const chunks = bounds.map(([from, to]) => packChunk(segment.subarray(from, to)))
  const header = packHeader({ bytes: segment.length, chunks: chunks.length, rows: 0, token: 'j-x' })
  return { file: Buffer.concat([header, ...chunks]), bounds }
}

describe('compressed journal segments', () => {
  it('cut at record boundaries within a chunk, a record larger than a chunk into pieces, and read back whole', () => {
    const segment = segmentOf([50_000, 50_000, 50_000, 300_000, 10, 20])
    const { file, bounds } = pack(segment)
    const ends = scanSegment(segment).records.map((r) => r.end)
    // Contiguous, none larger than a chunk, every cut at a record end except inside the big record.
    expect(bounds[0]![0]).toBe(0)
    expect(bounds.at(-1)![1]).toBe(segment.length)
    for (let i = 1; i < bounds.length; i++) expect(bounds[i]![0]).toBe(bounds[i - 1]![1])
    expect(bounds.every(([a, b]) => b - a <= PACKED_CHUNK_BYTES)).toBe(true)
    const big = scanSegment(segment).records[3]!
    const insideBig = bounds.filter(([, b]) => b > big.offset && b < big.end)
    expect(insideBig.length).toBe(Math.ceil((big.end - big.offset) / PACKED_CHUNK_BYTES) - 1)
    expect(
      bounds.filter(([, b]) => !(b > big.offset && b < big.end)).every(([, b]) => ends.includes(b)),
    ).toBe(true)
    const out = unpackSegment(file)
    expect(out.problems).toEqual([])
    expect(out.bytes.equals(segment)).toBe(true)
  })

  it('reports a chunk missing at the end, which the outer framing alone cannot see', () => {
    const { file } = pack(segmentOf([100_000, 100_000, 100_000]))
    const records = scanSegment(file).records
    const cut = file.subarray(0, records.at(-1)!.offset)
    const out = unpackSegment(cut)
    expect(out.problems).toEqual([{ offset: cut.length, kind: 'missing-chunks', skipped: 0 }])
    expect(out.header?.chunks).toBe(records.length - 1)
  })

  it('reports a file that is not a compressed segment, and an empty one, without throwing', () => {
    const garbage = randomBytes(5_000)
    expect(unpackSegment(garbage).problems).toEqual([{ offset: 0, kind: 'bad-magic', skipped: 5_000 }])
    expect(unpackSegment(Buffer.alloc(0)).problems).toEqual([{ offset: 0, kind: 'bad-header', skipped: 0 }])
    // Framed and crc-correct, but not gzip: not a chunk we wrote.
    const header = packHeader({ bytes: 3, chunks: 1, rows: 0, token: 'j-x' })
    const notGzip = Buffer.concat([header, encodeRecord(Buffer.from('abc'))])
    expect(unpackSegment(notGzip).problems).toEqual([
      { offset: header.length, kind: 'bad-gzip', skipped: notGzip.length - header.length },
    ])
  })
})
