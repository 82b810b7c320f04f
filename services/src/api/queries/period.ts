import { periodWindow } from '../../budgets/budget-period.ts'
import type { Budget } from '../../core/identity/entities.ts'
import { isTimeZone } from '../../core/time/time-zone.ts'
import { pickSource, type Source } from '../time-range.ts'

/** Start of the budget period containing `nowMs`, the same window the enforcer uses. */
export function periodStart(b: Pick<Budget, 'period' | 'timezone'>, nowMs: number): number {
  return periodWindow({ period: b.period, timezone: isTimeZone(b.timezone) ? b.timezone : 'UTC' }, nowMs)
    .startMs
}

/** An open-ended range from `start` is answered exactly by the coarsest rollup `start` aligns to. */
export function pickSourceFrom(start: number): Source {
  return pickSource([start])
}
