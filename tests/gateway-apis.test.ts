import { connect } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// The APIs beyond chat and messages (Responses and its companions, legacy
// completions, count_tokens, models/{id}), the 404 for any other /v1 path, the
// provider-shaped error envelopes each official SDK turns into its own error
// class, and the WebSocket upgrade refusal; against the real gateway on the
// embedded engine and the fake providers (fixed clock, so that a direct call
// and a proxied call can be compared byte for byte).

const NOW = Date.parse('2025-06-01T12:00:00Z')
const GPT = { inputPerM: 0.15, outputPerM: 0.6, cachedReadPerM: 0.075, cacheWritePerM: 0 }
const CLAUDE = { inputPerM: 3, outputPerM: 15, cachedReadPerM: 0.3, cacheWritePerM: 3.75 }
type Prices = typeof GPT

const FACADES: Record<string, { provider: string; upstreamModel: string; prices: Prices }> = {
  'gpt-test': { provider: 'openai', upstreamModel: 'gpt-4o-mini', prices: GPT },
  'gpt-cache': { provider: 'openai', upstreamModel: 'gpt-4o-mini@cache', prices: GPT },
  'gpt-nousage': { provider: 'openai', upstreamModel: 'gpt-4o-mini@no-usage', prices: GPT },
  'gpt-429': { provider: 'openai', upstreamModel: 'gpt-4o-mini@error-429', prices: GPT },
  'claude-test': { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5', prices: CLAUDE },
  'sim-chat': { provider: 'simulated', upstreamModel: 'sim-small', prices: GPT },
}

interface Expected {
  model: string
  endpoint: string
  status: number
  errorClass: string
  streamed: boolean
  input: number
  output: number
  cachedRead: number
  estimated: boolean
}

let fake: FakeUpstream
/** The simulated provider: a second fake, so that routing to the right upstream is visible. */
let simFake: FakeUpstream
let stack: TestStack
let key: string
let otherUserKey: string
let restrictedKey: string
let brokeKey: string
let openai: OpenAI
let anthropic: Anthropic
const expected = new Map<string, Expected>()

const admin = async (method: 'POST' | 'PUT', url: string, payload?: object) => {
  const res = await stack.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    payload,
  })
  expect(res.statusCode, res.body).toBeLessThan(300)
  return res.json()
}

function expectRow(
  requestId: string | null | undefined,
  e: Partial<Expected> & Pick<Expected, 'model' | 'endpoint'>,
) {
  expect(requestId, 'x-request-id header').toMatch(/^[0-9a-f-]{36}$/)
  expect(expected.has(requestId!)).toBe(false)
  expected.set(requestId!, {
    status: 200,
    errorClass: '',
    streamed: false,
    input: 0,
    output: 0,
    cachedRead: 0,
    estimated: false,
    ...e,
  })
}

async function direct(path: string, body: object, headers: Record<string, string> = {}) {
  const res = await fetch(`${fake.url}/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: res.status, text: await res.text() }
}

async function viaGateway(
  path: string,
  body: object | undefined,
  opts: { method?: string; headers?: Record<string, string>; apiKey?: string } = {},
) {
  const res = await fetch(`${stack.url}/v1${path}`, {
    method: opts.method ?? 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${opts.apiKey ?? key}`,
      ...opts.headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return {
    status: res.status,
    text: await res.text(),
    requestId: res.headers.get('x-request-id'),
    headers: res.headers,
  }
}

const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city', 'days'],
    additionalProperties: false,
  },
  strict: true,
}

