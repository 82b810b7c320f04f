import { calcPrice } from '@pydantic/genai-prices'
import { expect } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../../services/src/simulator/fake-upstream.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from '../helpers/test-core.ts'

/**
 * What every client test needs: the real gateway listening on a port (the
 * embedded engine, as `npm start` runs it), the local fake provider behind it,
 * a user with keys, model facades, and the check that each request the
 * provider billed left exactly one usage row holding what the provider
 * reported. One stack per test file (one embedded engine per process).
 */

export interface Prices {
  inputPerM: number
  outputPerM: number
  cachedReadPerM: number
  cacheWritePerM: number
}

export const GPT_PRICES: Prices = {
  inputPerM: 0.15,
  outputPerM: 0.6,
  cachedReadPerM: 0.075,
  cacheWritePerM: 0,
}
export const CLAUDE_PRICES: Prices = {
  inputPerM: 3,
  outputPerM: 15,
  cachedReadPerM: 0.3,
  cacheWritePerM: 3.75,
}

export interface UsageRowOut {
  request_id: string
  key_id: string
  model: string
  provider: string
  upstream_model: string
  endpoint: string
  client_app: string
  streamed: boolean
  status_code: number
  error_class: string
  input_tokens: number
  output_tokens: number
  cached_read_tokens: number
  cache_write_tokens: number
  reasoning_tokens: number
  tokens_estimated: boolean
  price_unknown: boolean
  cost: string
}

/** Tokens as the provider reported them for one request, split the way the row stores them. */
export interface ReportedUsage {
  input: number
  output: number
  cachedRead: number
  cacheWrite: number
  /** A part of output (both providers count reasoning / thinking inside it). */
  reasoning: number
}

export type Received = FakeUpstream['received'][number]

export interface ClientStack {
  /** Gateway origin, e.g. http://127.0.0.1:40123 (OpenAI clients use `${url}/v1`). */
  url: string
  fake: FakeUpstream
  stack: TestStack
  /** A fresh virtual key, so one test's rows are told apart from another's by key_id. */
  newKey(name: string): Promise<{ key: string; keyId: string }>
  /** A model facade: `model` as clients name it, served by `provider` as `upstreamModel`. */
  facade(
    model: string,
    provider: 'openai' | 'anthropic',
    upstreamModel: string,
    prices: Prices,
  ): Promise<void>
  /** The provider's answer to the same request again, not streamed (the fake is a pure function of the request). */
  replay(sent: Received): Promise<Json>
  /** Runs `fn`, returns what it returned and the provider requests it caused. */
  capture<T>(fn: () => Promise<T>): Promise<{ result: T; sent: Received[] }>
  /**
   * Waits (polling the raw table through the core's warehouse) until the key
   * has `count` rows, then checks no more come after a final flush.
   */
  rowsOf(keyId: string, count: number): Promise<UsageRowOut[]>
  /**
   * For each provider request, the usage the provider reported (the fake is a
   * pure function of the request, so asking it again gives the same answer),
   * and checks the key's rows hold exactly these: one row each, same tokens,
   * cost from the facade's prices, nothing estimated. Requests the gateway
   * refused itself (`opts.refused`, default none) have rows of their own.
   */
  expectOneRowPerBilledRequest(
    keyId: string,
    sent: Received[],
    opts?: { refused?: number },
  ): Promise<{ billed: UsageRowOut[]; refused: UsageRowOut[] }>
  close(): Promise<void>
}

export type Json = Record<string, unknown>
const num = (v: unknown) => (typeof v === 'number' ? v : 0)

/** Usage as a non-streamed answer carries it, in each API's own shape. */
export function reportedUsage(path: string, body: Json): ReportedUsage {
  const u = (body.usage ?? (body.response as Json | undefined)?.usage) as Json | undefined
  if (!u) throw new Error(`no usage in the provider's answer to ${path}`)
  if (path.endsWith('/chat/completions')) {
    const cached = num((u.prompt_tokens_details as Json | undefined)?.cached_tokens)
    return {
      input: num(u.prompt_tokens) - cached,
      output: num(u.completion_tokens),
      cachedRead: cached,
      cacheWrite: 0,
      reasoning: num((u.completion_tokens_details as Json | undefined)?.reasoning_tokens),
    }
  }
  if (path.endsWith('/responses')) {
    const cached = num((u.input_tokens_details as Json | undefined)?.cached_tokens)
    return {
      input: num(u.input_tokens) - cached,
      output: num(u.output_tokens),
      cachedRead: cached,
      cacheWrite: 0,
      reasoning: num((u.output_tokens_details as Json | undefined)?.reasoning_tokens),
    }
  }
  if (path.endsWith('/messages')) {
    return {
      input: num(u.input_tokens),
      output: num(u.output_tokens),
      cachedRead: num(u.cache_read_input_tokens),
      cacheWrite: num(u.cache_creation_input_tokens),
      reasoning: num((u.output_tokens_details as Json | undefined)?.thinking_tokens),
    }
  }
  throw new Error(`no usage rule for ${path}`)
}

/**
 * What a model without a facade costs, straight from the catalogue package
 * the gateway prices passthrough models with (its `input_tokens` is the
 * whole prompt; reasoning is a part of output).
 */
