import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createBudgetEnforcer } from '../services/src/budgets/budget-enforcer.factory.ts'
import type { BudgetDecision, Reservation } from '../services/src/budgets/budget-enforcer.ts'
import { createLocalBudgetEnforcer } from '../services/src/budgets/local-budget-enforcer.ts'
import { createAdminStore } from '../services/src/core/identity/admin-store.ts'
import { budget, recordedNanos, seedOwner, usageRow } from './budget-fixtures.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

// The embedded default: Core builds the in-process enforcer (no REDIS_URL).
let stack: TestStack
beforeAll(async () => {
  stack = await startTestStack({ env: { BUDGET_DEFAULT_RESERVE_USD: '0.25' } })
})
afterAll(async () => stack?.close())

const USD = 1e9
const admitted = (ds: BudgetDecision[]) => ds.filter((d): d is { ok: true; reservation: Reservation } => d.ok)

describe('in-process budget enforcer', () => {
  it('admits at most 5 of 50 parallel requests against a budget that covers 5, and spend stays under the cap', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'par')
    await core.store.upsertBudget(budget({ budgetId: 'b_par', scopeId: key.keyId, capUsd: 1 }))
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () =>
        core.budgets.reserve({ key, user, model: 'gpt-4o-mini', worstCaseNanos: 0.2 * USD }),
      ),
    )
    const ok = admitted(decisions)
    expect(ok.length).toBe(5)
    const denied = decisions.find((d) => !d.ok)
    expect(denied).toMatchObject({ ok: false, budgetId: 'b_par', scope: 'key', period: 'month', capUsd: 1 })
    // The gateway settles each admitted request at its actual cost and records its row.
    await Promise.all(
      ok.map(async (d) => {
        core.recorder.record(usageRow(key, 0.19 * USD))
        await core.budgets.settle(d.reservation, 0.19 * USD)
      }),
    )
    await core.recorder.flush()
    expect(await recordedNanos(core.warehouse, key.keyId)).toBeLessThanOrEqual(1 * USD)
    const [status] = await core.budgets.status!([core.store.budgets().find((b) => b.budgetId === 'b_par')!])
    expect(status).toMatchObject({ spentUsd: 0.95, reservedUsd: 0, percentUsed: 95 })
  })

  it('requires every applicable budget (key, user, team) to admit, and says which one refused', async () => {
    const { core } = stack
    const { key, user, teamId } = await seedOwner(core.store, 'multi')
    await core.store.upsertBudget(budget({ budgetId: 'b_multi_key', scopeId: key.keyId, capUsd: 100 }))
    await core.store.upsertBudget(
      budget({ budgetId: 'b_multi_user', scope: 'user', scopeId: user.userId, capUsd: 50 }),
    )
    await core.store.upsertBudget(
      budget({
        budgetId: 'b_multi_team',
        scope: 'team',
        scopeId: teamId,
        capUsd: 0.6,
        period: 'day',
        timezone: 'Asia/Tokyo',
      }),
    )
    const decisions = await Promise.all(
      Array.from({ length: 20 }, () =>
        core.budgets.reserve({ key, user, model: 'm', worstCaseNanos: 0.2 * USD }),
      ),
    )
    expect(admitted(decisions).length).toBe(3)
    const denial = decisions.find((d) => !d.ok)
    expect(denial).toMatchObject({ budgetId: 'b_multi_team', scope: 'team', period: 'day', status: 429 })
    for (const d of admitted(decisions)) await core.budgets.release(d.reservation)
  })

  it('reserves BUDGET_DEFAULT_RESERVE_USD when the client set no max_tokens', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'nomax')
    await core.store.upsertBudget(budget({ budgetId: 'b_nomax', scopeId: key.keyId, capUsd: 1 }))
    const decisions = await Promise.all(
      Array.from({ length: 10 }, () =>
        core.budgets.reserve({ key, user, model: 'm', worstCaseNanos: Number.NaN }),
      ),
    )
    expect(admitted(decisions).length).toBe(4) // 4 x $0.25
    for (const d of admitted(decisions)) await core.budgets.release(d.reservation)
  })

  it('1,000 requests whose upstream fails: the counter ends equal to actual spend, nothing stays reserved', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'fail')
    await core.store.upsertBudget(budget({ budgetId: 'b_fail', scopeId: key.keyId, capUsd: 1000 }))
    let expected = 0
    await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const d = await core.budgets.reserve({ key, user, model: 'm', worstCaseNanos: 0.5 * USD })
        if (!d.ok) throw new Error('unexpected denial')
        await new Promise((r) => setImmediate(r))
        if (i % 3 === 0) {
          // Failed mid-stream after some usage: billed for what was produced.
          const cost = 1_000_000 + i
          expected += cost
          core.recorder.record(usageRow(key, cost))
          await core.budgets.settle(d.reservation, cost)
        } else {
          await core.budgets.release(d.reservation)
        }
      }),
    )
    await core.recorder.flush()
    const [status] = await core.budgets.status!(core.store.budgets().filter((b) => b.budgetId === 'b_fail'))
    expect(status!.reservedUsd).toBe(0)
    expect(Math.round(status!.spentUsd * USD)).toBe(expected)
    expect(await recordedNanos(core.warehouse, key.keyId)).toBe(expected)
  })

  it('rebuilds spent-so-far from ClickHouse after a restart', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'restart')
    await core.store.upsertBudget(
      budget({ budgetId: 'b_restart', scopeId: key.keyId, capUsd: 2, period: 'week' }),
    )
    for (let i = 0; i < 3; i++) core.recorder.record(usageRow(key, 0.5 * USD))
    // A row from before this week must not count.
    core.recorder.record(usageRow(key, 5 * USD, Date.now() - 8 * 86_400_000))
    await core.recorder.flush()
    // A fresh enforcer over the same store and warehouse is what a restarted process builds.
    const restarted = createBudgetEnforcer({
      env: core.env,
      store: core.store,
      warehouse: core.warehouse,
      log: pino({ enabled: false }),
    })
    try {
      const [status] = await restarted.status!(core.store.budgets().filter((b) => b.budgetId === 'b_restart'))
      expect(status!.spentUsd).toBe(1.5)
      const big = await restarted.reserve({ key, user, model: 'm', worstCaseNanos: 0.6 * USD })
      expect(big).toMatchObject({ ok: false, budgetId: 'b_restart', spentUsd: 1.5, capUsd: 2 })
      const small = await restarted.reserve({ key, user, model: 'm', worstCaseNanos: 0.5 * USD })
      expect(small.ok).toBe(true)
    } finally {
      await restarted.close()
    }
  })

  it('a rotated key keeps the cap and the spend of the key it replaced, here and after a restart', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'rotate')
    await core.store.upsertBudget(
      budget({ budgetId: 'b_rotate', scopeId: key.keyId, capUsd: 2, period: 'week' }),
    )
    core.recorder.record(usageRow(key, 1.5 * USD))
    await core.recorder.flush()
    const { key: fresh } = await core.store.rotateKey(key.keyId, 60_000)
    const { key: third } = await core.store.rotateKey(fresh.keyId, 60_000)
    expect(third.budgetKeyId).toBe(key.keyId)
    core.recorder.record(usageRow(fresh, 0.25 * USD))
    await core.recorder.flush()

    // Another instance reads the lineage from ClickHouse, and a restarted enforcer rebuilds the spend of all three keys.
    const other = createAdminStore(core.warehouse)
    await other.refresh()
    expect(other.keys().find((k) => k.keyId === third.keyId)?.budgetKeyId).toBe(key.keyId)
    const restarted = createBudgetEnforcer({
      env: core.env,
      store: other,
      warehouse: core.warehouse,
      log: pino({ enabled: false }),
    })
    try {
      for (const k of [key, fresh, third]) {
        const denied = await restarted.reserve({ key: k, user, model: 'm', worstCaseNanos: 0.3 * USD })
        expect(denied, k.keyId).toMatchObject({ ok: false, budgetId: 'b_rotate', spentUsd: 1.75, capUsd: 2 })
      }
      const fits = await restarted.reserve({ key: third, user, model: 'm', worstCaseNanos: 0.2 * USD })
      expect(fits.ok).toBe(true)
    } finally {
      await restarted.close()
    }
  })

  it('releases leaked reservations once their deadline passes', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'leak')
    await core.store.upsertBudget(budget({ budgetId: 'b_leak', scopeId: key.keyId, capUsd: 1 }))
    let clock = Date.now()
    const enforcer = createLocalBudgetEnforcer({
      store: core.store,
      recordedSpend: async () => 0,
      failMode: 'closed',
      defaultReserveUsd: 0.5,
      reservationTtlMs: 60_000,
      sweepEveryMs: 10,
      now: () => clock,
    })
    try {
      const leaked = await enforcer.reserve({ key, user, model: 'm', worstCaseNanos: 1 * USD })
      expect(leaked.ok).toBe(true)
      expect((await enforcer.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(false)
      clock += 61_000
      await vi.waitFor(async () => {
        const [s] = await enforcer.status!(core.store.budgets().filter((b) => b.budgetId === 'b_leak'))
        expect(s!.reservedUsd).toBe(0)
      })
      expect((await enforcer.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true)
    } finally {
      await enforcer.close()
    }
  })

  it('fails closed (503) or open when spend cannot be read', async () => {
    const { core } = stack
    const { key, user } = await seedOwner(core.store, 'unverified')
    await core.store.upsertBudget(budget({ budgetId: 'b_unv', scopeId: key.keyId, capUsd: 1 }))
    const make = (failMode: 'closed' | 'open') =>
      createLocalBudgetEnforcer({
        store: core.store,
        recordedSpend: () => Promise.reject(new Error('ClickHouse unreachable')),
        failMode,
        defaultReserveUsd: 0.5,
        reservationTtlMs: 60_000,
      })
    const closed = make('closed')
    const open = make('open')
    try {
      expect(await closed.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).toMatchObject({
        ok: false,
        budgetId: 'b_unv',
        status: 503,
        code: 'budget_unverifiable',
      })
      expect((await open.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true)
    } finally {
      await closed.close()
      await open.close()
    }
  })
})
