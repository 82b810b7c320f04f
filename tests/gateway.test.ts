import Anthropic from '@anthropic-ai/sdk'
import OpenAI, { APIError } from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// The official SDKs against the real gateway on the embedded engine; only the
// providers are faked (services/src/simulator/fake-upstream.ts, fixed clock so
// that a direct call and a proxied call can be compared byte for byte).

const NOW = Date.parse('2025-06-01T12:00:00Z')
const MAX_BODY = 64 * 1024
const UPSTREAM_OPENAI_KEY = 'sk-upstream-openai-0000'
const UPSTREAM_ANTHROPIC_KEY = 'sk-ant-upstream-0000'

interface Prices {
  inputPerM: number
  outputPerM: number
  cachedReadPerM: number
  cacheWritePerM: number
}
const GPT: Prices = { inputPerM: 0.15, outputPerM: 0.6, cachedReadPerM: 0.075, cacheWritePerM: 0 }
const CLAUDE: Prices = { inputPerM: 3, outputPerM: 15, cachedReadPerM: 0.3, cacheWritePerM: 3.75 }
const EMBED: Prices = { inputPerM: 0.02, outputPerM: 0, cachedReadPerM: 0, cacheWritePerM: 0 }

const FACADES: Record<string, { provider: string; upstreamModel: string; prices: Prices }> = {
  'gpt-test': { provider: 'openai', upstreamModel: 'gpt-4o-mini', prices: GPT },
  'gpt-alias': { provider: 'openai', upstreamModel: 'gpt-4o-mini-2024-07-18', prices: GPT },
  'gpt-cache': { provider: 'openai', upstreamModel: 'gpt-4o-mini@cache', prices: GPT },
  'gpt-nousage': { provider: 'openai', upstreamModel: 'gpt-4o-mini@no-usage', prices: GPT },
  'gpt-slow': { provider: 'openai', upstreamModel: 'gpt-4o-mini@slow', prices: GPT },
  'gpt-429': { provider: 'openai', upstreamModel: 'gpt-4o-mini@error-429', prices: GPT },
  'gpt-500': { provider: 'openai', upstreamModel: 'gpt-4o-mini@error-500', prices: GPT },
  'gpt-hang': { provider: 'openai', upstreamModel: 'gpt-4o-mini@hang', prices: GPT },
  'claude-test': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5', prices: CLAUDE },
  'claude-cache': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5@cache', prices: CLAUDE },
  'claude-nousage': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5@no-usage', prices: CLAUDE },
  'claude-slow': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5@slow', prices: CLAUDE },
  'claude-429': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5@error-429', prices: CLAUDE },
  'sim-chat': { provider: 'simulated', upstreamModel: 'sim-small', prices: GPT },
  'embed-test': { provider: 'openai', upstreamModel: 'text-embedding-3-small', prices: EMBED },
}

interface Expected {
  model: string
  status: number
  errorClass: string
  streamed: boolean
  input: number
  output: number
  cachedRead: number
  cacheWrite: number
  estimated: boolean
  project?: string
  clientApp?: string
  tags?: string[]
}

let fake: FakeUpstream
let stack: TestStack
let key: string
let restrictedKey: string
let openai: OpenAI
let anthropic: Anthropic
const expected = new Map<string, Expected>()

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

function expectRow(requestId: string | null | undefined, e: Partial<Expected> & Pick<Expected, 'model'>) {
  expect(requestId, 'x-request-id header').toMatch(/^[0-9a-f-]{36}$/)
  expect(expected.has(requestId!)).toBe(false)
  expected.set(requestId!, {
    status: 200,
    errorClass: '',
    streamed: false,
    input: 0,
    output: 0,
    cachedRead: 0,
    cacheWrite: 0,
    estimated: false,
    ...e,
  })
}

/** The same request sent straight to the fake provider, for the reference answer. */
async function direct(path: string, body: object, headers: Record<string, string> = {}) {
  const res = await fetch(`${fake.url}/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: res.status, text: await res.text() }
}

async function viaGateway(path: string, body: object | string, headers: Record<string, string> = {}) {
  const res = await fetch(`${stack.url}/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: res.status, text: await res.text(), requestId: res.headers.get('x-request-id') }
}

const chars = (texts: string[]) => texts.reduce((n, t) => n + t.length, 0)
const est = (n: number) => Math.ceil(n / 4)