function catalogueUsd(provider: string, model: string, u: ReportedUsage): number | undefined {
  const r = calcPrice(
    {
      input_tokens: u.input + u.cachedRead + u.cacheWrite,
      cache_read_tokens: u.cachedRead,
      cache_write_tokens: u.cacheWrite,
      output_tokens: u.output,
      output_reasoning_tokens: u.reasoning,
    },
    model,
    { providerId: provider },
  )
  return r?.total_price
}

function costUsd(u: ReportedUsage, p: Prices): number {
  return (
    (u.input * p.inputPerM +
      u.output * p.outputPerM +
      u.cachedRead * p.cachedReadPerM +
      u.cacheWrite * p.cacheWritePerM) /
    1e6
  )
}

/** Polls `check` until it returns a value; a condition wait, never a fixed sleep. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function startClientStack(): Promise<ClientStack> {
  const fake = await createFakeUpstream({ record: true })
  const stack = await startTestStack({
    listen: true,
    env: {
      OPENAI_BASE_URL: `${fake.url}/v1`,
      OPENAI_API_KEY: 'sk-upstream-openai-clients',
      ANTHROPIC_BASE_URL: `${fake.url}/v1`,
      ANTHROPIC_API_KEY: 'sk-ant-upstream-clients',
    },
  })
  const prices = new Map<string, Prices>()

  const admin = async (method: 'POST' | 'PUT', url: string, payload: object) => {
    const res = await stack.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      payload,
    })
    expect(res.statusCode, res.body).toBeLessThan(300)
    return res.json()
  }
  await admin('POST', '/api/admin/teams', { teamId: 'clients', name: 'Client tests' })
  await admin('POST', '/api/admin/users', {
    userId: 'dev',
    email: 'dev@example.com',
    name: 'Dev',
    teamId: 'clients',
    role: 'member',
  })

  const query = (keyId: string) =>
    stack.core.warehouse.query<UsageRowOut>(
      'SELECT *, toString(cost_usd) AS cost FROM requests WHERE key_id = {keyId:String} ORDER BY started_at',
      { keyId },
    )

  const cs: ClientStack = {
    url: stack.url,
    fake,
    stack,
    async newKey(name) {
      const out = await admin('POST', '/api/admin/keys', { userId: 'dev', name })
      return { key: out.plaintext as string, keyId: out.key.keyId as string }
    },
    async facade(model, provider, upstreamModel, p) {
      await admin('PUT', `/api/admin/models/${encodeURIComponent(model)}`, { provider, upstreamModel, ...p })
      prices.set(model, p)
    },
    async replay(s) {
      const res = await fetch(`${fake.url}${s.path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ ...s.body, stream: false }),
      })
      expect(res.status, `replay of ${s.path}`).toBe(200)
      return (await res.json()) as Json
    },
    async capture(fn) {
      const before = fake.received.length
      const result = await fn()
      return { result, sent: fake.received.slice(before) }
    },
    async rowsOf(keyId, count) {
      const rows = await waitFor(`${count} rows for ${keyId}`, async () => {
        const r = await query(keyId)
        return r.length >= count ? r : undefined
      })
      await stack.core.recorder.flush()
      const again = await query(keyId)
      expect(again.length, `rows for ${keyId}`).toBe(rows.length)
      return again
    },
    async expectOneRowPerBilledRequest(keyId, sent, opts = {}) {
      const billed = sent.filter((s) => /\/(chat\/completions|responses|messages|embeddings)$/.test(s.path))
      expect(billed.length, 'requests the provider billed').toBeGreaterThan(0)
      const expected = []
      for (const s of billed) {
        const u = reportedUsage(s.path, await cs.replay(s))
        expected.push({ upstream: String(s.body?.model), streamed: s.body?.stream === true, ...u })
      }
      const all = await cs.rowsOf(keyId, billed.length + (opts.refused ?? 0))
      const refused = all.filter((r) => r.status_code !== 200)
      expect(refused, 'refusal rows').toHaveLength(opts.refused ?? 0)
      const rows = all.filter((r) => r.status_code === 200)
      const actual = rows.map((r) => {
        expect([r.status_code, r.error_class, r.tokens_estimated], r.model).toEqual([200, '', false])
        const u = {
          input: r.input_tokens,
          output: r.output_tokens,
          cachedRead: r.cached_read_tokens,
          cacheWrite: r.cache_write_tokens,
          reasoning: r.reasoning_tokens,
        }
        // A facade's prices, or else (passthrough) the catalogue's.
        const p = prices.get(r.model)
        const usd = p ? costUsd(u, p) : catalogueUsd(r.provider, r.upstream_model, u)
        expect(usd, `a price for ${r.model}`).toBeDefined()
        expect(r.price_unknown, r.model).toBe(false)
        expect(Math.abs(Number(r.cost) - usd!), `cost of ${r.model} ${r.request_id}`).toBeLessThan(1e-9)
        return { upstream: r.upstream_model, streamed: r.streamed, ...u }
      })
      const key = (x: object) => JSON.stringify(x)
      expect(actual.map(key).sort()).toEqual(expected.map(key).sort())
      return { billed: rows, refused }
    },
    async close() {
      await stack.close()
      await fake.close()
    },
  }
  return cs
}
