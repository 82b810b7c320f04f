import { filterSchema } from '@tokenmeter/contract'
import { describe, expect, it } from 'vitest'
import { localMidnight } from '../core/time/time-zone.ts'
import { csvCell, csvLine } from './csv.ts'
import { parseInstant, resolveFilter } from './filters.ts'
import { bucketIndex, pickSource, resolveRange } from './time-range.ts'

const H = 3_600_000
const D = 24 * H
const now = Date.parse('2026-03-10T15:42:10Z')

describe('time ranges', () => {
  it('presets end at the end of the current bucket and align to rollups', () => {
    const r = resolveRange({ kind: 'preset', preset: '7d' }, 'UTC', now)
    expect(new Date(r.toMs).toISOString()).toBe('2026-03-11T00:00:00.000Z')
    expect(r.toMs - r.fromMs).toBe(7 * D)
    expect(r.buckets).toHaveLength(7)
    expect(r.source).toBe('usage_1d')
    const h = resolveRange({ kind: 'preset', preset: '24h' }, 'UTC', now)
    expect(new Date(h.toMs).toISOString()).toBe('2026-03-10T16:00:00.000Z')
    expect([h.granularity, h.source, h.buckets.length]).toEqual(['1h', 'usage_1h', 24])
  })

  it('local days across a DST change are 23 or 25 hours and read from the hourly rollup', () => {
    // New York springs forward on 2026-03-08.
    const r = resolveRange({ kind: 'preset', preset: '7d' }, 'America/New_York', now)
    const lengths = r.buckets.map((b, i) => (r.buckets[i + 1] ?? r.toMs) - b)
    expect(lengths).toContain(23 * H)
    expect(r.source).toBe('usage_1h')
    expect(new Date(localMidnight('America/New_York', 2026, 3, 8)).toISOString()).toBe(
      '2026-03-08T05:00:00.000Z',
    )
    expect(new Date(localMidnight('America/New_York', 2026, 3, 9)).toISOString()).toBe(
      '2026-03-09T04:00:00.000Z',
    )
  })

  it('half-hour zones fall back to 5-minute rollups; unaligned ranges to the raw table', () => {
    expect(resolveRange({ kind: 'preset', preset: '30d' }, 'Asia/Kolkata', now).source).toBe('usage_5m')
    expect(pickSource([0, 5 * 60_000])).toBe('usage_5m')
    expect(pickSource([1, D])).toBe('requests')
  })

  it('reads wall times without an offset in the given zone', () => {
    expect(new Date(parseInstant('2026-07-01', 'Europe/Berlin')).toISOString()).toBe(
      '2026-06-30T22:00:00.000Z',
    )
    expect(new Date(parseInstant('2026-07-01T08:30', 'Europe/Berlin')).toISOString()).toBe(
      '2026-07-01T06:30:00.000Z',
    )
    expect(new Date(parseInstant('2026-07-01T08:30:00Z', 'Europe/Berlin')).toISOString()).toBe(
      '2026-07-01T08:30:00.000Z',
    )
  })

  it('a month is whole local days; bucketIndex clips to the range', () => {
    const f = resolveFilter(filterSchema.parse({ month: '2026-02', tz: 'UTC' }), now)
    expect(f.range.buckets).toHaveLength(28)
    expect(bucketIndex(f.range, f.range.fromMs - 1)).toBe(-1)
    expect(bucketIndex(f.range, f.range.toMs - 1)).toBe(27)
  })

  it('refuses conflicting or malformed ranges naming the parameter', () => {
    expect(() => resolveFilter(filterSchema.parse({ range: '7d', month: '2026-01' }))).toThrow(/month/)
    expect(() => resolveFilter(filterSchema.parse({ to: '2026-01-01' }))).toThrow(/"from"/)
    expect(() => resolveFilter(filterSchema.parse({ from: '2026-01-02', to: '2026-01-01' }))).toThrow(/"to"/)
    expect(filterSchema.safeParse({ tz: 'Mars/Olympus' }).success).toBe(false)
    expect(filterSchema.safeParse({ range: '7d', bogus: '1' }).success).toBe(false)
  })
})

describe('csv cells', () => {
  it('quotes and neutralises formulas', () => {
    expect(csvCell('plain')).toBe('plain')
    expect(csvCell('a,b')).toBe('"a,b"')
    expect(csvCell('say "hi"')).toBe('"say ""hi"""')
    expect(csvCell('=1+1')).toBe("'=1+1")
    expect(csvCell('\tx')).toBe("'\tx")
    expect(csvCell(-3)).toBe('-3')
    expect(csvLine(['x\ny', '"q"', 2])).toBe('"x\ny","""q""",2\r\n')
  })
})
