import type { Budget } from '../core/identity/entities.ts'
import { localMidnight, localParts } from '../core/time/time-zone.ts'

/** One budget period: [start, end) as UTC instants, computed on the budget's own wall clock. */
export interface PeriodWindow {
  startMs: number
  endMs: number
}

export function periodWindow(budget: Pick<Budget, 'period' | 'timezone'>, now = Date.now()): PeriodWindow {
  const tz = budget.timezone || 'UTC'
  const w = localParts(tz, now)
  switch (budget.period) {
    case 'day':
      return { startMs: localMidnight(tz, w.y, w.m, w.d), endMs: localMidnight(tz, w.y, w.m, w.d + 1) }
    case 'week': {
      const monday = w.d - w.weekday
      return { startMs: localMidnight(tz, w.y, w.m, monday), endMs: localMidnight(tz, w.y, w.m, monday + 7) }
    }
    case 'month':
      return { startMs: localMidnight(tz, w.y, w.m, 1), endMs: localMidnight(tz, w.y, w.m + 1, 1) }
  }
}
