import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { callAdmin, type LocalService, startLocalService } from './helpers/service-process.ts'

// Two real gateway processes (each on its own embedded ClickHouse) share one
// redis-server: a team budget that covers 5 requests must admit at most 5 of
// 50 parallel requests sent to both. Same pricing trick as
// budget-gateway.test.ts: every answered request costs exactly $0.005.

const ADMIN = 'redis-budget-admin-token-0123456789'
const PRICE = { inputPerM: 0, outputPerM: 1000, cachedReadPerM: 0, cacheWritePerM: 0 }
let fake: FakeUpstream
let redis: RedisProcess

const gateways: LocalService[] = []

async function startGateway(): Promise<void> {
  const gateway = await startLocalService('budget-gw', {
    ADMIN_TOKEN: ADMIN,
    ROLES: 'gateway,api',
    REDIS_URL: redis.url,
    OPENAI_BASE_URL: `${fake.url}/v1`,
    OPENAI_API_KEY: 'sk-upstream-0000',
    RECORDER_FLUSH_MS: '200',
  })
  gateways.push(gateway)
}

/** The same team, user, model and team budget on one instance; a key of its own. */
async function provision(gateway: LocalService): Promise<string> {
  await callAdmin(gateway, 'POST', '/teams', { teamId: 'team-shared', name: 'Shared' })
  await callAdmin(gateway, 'POST', '/users', {
    userId: 'user-shared',
    email: 's@example.com',
    name: 'Sam',
    teamId: 'team-shared',
    role: 'member',
  })
  await callAdmin(gateway, 'PUT', '/models/gpt-budget', {
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    ...PRICE,
  })
  await callAdmin(gateway, 'POST', '/budgets', {
    budgetId: 'b_shared',
    scope: 'team',
    scopeId: 'team-shared',
    period: 'month',
    capUsd: 0.025,
  })
  return (await callAdmin(gateway, 'POST', '/keys', { userId: 'user-shared', name: 'k' })).plaintext
}

beforeAll(async () => {
  redis = await startRedis()
  fake = await createFakeUpstream()
  await Promise.all([startGateway(), startGateway()])
})
afterAll(async () => {
  for (const gateway of gateways) await gateway.dispose()
  await fake?.close()
  await redis?.stop()
})

describe('a team budget across two gateway processes sharing Redis', () => {
  it('admits at most 5 of 50 parallel requests, and neither instance records more than the cap', async () => {
    const clients = await Promise.all(
      gateways.map(
        async (gateway) =>
          new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: await provision(gateway), maxRetries: 0 }),
      ),
    )
    const messages = [{ role: 'user' as const, content: 'One line on rollups.' }]
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        clients[i % 2]!.chat.completions.create({ model: 'gpt-budget', messages, max_tokens: 5 }),
      ),
    )
    const answered = results.filter((r) => r.status === 'fulfilled').length
    expect(answered).toBe(5)
    const refused = results.filter(
      (r) => r.status === 'rejected' && r.reason instanceof OpenAI.RateLimitError,
    ).length
    expect(refused).toBe(45)

    // Both instances read the same counter: the cap, fully spent, nothing held.
    for (const gateway of gateways) {
      await vi.waitFor(
        async () => {
          const { budgets } = await callAdmin(gateway, 'GET', '/budgets')
          expect(budgets[0]).toMatchObject({ budgetId: 'b_shared', spentUsd: 0.025, reservedUsd: 0 })
        },
        { timeout: 15_000, interval: 250 },
      )
    }
    // What each instance recorded in its own ClickHouse adds up to the cap, not more.
    let recorded = 0
    await vi.waitFor(
      async () => {
        recorded = 0
        for (const gateway of gateways) {
          const res = await fetch(`${gateway.url}/api/kpis?range=24h`, {
            headers: { authorization: `Bearer ${ADMIN}` },
          })
          recorded += (await res.json()).spendUsd
        }
        expect(recorded).toBeCloseTo(0.025, 9)
      },
      { timeout: 15_000, interval: 250 },
    )
  })
})
