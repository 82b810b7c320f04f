import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { fragments, GROUP_COLUMNS, groupName } from './sql.ts'

export type LeaderMetric = 'tokens' | 'spend' | 'requests'

export interface LeaderboardRows {
  metric: LeaderMetric
  rows: { rank: number; id: string; name: string; value: number }[]
}

export async function queryLeaderboard(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  by: 'user' | 'team' | 'key',
  metric: LeaderMetric,
  limit: number,
): Promise<LeaderboardRows> {
  const src = f.range.source
  const fr = fragments(src)
  const where = whereClause(f, scope, fr.time)
  const value: Record<LeaderMetric, string> = {
    tokens:
      'toFloat64(sum(input_tokens) + sum(output_tokens) + sum(cached_read_tokens) + sum(cache_write_tokens))',
    spend: 'toFloat64(sum(cost_usd))',
    requests: `toFloat64(${fr.requests})`,
  }
  const col = GROUP_COLUMNS[by]
  const rows = await wh.query<{ g: string; v: number }>(
    `SELECT ${col} AS g, ${value[metric]} AS v FROM ${src} WHERE ${where.sql}
     GROUP BY g ORDER BY v DESC, g ASC LIMIT {limit:UInt32}`,
    { ...where.params, limit },
  )
  return {
    metric,
    rows: rows.map((r, i) => ({
      rank: i + 1,
      id: String(r.g),
      name: groupName(by, String(r.g), store).name,
      value: Number(r.v),
    })),
  }
}
