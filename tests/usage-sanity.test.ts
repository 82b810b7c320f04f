import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TOKEN_COUNT_BOUND } from '../services/src/gateway/usage-bounds.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// An upstream usage block with absurd numbers (1e308 prompt tokens, -7
// completion tokens), asked of the built-in simulated provider through its
// x-fake-behavior hook: the row is kept with clamped, flagged counts, the
// clamp is counted in a metric, the reservation is settled, and the key goes
// on working. Prices make the clamped cost exact: 1e9 input tokens at
// $0.001 per million = $1; output is free of charge at 0 tokens.

let stack: TestStack
let plaintext = ''
let keyId = ''

const admin = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
  const res = await stack.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    payload,
  })
  expect(res.statusCode, res.body).toBeLessThan(300)
  return res.json()
}
const ask = (body: object, behavior?: string) =>
  fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${plaintext}`,
      'content-type': 'application/json',
      ...(behavior ? { 'x-fake-behavior': behavior } : {}),
    },
    body: JSON.stringify({
      model: 'sim-absurd',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'hi' }],
      ...body,
    }),
  })
const rowOf = async (requestId: string) => {
  await stack.core.recorder.flush()
  const [row] = await stack.core.warehouse.query<Record<string, unknown>>(
    `SELECT input_tokens, output_tokens, tokens_estimated, toString(cost_usd) AS cost, status_code
     FROM requests WHERE request_id = {id:UUID}`,
    { id: requestId },
  )
  return row
}
const metric = async (labels: string) => {
  const text = (
    await stack.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })
  ).body
  const line = text.split('\n').find((l) => l.startsWith(`tokenmeter_usage_sanitized_total{${labels}}`))
  return Number(line?.split(' ').at(-1) ?? 0)
}
const status = async () => {
  const { budgets } = await admin('GET', '/api/admin/budgets')
  return budgets.find((b: { budgetId: string }) => b.budgetId === 'b_absurd') as {
    spentUsd: number
    reservedUsd: number
  }
}

beforeAll(async () => {
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startTestStack({ listen: true, env: { DEMO: 'true' } })
  await admin('POST', '/api/admin/teams', { teamId: 'team-s', name: 'S' })
  await admin('POST', '/api/admin/users', {
    userId: 'user-s',
    email: 's@example.com',
    name: 'S',
    teamId: 'team-s',
    role: 'member',
  })
  await admin('PUT', '/api/admin/models/sim-absurd', {
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 0.001,
    outputPerM: 1000,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
  const created = await admin('POST', '/api/admin/keys', { userId: 'user-s', name: 'k' })
  plaintext = created.plaintext
  keyId = created.key.keyId
  await admin('POST', '/api/admin/budgets', {
    budgetId: 'b_absurd',
    scope: 'key',
    scopeId: keyId,
    period: 'day',
    capUsd: 5,
  })
})
afterAll(async () => stack?.close())

describe('absurd usage numbers', () => {
  it('are clamped, the row kept and flagged, the reservation settled, the key not blocked', async () => {
    const before = await metric('field="prompt_tokens",reason="too_large"')
    const spentBefore = (await status()).spentUsd
    const res = await ask({}, 'absurd-usage')
    expect(res.status).toBe(200)
    await res.text()
    const row = await rowOf(res.headers.get('x-request-id')!)
    expect(row, 'the row is recorded').toBeDefined()
    expect(Number(row!.input_tokens)).toBe(TOKEN_COUNT_BOUND)
    expect(Number(row!.output_tokens)).toBe(0)
    expect(Boolean(row!.tokens_estimated)).toBe(true)
    expect(row!.cost).toBe('1')
    expect(await metric('field="prompt_tokens",reason="too_large"')).toBe(before + 1)
    expect(await metric('field="completion_tokens",reason="negative"')).toBeGreaterThanOrEqual(1)

    // Settled at the clamped cost, nothing left held.
    const s = await status()
    expect(s.spentUsd - spentBefore).toBeCloseTo(1, 9)
    expect(s.reservedUsd).toBe(0)
    // The key is not blocked: a normal request goes through.
    const next = await ask({})
    expect(next.status).toBe(200)
    await next.text()
  })

  it('in a stream too', async () => {
    const res = await ask({ stream: true, stream_options: { include_usage: true } }, 'absurd-usage')
    expect(res.status).toBe(200)
    const text = await res.text()
    // The client gets the provider's bytes as sent; only our numbers are clamped.
    expect(text).toContain('1e+308')
    const row = await rowOf(res.headers.get('x-request-id')!)
    expect(Number(row!.input_tokens)).toBe(TOKEN_COUNT_BOUND)
    expect(Boolean(row!.tokens_estimated)).toBe(true)
    expect((await status()).reservedUsd).toBe(0)
  })
})
