import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// Failed gateway authentication is limited per client address, without
// locking out valid keys; under event-loop pressure the API sheds dashboard
// queries while gateway traffic and admin calls go on.

const LIMIT = 5
let stack: TestStack
let plaintext = ''

beforeAll(async () => {
  stack = await startTestStack({
    env: { GATEWAY_AUTH_FAILURES_PER_MIN: String(LIMIT), LOAD_SHED_EVENT_LOOP_DELAY_MS: '100' },
  })
  const s = stack.core.store
  await s.upsertTeam({ teamId: 'team-f', name: 'F' })
  await s.upsertUser({
    userId: 'user-f',
    email: 'f@example.com',
    name: 'F',
    teamId: 'team-f',
    role: 'member',
  })
  plaintext = (await s.createKey({ userId: 'user-f', name: 'k' })).plaintext
})
afterAll(async () => stack?.close())

const models = (remoteAddress: string, key?: string) =>
  stack.app.inject({
    url: '/v1/models',
    remoteAddress,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  })
const metric = async (name: string) =>
  Number(
    new RegExp(`^${name} (\\S+)$`, 'm').exec(
      (await stack.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }))
        .body,
    )?.[1] ?? 0,
  )

describe('failed authentication at the gateway', () => {
  it(`answers ${LIMIT} failures a minute per address with 401, then 429; valid keys and other addresses go on`, async () => {
    const statuses: number[] = []
    for (let i = 0; i < LIMIT + 3; i++) {
      statuses.push((await models('10.0.0.1', i % 2 ? undefined : `tm_wrong_${i}`)).statusCode)
    }
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429, 429, 429])
    const limited = await models('10.0.0.1', 'tm_wrong_again')
    expect(limited.json().error.code).toBe('too_many_auth_failures')
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    expect(await metric('tokenmeter_gateway_auth_limited_total')).toBeGreaterThanOrEqual(4)
    // A valid key from the same address is not locked out; another address has its own count.
    expect((await models('10.0.0.1', plaintext)).statusCode).toBe(200)
    expect((await models('10.0.0.2', 'tm_wrong')).statusCode).toBe(401)
  })
})

describe('load shedding', () => {
  it('under event-loop pressure, dashboard queries get 503 while the gateway and admin calls are served', async () => {
    const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const kpis = () => stack.app.inject({ url: '/api/kpis?range=24h', headers: admin })
    // Not shedding to begin with (starting the engine itself can delay the loop for a moment).
    await vi.waitFor(async () => expect((await kpis()).statusCode).toBe(200), {
      timeout: 30_000,
      interval: 200,
    })
    // Injected fault: the event loop blocked in 300 ms slices until the API notices.
    let shed: Awaited<ReturnType<typeof kpis>> | undefined
    for (let i = 0; i < 40 && !shed; i++) {
      const until = Date.now() + 300
      while (Date.now() < until) {
        // busy: this is the overload
      }
      await new Promise((r) => setImmediate(r))
      const res = await kpis()
      if (res.statusCode === 503) shed = res
    }
    expect(shed, 'the API shed a query under pressure').toBeDefined()
    expect(shed!.json().error.code).toBe('overloaded')
    expect(shed!.headers['retry-after']).toBe('2')
    // The gateway and admin calls are not deferrable: served (the gateway is outside the shedding scope).
    expect((await models('10.0.0.3', plaintext)).statusCode).toBe(200)
    expect((await stack.app.inject({ url: '/api/admin/teams', headers: admin })).statusCode).toBe(200)
    expect(await metric('tokenmeter_load_shed_total{what="query"}')).toBeGreaterThanOrEqual(1)
  })
})
