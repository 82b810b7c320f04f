import type { ApiKey, User } from '../core/entities.ts'

/**
 * What the gateway asks before forwarding and tells after the answer. The
 * embedded default enforces in process; server mode through Redis scripts.
 * (Issue #6 replaces the no-op below with the real enforcer.)
 */
export interface BudgetCheck {
  key: ApiKey
  user: User
  model: string
  /** Worst case for this request in nano-USD (input estimate + max_tokens at the output price). */
  worstCaseNanos: number
}

export type BudgetDecision =
  | { ok: true; reservation: Reservation }
  | {
      ok: false
      budgetId: string
      scope: string
      period: string
      spentUsd: number
      capUsd: number
      resetsAt: string
      reason: string
    }

export interface Reservation {
  readonly id: string
}

export interface BudgetEnforcer {
  reserve(check: BudgetCheck): Promise<BudgetDecision>
  /** The request finished: replace the reservation with what it actually cost. */
  settle(reservation: Reservation, actualNanos: number): Promise<void>
  /** The request cost nothing (upstream failed before any usage). */
  release(reservation: Reservation): Promise<void>
  close(): Promise<void>
}

export function createNoopBudgetEnforcer(): BudgetEnforcer {
  const reservation = { id: 'none' }
  return {
    reserve: async () => ({ ok: true, reservation }),
    settle: async () => {},
    release: async () => {},
    close: async () => {},
  }
}
