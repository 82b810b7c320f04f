import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
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

// Every key carries the {tm} hash tag, so on a Redis Cluster all counters and
// reservations of one script land in one slot.
const PREFIX = '{tm}:budget:'
const RES_PREFIX = '{tm}:budget-res:'
const DEADLINES = '{tm}:budget-deadlines'
// Counters outlive their window by a day so a late settle still finds them.
const COUNTER_GRACE_MS = 86_400_000

// All scripts work in integer nano-USD. A counter is a hash {spent, reserved}.

// KEYS: counter_1..counter_n, reservation, deadlines
// ARGV: amount, n, deadline, reservation id, cap_1..cap_n
// -> {1} admitted | {-2, i} counter i missing (seed it) | {-1, i, spent, reserved} over cap i
const RESERVE = `
local amount = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {-2, i} end
end
for i = 1, n do
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if spent + reserved + amount > tonumber(ARGV[4 + i]) then return {-1, i, spent, reserved} end
end
local names = {}
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'reserved', amount)
  names[i] = KEYS[i]
end
redis.call('HSET', KEYS[n + 1], 'amount', amount, 'keys', cjson.encode(names))
redis.call('PEXPIREAT', KEYS[n + 1], tonumber(ARGV[3]) + 86400000)
redis.call('ZADD', KEYS[n + 2], ARGV[3], ARGV[4])
return {1}
`

// KEYS: counter ; ARGV: spent, expireAt. Only the first seeder wins.
const SEED = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'reserved', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`

// KEYS: counter_1..counter_n, reservation, deadlines ; ARGV: actual, n, reservation id
// Counters that vanished (Redis restarted) are not recreated here: a reseed
// from ClickHouse will count this request once its row is recorded.
const SETTLE = `
local actual = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local amount = tonumber(redis.call('HGET', KEYS[n + 1], 'amount') or '0')
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if amount > 0 and redis.call('HINCRBY', KEYS[i], 'reserved', -amount) < 0 then
      redis.call('HSET', KEYS[i], 'reserved', 0)
    end
    if actual > 0 then redis.call('HINCRBY', KEYS[i], 'spent', actual) end
  end
end
redis.call('DEL', KEYS[n + 1])
redis.call('ZREM', KEYS[n + 2], ARGV[3])
return 1
`

// KEYS: deadlines ; ARGV: now, limit, reservation key prefix.
// Touches keys named inside the reservation (same hash tag, so same slot).
const SWEEP = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local rk = ARGV[3] .. id
  local amount = tonumber(redis.call('HGET', rk, 'amount') or '0')
  local names = redis.call('HGET', rk, 'keys')
  if names and amount > 0 then
    for _, k in ipairs(cjson.decode(names)) do
      if redis.call('EXISTS', k) == 1 and redis.call('HINCRBY', k, 'reserved', -amount) < 0 then
        redis.call('HSET', k, 'reserved', 0)
      end
    end
  end
  redis.call('DEL', rk)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
`

interface BudgetScripts {
  budgetReserve(...args: (string | number)[]): Promise<number[]>
  budgetSeed(key: string, spent: number, expireAt: number): Promise<number>
  budgetSettle(...args: (string | number)[]): Promise<number>
  budgetSweep(deadlines: string, now: number, limit: number, prefix: string): Promise<number>
}

export interface RedisBudgetEnforcerDeps extends BudgetEnforcerDeps {
  redis: Redis
  /** Closes the client on close() (true when the factory created it). */
  ownsRedis?: boolean
  /** Redis failures the enforcer works around (fail mode, sweeps): logged by the caller, throttled. */
  onError: (err: unknown, what: string) => void
}

// The scope is part of the key: re-pointing a budget at another key/user/team starts a fresh count.
const counterKey = (b: Budget, w: PeriodWindow) =>
  `${PREFIX}${b.budgetId}:${b.scope}:${b.scopeId}:${w.startMs}`

/**
 * Server mode: counters in Redis, shared by every gateway instance. One Lua
 * script checks every applicable budget and increments all of them, so two
 * instances can never both take the last dollar. Missing counters (first use,
 * a new period, a Redis that lost its data) are seeded from ClickHouse.
 */
