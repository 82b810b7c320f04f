/**
 * Wall-clock arithmetic in IANA time zones, shared by the query API (buckets
 * and ranges) and budgets (day / week / month periods). Intl does the zone
 * database; everything else is integer milliseconds.
 */

const formatters = new Map<string, Intl.DateTimeFormat>()
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    })
    formatters.set(tz, f)
  }
  return f
}

// Also what the usage API's `tz` parameter is validated with: one rule for both.
export { isTimeZone } from '@tokenmeter/contract'

export interface LocalParts {
  y: number
  m: number
  d: number
  h: number
  min: number
  /** 0 = Monday (ISO weeks start on Monday). */
  weekday: number
}

const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']

export function localParts(tz: string, ms: number): LocalParts {
  const p: Record<string, string> = {}
  for (const part of formatter(tz).formatToParts(new Date(ms))) p[part.type] = part.value
  return {
    y: Number(p.year),
    m: Number(p.month),
    d: Number(p.day),
    h: Number(p.hour),
    min: Number(p.minute),
    weekday: WEEKDAYS.indexOf(p.weekday ?? 'Mon'),
  }
}

/** Offset of `tz` from UTC at instant `ms`, in ms (positive east of Greenwich). */
export function offsetMs(tz: string, ms: number): number {
  const whole = Math.floor(ms / 1000) * 1000
  const p = localParts(tz, whole)
  const sec = new Date(whole).getUTCSeconds()
  return Date.UTC(p.y, p.m - 1, p.d, p.h, p.min, sec) - whole
}

/**
 * The UTC instant of local midnight on y-m-d (month 1-based; overflowing days
 * roll over). Two passes because the offset at the guess can differ from the
 * offset at the answer across a DST change.
 */
export function localMidnight(tz: string, y: number, m: number, d: number): number {
  const guess = Date.UTC(y, m - 1, d)
  let t = guess - offsetMs(tz, guess)
  t = guess - offsetMs(tz, t)
  return t
}
