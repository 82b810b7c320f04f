import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { recordedNanos } from './budget-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// Budgets enforced by the real gateway (embedded default, in-process
// counters), driven by the official OpenAI client against the fake provider.
// Prices make a request's cost exact and predictable: input is free, output
// costs $0.001 a token, and max_tokens 5 is below the fake's shortest answer,
// so every answered request produces exactly 5 tokens = $0.005 = its worst case.

const PRICE = { inputPerM: 0, outputPerM: 1000, cachedReadPerM: 0, cacheWritePerM: 0 }
const PER_REQUEST_USD = 0.005

let fake: FakeUpstream
let stack: TestStack
let n = 0

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

/** A fresh key with its own budget, and an OpenAI client for it. */
async function keyWithBudget(capUsd: number) {
  n++
  const { key, plaintext } = await admin('POST', '/api/admin/keys', { userId: 'user-b', name: `k${n}` })
  const { budget } = await admin('POST', '/api/admin/budgets', {
    budgetId: `gw_${n}`,
    scope: 'key',
    scopeId: key.keyId,
    period: 'day',
    capUsd,
  })
  const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: plaintext, maxRetries: 0 })
  return {
    keyId: key.keyId as string,
    budgetId: budget.budgetId as string,
    client,
    plaintext: plaintext as string,
  }
}

async function budgetStatus(budgetId: string) {
  const { budgets } = await admin('GET', '/api/admin/budgets')
  return budgets.find((b: { budgetId: string }) => b.budgetId === budgetId) as {
    spentUsd: number
    reservedUsd: number
  }
}

const messages = [{ role: 'user' as const, content: 'Summarise the week in one line.' }]

beforeAll(async () => {
  fake = await createFakeUpstream()
  stack = await startTestStack({
    listen: true,
    env: { OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEY: 'sk-upstream-budget-0000' },
  })
  await admin('POST', '/api/admin/teams', { teamId: 'team-b', name: 'Team B' })
  await admin('POST', '/api/admin/users', {
    userId: 'user-b',
    email: 'b@example.com',
    name: 'Bo',
    teamId: 'team-b',
    role: 'member',
  })
  for (const [model, upstreamModel] of [
    ['gpt-budget', 'gpt-4o-mini'],
    ['gpt-budget-nousage', 'gpt-4o-mini@no-usage'],
    ['gpt-budget-500', 'gpt-4o-mini@error-500'],
  ]) {
    await admin('PUT', `/api/admin/models/${model}`, { provider: 'openai', upstreamModel, ...PRICE })
  }
})
afterAll(async () => {
  await stack?.close()
  await fake?.close()
})

describe('budgets through the gateway', () => {
  it('50 parallel requests against a budget that covers 5: 5 answered, the rest 429 with the budget named', async () => {
    const { keyId, budgetId, client } = await keyWithBudget(5 * PER_REQUEST_USD)
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        client.chat.completions.create({ model: 'gpt-budget', messages, max_tokens: 5 }),
      ),
    )
    const answered = results.filter((r) => r.status === 'fulfilled')
    expect(answered.length).toBe(5)
    const refusal = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
    expect(refusal.reason).toBeInstanceOf(OpenAI.RateLimitError)
    const err = (refusal.reason as InstanceType<typeof OpenAI.RateLimitError>).error as {
      code: string
      message: string
      details: Record<string, unknown>
    }
    expect(err.code).toBe('budget_exceeded')
    expect(err.details).toMatchObject({ budgetId, scope: 'key', period: 'day', capUsd: 0.025 })
    expect(Date.parse(String(err.details.resetsAt))).toBeGreaterThan(Date.now())
    expect((refusal.reason as { headers: Headers }).headers.get('retry-after')).toMatch(/^\d+$/)

    await stack.core.recorder.flush()
    const recorded = await recordedNanos(stack.core.warehouse, keyId)
    expect(recorded).toBeLessThanOrEqual(5 * PER_REQUEST_USD * 1e9)
    expect(recorded).toBe(5 * PER_REQUEST_USD * 1e9)
  })

  it('streamed requests count against the budget, with and without a usage block', async () => {
    const { keyId, budgetId, client } = await keyWithBudget(2.9 * PER_REQUEST_USD)
    const drain = async (model: string, includeUsage: boolean) => {
      const stream = await client.chat.completions.create({
        model,
        messages,
        max_tokens: 5,
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      })
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
      return text
    }
    // With the provider's usage block: exactly 5 output tokens.
    expect((await drain('gpt-budget', true)).length).toBeGreaterThan(0)
    await vi.waitFor(async () => expect((await budgetStatus(budgetId)).spentUsd).toBe(PER_REQUEST_USD))
    // No usage anywhere in the stream: the gateway's estimate is billed, never $0.
    expect((await drain('gpt-budget-nousage', false)).length).toBeGreaterThan(0)
    await vi.waitFor(async () =>
      expect((await budgetStatus(budgetId)).spentUsd).toBeGreaterThan(PER_REQUEST_USD),
    )
    const spent = (await budgetStatus(budgetId)).spentUsd
    await stack.core.recorder.flush()
    expect(await recordedNanos(stack.core.warehouse, keyId)).toBe(Math.round(spent * 1e9))
    // Two streams later the budget has less than one request left: the next stream is refused.
    await expect(drain('gpt-budget', true)).rejects.toBeInstanceOf(OpenAI.RateLimitError)
  })

  it('1,000 requests whose upstream fails (and 100 that succeed) leave the counter equal to actual spend', async () => {
    const { keyId, budgetId, plaintext } = await keyWithBudget(100)
    // Raw HTTP here: 1,000 requests through the SDK would only slow the test down.
    let succeeded = 0
    const send = async (i: number) => {
      const res = await fetch(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${plaintext}` },
        body: JSON.stringify({
          model: i % 10 === 0 ? 'gpt-budget' : 'gpt-budget-500',
          messages,
          max_tokens: 5,
        }),
      })
      await res.arrayBuffer()
      if (res.status === 200) succeeded++
      else expect(res.status).toBe(500)
    }
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => send(i + j)))
    expect(succeeded).toBe(100)
    await vi.waitFor(async () => expect((await budgetStatus(budgetId)).reservedUsd).toBe(0))
    const status = await budgetStatus(budgetId)
    await stack.core.recorder.flush()
    const recorded = await recordedNanos(stack.core.warehouse, keyId)
    expect(Math.round(status.spentUsd * 1e9)).toBe(recorded)
    expect(recorded).toBe(100 * PER_REQUEST_USD * 1e9)
  })
})
