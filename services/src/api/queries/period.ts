import type { Budget } from '../../core/entities.ts'
import { isTimeZone, localMidnight, localParts, pickSource, type Source } from '../time-range.ts'

/** Start of the budget period containing `nowMs`, in the budget's zone (weeks start on Monday). */
export function periodStart(b: Pick<Budget, 'period' | 'timezone'>, nowMs: number): number {
  const tz = isTimeZone(b.timezone) ? b.timezone : 'UTC'
  const p = localParts(tz, nowMs)
  if (b.period === 'month') return localMidnight(tz, p.y, p.m, 1)
  if (b.period === 'week') {
    const weekday = (new Date(Date.UTC(p.y, p.m - 1, p.d)).getUTCDay() + 6) % 7
    return localMidnight(tz, p.y, p.m, p.d - weekday)
  }
  return localMidnight(tz, p.y, p.m, p.d)
}

/** An open-ended range from `start` is answered exactly by the coarsest rollup `start` aligns to. */
export function pickSourceFrom(start: number): Source {
  return pickSource([start])
}
