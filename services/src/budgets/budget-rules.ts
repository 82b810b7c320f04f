import type { ApiKey, Budget, User } from '../core/identity/entities.ts'
import type { BudgetCheck, BudgetDenial, BudgetStatus } from './budget-enforcer.ts'
import type { PeriodWindow } from './budget-period.ts'

// Money inside the enforcers is integer nano-USD: exact sums, and Redis'
// HINCRBY works on integers. 2^53 nano-USD is about 9 million USD per counter.
export const NANOS_PER_USD = 1_000_000_000

export const usdToNanos = (usd: number) => Math.round(usd * NANOS_PER_USD)
export const nanosToUsd = (nanos: number) => nanos / NANOS_PER_USD

/**
 * Every budget that must admit a request from this key: the key's, its user's
 * and the team the user is in now (the team the row will be recorded under,
 * so the counter and the recorded spend it is rebuilt from agree).
 */
export function applicableBudgets(budgets: readonly Budget[], key: ApiKey, user: User): Budget[] {
  return budgets.filter(
    (b) =>
      (b.scope === 'key' && (b.scopeId === key.keyId || b.scopeId === key.budgetKeyId)) ||
      (b.scope === 'user' && b.scopeId === user.userId) ||
      (b.scope === 'team' && user.teamId !== '' && b.scopeId === user.teamId),
  )
}

/**
 * The keys whose spend a budget counts: for a key budget the key it names and
 * every key rotated from it (they carry its id as `budgetKeyId`), so rotating
 * a key neither lifts its cap nor forgets the period's spend.
 */
export function keysCountedBy(budget: Pick<Budget, 'scope' | 'scopeId'>, keys: readonly ApiKey[]): string[] {
  if (budget.scope !== 'key') return []
  const ids = new Set([budget.scopeId])
  for (const k of keys) if (k.budgetKeyId === budget.scopeId) ids.add(k.keyId)
  return [...ids]
}

/** What to hold for a request: its worst case, or the configured ceiling when it has none. */
export function reserveNanos(check: Pick<BudgetCheck, 'worstCaseNanos'>, defaultReserveUsd: number): number {
  const w = check.worstCaseNanos
  return Number.isFinite(w) && w >= 0 ? Math.ceil(w) : usdToNanos(defaultReserveUsd)
}

/** Settled cost as a non-negative integer (a NaN from a broken usage block counts as zero, not as poison). */
export function actualNanos(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0
}

export function exceeded(
  budget: Budget,
  window: PeriodWindow,
  spentNanos: number,
  reservedNanos: number,
  amountNanos: number,
): BudgetDenial {
  const cap = usdToNanos(budget.capUsd)
  const reason =
    spentNanos >= cap
      ? 'the cap is reached'
      : reservedNanos > 0 && spentNanos + reservedNanos + amountNanos > cap && spentNanos + amountNanos <= cap
        ? `requests in flight hold ${formatUsd(reservedNanos)} and this request may cost up to ${formatUsd(amountNanos)}`
        : `this request may cost up to ${formatUsd(amountNanos)}, more than the ${formatUsd(Math.max(0, cap - spentNanos - reservedNanos))} left`
  return {
    ok: false,
    budgetId: budget.budgetId,
    scope: budget.scope,
    period: budget.period,
    spentUsd: nanosToUsd(spentNanos),
    capUsd: budget.capUsd,
    resetsAt: new Date(window.endMs).toISOString(),
    reason,
    status: 429,
    code: 'budget_exceeded',
  }
}

export function unverifiable(budget: Budget, window: PeriodWindow, why: string): BudgetDenial {
  return {
    ok: false,
    budgetId: budget.budgetId,
    scope: budget.scope,
    period: budget.period,
    // Unknown: the point of this denial is that spend could not be read.
    spentUsd: 0,
    capUsd: budget.capUsd,
    resetsAt: new Date(window.endMs).toISOString(),
    reason: why,
    status: 503,
    code: 'budget_unverifiable',
  }
}

function formatUsd(nanos: number): string {
  return `$${nanosToUsd(nanos).toFixed(4)}`
}

/** A budget's spend in its current window, as the admin API and dashboards show it. */
export function statusOf(
  budget: Budget,
  window: PeriodWindow,
  spent: number,
  reserved: number,
): BudgetStatus {
  const spentUsd = nanosToUsd(spent)
  return {
    budget,
    periodStart: new Date(window.startMs).toISOString(),
    resetsAt: new Date(window.endMs).toISOString(),
    spentUsd,
    reservedUsd: nanosToUsd(reserved),
    percentUsed: budget.capUsd > 0 ? Math.round((spentUsd / budget.capUsd) * 10_000) / 100 : 0,
  }
}
