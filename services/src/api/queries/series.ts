import { OTHER_SERIES_ID, type Point, type SeriesResult } from '@tokenmeter/contract'
import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { bucketIndex } from '../time-range.ts'
import {
  bucketExpr,
  emptyTotals,
  fromClause,
  GROUP_COLUMNS,
  type GroupDim,
  groupName,
  type MetricRow,
  metricsSelect,
  readTotals,
  tagGroupCondition,
  tagSetSql,
} from './sql.ts'

export type SplitDim = GroupDim | 'none'

type Row = MetricRow & { b: number; g?: string }

/** Points per bucket; buckets without data are zero-filled. */
function toPoints(f: UsageFilter, rows: Row[]): Point[] {
  const points = f.range.buckets.map(() => emptyTotals())
  for (const r of rows) {
    const i = bucketIndex({ ...f.range, fromMs: f.range.buckets[0]!, toMs: f.range.toMs }, Number(r.b) * 1000)
    if (i >= 0) points[i] = readTotals(r)
  }
  return points
}

export async function querySeries(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  split: SplitDim,
  splitLimit = 10,
): Promise<SeriesResult> {
  const src = f.range.source
  const where = whereClause(f, scope, src === 'requests' ? 'started_at' : 'bucket')
  const params = { ...where.params, tz: f.range.tz }
  const b = bucketExpr(f.range.granularity, src)
  const base = {
    granularity: f.range.granularity,
    source: src,
    buckets: f.range.buckets.map((ms) => new Date(ms).toISOString()),
  }
  if (split === 'none') {
    const rows = await wh.query<Row>(
      `SELECT ${b} AS b, ${metricsSelect(src)} FROM ${src} WHERE ${where.sql} GROUP BY b`,
      params,
    )
    return { ...base, series: [{ id: 'total', name: 'Total', points: toPoints(f, rows) }] }
  }
  const col = GROUP_COLUMNS[split]
  const tagCond = tagGroupCondition(split, f.lists.tags)
  const cond = where.sql + tagCond
  // Per tag: aggregate per tag set first, un-nest after (see tagSetSql).
  const perTag = (extra: string, select: string, groupBy: string) =>
    tagSetSql(src, { keys: [`${b} AS b`], where: where.sql, tagCond: tagCond + extra, select, groupBy })
  const rows = await wh.query<Row>(
    split === 'tag'
      ? perTag('', 'b, tag AS g', 'b, g')
      : `SELECT ${b} AS b, ${col} AS g, ${metricsSelect(src)} FROM ${fromClause(src, split)} WHERE ${cond} GROUP BY b, g`,
    params,
  )
  const byGroup = new Map<string, Row[]>()
  const volume = new Map<string, number>()
  for (const r of rows) {
    const g = String(r.g)
    byGroup.set(g, [...(byGroup.get(g) ?? []), r])
    volume.set(g, (volume.get(g) ?? 0) + Number(r.m_requests))
  }
  const ranked = [...volume.entries()].sort((a, z) => z[1] - a[1] || a[0].localeCompare(z[0])).map(([g]) => g)
  const top = ranked.slice(0, splitLimit)
  const series = top.map((g) => ({
    id: g,
    name: groupName(split, g, store).name,
    points: toPoints(f, byGroup.get(g)!),
  }))
  if (ranked.length > top.length) {
    // Distinct users cannot be summed across groups, so "other" is its own query.
    const other = await wh.query<Row>(
      split === 'tag'
        ? perTag(' AND tag NOT IN {top:Array(String)}', 'b', 'b')
        : `SELECT ${b} AS b, ${metricsSelect(src)} FROM ${fromClause(src, split)} WHERE ${cond} AND ${col} NOT IN {top:Array(String)} GROUP BY b`,
      { ...params, top },
    )
    series.push({
      id: OTHER_SERIES_ID,
      name: `Other (${ranked.length - top.length})`,
      points: toPoints(f, other),
    })
  }
  return { ...base, series }
}
