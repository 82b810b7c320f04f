import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { freePort } from './helpers/free-port.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'

// Two real gateway processes (each on its own embedded ClickHouse) share one
// redis-server: a team budget that covers 5 requests must admit at most 5 of
// 50 parallel requests sent to both. Same pricing trick as
// budget-gateway.test.ts: every answered request costs exactly $0.005.

const ADMIN = 'redis-budget-admin-token-0123456789'
const PRICE = { inputPerM: 0, outputPerM: 1000, cachedReadPerM: 0, cacheWritePerM: 0 }
let fake: FakeUpstream
let redis: RedisProcess
const children: ChildProcess[] = []
const dirs: string[] = []

async function startGateway(): Promise<string> {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-budget-gw-'))
  dirs.push(dataDir)
  const child = spawn(process.execPath, ['services/src/server.ts'], {
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      DEMO: 'false',
      ADMIN_TOKEN: ADMIN,
      ROLES: 'gateway,api',
      LOG_LEVEL: 'warn',
      REDIS_URL: redis.url,
      OPENAI_BASE_URL: `${fake.url}/v1`,
      OPENAI_API_KEY: 'sk-upstream-0000',
      RECORDER_FLUSH_MS: '200',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let output = ''
  child.stdout!.on('data', (d) => {
    output += d
  })
  child.stderr!.on('data', (d) => {
    output += d
  })
  const base = `http://127.0.0.1:${port}`
  await vi.waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited: ${output}`)
      expect((await fetch(`${base}/healthz`).catch(() => undefined))?.status).toBe(200)
    },
    { timeout: 60_000, interval: 200 },
  )
  return base
}

async function admin(base: string, method: string, path: string, body?: object) {
  const res = await fetch(`${base}/api/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  expect(res.status, text).toBeLessThan(300)
  return text ? JSON.parse(text) : undefined
}

/** The same team, user, model and team budget on one instance; a key of its own. */
async function provision(base: string): Promise<string> {
  await admin(base, 'POST', '/teams', { teamId: 'team-shared', name: 'Shared' })
  await admin(base, 'POST', '/users', {
    userId: 'user-shared',
    email: 's@example.com',
    name: 'Sam',
    teamId: 'team-shared',
    role: 'member',
  })
  await admin(base, 'PUT', '/models/gpt-budget', {
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    ...PRICE,
  })
  await admin(base, 'POST', '/budgets', {
    budgetId: 'b_shared',
    scope: 'team',
    scopeId: 'team-shared',
    period: 'month',
    capUsd: 0.025,
  })
  return (await admin(base, 'POST', '/keys', { userId: 'user-shared', name: 'k' })).plaintext
}

let bases: string[] = []
beforeAll(async () => {
  redis = await startRedis()
  fake = await createFakeUpstream()
  bases = await Promise.all([startGateway(), startGateway()])
})
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  await fake?.close()
  await redis?.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('a team budget across two gateway processes sharing Redis', () => {
  it('admits at most 5 of 50 parallel requests, and neither instance records more than the cap', async () => {
    const clients = await Promise.all(
      bases.map(
        async (base) => new OpenAI({ baseURL: `${base}/v1`, apiKey: await provision(base), maxRetries: 0 }),
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
    for (const base of bases) {
      await vi.waitFor(
        async () => {
          const { budgets } = await admin(base, 'GET', '/budgets')
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
        for (const base of bases) {
          const res = await fetch(`${base}/api/kpis?range=24h`, {
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
