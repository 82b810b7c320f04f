import { errorBody } from '../core/errors/http-error.ts'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { ApiKey, Budget, User } from '../core/identity/entities.ts'
import type { PeriodWindow } from './budget-period.ts'

/**
 * What the gateway asks before forwarding and tells after the answer. The
 * embedded default enforces in process (local-budget-enforcer.ts), server
 * mode through Redis scripts (redis-budget-enforcer.ts); createBudgetEnforcer
 * in budget-enforcer.factory.ts picks one.
 *
 * Protocol, per proxied request:
 *   const d = await budgets.reserve({ key, user, model, worstCaseNanos })
 *   if (!d.ok) -> budgetDenialResponse(d) (429, or 503 when spend could not be verified)
 *   upstream answered with usage -> budgets.settle(d.reservation, actualNanos)
 *   upstream failed, nothing billed -> budgets.release(d.reservation)
 * Every reservation must end in exactly one settle or release; one that never
 * does (crash, bug) expires after the reservation TTL and is released by a sweep.
 */
export interface BudgetCheck {
  key: ApiKey
  user: User
  model: string
  /**
   * Worst case for this request in nano-USD (input estimate + max_tokens at
   * the output price). Pass NaN (or any non-finite / negative value) when the
   * client set no max_tokens: the enforcer then reserves
   * BUDGET_DEFAULT_RESERVE_USD instead.
   */
  worstCaseNanos: number
}

export interface BudgetDenial {
  ok: false
  budgetId: string
  scope: string
  period: string
  spentUsd: number
  capUsd: number
  /** ISO instant when the period ends and the budget starts again from zero. */
  resetsAt: string
  reason: string
  /** 429 when the budget is spent; 503 when spend could not be verified (fail-closed). */
  status?: 429 | 503
  code?: 'budget_exceeded' | 'budget_unverifiable'
}

export type BudgetDecision = { ok: true; reservation: Reservation } | BudgetDenial

export interface Reservation {
  readonly id: string
}

/** A budget with its spend in the current period, for the admin API and dashboards. */
export interface BudgetStatus {
  budget: Budget
  periodStart: string
  resetsAt: string
  spentUsd: number
  /** Held by requests in flight. */
  reservedUsd: number
  percentUsed: number
}

export interface BudgetEnforcer {
  reserve(check: BudgetCheck): Promise<BudgetDecision>
  /** The request finished: replace the reservation with what it actually cost. */
  settle(reservation: Reservation, actualNanos: number): Promise<void>
  /** The request cost nothing (upstream failed before any usage). */
  release(reservation: Reservation): Promise<void>
  /** Current spend of the given budgets (all of the store's when omitted). */
  status?(budgets?: Budget[]): Promise<BudgetStatus[]>
  close(): Promise<void>
}

const usd = (n: number) => `$${n.toFixed(n < 1 ? 4 : 2)}`

/** The HTTP answer for a denied request, in the one error envelope. */
export function budgetDenialResponse(d: BudgetDenial): {
  status: 429 | 503
  headers: Record<string, string>
  body: ReturnType<typeof errorBody>
} {
  const status = d.status ?? 429
  const retryAfter =
    status === 503 ? 5 : Math.max(1, Math.ceil((Date.parse(d.resetsAt) - Date.now()) / 1000) || 1)
  const message =
    status === 503
      ? `Budget ${d.budgetId} (${d.scope}, per ${d.period}) could not be verified: ${d.reason}. Requests are blocked until it can be (BUDGET_FAIL_MODE=closed); retry shortly.`
      : `Budget ${d.budgetId} (${d.scope}, per ${d.period}) is exhausted: ${usd(d.spentUsd)} spent of ${usd(d.capUsd)}; ${d.reason}. It resets at ${d.resetsAt}; ask an admin to raise the cap to continue sooner.`
  return {
    status,
    headers: { 'retry-after': String(retryAfter) },
    body: errorBody(d.code ?? (status === 503 ? 'budget_unverifiable' : 'budget_exceeded'), message, {
      budgetId: d.budgetId,
      scope: d.scope,
      period: d.period,
      spentUsd: d.spentUsd,
      capUsd: d.capUsd,
      resetsAt: d.resetsAt,
    }),
  }
}

/** What every enforcer is built from (the Redis one adds its connection). */
export interface BudgetEnforcerDeps {
  store: Pick<AdminStore, 'budgets'>
  /** Spend already recorded for a budget's window (ClickHouse), in nano-USD. */
  recordedSpend(budget: Budget, window: PeriodWindow): Promise<number>
  failMode: 'closed' | 'open'
  defaultReserveUsd: number
  /** A reservation neither settled nor released by then is released by the sweep. */
  reservationTtlMs: number
  sweepEveryMs?: number
  now?: () => number
}