beforeAll(async () => {
  fake = await createFakeUpstream({ now: () => NOW, record: true })
  simFake = await createFakeUpstream({ now: () => NOW, record: true })
  stack = await startTestStack({
    listen: true,
    env: {
      OPENAI_BASE_URL: `${fake.url}/v1`,
      OPENAI_API_KEY: 'sk-upstream-openai',
      ANTHROPIC_BASE_URL: `${fake.url}/v1`,
      ANTHROPIC_API_KEY: 'sk-ant-upstream',
      // Facades only, so unknown names are refused: passthrough is tested in gateway-models.test.ts.
      MODEL_PASSTHROUGH: 'false',
    },
  })
  stack.core.simulatedBaseUrl = `${simFake.url}/v1`
  await admin('POST', '/api/admin/teams', { teamId: 'team-a', name: 'Team A' })
  for (const userId of ['user-a', 'user-b']) {
    await admin('POST', '/api/admin/users', {
      userId,
      email: `${userId}@example.com`,
      name: userId,
      teamId: 'team-a',
      role: 'member',
    })
  }
  for (const [model, f] of Object.entries(FACADES)) {
    await admin('PUT', `/api/admin/models/${model}`, {
      provider: f.provider,
      upstreamModel: f.upstreamModel,
      ...f.prices,
    })
  }
  key = (await admin('POST', '/api/admin/keys', { userId: 'user-a', name: 'main' })).plaintext
  otherUserKey = (await admin('POST', '/api/admin/keys', { userId: 'user-b', name: 'other' })).plaintext
  restrictedKey = (
    await admin('POST', '/api/admin/keys', { userId: 'user-a', name: 'limited', allowedModels: ['gpt-test'] })
  ).plaintext
  const broke = await admin('POST', '/api/admin/keys', { userId: 'user-a', name: 'broke' })
  brokeKey = broke.plaintext
  await admin('POST', '/api/admin/budgets', {
    scope: 'key',
    scopeId: broke.key.keyId,
    period: 'month',
    capUsd: 0.000001,
  })
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 })
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: key, maxRetries: 0 })
})

afterAll(async () => {
  await stack?.close()
  await fake?.close()
  await simFake?.close()
})

