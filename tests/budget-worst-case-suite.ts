import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { rng } from './api-fixtures.ts'
import { recordedNanos } from './budget-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * The worst-case reservation through the real gateway and fake upstream, run
 * once per enforcer (in process, and Redis). Prices: output $0.001 a token and
 * max_tokens at most 8, below the fake's shortest answer, so an answered chat
 * request produces exactly max_tokens x n tokens: its output worst case.
 */
export function worstCaseSuite(label: string, env: () => Record<string, string>) {
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

  async function keyWithBudget(capUsd: number) {
    n++
    const { key, plaintext } = await admin('POST', '/api/admin/keys', { userId: 'user-wc', name: `k${n}` })
    await admin('POST', '/api/admin/budgets', {
      budgetId: `wc_${n}`,
      scope: 'key',
      scopeId: key.keyId,
      period: 'day',
      capUsd,
    })
    return {
      keyId: key.keyId as string,
      budgetId: `wc_${n}`,
      plaintext: plaintext as string,
      client: new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: plaintext, maxRetries: 0 }),
    }
  }

  async function status(budgetId: string) {
    const { budgets } = await admin('GET', '/api/admin/budgets')
    return budgets.find((b: { budgetId: string }) => b.budgetId === budgetId) as {
      spentUsd: number
      reservedUsd: number
    }
  }

  const post = (path: string, plaintext: string, body: object, headers: Record<string, string> = {}) =>
    fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${plaintext}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    })

  beforeAll(async () => {
    fake = await createFakeUpstream()
    stack = await startTestStack({
      listen: true,
      env: {
        OPENAI_BASE_URL: `${fake.url}/v1`,
        OPENAI_API_KEY: 'sk-upstream-wc-0000',
        ANTHROPIC_BASE_URL: `${fake.url}/v1`,
        ANTHROPIC_API_KEY: 'sk-ant-upstream-wc-0000',
        ...env(),
      },
    })
    await admin('POST', '/api/admin/teams', { teamId: 'team-wc', name: 'Team WC' })
    await admin('POST', '/api/admin/users', {
      userId: 'user-wc',
      email: 'wc@example.com',
      name: 'Wes',
      teamId: 'team-wc',
      role: 'member',
    })
    const price = { inputPerM: 0, outputPerM: 1000, cachedReadPerM: 0, cacheWritePerM: 0 }
    for (const [model, provider, upstreamModel, extra] of [
      ['gpt-wc', 'openai', 'gpt-4o-mini', {}],
      ['gpt-wc-in', 'openai', 'gpt-4o-mini', { inputPerM: 1 }],
      ['gpt-wc-over', 'openai', 'gpt-4o-mini@over-report', {}],
      ['claude-wc', 'anthropic', 'claude-sonnet-4', {}],
    ] as const) {
      await admin('PUT', `/api/admin/models/${model}`, { provider, upstreamModel, ...price, ...extra })
    }
  })
  afterAll(async () => {
    await stack?.close()
    await fake?.close()
  })

  describe(`worst-case reservations (${label} enforcer)`, () => {
    it('many parallel requests with n > 1 never record more than the cap', async () => {
      const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000)
      console.log(`[${label}] worst-case property seed=${seed} (TEST_SEED=${seed} to replay)`)
      const r = rng(seed)
      const capUsd = 0.1
      const { keyId, budgetId, client } = await keyWithBudget(capUsd)
      const asks = Array.from({ length: 60 }, () => ({
        n: r.int(1, 8),
        max_tokens: r.int(1, 8),
        model: r.pick(['gpt-wc', 'gpt-wc-in'] as const),
      }))
      const results = await Promise.allSettled(
        asks.map((a) =>
          client.chat.completions.create({
            model: a.model,
            n: a.n,
            max_tokens: a.max_tokens,
            messages: [{ role: 'user', content: `several answers please, seed ${seed}` }],
          }),
        ),
      )
      const answered = results.filter((x) => x.status === 'fulfilled').length
      const refused = results.filter(
        (x) => x.status === 'rejected' && x.reason instanceof OpenAI.RateLimitError,
      ).length
      expect(answered + refused).toBe(asks.length)
      expect(answered).toBeGreaterThan(0)
      expect(refused).toBeGreaterThan(0)

      await stack.core.recorder.flush()
      const recorded = await recordedNanos(stack.core.warehouse, keyId)
      console.log(
        `[${label}] ${answered} answered, ${refused} refused, recorded $${recorded / 1e9} of $${capUsd}`,
      )
      // Documented bound for requests that set an output cap: zero (docs/BUDGETS.md).
      expect(recorded).toBeLessThanOrEqual(capUsd * 1e9)
      // Every answered request produced max_tokens x n tokens: the n multiplier was billed.
      const outputs = results.flatMap((x, i) =>
        x.status === 'fulfilled' ? [asks[i]!.n * asks[i]!.max_tokens] : [],
      )
      const outputNanos = outputs.reduce((a, b) => a + b, 0) * 1e6
      expect(recorded).toBeGreaterThanOrEqual(outputNanos)
      // The counter agrees with what was recorded, and nothing is left held.
      const s = await status(budgetId)
      expect(Math.round(s.spentUsd * 1e9)).toBe(recorded)
      expect(s.reservedUsd).toBe(0)
    })

    it('n multiplies the reservation: a cap that covers 5 single answers admits one n=5 request', async () => {
      const { client, keyId } = await keyWithBudget(0.025)
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () =>
          client.chat.completions.create({
            model: 'gpt-wc',
            n: 5,
            max_tokens: 5,
            messages: [{ role: 'user', content: 'five ways to say hello' }],
          }),
        ),
      )
      expect(results.filter((x) => x.status === 'fulfilled').length).toBe(1)
      await stack.core.recorder.flush()
      expect(await recordedNanos(stack.core.warehouse, keyId)).toBe(0.025 * 1e9)
    })

    it('without an output cap, each choice holds BUDGET_DEFAULT_RESERVE_USD', async () => {
      const { plaintext } = await keyWithBudget(1)
      // 3 choices x $0.50 default > $1: refused before anything is forwarded.
      const res = await post('/v1/chat/completions', plaintext, {
        model: 'gpt-wc',
        n: 3,
        messages: [{ role: 'user', content: 'no max_tokens here' }],
      })
      expect(res.status).toBe(429)
      const body = (await res.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('budget_exceeded')
      expect(body.error.message).toContain('may cost up to $1.5')
      // One choice fits.
      const one = await post('/v1/chat/completions', plaintext, {
        model: 'gpt-wc',
        messages: [{ role: 'user', content: 'no max_tokens here' }],
      })
      expect(one.status).toBe(200)
    })

    it('Anthropic extended thinking: the thinking budget is reserved on top of max_tokens', async () => {
      const { plaintext } = await keyWithBudget(0.5)
      const body = {
        model: 'claude-wc',
        max_tokens: 5,
        thinking: { type: 'enabled', budget_tokens: 1000 },
        messages: [{ role: 'user', content: 'think hard' }],
      }
      // 1,005 tokens x $0.001 > $0.50.
      const res = await post('/v1/messages', plaintext, body, { 'anthropic-version': '2023-06-01' })
      expect(res.status).toBe(429)
      const ok = await post(
        '/v1/messages',
        plaintext,
        { ...body, thinking: { type: 'enabled', budget_tokens: 200 } },
        { 'anthropic-version': '2023-06-01' },
      )
      expect(ok.status).toBe(200)
    })

    it('input is bounded from the whole body: every image part holds its stated bound', async () => {
      const { plaintext } = await keyWithBudget(0.02)
      const image = { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }
      const ask = (images: number) =>
        post('/v1/chat/completions', plaintext, {
          model: 'gpt-wc-in',
          max_tokens: 1,
          messages: [
            {
              role: 'user',
              content: [{ type: 'text', text: 'what is this?' }, ...Array(images).fill(image)],
            },
          ],
        })
      // 7 images x 3,000 tokens at $1/M = $0.021 > $0.02; 5 fit.
      expect((await ask(7)).status).toBe(429)
      expect((await ask(5)).status).toBe(200)
    })

    it('Responses max_output_tokens and legacy completions best_of are reserved in full', async () => {
      const { plaintext } = await keyWithBudget(0.05)
      const responses = (max: number) =>
        post('/v1/responses', plaintext, { model: 'gpt-wc', input: 'hi', max_output_tokens: max })
      // 60 x $0.001 > $0.05; 40 fits.
      expect((await responses(60)).status).toBe(429)
      const ok = await responses(40)
      expect(ok.status).toBe(200)
      await ok.text()
      const completions = (bestOf: number) =>
        post('/v1/completions', plaintext, { model: 'gpt-wc', prompt: 'hi', max_tokens: 2, best_of: bestOf })
      // 30 x 2 tokens = $0.06 > what is left; 3 x 2 fits.
      expect((await completions(30)).status).toBe(429)
      expect((await completions(3)).status).toBe(200)
    })

    it('an upstream that bills past the reservation: the overshoot counts at once and the next request sees it', async () => {
      const { plaintext, budgetId, keyId } = await keyWithBudget(0.05)
      const ask = () =>
        post('/v1/chat/completions', plaintext, {
          model: 'gpt-wc-over',
          max_tokens: 5,
          messages: [{ role: 'user', content: 'count' }],
        })
      // Reserved $0.005; the upstream reports 50 tokens = $0.05, the whole cap.
      const first = await ask()
      expect(first.status).toBe(200)
      await first.text()
      const second = await ask()
      expect(second.status).toBe(429)
      const s = await status(budgetId)
      expect(s.spentUsd).toBeCloseTo(0.05, 9)
      expect(s.reservedUsd).toBe(0)
      await stack.core.recorder.flush()
      expect(await recordedNanos(stack.core.warehouse, keyId)).toBe(0.05 * 1e9)
    })

    it('a multiplier the budget cannot read is refused with what to fix', async () => {
      const { plaintext } = await keyWithBudget(1)
      for (const [field, value] of [
        ['n', 2.5],
        ['n', '4'],
        ['best_of', -1],
        ['max_output_tokens', 0],
      ] as const) {
        const res = await post('/v1/chat/completions', plaintext, {
          model: 'gpt-wc',
          max_tokens: 1,
          [field]: value,
          messages: [{ role: 'user', content: 'x' }],
        })
        expect(res.status, field).toBe(400)
        expect(((await res.json()) as { error: { message: string } }).error.message).toContain(`\`${field}\``)
      }
      const thinking = await post(
        '/v1/messages',
        plaintext,
        {
          model: 'claude-wc',
          max_tokens: 5,
          thinking: { type: 'enabled' },
          messages: [{ role: 'user', content: 'x' }],
        },
        { 'anthropic-version': '2023-06-01' },
      )
      expect(thinking.status).toBe(400)
    })
  })
}
