import { describe, expect, it } from 'vitest'
import { encodeRecord, HEADER_BYTES, scanSegment } from './record-framing.ts'

const rec = (s: string) => encodeRecord(Buffer.from(s))

describe('spool segment framing', () => {
  it('reads back every record in order', () => {
    const buf = Buffer.concat([rec('one'), rec('two'), rec('three')])
    const { records, problems } = scanSegment(buf)
    expect(records.map((r) => r.payload.toString())).toEqual(['one', 'two', 'three'])
    expect(problems).toEqual([])
    expect(records[2]!.end).toBe(buf.length)
  })

  it('skips a flipped byte to the next intact record and reports it', () => {
    const a = rec('first record')
    const b = rec('second record')
    const c = rec('third record')
    const buf = Buffer.concat([a, b, c])
    const at = a.length + HEADER_BYTES + 2
    buf[at] = (buf[at] ?? 0) ^ 0xff
    const { records, problems } = scanSegment(buf)
    expect(records.map((r) => r.payload.toString())).toEqual(['first record', 'third record'])
    expect(problems).toEqual([{ offset: a.length, kind: 'bad-crc', skipped: b.length }])
  })

  it('reports a torn tail as truncated', () => {
    const a = rec('kept')
    const buf = Buffer.concat([a, rec('torn away').subarray(0, 9)])
    const { records, problems } = scanSegment(buf)
    expect(records).toHaveLength(1)
    expect(problems).toEqual([{ offset: a.length, kind: 'truncated', skipped: 9 }])
  })
})