describe('OpenAI Responses API', () => {
  it('non-stream with a tool: the call arrives, parameters pass untouched, usage recorded with reasoning', async () => {
    const before = fake.received.length
    const params = {
      model: 'gpt-test',
      instructions: 'Use the tool.',
      input: 'What is the weather in Paris for the next days?',
      tools: [weatherTool],
      reasoning: { effort: 'low' as const },
      max_output_tokens: 400,
      store: true,
      metadata: { run: 'one' },
    }
    const { data, response } = await openai.responses.create(params).withResponse()
    const call = data.output.find((o) => o.type === 'function_call')
    expect(call?.type === 'function_call' && call.name).toBe('get_weather')
    const args = JSON.parse(call?.type === 'function_call' ? call.arguments : '{}')
    expect(Object.keys(args).sort()).toEqual(['city', 'days'])
    const u = data.usage!
    expect(u.output_tokens_details.reasoning_tokens).toBeGreaterThan(0)
    const sent = fake.received.slice(before)
    expect(sent).toHaveLength(1)
    expect(sent[0]!.path).toBe('/v1/responses')
    expect(sent[0]!.body).toEqual({ ...params, model: 'gpt-4o-mini' })
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      input: u.input_tokens,
      output: u.output_tokens,
    })
  })

  it('stream with a tool: argument deltas intact, usage from response.completed', async () => {
    const { data: stream, response } = await openai.responses
      .create({ model: 'gpt-test', input: 'Weather in Oslo?', tools: [weatherTool], stream: true })
      .withResponse()
    let args = ''
    let done = ''
    let usage: OpenAI.Responses.ResponseUsage | undefined
    const types = new Set<string>()
    for await (const ev of stream) {
      types.add(ev.type)
      if (ev.type === 'response.function_call_arguments.delta') args += ev.delta
      if (ev.type === 'response.function_call_arguments.done') done = ev.arguments
      if (ev.type === 'response.completed') usage = ev.response.usage!
    }
    expect(types).toContain('response.created')
    expect(types).toContain('response.output_item.added')
    expect(args).toBe(done)
    expect(JSON.parse(args)).toHaveProperty('city')
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      streamed: true,
      input: usage!.input_tokens,
      output: usage!.output_tokens,
    })
  })

  it("the SDK's stream helper reassembles text, reasoning and tool calls into the final response", async () => {
    // The helper does not expose the HTTP response; a fetch wrapper sees its x-request-id.
    let requestId: string | null = null
    const client = new OpenAI({
      baseURL: `${stack.url}/v1`,
      apiKey: key,
      maxRetries: 0,
      fetch: async (url, init) => {
        const res = await fetch(url, init)
        requestId = res.headers.get('x-request-id')
        return res
      },
    })
    for (const tools of [[], [weatherTool]]) {
      const stream = client.responses.stream({
        model: 'gpt-test',
        input: 'Weather in Bern?',
        tools,
        reasoning: { effort: 'low' },
      })
      const final = await stream.finalResponse()
      expect(final.status).toBe('completed')
      expect(final.output.map((o) => o.type)).toEqual(
        tools.length > 0 ? ['reasoning', 'function_call'] : ['reasoning', 'message'],
      )
      if (tools.length === 0) expect(final.output_text.split(' ').length).toBeGreaterThan(1)
      expectRow(requestId, {
        model: 'gpt-test',
        endpoint: '/v1/responses',
        streamed: true,
        input: final.usage!.input_tokens,
        output: final.usage!.output_tokens,
      })
    }
  })

  it('stream is byte-identical; cached tokens are stored apart from input', async () => {
    const body = { input: 'Summarise the rollup design.', stream: true, reasoning: { effort: 'medium' } }
    const got = await viaGateway('/responses', { model: 'gpt-cache', ...body })
    const ref = await direct('/responses', { model: 'gpt-4o-mini@cache', ...body })
    expect(got.status).toBe(200)
    expect(got.text).toBe(ref.text)
    const completed = got.text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)))
      .find((e) => e.type === 'response.completed')
    const u = completed.response.usage
    expect(u.input_tokens_details.cached_tokens).toBeGreaterThan(0)
    expect(u.output_tokens_details.reasoning_tokens).toBeGreaterThan(0)
    expectRow(got.requestId, {
      model: 'gpt-cache',
      endpoint: '/v1/responses',
      streamed: true,
      input: u.input_tokens - u.input_tokens_details.cached_tokens,
      cachedRead: u.input_tokens_details.cached_tokens,
      output: u.output_tokens,
    })
  })

  it('previous_response_id continues the conversation with the tool result', async () => {
    const { data: first, response: r1 } = await openai.responses
      .create({ model: 'gpt-test', input: 'Weather in Rome?', tools: [weatherTool] })
      .withResponse()
    expectRow(r1.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      input: first.usage!.input_tokens,
      output: first.usage!.output_tokens,
    })
    const call = first.output.find((o) => o.type === 'function_call')
    const { data, response } = await openai.responses
      .create({
        model: 'gpt-test',
        previous_response_id: first.id,
        input: [
          {
            type: 'function_call_output',
            call_id: call?.type === 'function_call' ? call.call_id : '',
            output: '21C',
          },
        ],
        tools: [weatherTool],
      })
      .withResponse()
    expect(data.output_text.length).toBeGreaterThan(0)
    expect(data.previous_response_id).toBe(first.id)
    // The previous turn is input again.
    expect(data.usage!.input_tokens).toBeGreaterThan(first.usage!.input_tokens + first.usage!.output_tokens)
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      input: data.usage!.input_tokens,
      output: data.usage!.output_tokens,
    })
  })

  it('no usage from upstream: estimated and flagged, streamed or not', async () => {
    const input = 'Tell me about merges.'
    const { data, response } = await openai.responses.create({ model: 'gpt-nousage', input }).withResponse()
    expect(data.usage ?? null).toBeNull()
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-nousage',
      endpoint: '/v1/responses',
      input: Math.ceil(input.length / 4),
      output: Math.ceil(data.output_text.length / 4),
      estimated: true,
    })
    const { data: stream, response: r2 } = await openai.responses
      .create({ model: 'gpt-nousage', input, stream: true })
      .withResponse()
    let text = ''
    for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta
    expectRow(r2.headers.get('x-request-id'), {
      model: 'gpt-nousage',
      endpoint: '/v1/responses',
      streamed: true,
      input: Math.ceil(input.length / 4),
      output: Math.ceil(text.length / 4),
      estimated: true,
    })
  })

  it('upstream errors pass through as the upstream sent them', async () => {
    const err = await openai.responses.create({ model: 'gpt-429', input: 'hi' }).catch((e) => e)
    expect(err).toBeInstanceOf(OpenAI.RateLimitError)
    expect(err.message).toContain('simulated')
    expect(err.code).toBe('rate_limit_exceeded')
    expectRow(err.headers.get('x-request-id'), {
      model: 'gpt-429',
      endpoint: '/v1/responses',
      status: 429,
      errorClass: 'rate_limited',
    })
  })
})

