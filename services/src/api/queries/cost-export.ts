import type { AdminStore } from '../../core/admin-store.ts'
import type { Warehouse } from '../../core/warehouse.ts'
import { csvLine } from '../csv.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { localDate } from '../time-range.ts'
import {
  bucketExpr,
  fragments,
  fromClause,
  GROUP_COLUMNS,
  groupName,
  metricsSelect,
  tagGroupCondition,
} from './sql.ts'

export type ExportDim = 'user' | 'team' | 'key' | 'model' | 'tag'

export const EXPORT_HEADER = [
  'day',
  'group_id',
  'group_name',
  'requests',
  'input_tokens',
  'output_tokens',
  'cached_tokens',
  'cost_usd',
  // Appended (issue 12), so readers of the first eight columns keep working.
  'cache_write_tokens',
  'reasoning_tokens',
  'unpriced_requests',
]

/**
 * The cost table as CSV lines, one per group and day, streamed row by row
 * from ClickHouse: memory stays flat however many rows the export has.
 * Days are local dates in the filter's zone; cost is the exact decimal.
 */
export async function* exportCostCsv(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  by: ExportDim,
): AsyncGenerator<string> {
  const src = f.range.source
  const fr = fragments(src)
  const where = whereClause(f, scope, fr.time)
  const col = GROUP_COLUMNS[by]
  const lines = await wh.stream(
    `SELECT ${bucketExpr('1d', src)} AS d, ${col} AS g, ${metricsSelect(src)}
     FROM ${fromClause(src, by)} WHERE ${where.sql}${tagGroupCondition(by, f.lists.tags)}
     GROUP BY d, g ORDER BY d, g`,
    { ...where.params, tz: f.range.tz },
    'JSONEachRow',
  )
  yield csvLine(EXPORT_HEADER)
  const names = new Map<string, string>()
  for await (const line of lines) {
    if (!line.trim()) continue
    const r = JSON.parse(line) as Record<string, string | number>
    const g = String(r.g)
    let name = names.get(g)
    if (name === undefined) {
      name = groupName(by, g, store).name
      names.set(g, name)
    }
    yield csvLine([
      localDate(f.range.tz, Number(r.d) * 1000),
      g,
      name,
      Number(r.m_requests),
      Number(r.m_input),
      Number(r.m_output),
      Number(r.m_cached),
      String(r.m_cost),
      Number(r.m_cache_write),
      Number(r.m_reasoning),
      Number(r.m_unpriced),
    ])
  }
}
