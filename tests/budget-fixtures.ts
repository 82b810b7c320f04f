import { randomUUID } from 'node:crypto'
import type { AdminStore } from '../services/src/core/identity/admin-store.ts'
import type { ApiKey, Budget, User } from '../services/src/core/identity/entities.ts'
import type { Warehouse } from '../services/src/core/storage/warehouse.ts'
import { toClickHouseTime, type UsageRow } from '../services/src/core/usage/usage-row.ts'

/** A team, a user in it and a key of that user, created through the real admin store. */
export async function seedOwner(
  store: AdminStore,
  name: string,
): Promise<{ key: ApiKey; user: User; plaintext: string; teamId: string }> {
  const teamId = `team_${name}`
  await store.upsertTeam({ teamId, name: `Team ${name}` })
  const user = await store.upsertUser({
    userId: `user_${name}`,
    email: `${name}@example.com`,
    name,
    teamId,
    role: 'member',
  })
  const { key, plaintext } = await store.createKey({ userId: user.userId, name: `key ${name}` })
  return { key, user, plaintext, teamId }
}

export function budget(partial: Partial<Budget> & Pick<Budget, 'budgetId' | 'scopeId' | 'capUsd'>): Budget {
  return { scope: 'key', period: 'month', timezone: 'UTC', thresholds: [50, 80, 100], ...partial }
}

/** A usage row as the gateway records it, costing `costNanos`. */
export function usageRow(key: ApiKey, costNanos: number, at = Date.now()): UsageRow {
  const cost = `${Math.trunc(costNanos / 1e9)}.${String(costNanos % 1e9).padStart(9, '0')}`
  return {
    request_id: randomUUID(),
    started_at: toClickHouseTime(at),
    ended_at: toClickHouseTime(at + 5),
    key_id: key.keyId,
    key_prefix: key.keyPrefix,
    user_id: key.userId,
    team_id: key.teamId,
    project: '',
    client_app: '',
    tags: [],
    provider: 'openai',
    model: 'gpt-4o-mini',
    upstream_model: 'gpt-4o-mini',
    endpoint: '/v1/chat/completions',
    streamed: false,
    status_code: 200,
    error_class: '',
    input_tokens: 10,
    output_tokens: 10,
    cached_read_tokens: 0,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: cost,
    latency_ms: 5,
    ttft_ms: 0,
    batch_id: '',
  }
}

/** Spend recorded in the raw table for a key, in nano-USD. */
export async function recordedNanos(wh: Warehouse, keyId: string): Promise<number> {
  const [row] = await wh.query<{ n: string }>(
    'SELECT toString(toInt64(sum(cost_usd) * 1000000000)) AS n FROM requests WHERE key_id = {k:String}',
    { k: keyId },
  )
  return Number(row?.n ?? 0)
}