describe('Responses API companions go to the upstream that created the response', () => {
  it('retrieve, input_items, cancel and delete; no rows', async () => {
    // Created through the simulated provider, whose upstream is not the default OpenAI one.
    const { data: created, response } = await openai.responses
      .create({ model: 'sim-chat', input: [{ role: 'user', content: 'Hello there' }], background: true })
      .withResponse()
    expectRow(response.headers.get('x-request-id'), {
      model: 'sim-chat',
      endpoint: '/v1/responses',
      input: created.usage!.input_tokens,
      output: created.usage!.output_tokens,
    })
    const openaiBefore = fake.received.length
    const simBefore = simFake.received.length
    const got = await openai.responses.retrieve(created.id)
    expect(got.id).toBe(created.id)
    expect(got.output_text).toBe(created.output_text)
    const items = await openai.responses.inputItems.list(created.id)
    expect(items.data.map((i) => (i.type === 'message' ? i.role : i.type))).toEqual(['user'])
    const cancelled = await openai.responses.cancel(created.id)
    expect(cancelled.status).toBe('cancelled')
    // Another user's key does not reach it.
    const other = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: otherUserKey, maxRetries: 0 })
    const denied = await other.responses.retrieve(created.id).catch((e) => e)
    expect(denied).toBeInstanceOf(OpenAI.NotFoundError)
    expect(denied.code).toBe('response_not_found')
    const deleted: unknown = await openai.responses.delete(created.id)
    expect(deleted).toEqual({ id: created.id, object: 'response', deleted: true })
    const gone = await openai.responses.retrieve(created.id).catch((e) => e)
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError)
    expect(fake.received.length).toBe(openaiBefore)
    expect(simFake.received.slice(simBefore).map((r) => r.path)).toEqual([
      `/v1/responses/${created.id}`,
      `/v1/responses/${created.id}/input_items`,
      `/v1/responses/${created.id}/cancel`,
      `/v1/responses/${created.id}`,
      `/v1/responses/${created.id}`,
    ])
    // Upstream credentials only.
    expect(JSON.stringify(simFake.received.at(-1)!.headers)).not.toContain(key)
  })

  it('an unknown id goes to the default OpenAI upstream, whose 404 passes through', async () => {
    const before = fake.received.length
    const err = await openai.responses.retrieve('resp_unknown123').catch((e) => e)
    expect(err).toBeInstanceOf(OpenAI.NotFoundError)
    expect(err.message).toContain("Response with id 'resp_unknown123' not found")
    expect(fake.received.slice(before).map((r) => r.path)).toEqual(['/v1/responses/resp_unknown123'])
    expect(fake.received.at(-1)!.headers.authorization).toBe('Bearer sk-upstream-openai')
  })
})

