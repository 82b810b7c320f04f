import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Env } from '../core/config/env.ts'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import type { BudgetEnforcer } from './budget-enforcer.ts'
import { keysCountedBy } from './budget-rules.ts'
import { recordedSpendNanos } from './budget-spend.ts'
import { createLocalBudgetEnforcer } from './local-budget-enforcer.ts'
import { createRedisBudgetEnforcer } from './redis-budget-enforcer.ts'

export interface BudgetEnforcerFactoryDeps {
  env: Pick<Env, 'REDIS_URL' | 'BUDGET_FAIL_MODE' | 'BUDGET_DEFAULT_RESERVE_USD' | 'UPSTREAM_TIMEOUT_MS'>
  store: Pick<AdminStore, 'budgets' | 'keys'>
  warehouse: Warehouse
  /** Overrides REDIS_URL (tests share one redis-server between enforcers). */
  redis?: Redis
  sweepEveryMs?: number
  reservationTtlMs?: number
  log: Logger
}

/**
 * In process when there is no Redis (the embedded default is one process),
 * through Redis when REDIS_URL is set (gateways may be many).
 */
export function createBudgetEnforcer(deps: BudgetEnforcerFactoryDeps): BudgetEnforcer {
  const base = {
    store: deps.store,
    recordedSpend: (
      budget: Parameters<typeof recordedSpendNanos>[1],
      window: Parameters<typeof recordedSpendNanos>[2],
    ) => recordedSpendNanos(deps.warehouse, budget, window, keysCountedBy(budget, deps.store.keys())),
    failMode: deps.env.BUDGET_FAIL_MODE,
    defaultReserveUsd: deps.env.BUDGET_DEFAULT_RESERVE_USD,
    // A request can run up to the upstream timeout; a minute on top for the answer to be settled.
    reservationTtlMs: deps.reservationTtlMs ?? deps.env.UPSTREAM_TIMEOUT_MS + 60_000,
    sweepEveryMs: deps.sweepEveryMs,
  }
  const url = deps.env.REDIS_URL
  if (!deps.redis && !url) return createLocalBudgetEnforcer(base)
  const redis =
    deps.redis ??
    new Redis(url!, {
      // A budget check must not hang on a Redis that is away: fail within a
      // second and let BUDGET_FAIL_MODE decide.
      commandTimeout: 1_000,
      maxRetriesPerRequest: 1,
      connectionName: 'tokenmeter-budgets',
    })
  let lastWarn = 0
  const onError = (err: unknown, what: string) => {
    // One line per 10 s is enough to tell an operator Redis is away.
    if (Date.now() - lastWarn < 10_000) return
    lastWarn = Date.now()
    deps.log.warn(
      { what, err: err instanceof Error ? err.message : String(err) },
      'budget counters unavailable',
    )
  }
  if (!deps.redis) redis.on('error', (err) => onError(err, 'connection'))
  return createRedisBudgetEnforcer({ ...base, redis, ownsRedis: !deps.redis, onError })
}
