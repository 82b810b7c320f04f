import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createBudgetEnforcer } from '../services/src/budgets/budget-enforcer.factory.ts'
import type { BudgetEnforcer, Reservation } from '../services/src/budgets/budget-enforcer.ts'
import type { Env } from '../services/src/core/config/env.ts'
import { budget, recordedNanos, seedOwner, usageRow } from './budget-fixtures.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

// Two enforcer instances, each with its own connection, over one real
// redis-server and one ClickHouse: what two gateway processes share. (The
// gateway-level version over HTTP lives in budget-gateway.test.ts.)
let stack: TestStack
let redis: RedisProcess
const clients: Redis[] = []
const enforcers: BudgetEnforcer[] = []

function enforcer(
  opts: { failMode?: 'closed' | 'open'; reservationTtlMs?: number; sweepEveryMs?: number } = {},
) {
  const client = new Redis(redis.url, { commandTimeout: 1_000, maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  clients.push(client)
  const env: Env = { ...stack.core.env, REDIS_URL: redis.url, BUDGET_FAIL_MODE: opts.failMode ?? 'closed' }
  const e = createBudgetEnforcer({
    env,
    store: stack.core.store,
    warehouse: stack.core.warehouse,
    redis: client,
    reservationTtlMs: opts.reservationTtlMs,
    sweepEveryMs: opts.sweepEveryMs ?? 50,
    log: pino({ enabled: false }),
  })
  enforcers.push(e)
  return e
}

beforeAll(async () => {
  redis = await startRedis()
  stack = await startTestStack()
})
afterAll(async () => {
  for (const e of enforcers) await e.close()
  for (const c of clients) c.disconnect()
  await stack?.close()
  await redis?.stop()
})

const USD = 1e9
const statusOf = async (e: BudgetEnforcer, budgetId: string) =>
  (await e.status!(stack.core.store.budgets().filter((b) => b.budgetId === budgetId)))[0]!

describe('Redis budget enforcer shared by two instances', () => {
  it('admits at most 5 of 50 parallel requests split across two instances', async () => {
    const { core } = stack
    const a = enforcer()
    const b = enforcer()
    const { key, user } = await seedOwner(core.store, 'r_par')
    await core.store.upsertBudget(
      budget({ budgetId: 'rb_par', scopeId: key.keyId, capUsd: 1, period: 'day' }),
    )
    const decisions = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? a : b).reserve({ key, user, model: 'm', worstCaseNanos: 0.2 * USD }).then((d) => ({ d, i })),
      ),
    )
    const ok = decisions.filter((x) => x.d.ok)
    expect(ok.length).toBe(5)
    expect(decisions.find((x) => !x.d.ok)?.d).toMatchObject({ budgetId: 'rb_par', capUsd: 1, status: 429 })
    await Promise.all(
      ok.map(async ({ d, i }) => {
        core.recorder.record(usageRow(key, 0.2 * USD))
        await (i % 2 ? a : b).settle((d as { reservation: Reservation }).reservation, 0.2 * USD)
      }),
    )
    await core.recorder.flush()
    expect(await recordedNanos(core.warehouse, key.keyId)).toBeLessThanOrEqual(1 * USD)
    expect(await statusOf(a, 'rb_par')).toMatchObject({ spentUsd: 1, reservedUsd: 0, percentUsed: 100 })
    // Even the smallest request is refused now, by either instance.
    expect((await b.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(false)
  })

  it('1,000 failing requests across both instances leave the counter equal to actual spend', async () => {
    const { core } = stack
    const a = enforcer()
    const b = enforcer()
    const { key, user } = await seedOwner(core.store, 'r_fail')
    await core.store.upsertBudget(budget({ budgetId: 'rb_fail', scopeId: key.keyId, capUsd: 1000 }))
    let expected = 0
    await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const e = i % 2 ? a : b
        const d = await e.reserve({ key, user, model: 'm', worstCaseNanos: 0.5 * USD })
        if (!d.ok) throw new Error(`unexpected denial: ${d.reason}`)
        if (i % 4 === 0) {
          const cost = 2_000_000 + i
          expected += cost
          core.recorder.record(usageRow(key, cost))
          await e.settle(d.reservation, cost)
        } else {
          await e.release(d.reservation)
        }
      }),
    )
    await core.recorder.flush()
    const s = await statusOf(b, 'rb_fail')
    expect(s.reservedUsd).toBe(0)
    expect(Math.round(s.spentUsd * USD)).toBe(expected)
    expect(await recordedNanos(core.warehouse, key.keyId)).toBe(expected)
  })

  it('an instance that dies holding reservations does not leak them: the survivor sweeps them', async () => {
    const { core } = stack
    const dying = enforcer({ reservationTtlMs: 300, sweepEveryMs: 60_000 })
    const survivor = enforcer({ reservationTtlMs: 300, sweepEveryMs: 20 })
    const { key, user } = await seedOwner(core.store, 'r_leak')
    await core.store.upsertBudget(budget({ budgetId: 'rb_leak', scopeId: key.keyId, capUsd: 1 }))
    const held = await dying.reserve({ key, user, model: 'm', worstCaseNanos: 1 * USD })
    expect(held.ok).toBe(true)
    await dying.close() // never settles: a crash
    expect((await survivor.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(false)
    await vi.waitFor(async () => expect((await statusOf(survivor, 'rb_leak')).reservedUsd).toBe(0), {
      timeout: 5_000,
    })
    expect((await survivor.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true)
  })

  it('rebuilds counters from ClickHouse when Redis lost them', async () => {
    const { core } = stack
    const a = enforcer()
    const { key, user } = await seedOwner(core.store, 'r_lost')
    await core.store.upsertBudget(
      budget({ budgetId: 'rb_lost', scopeId: key.keyId, capUsd: 1, period: 'week' }),
    )
    for (let i = 0; i < 4; i++) core.recorder.record(usageRow(key, 0.2 * USD))
    await core.recorder.flush()
    await clients[0]!.flushall()
    expect(await a.reserve({ key, user, model: 'm', worstCaseNanos: 0.3 * USD })).toMatchObject({
      ok: false,
      spentUsd: 0.8,
    })
    expect((await a.reserve({ key, user, model: 'm', worstCaseNanos: 0.2 * USD })).ok).toBe(true)
  })

  it('fails closed by default when Redis is down, open when configured, and recovers', async () => {
    const { core } = stack
    const closed = enforcer()
    const open = enforcer({ failMode: 'open' })
    const { key, user } = await seedOwner(core.store, 'r_down')
    await core.store.upsertBudget(budget({ budgetId: 'rb_down', scopeId: key.keyId, capUsd: 1 }))
    expect((await closed.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true)
    await redis.stop()
    try {
      expect(await closed.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).toMatchObject({
        ok: false,
        budgetId: 'rb_down',
        status: 503,
        code: 'budget_unverifiable',
      })
      expect((await open.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true)
    } finally {
      await redis.restart()
    }
    await vi.waitFor(
      async () => expect((await closed.reserve({ key, user, model: 'm', worstCaseNanos: 1 })).ok).toBe(true),
      {
        timeout: 10_000,
        interval: 200,
      },
    )
  })
})