describe('legacy completions, count_tokens, models/{id}', () => {
  it('completions: recorded like chat, streamed without a usage block when none was asked', async () => {
    const { data, response } = await openai.completions
      .create({ model: 'gpt-test', prompt: 'Once upon a time', max_tokens: 12 })
      .withResponse()
    expect(data.choices[0]!.text.length).toBeGreaterThan(0)
    expectRow(response.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/completions',
      input: data.usage!.prompt_tokens,
      output: data.usage!.completion_tokens,
    })
    const body = { prompt: 'Once upon a time', max_tokens: 12, stream: true }
    const got = await viaGateway('/completions', { model: 'gpt-test', ...body })
    const ref = await direct('/completions', { model: 'gpt-4o-mini', ...body })
    expect(got.text).toBe(ref.text)
    expect(got.text).not.toContain('usage')
    expectRow(got.requestId, {
      model: 'gpt-test',
      endpoint: '/v1/completions',
      streamed: true,
      input: data.usage!.prompt_tokens,
      output: data.usage!.completion_tokens,
    })
  })

  it('count_tokens: forwarded with upstream credentials, not billed, no row', async () => {
    const before = fake.received.length
    const params = {
      model: 'claude-test',
      system: 'Be brief.',
      messages: [{ role: 'user' as const, content: 'How many tokens is this?' }],
    }
    const counted = await anthropic.messages.countTokens(params)
    const ref = JSON.parse(
      (await direct('/messages/count_tokens', { ...params, model: 'claude-sonnet-4-5' })).text,
    )
    expect(counted.input_tokens).toBe(ref.input_tokens)
    const sent = fake.received[before]!
    expect(sent.path).toBe('/v1/messages/count_tokens')
    expect(sent.headers['x-api-key']).toBe('sk-ant-upstream')
    expect(sent.headers['anthropic-version']).toBeTruthy()
    // A refusal on count_tokens is an Anthropic error and leaves no row either.
    const err = await anthropic.messages.countTokens({ ...params, model: 'nope' }).catch((e) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect(err.error.error.type).toBe('invalid_request_error')
  })

  it("models.retrieve in both providers' shapes, limited to what the key may use", async () => {
    const m = await openai.models.retrieve('gpt-test')
    expect(m).toEqual({ id: 'gpt-test', object: 'model', created: 0, owned_by: 'openai' })
    const a = await anthropic.models.retrieve('claude-test')
    expect(a).toMatchObject({ type: 'model', id: 'claude-test', display_name: 'claude-test' })
    const limited = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: restrictedKey, maxRetries: 0 })
    const hidden = await limited.models.retrieve('claude-test').catch((e) => e)
    expect(hidden).toBeInstanceOf(OpenAI.NotFoundError)
    expect(hidden.code).toBe('model_not_found')
    const missing = await anthropic.models.retrieve('claude-nope').catch((e) => e)
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError)
    expect(missing.error.error.type).toBe('not_found_error')
  })
})

describe('streams with tool calls and thinking stay byte for byte', () => {
  it('chat with tools (usage injected and hidden), messages with thinking and tool_use', async () => {
    const chatTools = [
      { type: 'function', function: { name: weatherTool.name, parameters: weatherTool.parameters } },
    ]
    const messages = [{ role: 'user', content: 'Weather in Lima?' }]
    const chat = { messages, tools: chatTools, stream: true }
    const got = await viaGateway('/chat/completions', { model: 'gpt-test', ...chat })
    const ref = await direct('/chat/completions', { model: 'gpt-4o-mini', ...chat })
    expect(got.text).toBe(ref.text)
    expect(got.text).toContain('"tool_calls"')
    expect(got.text).not.toContain('usage')
    const usage = JSON.parse(
      (await direct('/chat/completions', { model: 'gpt-4o-mini', messages, tools: chatTools })).text,
    ).usage
    expectRow(got.requestId, {
      model: 'gpt-test',
      endpoint: '/v1/chat/completions',
      streamed: true,
      input: usage.prompt_tokens,
      output: usage.completion_tokens,
    })

    const msg = {
      max_tokens: 2000,
      messages,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      tools: [{ name: weatherTool.name, input_schema: weatherTool.parameters }],
      stream: true,
    }
    const got2 = await viaGateway(
      '/messages',
      { model: 'claude-test', ...msg },
      { headers: { 'anthropic-version': '2023-06-01' } },
    )
    const ref2 = await direct('/messages', { model: 'claude-sonnet-4-5', ...msg })
    expect(got2.text).toBe(ref2.text)
    expect(got2.text).toContain('thinking_delta')
    expect(got2.text).toContain('input_json_delta')
    const events = got2.text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)))
    expectRow(got2.requestId, {
      model: 'claude-test',
      endpoint: '/v1/messages',
      streamed: true,
      input: events[0].message.usage.input_tokens,
      output: events.find((e) => e.type === 'message_delta').usage.output_tokens,
    })

    // The SDK's stream helper puts thinking and tool_use blocks back together.
    const helper = anthropic.messages.stream({
      ...msg,
      model: 'claude-test',
    } as Anthropic.MessageStreamParams)
    const assembled = await helper.finalMessage()
    expect(assembled.content.map((c) => c.type)).toEqual(['thinking', 'text', 'tool_use'])
    const use = assembled.content[2]
    expect(use?.type === 'tool_use' && Object.keys(use.input as object).sort()).toEqual(['city', 'days'])
    const thought = assembled.content[0]
    expect(thought?.type === 'thinking' && thought.signature.length).toBeGreaterThan(0)
    const { response: helperResponse } = await helper.withResponse()
    expectRow(helperResponse.headers.get('x-request-id'), {
      model: 'claude-test',
      endpoint: '/v1/messages',
      streamed: true,
      input: assembled.usage.input_tokens,
      output: assembled.usage.output_tokens,
    })
    const { data: final, response } = await anthropic.messages
      .create({ ...msg, model: 'claude-test', stream: false } as Anthropic.MessageCreateParamsNonStreaming)
      .withResponse()
    expect(final.content.map((c) => c.type)).toEqual(['thinking', 'text', 'tool_use'])
    expect(final.stop_reason).toBe('tool_use')
    expectRow(response.headers.get('x-request-id'), {
      model: 'claude-test',
      endpoint: '/v1/messages',
      input: final.usage.input_tokens,
      output: final.usage.output_tokens,
    })
  })
})

