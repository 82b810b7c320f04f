import { randomUUID } from 'node:crypto'
import type { Budget } from '../core/identity/entities.ts'
import type { BudgetEnforcer, BudgetEnforcerDeps, BudgetStatus, Reservation } from './budget-enforcer.ts'
import { type PeriodWindow, periodWindow } from './budget-period.ts'
import {
  actualNanos,
  applicableBudgets,
  exceeded,
  reserveNanos,
  statusOf,
  unverifiable,
  usdToNanos,
} from './budget-rules.ts'

interface Counter {
  budgetId: string
  window: PeriodWindow
  spent: number
  reserved: number
  loaded: Promise<void>
  ready: boolean
}

interface Held {
  counters: Counter[]
  amount: number
  deadline: number
  /** Released by the sweep; a late settle then only adds the actual cost. */
  expired: boolean
}

/**
 * The embedded default: one process sees every request, so counters live in
 * memory. Atomicity comes from the event loop: once every counter of a
 * request is loaded, checking all of them and adding to all of them happens
 * in one synchronous stretch with no await in between.
 */
export function createLocalBudgetEnforcer(deps: BudgetEnforcerDeps): BudgetEnforcer {
  const now = deps.now ?? Date.now
  const counters = new Map<string, Counter>()
  const held = new Map<string, Held>()

  function counterFor(budget: Budget, at: number): Counter {
    const window = periodWindow(budget, at)
    // The scope is part of the identity: re-pointing a budget starts a fresh count.
    const id = `${budget.budgetId}|${budget.scope}|${budget.scopeId}|${window.startMs}`
    let c = counters.get(id)
    if (!c) {
      const counter: Counter = {
        budgetId: budget.budgetId,
        window,
        spent: 0,
        reserved: 0,
        ready: false,
        loaded: Promise.resolve(),
      }
      // Spend recorded before this process started (or before the budget
      // existed here) comes from ClickHouse once; from then on every
      // settlement in this process is added here, and only here.
      counter.loaded = deps.recordedSpend(budget, window).then(
        (spent) => {
          counter.spent += spent
          counter.ready = true
        },
        (err) => {
          counters.delete(id)
          throw err
        },
      )
      counters.set(id, counter)
      c = counter
    }
    return c
  }

  function sweep() {
    const t = now()
    for (const [id, h] of held) {
      if (!h.expired && h.deadline <= t) {
        for (const c of h.counters) c.reserved = Math.max(0, c.reserved - h.amount)
        h.expired = true
      }
      if (h.expired && h.deadline + deps.reservationTtlMs <= t) held.delete(id)
    }
    for (const [id, c] of counters) if (c.window.endMs <= t && c.reserved === 0) counters.delete(id)
  }
  const timer = setInterval(sweep, deps.sweepEveryMs ?? 5_000)
  timer.unref()

  async function finish(reservation: Reservation, cost: number) {
    const h = held.get(reservation.id)
    if (!h) return
    held.delete(reservation.id)
    for (const c of h.counters) {
      if (!h.expired) c.reserved = Math.max(0, c.reserved - h.amount)
      c.spent += cost
    }
  }

  return {
    async reserve(check) {
      const amount = reserveNanos(check, deps.defaultReserveUsd)
      const budgets = applicableBudgets(deps.store.budgets(), check.key, check.user)
      const at = now()
      const list = budgets.map((b) => ({ budget: b, counter: counterFor(b, at) }))
      const pending = list.filter((x) => !x.counter.ready)
      if (pending.length > 0) {
        const results = await Promise.allSettled(pending.map((x) => x.counter.loaded))
        const failed = results.findIndex((r) => r.status === 'rejected')
        if (failed >= 0) {
          const { budget, counter } = pending[failed]!
          if (deps.failMode === 'closed') {
            return unverifiable(budget, counter.window, 'spend so far could not be read from ClickHouse')
          }
          return { ok: true, reservation: { id: randomUUID() } }
        }
      }
      // From here to the return: no await, so no other request interleaves.
      for (const { budget, counter } of list) {
        if (counter.spent + counter.reserved + amount > usdToNanos(budget.capUsd)) {
          return exceeded(budget, counter.window, counter.spent, counter.reserved, amount)
        }
      }
      const id = randomUUID()
      for (const { counter } of list) counter.reserved += amount
      held.set(id, {
        counters: list.map((x) => x.counter),
        amount,
        deadline: at + deps.reservationTtlMs,
        expired: false,
      })
      return { ok: true, reservation: { id } }
    },
    settle: (reservation, cost) => finish(reservation, actualNanos(cost)),
    release: (reservation) => finish(reservation, 0),
    async status(budgets = deps.store.budgets()) {
      const at = now()
      const out: BudgetStatus[] = []
      for (const budget of budgets) {
        const c = counterFor(budget, at)
        await c.loaded
        out.push(statusOf(budget, c.window, c.spent, c.reserved))
      }
      return out
    },
    async close() {
      clearInterval(timer)
    },
  }
}
