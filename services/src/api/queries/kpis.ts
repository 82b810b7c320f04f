import type { Warehouse } from '../../core/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import type { Kpis } from '../schemas.ts'
import { fragments, type MetricRow, metricsSelect, readTotals, type Totals } from './sql.ts'

export function kpisFromTotals(t: Totals, f: UsageFilter, p50: number | null, p95: number | null): Kpis {
  const r = f.range
  return {
    ...t,
    errorRate: t.requests > 0 ? t.errors / t.requests : 0,
    totalTokens: t.inputTokens + t.outputTokens + t.cachedTokens + t.cacheWriteTokens,
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

export async function queryKpis(wh: Warehouse, f: UsageFilter, scope: Scope): Promise<Kpis> {
  const src = f.range.source
  const fr = fragments(src)
  const where = whereClause(f, scope, fr.time)
  const [row] = await wh.query<MetricRow & { p50: number | null; p95: number | null }>(
    `SELECT ${metricsSelect(src)}, ${fr.p50} AS p50, ${fr.p95} AS p95 FROM ${src} WHERE ${where.sql}`,
    where.params,
  )
  const t = readTotals(row)
  return kpisFromTotals(
    t,
    f,
    t.requests > 0 ? latency(row?.p50) : null,
    t.requests > 0 ? latency(row?.p95) : null,
  )
}