describe('the fake provider', () => {
  it('answers in text despite tools with no-tools, and reasons when told to', async () => {
    const h = { 'x-fake-behavior': 'no-tools,reasoning' }
    const chat = JSON.parse(
      (
        await direct(
          '/chat/completions',
          {
            model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: 'hi' }],
            tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
          },
          h,
        )
      ).text,
    )
    expect(chat.choices[0].message.tool_calls).toBeUndefined()
    expect(chat.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0)
    const resp = JSON.parse(
      (await direct('/responses', { model: 'gpt-4o-mini', input: 'hi', tools: [weatherTool] }, h)).text,
    )
    expect(resp.output.map((o: { type: string }) => o.type)).toEqual(['reasoning', 'message'])
    const msg = JSON.parse(
      (
        await direct(
          '/messages',
          {
            model: 'claude-sonnet-4-5',
            max_tokens: 50,
            messages: [{ role: 'user', content: 'hi' }],
            tools: [{ name: 'f', input_schema: { type: 'object' } }],
          },
          h,
        )
      ).text,
    )
    expect(msg.content.map((c: { type: string }) => c.type)).toEqual(['text'])
  })
})

describe('any other /v1 path', () => {
  it('checks the key first (401), then answers 404 naming what is served, recorded as a refusal', async () => {
    const bad = await viaGateway('/files', undefined, { method: 'GET', apiKey: 'tm_wrong' })
    expect(bad.status).toBe(401)
    expect(JSON.parse(bad.text).error.code).toBe('unknown_api_key')
    const res = await viaGateway('/files', undefined, { method: 'GET' })
    expect(res.status).toBe(404)
    const error = JSON.parse(res.text).error
    expect(error).toMatchObject({ type: 'not_found_error', code: 'unknown_endpoint', param: null })
    expect(error.message).toContain('GET /v1/files')
    expect(error.message).toContain('POST /v1/responses')
    expectRow(res.requestId, {
      model: '',
      endpoint: '/v1/files',
      status: 404,
      errorClass: 'unknown_endpoint',
    })
    const post = await viaGateway('/audio/speech', { model: 'tts-1', input: 'hi' })
    expect(post.status).toBe(404)
    expectRow(post.requestId, {
      model: '',
      endpoint: '/v1/audio/speech',
      status: 404,
      errorClass: 'unknown_endpoint',
    })
  })
})

