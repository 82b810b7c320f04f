import type { BreakdownResult } from '@tokenmeter/contract'
import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { bucketIndex } from '../time-range.ts'
import {
  bucketExpr,
  fragments,
  fromClause,
  GROUP_COLUMNS,
  type GroupDim,
  groupName,
  type MetricRow,
  metricsSelect,
  readTotals,
  tagGroupCondition,
  tagSetSql,
  totalTokens,
} from './sql.ts'

export interface BreakdownOptions {
  by: GroupDim
  sort: 'requests' | 'input' | 'output' | 'cached' | 'tokens' | 'cost' | 'name'
  order: 'asc' | 'desc'
  search: string
  limit: number
  offset: number
}

/** Groups are bounded by what exists (users, keys, models...); beyond this the answer says so by total. */
const MAX_GROUPS = 100_000

/**
 * One row per group with totals and the models used, then a trend for the
 * page only. Names come from the admin store, so search and sort by name run
 * here after the aggregate, not in SQL.
 */
export async function queryBreakdown(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  o: BreakdownOptions,
): Promise<BreakdownResult> {
  const src = f.range.source
  const where = whereClause(f, scope, src === 'requests' ? 'started_at' : 'bucket')
  const col = GROUP_COLUMNS[o.by]
  const from = fromClause(src, o.by)
  const tagCond = tagGroupCondition(o.by, f.lists.tags)
  const cond = where.sql + tagCond
  const bucket = bucketExpr(f.range.granularity, src)
  // Per tag, the trend comes with the totals: the tag sets are grouped per
  // bucket anyway, so one pass over the rollup serves both (a second query for
  // the page's trend was a third of the endpoint's time, docs/BENCHMARKS.md).
  const groupsSql =
    o.by === 'tag'
      ? tagSetSql(src, {
          keys: [`${bucket} AS b`],
          where: where.sql,
          tagCond,
          select: 'tag AS g, sumMap([b], [s_requests]) AS trend_map',
          groupBy: 'g',
          models: true,
        })
      : `SELECT ${col} AS g, ${metricsSelect(src)}, arraySort(groupUniqArray(100)(model)) AS models_used
     FROM ${from} WHERE ${cond} GROUP BY g`
  const groups = await wh.query<
    MetricRow & { g: string; models_used: string[]; trend_map?: [number[], (number | string)[]] }
  >(`${groupsSql} LIMIT ${MAX_GROUPS}`, { ...where.params, tz: f.range.tz })
  const trendMaps = new Map(groups.map((r) => [String(r.g), r.trend_map] as const))
  const needle = o.search.trim().toLowerCase()
  let rows = groups.map((r) => {
    const t = readTotals(r)
    const id = String(r.g)
    return {
      id,
      ...groupName(o.by, id, store),
      ...t,
      totalTokens: totalTokens(t),
      models: r.models_used.map(String),
      trend: [] as number[],
    }
  })
  if (needle) {
    rows = rows.filter((r) =>
      [r.id, r.name, r.email ?? '', r.teamName ?? ''].some((s) => s.toLowerCase().includes(needle)),
    )
  }
  const key = {
    requests: (r: (typeof rows)[number]) => r.requests,
    input: (r: (typeof rows)[number]) => r.inputTokens,
    output: (r: (typeof rows)[number]) => r.outputTokens,
    cached: (r: (typeof rows)[number]) => r.cachedTokens,
    tokens: (r: (typeof rows)[number]) => r.totalTokens,
    cost: (r: (typeof rows)[number]) => r.spendUsd,
  }
  const dir = o.order === 'asc' ? 1 : -1
  rows.sort((a, b) => {
    const c = o.sort === 'name' ? a.name.localeCompare(b.name) : key[o.sort](a) - key[o.sort](b)
    return c * dir || a.id.localeCompare(b.id)
  })
  const total = rows.length
  const page = rows.slice(o.offset, o.offset + o.limit)
  const buckets = f.range.buckets
  const span = { fromMs: buckets[0]!, toMs: f.range.toMs, buckets }
  for (const r of page) r.trend = buckets.map(() => 0)
  const fill = (row: (typeof page)[number] | undefined, bucketSec: number, requests: number) => {
    const i = bucketIndex(span, bucketSec * 1000)
    if (row && i >= 0) row.trend[i] = requests
  }
  if (o.by === 'tag') {
    for (const r of page) {
      const [keys, values] = trendMaps.get(r.id) ?? [[], []]
      for (let i = 0; i < keys.length; i++) fill(r, Number(keys[i]), Number(values[i]))
    }
  } else if (page.length > 0) {
    // The trend needs request counts only.
    const trend = await wh.query<{ g: string; b: number; m_requests: number }>(
      `SELECT ${col} AS g, ${bucket} AS b, ${fragments(src).requests} AS m_requests
       FROM ${from} WHERE ${cond} AND ${col} IN {page:Array(String)} GROUP BY g, b`,
      { ...where.params, tz: f.range.tz, page: page.map((r) => r.id) },
    )
    const byId = new Map(page.map((r) => [r.id, r]))
    for (const t of trend) fill(byId.get(String(t.g)), Number(t.b), Number(t.m_requests))
  }
  return {
    total,
    granularity: f.range.granularity,
    source: src,
    buckets: buckets.map((ms) => new Date(ms).toISOString()),
    rows: page,
  }
}