beforeAll(async () => {
  fake = await createFakeUpstream({ now: () => NOW, slowChunkMs: 25, record: true })
  stack = await startTestStack({
    listen: true,
    env: {
      OPENAI_BASE_URL: `${fake.url}/v1`,
      OPENAI_API_KEY: UPSTREAM_OPENAI_KEY,
      ANTHROPIC_BASE_URL: `${fake.url}/v1`,
      ANTHROPIC_API_KEY: UPSTREAM_ANTHROPIC_KEY,
      UPSTREAM_TIMEOUT_MS: '1500',
      MAX_BODY_BYTES: String(MAX_BODY),
      // Facades only: passthrough and the catalogue are tested in gateway-models.test.ts.
      MODEL_PASSTHROUGH: 'false',
    },
  })
  // Wire the simulated provider to this test's fake, as bootstrap.ts does with its own (DEMO=true).
  stack.core.simulatedBaseUrl = `${fake.url}/v1`
  await admin('POST', '/api/admin/teams', { teamId: 'team-a', name: 'Team A' })
  await admin('POST', '/api/admin/users', {
    userId: 'user-a',
    email: 'a@example.com',
    name: 'Ada',
    teamId: 'team-a',
    role: 'member',
  })
  for (const [model, f] of Object.entries(FACADES)) {
    await admin('PUT', `/api/admin/models/${model}`, {
      provider: f.provider,
      upstreamModel: f.upstreamModel,
      ...f.prices,
    })
  }
  key = (await admin('POST', '/api/admin/keys', { userId: 'user-a', name: 'main' })).plaintext
  restrictedKey = (
    await admin('POST', '/api/admin/keys', {
      userId: 'user-a',
      name: 'restricted',
      allowedModels: ['gpt-test'],
    })
  ).plaintext
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 })
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: key, maxRetries: 0 })
})

afterAll(async () => {
  await stack?.close()
  await fake?.close()
})

/**
 * After every test, whichever ran: every request proxied so far has exactly
 * one row, with the right tokens, cost and attribution (and nothing else was
 * recorded). Each test registers what it sent with expectRow.
 */
afterEach(async () => {
  let all: RowOut[] = []
  // Rows land after the answer (flushed by the recorder): wait for exactly the expected set.
  await expect
    .poll(
      async () => {
        await stack.core.recorder.flush()
        all = await rows()
        return all.map((r) => r.request_id).sort()
      },
      { timeout: 10_000, interval: 50 },
    )
    .toEqual([...expected.keys()].sort())
  for (const row of all) {
    const e = expected.get(row.request_id)!
    const facade = FACADES[e.model]
    const ctx = `${e.model} ${row.request_id}`
    expect(row.model, ctx).toBe(e.model)
    expect(row.provider, ctx).toBe(facade?.provider ?? '')
    expect(row.upstream_model, ctx).toBe(facade?.upstreamModel ?? '')
    expect(row.status_code, ctx).toBe(e.status)
    expect(row.error_class, ctx).toBe(e.errorClass)
    expect(row.streamed, ctx).toBe(e.streamed)
    expect(row.key_id, ctx).toMatch(/^key_/)
    expect([row.user_id, row.team_id], ctx).toEqual(['user-a', 'team-a'])
    expect(row.project, ctx).toBe(e.project ?? '')
    expect(row.client_app, ctx).toBe(e.clientApp ?? '')
    expect(row.tags, ctx).toEqual(e.tags ?? [])
    expect(
      [
        row.input_tokens,
        row.output_tokens,
        row.cached_read_tokens,
        row.cache_write_tokens,
        row.tokens_estimated,
      ],
      ctx,
    ).toEqual([e.input, e.output, e.cachedRead, e.cacheWrite, e.estimated])
    const p = facade?.prices ?? { inputPerM: 0, outputPerM: 0, cachedReadPerM: 0, cacheWritePerM: 0 }
    const usd =
      (e.input * p.inputPerM +
        e.output * p.outputPerM +
        e.cachedRead * p.cachedReadPerM +
        e.cacheWrite * p.cacheWritePerM) /
      1e6
    expect(Math.abs(Number(row.cost) - usd), ctx).toBeLessThan(1e-9)
    expect(row.latency_ms, ctx).toBeGreaterThanOrEqual(0)
    if (e.streamed && e.status === 200) expect(row.ttft_ms, ctx).toBeLessThanOrEqual(row.latency_ms)
    // The slow stream keeps coming for 25 ms a chunk after its first byte.
    if (e.model === 'gpt-slow' && e.status === 200) {
      expect(row.ttft_ms, ctx).toBeGreaterThan(0)
      expect(row.latency_ms - row.ttft_ms, ctx).toBeGreaterThan(100)
    }
  }
})