describe("gateway errors in each provider's envelope, so each SDK raises its own class", () => {
  const amessages = [{ role: 'user' as const, content: 'hi' }]

  it('OpenAI SDK', async () => {
    const bad = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'tm_wrong', maxRetries: 0 })
    const auth = await bad.responses.create({ model: 'gpt-test', input: 'hi' }).catch((e) => e)
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(auth.error).toMatchObject({ type: 'authentication_error', code: 'unknown_api_key', param: null })

    const limited = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: restrictedKey, maxRetries: 0 })
    const perm = await limited.responses.create({ model: 'gpt-cache', input: 'hi' }).catch((e) => e)
    expect(perm).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(perm.code).toBe('model_not_allowed')
    expectRow(perm.headers.get('x-request-id'), {
      model: 'gpt-cache',
      endpoint: '/v1/responses',
      status: 403,
      errorClass: 'model_not_allowed',
    })

    const invalidMax = await openai.completions
      .create({ model: 'gpt-test', prompt: 'x', max_tokens: -1 })
      .catch((e) => e)
    expect(invalidMax).toBeInstanceOf(OpenAI.BadRequestError)
    expect(invalidMax.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' })
    expect(invalidMax.message).toContain('max_tokens')
    expectRow(invalidMax.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/completions',
      status: 400,
      errorClass: 'invalid_request',
    })

    const wrong = await openai.responses.create({ model: 'claude-test', input: 'x' }).catch((e) => e)
    expect(wrong).toBeInstanceOf(OpenAI.BadRequestError)
    expect(wrong.code).toBe('wrong_endpoint')
    expectRow(wrong.headers.get('x-request-id'), {
      model: 'claude-test',
      endpoint: '/v1/responses',
      status: 400,
      errorClass: 'wrong_endpoint',
    })

    const broke = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: brokeKey, maxRetries: 0 })
    const budget = await broke.responses
      .create({ model: 'gpt-test', input: 'hi', max_output_tokens: 1000 })
      .catch((e) => e)
    expect(budget).toBeInstanceOf(OpenAI.RateLimitError)
    expect(budget.code).toBe('budget_exceeded')
    expect(budget.error.type).toBe('rate_limit_error')
    expect(Number(budget.headers.get('retry-after'))).toBeGreaterThan(0)
    expectRow(budget.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      status: 429,
      errorClass: 'budget_exceeded',
    })

    const invalid = await viaGateway('/responses', { model: 'gpt-test', input: 42 })
    expect(invalid.status).toBe(400)
    expect(JSON.parse(invalid.text).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_request',
    })
    expectRow(invalid.requestId, {
      model: 'gpt-test',
      endpoint: '/v1/responses',
      status: 400,
      errorClass: 'invalid_request',
    })
  })

  it('Anthropic SDK', async () => {
    const bad = new Anthropic({ baseURL: stack.url, apiKey: 'tm_wrong', maxRetries: 0 })
    const auth = await bad.messages
      .create({ model: 'claude-test', max_tokens: 5, messages: amessages })
      .catch((e) => e)
    expect(auth).toBeInstanceOf(Anthropic.AuthenticationError)
    expect(auth.error).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', code: 'unknown_api_key' },
    })

    const limited = new Anthropic({ baseURL: stack.url, apiKey: restrictedKey, maxRetries: 0 })
    const perm = await limited.messages
      .create({ model: 'claude-test', max_tokens: 5, messages: amessages })
      .catch((e) => e)
    expect(perm).toBeInstanceOf(Anthropic.PermissionDeniedError)
    expect(perm.error.error).toMatchObject({ type: 'permission_error', code: 'model_not_allowed' })
    expectRow(perm.headers.get('x-request-id'), {
      model: 'claude-test',
      endpoint: '/v1/messages',
      status: 403,
      errorClass: 'model_not_allowed',
    })

    const invalid = await anthropic.messages
      .create({ model: 'gpt-test', max_tokens: 5, messages: amessages })
      .catch((e) => e)
    expect(invalid).toBeInstanceOf(Anthropic.BadRequestError)
    expect(invalid.error.error).toMatchObject({ type: 'invalid_request_error', code: 'wrong_endpoint' })
    expectRow(invalid.headers.get('x-request-id'), {
      model: 'gpt-test',
      endpoint: '/v1/messages',
      status: 400,
      errorClass: 'wrong_endpoint',
    })

    const broke = new Anthropic({ baseURL: stack.url, apiKey: brokeKey, maxRetries: 0 })
    const budget = await broke.messages
      .create({ model: 'claude-test', max_tokens: 1000, messages: amessages })
      .catch((e) => e)
    expect(budget).toBeInstanceOf(Anthropic.RateLimitError)
    expect(budget.error.error).toMatchObject({ type: 'rate_limit_error', code: 'budget_exceeded' })
    expect(Number(budget.headers.get('retry-after'))).toBeGreaterThan(0)
    expectRow(budget.headers.get('x-request-id'), {
      model: 'claude-test',
      endpoint: '/v1/messages',
      status: 429,
      errorClass: 'budget_exceeded',
    })

    const malformed = await viaGateway('/messages', undefined, {
      headers: { 'anthropic-version': '2023-06-01' },
    })
    expect(malformed.status).toBe(400)
    expect(JSON.parse(malformed.text)).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', code: 'invalid_request' },
    })
    expectRow(malformed.requestId, {
      model: '',
      endpoint: '/v1/messages',
      status: 400,
      errorClass: 'invalid_request',
    })
  })
})

