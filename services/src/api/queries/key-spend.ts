import type { KeySpendResult } from '@tokenmeter/contract'
import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Budget } from '../../core/identity/entities.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { toClickHouseTime } from '../../core/usage/usage-row.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { periodStart, pickSourceFrom } from './period.ts'
import { fragments } from './sql.ts'

/**
 * Keys in scope with their spend over the requested range and, where a
 * key-level cap exists, the spend of the cap's current period against it.
 */
export async function queryKeySpend(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  nowMs = Date.now(),
): Promise<KeySpendResult> {
  const keys = store.keys().filter((k) => {
    if (scope.kind === 'team' && k.teamId !== scope.teamId) return false
    if (scope.kind === 'keys' && !scope.keyIds.includes(k.keyId)) return false
    if (f.lists.keys.length > 0 && !f.lists.keys.includes(k.keyId)) return false
    if (f.lists.users.length > 0 && !f.lists.users.includes(k.userId)) return false
    if (f.lists.teams.length > 0 && !f.lists.teams.includes(k.teamId)) return false
    return true
  })
  const src = f.range.source
  const where = whereClause(f, scope, fragments(src).time)
  const spent = new Map<string, number>()
  if (keys.length > 0) {
    const rows = await wh.query<{ key_id: string; cost_s: string }>(
      `SELECT key_id, toString(sum(cost_usd)) AS cost_s FROM ${src} WHERE ${where.sql} AND key_id IN {ids:Array(String)} GROUP BY key_id`,
      { ...where.params, ids: keys.map((k) => k.keyId) },
    )
    for (const r of rows) spent.set(r.key_id, Number(r.cost_s))
  }
  const caps = new Map<string, Budget>()
  for (const b of store.budgets()) {
    if (b.scope !== 'key') continue
    const prev = caps.get(b.scopeId)
    if (!prev || b.capUsd < prev.capUsd) caps.set(b.scopeId, b)
  }
  // Period spend ignores the range and the other filters: the cap counts everything on the key.
  const byStart = new Map<number, string[]>()
  for (const k of keys) {
    const b = caps.get(k.keyId)
    if (!b) continue
    const start = periodStart(b, nowMs)
    byStart.set(start, [...(byStart.get(start) ?? []), k.keyId])
  }
  const periodSpent = new Map<string, number>()
  for (const [start, ids] of byStart) {
    const s = pickSourceFrom(start)
    const rows = await wh.query<{ key_id: string; cost_s: string }>(
      `SELECT key_id, toString(sum(cost_usd)) AS cost_s FROM ${s} WHERE ${fragments(s).time} >= {start:DateTime64(3, 'UTC')} AND key_id IN {ids:Array(String)} GROUP BY key_id`,
      { start: toClickHouseTime(start), ids },
    )
    for (const id of ids) periodSpent.set(id, 0)
    for (const r of rows) periodSpent.set(r.key_id, Number(r.cost_s))
  }
  return {
    keys: keys.map((k) => {
      const b = caps.get(k.keyId)
      const ps = periodSpent.get(k.keyId)
      return {
        keyId: k.keyId,
        name: k.name,
        prefix: k.keyPrefix,
        userId: k.userId,
        teamId: k.teamId,
        revoked: k.revokedAt !== null && k.revokedAt.getTime() <= nowMs,
        allowedModels: k.allowedModels,
        spentUsd: spent.get(k.keyId) ?? 0,
        capUsd: b ? b.capUsd : null,
        period: b ? b.period : null,
        periodStart: b ? new Date(periodStart(b, nowMs)).toISOString() : null,
        periodSpentUsd: b ? (ps ?? 0) : null,
        percentUsed: b && b.capUsd > 0 ? ((ps ?? 0) / b.capUsd) * 100 : null,
      }
    }),
  }
}