const messages = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'How do ClickHouse rollups stay exact when a batch is replayed?' },
]
const promptChars = chars(messages.map((m) => m.content))

describe('OpenAI chat completions through the gateway', () => {
  it('non-stream: usage, attribution headers, upstream credentials only', async () => {
    const client = new OpenAI({
      baseURL: `${stack.url}/v1`,
      apiKey: key,
      maxRetries: 0,
      defaultHeaders: { 'x-project': 'apollo', 'x-client-app': 'unit-tests', 'x-tags': 'Beta, alpha,beta' },
    })
    const before = fake.received.length
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-test', messages, max_tokens: 200 })
      .withResponse()
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0)
    const u = data.usage!
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      input: u.prompt_tokens,
      output: u.completion_tokens,
      project: 'apollo',
      clientApp: 'unit-tests',
      tags: ['alpha', 'beta'],
    })
    const sent = fake.received.slice(before)
    expect(sent).toHaveLength(1)
    expect(sent[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_OPENAI_KEY}`)
    expect(JSON.stringify(sent[0]!.headers)).not.toContain(key)
  })

  it('rewrites the facade name to the upstream model', async () => {
    const before = fake.received.length
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-alias', messages })
      .withResponse()
    expect(fake.received[before]!.body!.model).toBe('gpt-4o-mini-2024-07-18')
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-alias',
      input: data.usage!.prompt_tokens,
      output: data.usage!.completion_tokens,
    })
  })

  it('stream without include_usage: usage captured, client sees no usage', async () => {
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'gpt-test', messages, stream: true })
      .withResponse()
    let text = ''
    for await (const chunk of stream) {
      expect(chunk.usage).toBeUndefined()
      text += chunk.choices[0]?.delta.content ?? ''
    }
    const ref = JSON.parse((await direct('/chat/completions', { model: 'gpt-4o-mini', messages })).text)
    expect(text).toBe(ref.choices[0].message.content)
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      streamed: true,
      input: ref.usage.prompt_tokens,
      output: ref.usage.completion_tokens,
    })
  })

  it('stream with include_usage: the client gets the usage chunk', async () => {
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'gpt-cache', messages, stream: true, stream_options: { include_usage: true } })
      .withResponse()
    let usage: OpenAI.CompletionUsage | undefined | null
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
    const cached = usage!.prompt_tokens_details!.cached_tokens!
    expect(cached).toBeGreaterThan(0)
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-cache',
      streamed: true,
      input: usage!.prompt_tokens - cached,
      cachedRead: cached,
      output: usage!.completion_tokens,
    })
  })

  it('cached tokens, non-stream', async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-cache', messages })
      .withResponse()
    const cached = data.usage!.prompt_tokens_details!.cached_tokens!
    expect(cached).toBeGreaterThan(0)
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-cache',
      input: data.usage!.prompt_tokens - cached,
      cachedRead: cached,
      output: data.usage!.completion_tokens,
    })
  })

  it('no usage from upstream: estimated from characters, flagged', async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-nousage', messages })
      .withResponse()
    expect(data.usage).toBeUndefined()
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-nousage',
      input: est(promptChars),
      output: est(data.choices[0]!.message.content!.length),
      estimated: true,
    })
    const { data: stream, response: r2 } = await openai.chat.completions
      .create({ model: 'gpt-nousage', messages, stream: true })
      .withResponse()
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    expectRow(r2.headers.get('x-request-id'), {
      model: 'gpt-nousage',
      streamed: true,
      input: est(promptChars),
      output: est(text.length),
      estimated: true,
    })
  })

  it('slow stream arrives whole, with a time to first token', async () => {
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'gpt-slow', messages, stream: true, max_tokens: 6 })
      .withResponse()
    let n = 0
    for await (const _ of stream) n++
    expect(n).toBeGreaterThan(6)
    const ref = JSON.parse(
      (await direct('/chat/completions', { model: 'gpt-4o-mini@slow', messages, max_tokens: 6 })).text,
    )
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-slow',
      streamed: true,
      input: ref.usage.prompt_tokens,
      output: ref.usage.completion_tokens,
    })
  })

  it('upstream 429 and 500 pass through with their body', async () => {
    for (const [model, status, errorClass] of [
      ['gpt-429', 429, 'rate_limited'],
      ['gpt-500', 500, 'upstream_5xx'],
    ] as const) {
      const err = (await openai.chat.completions.create({ model, messages }).catch((e) => e)) as APIError
      expect(err).toBeInstanceOf(APIError)
      expect(err.status).toBe(status)
      expect(err.message).toContain('simulated')
      expectRow(err.headers?.get('x-request-id'), { model, status, errorClass })
    }
  })

  it('embeddings (SDK default base64)', async () => {
    const { data, response } = await openai.embeddings
      .create({ model: 'embed-test', input: ['first text', 'second, longer text'] })
      .withResponse()
    expect(data.data).toHaveLength(2)
    expect(data.data[0]!.embedding.length).toBe(16)
    expectRow(response.headers.get('x-request-id'), { model: 'embed-test', input: data.usage.prompt_tokens })
  })

  it('the simulated provider serves both APIs', async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: 'sim-chat', messages })
      .withResponse()
    expectRow(response.headers.get('x-request-id'), {
      model: 'sim-chat',
      input: data.usage!.prompt_tokens,
      output: data.usage!.completion_tokens,
    })
  })
})

describe('Anthropic messages through the gateway', () => {
  const amessages = [{ role: 'user' as const, content: 'Summarise the week in one line.' }]

  it('non-stream, upstream credentials only', async () => {
    const before = fake.received.length
    const { data, response } = await anthropic.messages
      .create({ model: 'claude-test', max_tokens: 300, system: 'Be brief.', messages: amessages })
      .withResponse()
    expect(data.content[0]?.type).toBe('text')
    expectRow(response.headers.get('x-request-id'), {
      model: 'claude-test',
      input: data.usage.input_tokens,
      output: data.usage.output_tokens,
    })
    const sent = fake.received[before]!
    expect(sent.headers['x-api-key']).toBe(UPSTREAM_ANTHROPIC_KEY)
    expect(sent.headers['anthropic-version']).toBeTruthy()
    expect(JSON.stringify(sent.headers)).not.toContain(key)
  })

  it('stream with cache reads and writes', async () => {
    const { data: stream, response } = await anthropic.messages
      .create({ model: 'claude-cache', max_tokens: 300, messages: amessages, stream: true })
      .withResponse()
    let start: Anthropic.Usage | undefined
    let output = 0
    for await (const ev of stream) {
      if (ev.type === 'message_start') start = ev.message.usage
      if (ev.type === 'message_delta') output = ev.usage.output_tokens
    }
    expect(start!.cache_read_input_tokens).toBeGreaterThan(0)
    expect(start!.cache_creation_input_tokens).toBeGreaterThan(0)
    expectRow(response.headers.get('x-request-id'), {
      model: 'claude-cache',
      streamed: true,
      input: start!.input_tokens,
      cachedRead: start!.cache_read_input_tokens!,
      cacheWrite: start!.cache_creation_input_tokens!,
      output,
    })
  })

  it('MessageStream helper and no-usage estimate', async () => {
    const s = anthropic.messages.stream({ model: 'claude-test', max_tokens: 5, messages: amessages })
    const final = await s.finalMessage()
    expect(final.stop_reason).toBe('max_tokens')
    const { response } = await s.withResponse()
    expectRow(response.headers.get('x-request-id'), {
      model: 'claude-test',
      streamed: true,
      input: final.usage.input_tokens,
      output: final.usage.output_tokens,
    })
    const { data, response: r2 } = await anthropic.messages
      .create({ model: 'claude-nousage', max_tokens: 300, messages: amessages })
      .withResponse()
    const text = data.content.map((c) => (c.type === 'text' ? c.text : '')).join('')
    expectRow(r2.headers.get('x-request-id'), {
      model: 'claude-nousage',
      input: est(chars(amessages.map((m) => m.content))),
      output: est(text.length),
      estimated: true,
    })
  })

  it('upstream 429 passes through', async () => {
    const err = (await anthropic.messages
      .create({ model: 'claude-429', max_tokens: 10, messages: amessages })
      .catch((e) => e)) as APIError
    expect(err.status).toBe(429)
    expect(JSON.stringify(err.error)).toContain('rate_limit_error')
    expectRow(err.headers?.get('x-request-id'), {
      model: 'claude-429',
      status: 429,
      errorClass: 'rate_limited',
    })
  })
})

describe('the client sees exactly what the provider sent', () => {
  it('OpenAI stream without include_usage is byte-identical (injection invisible)', async () => {
    const body = { messages, stream: true }
    const got = await viaGateway('/chat/completions', { model: 'gpt-test', ...body })
    const ref = await direct('/chat/completions', { model: 'gpt-4o-mini', ...body })
    expect(got.text).toBe(ref.text)
    expect(got.text).not.toContain('"usage"')
    const usage = JSON.parse(
      (await direct('/chat/completions', { model: 'gpt-4o-mini', messages })).text,
    ).usage
    expectRow(got.requestId, {
      model: 'gpt-test',
      streamed: true,
      input: usage.prompt_tokens,
      output: usage.completion_tokens,
    })
  })

  it('OpenAI stream with include_usage, non-stream and Anthropic stream are byte-identical', async () => {
    const cases = [
      [
        '/chat/completions',
        'gpt-cache',
        'gpt-4o-mini@cache',
        { messages, stream: true, stream_options: { include_usage: true } },
      ],
      ['/chat/completions', 'gpt-test', 'gpt-4o-mini', { messages }],
      ['/messages', 'claude-test', 'claude-sonnet-4-5', { messages, max_tokens: 50, stream: true }],
    ] as const
    for (const [path, model, upstream, body] of cases) {
      const got = await viaGateway(path, { model, ...body }, { 'anthropic-version': '2023-06-01' })
      const ref = await direct(path, { model: upstream, ...body })
      expect(got.status).toBe(200)
      expect(got.text).toBe(ref.text)
      const streamed = 'stream' in body
      if (path === '/messages') {
        const start = JSON.parse(got.text.split('\n')[1]!.slice(6)).message.usage
        const delta = got.text.split('\n').find((l) => l.includes('"message_delta"'))!
        expectRow(got.requestId, {
          model,
          streamed,
          input: start.input_tokens,
          output: JSON.parse(delta.slice(6)).usage.output_tokens,
        })
      } else {
        const usage = streamed
          ? JSON.parse(got.text.split('\n\n').at(-3)!.slice(6)).usage
          : JSON.parse(got.text).usage
        const cached = usage.prompt_tokens_details.cached_tokens
        expectRow(got.requestId, {
          model,
          streamed,
          input: usage.prompt_tokens - cached,
          cachedRead: cached,
          output: usage.completion_tokens,
        })
      }
    }
  })
})

describe('failures', () => {
  it('client abort mid-stream is recorded with the tokens seen so far', async () => {
    for (const [path, model, extra] of [
      ['/chat/completions', 'gpt-slow', {}],
      ['/messages', 'claude-slow', { max_tokens: 400 }],
    ] as const) {
      const ac = new AbortController()
      const res = await fetch(`${stack.url}/v1${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key },
        body: JSON.stringify({ model, messages, stream: true, ...extra }),
        signal: ac.signal,
      })
      expect(res.status).toBe(200)
      const reader = res.body!.getReader()
      let seen = ''
      while (seen.split('\n\n').length < 6) {
        const { value } = await reader.read()
        seen += new TextDecoder().decode(value)
      }
      ac.abort()
      await reader.cancel().catch(() => {})
      const requestId = res.headers.get('x-request-id')!
      const row = await waitForRow(requestId)
      expect(row.status_code, JSON.stringify(row)).toBe(499)
      expect(row.tokens_estimated, JSON.stringify(row)).toBe(true)
      expect(row.error_class).toBe('client_disconnected')
      expect(row.tokens_estimated).toBe(true)
      expect(row.output_tokens).toBeGreaterThan(0)
      expect(row.input_tokens).toBeGreaterThan(0)
      if (path === '/messages') {
        // The input side came from message_start: exact, not estimated.
        const start = JSON.parse(seen.split('\n')[1]!.slice(6)).message.usage
        expect(row.input_tokens).toBe(start.input_tokens)
      } else {
        expect(row.input_tokens).toBe(est(promptChars))
      }
      expectRow(requestId, {
        model,
        status: 499,
        errorClass: 'client_disconnected',
        streamed: true,
        input: row.input_tokens,
        output: row.output_tokens,
        estimated: true,
      })
    }
  })

  it('upstream timeout gives a clear 504', async () => {
    const err = (await openai.chat.completions
      .create({ model: 'gpt-hang', messages })
      .catch((e) => e)) as APIError
    expect(err.status).toBe(504)
    expect(err.message).toContain('UPSTREAM_TIMEOUT_MS')
    expectRow(err.headers?.get('x-request-id'), {
      model: 'gpt-hang',
      status: 504,
      errorClass: 'upstream_timeout',
    })
  })

  it('unknown, revoked and missing keys: 401, nothing recorded', async () => {
    const bad = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'tm_not-a-real-key', maxRetries: 0 })
    const err = (await bad.chat.completions
      .create({ model: 'gpt-test', messages })
      .catch((e) => e)) as APIError
    expect(err.status).toBe(401)
    expect(err.message).toContain('Unknown API key')
    expect(err.headers?.get('x-request-id')).toBeTruthy()

    const created = await admin('POST', '/api/admin/keys', { userId: 'user-a', name: 'to revoke' })
    await admin('POST', `/api/admin/keys/${created.key.keyId}/revoke`)
    const revoked = new Anthropic({ baseURL: stack.url, apiKey: created.plaintext, maxRetries: 0 })
    const err2 = (await revoked.messages
      .create({ model: 'claude-test', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e) => e)) as APIError
    expect(err2.status).toBe(401)
    expect(err2.message).toContain('revoked')

    const none = await fetch(`${stack.url}/v1/models`)
    expect(none.status).toBe(401)
  })

  it('unknown model: 400 naming how to add a facade; restricted key: 403', async () => {
    const err = (await openai.chat.completions
      .create({ model: 'gpt-nope', messages })
      .catch((e) => e)) as APIError
    expect(err.status).toBe(400)
    expect(err.message).toContain('PUT /api/admin/models/gpt-nope')
    expect(err.message).toContain('gpt-test')
    expectRow(err.headers?.get('x-request-id'), {
      model: 'gpt-nope',
      status: 400,
      errorClass: 'unknown_model',
    })

    const limited = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: restrictedKey, maxRetries: 0 })
    const models = await limited.models.list()
    expect(models.data.map((m) => m.id)).toEqual(['gpt-test'])
    const all = await openai.models.list()
    expect(all.data.map((m) => m.id)).toContain('claude-test')
    const denied = (await limited.chat.completions
      .create({ model: 'gpt-cache', messages })
      .catch((e) => e)) as APIError
    expect(denied.status).toBe(403)
    expectRow(denied.headers?.get('x-request-id'), {
      model: 'gpt-cache',
      status: 403,
      errorClass: 'model_not_allowed',
    })
  })

  it('malformed or invalid bodies: 400, nothing forwarded; oversized: 413', async () => {
    const before = fake.received.length
    const malformed = await viaGateway('/chat/completions', '{"model": "gpt-test", "messages": [')
    expect(malformed.status).toBe(400)
    expect(JSON.parse(malformed.text).error.code).toBe('invalid_json')
    expectRow(malformed.requestId, { model: '', status: 400, errorClass: 'invalid_json' })

    const invalid = await viaGateway('/chat/completions', { model: 'gpt-test', messages: 'hello' })
    expect(invalid.status).toBe(400)
    expect(JSON.parse(invalid.text).error.message).toContain('messages')
    expectRow(invalid.requestId, { model: 'gpt-test', status: 400, errorClass: 'invalid_request' })

    const noMax = await viaGateway('/messages', { model: 'claude-test', messages })
    expect(noMax.status).toBe(400)
    expect(JSON.parse(noMax.text).error.message).toContain('max_tokens')
    expectRow(noMax.requestId, { model: 'claude-test', status: 400, errorClass: 'invalid_request' })

    const huge = await viaGateway('/chat/completions', {
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY) }],
    })
    expect(huge.status).toBe(413)
    expectRow(huge.requestId, { model: '', status: 413, errorClass: 'body_too_large' })
    expect(fake.received.length).toBe(before)
  })
})

interface RowOut {
  request_id: string
  model: string
  provider: string
  upstream_model: string
  key_id: string
  user_id: string
  team_id: string
  project: string
  client_app: string
  tags: string[]
  streamed: boolean
  status_code: number
  error_class: string
  input_tokens: number
  output_tokens: number
  cached_read_tokens: number
  cache_write_tokens: number
  tokens_estimated: boolean
  cost: string
  latency_ms: number
  ttft_ms: number
}

async function rows(where = '1', params: Record<string, unknown> = {}): Promise<RowOut[]> {
  return stack.core.warehouse.query<RowOut>(
    `SELECT *, toString(cost_usd) AS cost FROM requests WHERE ${where}`,
    params,
  )
}

async function waitForRow(requestId: string): Promise<RowOut> {
  for (let i = 0; i < 100; i++) {
    await stack.core.recorder.flush()
    const [row] = await rows('request_id = {id:UUID}', { id: requestId })
    if (row) return row
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no row for ${requestId}`)
}