/** Sends a raw WebSocket upgrade and returns what came back before the server closed the socket. */
function upgrade(path: string, apiKey: string): Promise<string> {
  const { hostname, port } = new URL(stack.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
          `Authorization: Bearer ${apiKey}\r\n\r\n`,
      )
    })
    let got = ''
    socket.on('data', (d) => {
      got += d
    })
    // Resolves only when the server ends the connection: the client never does.
    socket.on('end', () => {
      socket.destroy()
      resolve(got)
    })
    socket.on('error', reject)
  })
}

describe('WebSocket upgrades on /v1', () => {
  it('are refused with 426 (401 for a bad key) and the server closes the socket', async () => {
    const refused = await upgrade('/v1/responses', key)
    expect(refused).toMatch(/^HTTP\/1\.1 426 /)
    expect(refused.toLowerCase()).toContain('connection: close')
    const body = JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4))
    expect(body.error).toMatchObject({ code: 'websocket_not_supported', type: 'invalid_request_error' })
    expect(await upgrade('/v1/anything', key)).toMatch(/^HTTP\/1\.1 426 /)
    expect(await upgrade('/v1/responses', 'tm_wrong')).toMatch(/^HTTP\/1\.1 401 /)
  })
})

describe('recorded usage', () => {
  it('one row per billed request or refusal, with the tokens and cost the upstream reported; none for companions, count_tokens or models', async () => {
    await stack.core.recorder.flush()
    const rows = await stack.core.warehouse.query<{
      request_id: string
      model: string
      endpoint: string
      status_code: number
      error_class: string
      streamed: boolean
      input_tokens: number
      output_tokens: number
      cached_read_tokens: number
      tokens_estimated: boolean
      cost: string
    }>('SELECT *, toString(cost_usd) AS cost FROM requests')
    const ids = rows.map((r) => r.request_id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.sort()).toEqual([...expected.keys()].sort())
    for (const row of rows) {
      const e = expected.get(row.request_id)!
      const ctx = `${e.endpoint} ${e.model} ${row.request_id}`
      expect([row.model, row.endpoint, row.status_code, row.error_class, row.streamed], ctx).toEqual([
        e.model,
        e.endpoint,
        e.status,
        e.errorClass,
        e.streamed,
      ])
      expect(
        [row.input_tokens, row.output_tokens, row.cached_read_tokens, row.tokens_estimated],
        ctx,
      ).toEqual([e.input, e.output, e.cachedRead, e.estimated])
      const p = FACADES[e.model]?.prices ?? { inputPerM: 0, outputPerM: 0, cachedReadPerM: 0 }
      const usd = (e.input * p.inputPerM + e.output * p.outputPerM + e.cachedRead * p.cachedReadPerM) / 1e6
      expect(Math.abs(Number(row.cost) - usd), ctx).toBeLessThan(1e-9)
    }
  })
})