export function createRedisBudgetEnforcer(deps: RedisBudgetEnforcerDeps): BudgetEnforcer {
  const now = deps.now ?? Date.now
  const redis = deps.redis as Redis & BudgetScripts
  redis.defineCommand('budgetReserve', { lua: RESERVE })
  redis.defineCommand('budgetSeed', { numberOfKeys: 1, lua: SEED })
  redis.defineCommand('budgetSettle', { lua: SETTLE })
  redis.defineCommand('budgetSweep', { numberOfKeys: 1, lua: SWEEP })
  const report = deps.onError

  // Reservations of this process: settle needs the counter keys even after a
  // sweep removed the reservation from Redis.
  const held = new Map<string, { keys: string[]; deadline: number }>()
  // Settlements that failed because Redis was away, retried by the sweep.
  const unsettled: { id: string; keys: string[]; actual: number }[] = []

  // One ClickHouse read per missing counter, however many requests find it missing at once.
  const seeding = new Map<string, Promise<void>>()
  function seed(budget: Budget, window: PeriodWindow): Promise<void> {
    const key = counterKey(budget, window)
    let p = seeding.get(key)
    if (!p) {
      p = (async () => {
        const spent = await deps.recordedSpend(budget, window)
        await redis.budgetSeed(key, spent, window.endMs + COUNTER_GRACE_MS)
      })().finally(() => seeding.delete(key))
      seeding.set(key, p)
    }
    return p
  }

  async function settleInRedis(id: string, keys: string[], actual: number) {
    await redis.budgetSettle(keys.length + 2, ...keys, RES_PREFIX + id, DEADLINES, actual, keys.length, id)
  }

  async function sweep() {
    while (unsettled.length > 0) {
      const s = unsettled[0]!
      try {
        await settleInRedis(s.id, s.keys, s.actual)
        unsettled.shift()
      } catch (err) {
        // Redis still away: the next sweep retries; reported so it is seen.
        report(err, 'settle retry')
        return
      }
    }
    try {
      await redis.budgetSweep(DEADLINES, now(), 1000, RES_PREFIX)
    } catch (err) {
      report(err, 'sweep')
    }
    const t = now()
    for (const [id, h] of held) if (h.deadline + deps.reservationTtlMs <= t) held.delete(id)
  }
  let sweeping: Promise<void> | undefined
  const timer = setInterval(() => {
    sweeping ??= sweep().finally(() => {
      sweeping = undefined
    })
  }, deps.sweepEveryMs ?? 5_000)
  timer.unref()

  async function finish(reservation: Reservation, cost: number) {
    const h = held.get(reservation.id)
    if (!h) return
    held.delete(reservation.id)
    try {
      await settleInRedis(reservation.id, h.keys, cost)
    } catch (err) {
      report(err, 'settle')
      // Bounded: beyond this, the rows in ClickHouse are the record and a reseed recovers them.
      if (unsettled.length < 100_000) unsettled.push({ id: reservation.id, keys: h.keys, actual: cost })
    }
  }

  return {
    async reserve(check) {
      const amount = reserveNanos(check, deps.defaultReserveUsd)
      const budgets = applicableBudgets(deps.store.budgets(), check.key, check.user)
      if (budgets.length === 0) return { ok: true, reservation: { id: randomUUID() } }
      const at = now()
      const windows = budgets.map((b) => periodWindow(b, at))
      const keys = budgets.map((b, i) => counterKey(b, windows[i]!))
      const caps = budgets.map((b) => usdToNanos(b.capUsd))
      const id = randomUUID()
      const deadline = at + deps.reservationTtlMs
      const failure = (i: number, why: string) =>
        deps.failMode === 'closed'
          ? unverifiable(budgets[i]!, windows[i]!, why)
          : ({ ok: true, reservation: { id } } as const)
      // Two rounds at most per missing counter: seed, then reserve again.
      for (let attempt = 0; attempt <= budgets.length; attempt++) {
        let result: number[]
        try {
          if (redis.status !== 'ready' && redis.status !== 'connecting' && redis.status !== 'wait') {
            throw new Error(`redis is ${redis.status}`)
          }
          result = await redis.budgetReserve(
            keys.length + 2,
            ...keys,
            RES_PREFIX + id,
            DEADLINES,
            amount,
            keys.length,
            deadline,
            id,
            ...caps,
          )
        } catch (err) {
          report(err, 'reserve')
          return failure(0, 'the budget counters in Redis are unreachable')
        }
        const [code, index = 1, spent = 0, reserved = 0] = result.map(Number)
        if (code === 1) {
          held.set(id, { keys, deadline })
          return { ok: true, reservation: { id } }
        }
        const i = index - 1
        if (code === -1) return exceeded(budgets[i]!, windows[i]!, spent, reserved, amount)
        try {
          await seed(budgets[i]!, windows[i]!)
        } catch (err) {
          report(err, 'seed')
          return failure(i, 'spend so far could not be rebuilt from ClickHouse')
        }
      }
      return failure(0, 'the budget counters could not be initialised')
    },
    settle: (reservation, cost) => finish(reservation, actualNanos(cost)),
    release: (reservation) => finish(reservation, 0),
    async status(budgets = deps.store.budgets()) {
      const at = now()
      const out: BudgetStatus[] = []
      for (const budget of budgets) {
        const window = periodWindow(budget, at)
        const key = counterKey(budget, window)
        let h = await redis.hgetall(key)
        if (!h.spent) {
          await seed(budget, window)
          h = await redis.hgetall(key)
        }
        out.push(statusOf(budget, window, Number(h.spent ?? 0), Number(h.reserved ?? 0)))
      }
      return out
    },
    async close() {
      clearInterval(timer)
      await sweeping
      if (deps.ownsRedis) {
        await redis.quit().catch((err) => {
          // Redis away at shutdown: drop the connection instead of waiting for it.
          report(err, 'quit')
          redis.disconnect()
        })
      }
    },
  }
}
