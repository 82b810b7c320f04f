import type { Budget } from '../core/entities.ts'

/** One budget period: [start, end) as UTC instants, computed on the budget's own wall clock. */
export interface PeriodWindow {
  startMs: number
  endMs: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    })
    formatters.set(timeZone, f)
  }
  return f
}

/** True for names the runtime's tz database knows (IANA names and 'UTC'). */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone)
    return true
  } catch {
    return false
  }
}

const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']

interface WallClock {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
  /** 0 = Monday (ISO weeks start on Monday). */
  weekday: number
}

function wallClock(ms: number, timeZone: string): WallClock {
  const parts: Record<string, string> = {}
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) parts[p.type] = p.value
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS.indexOf(parts.weekday ?? 'Mon'),
  }
}

/** Milliseconds the zone is ahead of UTC at this instant (to the second). */
function offsetMs(ms: number, timeZone: string): number {
  const w = wallClock(ms, timeZone)
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second)
  return asUtc - Math.floor(ms / 1000) * 1000
}

/**
 * The UTC instant of local midnight on a calendar date (month/day may
 * overflow; Date.UTC normalises them). Two passes because the offset at the
 * guess can differ from the offset at the answer across a DST change; where
 * midnight itself is skipped by DST the day starts at the first valid instant.
 */
export function localMidnight(year: number, month: number, day: number, timeZone: string): number {
  const guess = Date.UTC(year, month - 1, day)
  let at = guess - offsetMs(guess, timeZone)
  at = guess - offsetMs(at, timeZone)
  return at
}

export function periodWindow(budget: Pick<Budget, 'period' | 'timezone'>, now = Date.now()): PeriodWindow {
  const tz = budget.timezone || 'UTC'
  const w = wallClock(now, tz)
  switch (budget.period) {
    case 'day':
      return {
        startMs: localMidnight(w.year, w.month, w.day, tz),
        endMs: localMidnight(w.year, w.month, w.day + 1, tz),
      }
    case 'week': {
      const monday = w.day - w.weekday
      return {
        startMs: localMidnight(w.year, w.month, monday, tz),
        endMs: localMidnight(w.year, w.month, monday + 7, tz),
      }
    }
    case 'month':
      return {
        startMs: localMidnight(w.year, w.month, 1, tz),
        endMs: localMidnight(w.year, w.month + 1, 1, tz),
      }
  }
}
