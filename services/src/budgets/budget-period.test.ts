import { describe, expect, it } from 'vitest'
import { isTimeZone } from '../core/time/time-zone.ts'
import { periodWindow } from './budget-period.ts'

const iso = (ms: number) => new Date(ms).toISOString()
const at = (s: string) => Date.parse(s)

describe('periodWindow', () => {
  it('computes UTC day, ISO week (Monday) and calendar month', () => {
    const now = at('2025-03-13T15:00:00Z') // a Thursday
    const day = periodWindow({ period: 'day', timezone: 'UTC' }, now)
    expect([iso(day.startMs), iso(day.endMs)]).toEqual([
      '2025-03-13T00:00:00.000Z',
      '2025-03-14T00:00:00.000Z',
    ])
    const week = periodWindow({ period: 'week', timezone: 'UTC' }, now)
    expect([iso(week.startMs), iso(week.endMs)]).toEqual([
      '2025-03-10T00:00:00.000Z',
      '2025-03-17T00:00:00.000Z',
    ])
    const month = periodWindow({ period: 'month', timezone: 'UTC' }, at('2024-12-31T23:59:59Z'))
    expect([iso(month.startMs), iso(month.endMs)]).toEqual([
      '2024-12-01T00:00:00.000Z',
      '2025-01-01T00:00:00.000Z',
    ])
  })

  it('uses the budget time zone, including the day a DST change shortens', () => {
    // 2025-03-09 is the US spring-forward day: New York's day is 23 hours long.
    const ny = periodWindow({ period: 'day', timezone: 'America/New_York' }, at('2025-03-09T12:00:00Z'))
    expect([iso(ny.startMs), iso(ny.endMs)]).toEqual(['2025-03-09T05:00:00.000Z', '2025-03-10T04:00:00.000Z'])
    // 23:30 UTC on Jan 31 is already February in Tokyo.
    const tokyo = periodWindow({ period: 'month', timezone: 'Asia/Tokyo' }, at('2025-01-31T23:30:00Z'))
    expect([iso(tokyo.startMs), iso(tokyo.endMs)]).toEqual([
      '2025-01-31T15:00:00.000Z',
      '2025-02-28T15:00:00.000Z',
    ])
    // A week that starts on a Sunday-to-Monday boundary in a +05:45 zone.
    const kathmandu = periodWindow({ period: 'week', timezone: 'Asia/Kathmandu' }, at('2025-03-09T18:20:00Z'))
    expect(iso(kathmandu.startMs)).toBe('2025-03-09T18:15:00.000Z')
  })

  it('rejects unknown zones', () => {
    expect(isTimeZone('Europe/Berlin')).toBe(true)
    expect(isTimeZone('Mars/Olympus')).toBe(false)
  })
})
