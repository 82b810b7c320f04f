import type { Kpis } from '@tokenmeter/contract'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { fragments, type MetricRow, metricsSelect, readTotals, type Totals, totalTokens } from './sql.ts'

export function kpisFromTotals(t: Totals, f: UsageFilter, p50: number | null, p95: number | null): Kpis {
  const r = f.range
  return {
    ...t,
    errorRate: t.requests > 0 ? t.errors / t.requests : 0,
    totalTokens: totalTokens(t),
    avgRequestsPerUser: t.activeUsers > 0 ? t.requests / t.activeUsers : 0,
    latencyP50Ms: p50,
    latencyP95Ms: p95,
    from: new Date(r.fromMs).toISOString(),
    to: new Date(r.toMs).toISOString(),
    tz: r.tz,
    granularity: r.granularity,
    source: r.source,
  }
}

const latency = (v: unknown) => (v === null || v === undefined || Number.isNaN(Number(v)) ? null : Number(v))

/**
 * latency_1d (clickhouse/0006) holds day buckets by team, provider, model and
 * status code only. It answers a day-aligned range exactly when nothing else
 * is filtered on: the caller's scope is all or one team, and no filter names
 * keys, users, tags, projects or apps. Otherwise the percentiles come from
 * the range's own source, whose rows carry every dimension.
 */
export function latencySourceFits(f: UsageFilter, scope: Scope): boolean {
  const l = f.lists
  return (
    f.range.source === 'usage_1d' &&
    scope.kind !== 'keys' &&
    l.keys.length + l.users.length + l.tags.length + l.projects.length + l.apps.length === 0
  )
}

export async function queryKpis(wh: Warehouse, f: UsageFilter, scope: Scope): Promise<Kpis> {
  const src = f.range.source
  const fr = fragments(src)
  const where = whereClause(f, scope, fr.time)
  // Same WHERE on either table: latency_1d has bucket and every column latencySourceFits allows.
  const quantiles = latencySourceFits(f, scope)
    ? `(SELECT ${fr.latencyQuantiles} FROM latency_1d WHERE ${where.sql})`
    : fr.latencyQuantiles
  const [row] = await wh.query<MetricRow & { q: (number | null)[] | null }>(
    `SELECT ${metricsSelect(src)}, ${quantiles} AS q FROM ${src} WHERE ${where.sql}`,
    where.params,
  )
  const t = readTotals(row)
  return kpisFromTotals(
    t,
    f,
    t.requests > 0 ? latency(row?.q?.[0]) : null,
    t.requests > 0 ? latency(row?.q?.[1]) : null,
  )
}
