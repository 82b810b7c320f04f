import type { MonthlyUsage } from '@tokenmeter/contract'
import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { localDate } from '../time-range.ts'
import { bucketExpr, fragments, type MetricRow, metricsSelect } from './sql.ts'

/**
 * Sums run in integer nano-USD (BigInt) so many small costs add up exactly;
 * only the final value becomes a float of cents, not rounded (sub-cent
 * precision is the point of *Cents).
 */
export function usdToNanos(usd: string): bigint {
  const [whole = '0', frac = ''] = usd.split('.')
  return BigInt(whole) * 1_000_000_000n + BigInt(frac.padEnd(9, '0').slice(0, 9) || '0')
}
const cents = (nanos: bigint) => Number(nanos) / 1e7

/**
 * The monthly shape: totals, one entry per day of the month (zero days
 * included) with per-model and per-key cost, and per-key / per-model totals.
 * One grouped query; the rest is folding in memory.
 */
export async function queryMonthlyUsage(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  month: string,
): Promise<MonthlyUsage> {
  const src = f.range.source
  const fr = fragments(src)
  const where = whereClause(f, scope, fr.time)
  const rows = await wh.query<MetricRow & { d: number; key_id: string; model: string; provider: string }>(
    `SELECT ${bucketExpr('1d', src)} AS d, key_id, model, provider, ${metricsSelect(src)}
     FROM ${src} WHERE ${where.sql} GROUP BY d, key_id, model, provider`,
    { ...where.params, tz: f.range.tz },
  )
  const tz = f.range.tz
  const days = new Map(
    f.range.buckets.map((ms) => [
      localDate(tz, ms),
      {
        date: localDate(tz, ms),
        total: 0n,
        requests: 0,
        models: new Map<string, bigint>(),
        keys: new Map<string, bigint>(),
      },
    ]),
  )
  const keys = new Map<string, { cost: bigint; requests: number }>()
  type ModelAcc = Omit<MonthlyUsage['models'][number], 'costCents'> & { cost: bigint }
  const models = new Map<string, ModelAcc>()
  let total = 0n
  let requests = 0
  for (const r of rows) {
    const c = usdToNanos(r.m_cost)
    const n = Number(r.m_requests)
    total += c
    requests += n
    const day = days.get(localDate(tz, Number(r.d) * 1000))
    if (day) {
      day.total += c
      day.requests += n
      day.models.set(r.model, (day.models.get(r.model) ?? 0n) + c)
      day.keys.set(r.key_id, (day.keys.get(r.key_id) ?? 0n) + c)
    }
    const k = keys.get(r.key_id) ?? { cost: 0n, requests: 0 }
    k.cost += c
    k.requests += n
    keys.set(r.key_id, k)
    const mk = `${r.model}\u0000${r.provider}`
    const m = models.get(mk) ?? {
      model: r.model,
      provider: r.provider,
      cost: 0n,
      requests: 0,
      inputTokens: 0,
      outputTokens: 0,
      reasoningTokens: 0,
      unpricedRequests: 0,
    }
    m.cost += c
    m.requests += n
    m.inputTokens += Number(r.m_input)
    m.outputTokens += Number(r.m_output)
    m.reasoningTokens += Number(r.m_reasoning)
    m.unpricedRequests += Number(r.m_unpriced)
    models.set(mk, m)
  }
  const desc = <T extends { costCents: number }>(a: T, b: T) => b.costCents - a.costCents
  return {
    month,
    tz,
    source: src,
    totalCents: cents(total),
    requests,
    daily: [...days.values()].map((d) => ({
      date: d.date,
      totalCents: cents(d.total),
      requests: d.requests,
      models: [...d.models].map(([model, c]) => ({ model, costCents: cents(c) })).sort(desc),
      keys: [...d.keys].map(([keyId, c]) => ({ keyId, costCents: cents(c) })).sort(desc),
    })),
    keys: [...keys]
      .map(([keyId, k]) => {
        const key = store.key(keyId)
        return {
          keyId,
          name: key?.name ?? keyId,
          prefix: key?.keyPrefix ?? '',
          costCents: cents(k.cost),
          requests: k.requests,
        }
      })
      .sort(desc),
    models: [...models.values()].map(({ cost, ...m }) => ({ ...m, costCents: cents(cost) })).sort(desc),
  }
}
