import type { Budget } from '../core/identity/entities.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import { toClickHouseTime } from '../core/usage/usage-row.ts'
import type { PeriodWindow } from './budget-period.ts'

// Identifiers come only from this allow-list; the scope id is a parameter.
const SCOPE_COLUMN: Record<Budget['scope'], string> = { key: 'key_id', user: 'user_id', team: 'team_id' }

/**
 * Spend recorded in ClickHouse for a budget's scope over [start, end), in
 * nano-USD: what counters are rebuilt from after a restart or a lost Redis.
 * A key budget counts `keyIds` (budget-rules.ts keysCountedBy: the key and
 * the keys rotated from it) when given.
 * Hourly rollup when the window starts on a whole UTC hour (most zones), the
 * 5-minute rollup otherwise (zones at :30 / :45 offsets).
 */
export async function recordedSpendNanos(
  wh: Warehouse,
  budget: Pick<Budget, 'scope' | 'scopeId'>,
  window: PeriodWindow,
  keyIds: readonly string[] = [],
): Promise<number> {
  const column = SCOPE_COLUMN[budget.scope]
  if (!column) throw new Error(`unknown budget scope ${budget.scope}`)
  const table = window.startMs % 3_600_000 === 0 && window.endMs % 3_600_000 === 0 ? 'usage_1h' : 'usage_5m'
  const [row] = await wh.query<{ nanos: string }>(
    `SELECT toString(toInt64(sum(cost_usd) * 1000000000)) AS nanos FROM ${table}
     WHERE bucket >= {from:DateTime('UTC')} AND bucket < {to:DateTime('UTC')} AND ${column} IN {ids:Array(String)}`,
    {
      from: toClickHouseTime(window.startMs).slice(0, 19),
      to: toClickHouseTime(window.endMs).slice(0, 19),
      ids: budget.scope === 'key' && keyIds.length > 0 ? keyIds : [budget.scopeId],
    },
  )
  return Number(row?.nanos ?? 0)
}
