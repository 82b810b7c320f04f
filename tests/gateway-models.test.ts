import Anthropic from '@anthropic-ai/sdk'
import { findProvider } from '@pydantic/genai-prices'
import OpenAI, { type APIError } from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { parseCsv } from './helpers/export-csv.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// Models without a facade (passthrough, the default), priced from the
// catalogue of @pydantic/genai-prices; aliases, facades overriding it, key
// patterns, and named OpenAI-compatible upstreams. The official SDKs against
// the real gateway on the embedded engine; the providers are two fake
// upstreams on different ports (the built-in OpenAI and Anthropic on one,
// named upstreams on the other).
//
// Expected costs are computed here by hand from the package's price data
// (per-million rates of the catalogue entry the name belongs to), not by the
// product's pricing code.

const OPENAI_KEY = 'sk-upstream-openai-models'
const ANTHROPIC_KEY = 'sk-ant-upstream-models'
const OPENROUTER_KEY = 'sk-or-upstream-models'
const AZURE_KEY = 'azure-upstream-models'
const AZURE_VERSION = '2024-10-21'

let main: FakeUpstream
let named: FakeUpstream
let stack: TestStack
let openai: OpenAI
let anthropic: Anthropic
let limited: OpenAI
let limitedAnthropic: Anthropic
const messages = [{ role: 'user' as const, content: 'Price this request from the catalogue, please.' }]

const admin = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  stack.app.inject({ method, url, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, payload })

async function adminOk(method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) {
  const res = await admin(method, url, payload)
  expect(res.statusCode, res.body).toBeLessThan(300)
  return res.json()
}

interface Row {
  model: string
  endpoint: string
  provider: string
  upstream_model: string
  status_code: number
  error_class: string
  input_tokens: number
  output_tokens: number
  cached_read_tokens: number
  cache_write_tokens: number
  reasoning_tokens: number
  price_unknown: boolean
  cost: string
}

async function waitForRow(requestId: string | null | undefined): Promise<Row> {
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/)
  for (let i = 0; i < 100; i++) {
    await stack.core.recorder.flush()
    const [row] = await stack.core.warehouse.query<Row>(
      'SELECT *, toString(cost_usd) AS cost FROM requests WHERE request_id = {id:UUID}',
      { id: requestId },
    )
    if (row) return row
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no row for ${requestId}`)
}

/** Flat per-million rates of one catalogue entry, read straight from the package's data. */
function rates(provider: string, catalogueId: string) {
  const m = findProvider({ providerId: provider })!.models.find((x) => x.id === catalogueId)
  expect(m, `${provider}/${catalogueId} in the catalogue`).toBeDefined()
  // Prices that changed on a date are a list; the one in force is the last that has started.
  const now = Date.now()
  const list = Array.isArray(m!.prices) ? m!.prices : [{ prices: m!.prices }]
  const current = list.findLast(
    (c) =>
      !('constraint' in c) ||
      !c.constraint ||
      Date.parse((c.constraint as { start_date: string }).start_date) <= now,
  )
  const p = current!.prices as Record<string, unknown>
  for (const k of ['input_mtok', 'output_mtok', 'cache_read_mtok', 'cache_write_mtok']) {
    // This test prices by hand only entries with flat rates.
    expect(p[k] === undefined || typeof p[k] === 'number', `${catalogueId} ${k} is flat`).toBe(true)
  }
  const input = p.input_mtok as number
  return {
    input,
    output: p.output_mtok as number,
    cachedRead: (p.cache_read_mtok as number | undefined) ?? input,
    cacheWrite: (p.cache_write_mtok as number | undefined) ?? input,
  }
}

/** USD of a row's tokens at those rates; reasoning is inside output_tokens and not added. */
function expectedUsd(row: Row, r: ReturnType<typeof rates>): number {
  return (
    (row.input_tokens * r.input +
      row.output_tokens * r.output +
      row.cached_read_tokens * r.cachedRead +
      row.cache_write_tokens * r.cacheWrite) /
    1e6
  )
}

function expectCost(row: Row, r: ReturnType<typeof rates>) {
  const usd = expectedUsd(row, r)
  expect(usd).toBeGreaterThan(0)
  expect(Math.abs(Number(row.cost) - usd), `${row.model}: ${row.cost} vs ${usd}`).toBeLessThan(1.5e-9)
  expect(row.price_unknown).toBe(false)
}

/** One range per rollup: 5-minute, hourly and daily buckets. */
const RANGES = ['range=24h&granularity=5m', 'range=24h', 'range=30d']

const lastReceived = (fake: FakeUpstream) => fake.received.at(-1)!

beforeAll(async () => {
  main = await createFakeUpstream({ record: true })
  named = await createFakeUpstream({ record: true })
  stack = await startTestStack({
    listen: true,
    env: {
      OPENAI_BASE_URL: `${main.url}/v1`,
      OPENAI_API_KEY: OPENAI_KEY,
      ANTHROPIC_BASE_URL: `${main.url}/v1`,
      ANTHROPIC_API_KEY: ANTHROPIC_KEY,
      UPSTREAMS: 'openrouter,azure',
      UPSTREAM_OPENROUTER_BASE_URL: `${named.url}/v1`,
      // The credential by the name of the variable that holds it.
      UPSTREAM_OPENROUTER_API_KEY_ENV: 'MY_OPENROUTER_KEY',
      MY_OPENROUTER_KEY: OPENROUTER_KEY,
      UPSTREAM_AZURE_BASE_URL: `${named.url}/v1`,
      UPSTREAM_AZURE_API_KEY: AZURE_KEY,
      UPSTREAM_AZURE_API_VERSION: AZURE_VERSION,
    },
  })
  await adminOk('POST', '/api/admin/teams', { teamId: 'team-m', name: 'Models' })
  await adminOk('POST', '/api/admin/users', {
    userId: 'user-m',
    email: 'm@example.com',
    name: 'Mo',
    teamId: 'team-m',
    role: 'member',
  })
  const key = (await adminOk('POST', '/api/admin/keys', { userId: 'user-m', name: 'all' })).plaintext
  const limitedKey = (
    await adminOk('POST', '/api/admin/keys', {
      userId: 'user-m',
      name: 'limited',
      allowedModels: ['claude-*', 'gpt-4o*'],
    })
  ).plaintext
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 })
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: key, maxRetries: 0 })
  limited = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: limitedKey, maxRetries: 0 })
  limitedAnthropic = new Anthropic({ baseURL: stack.url, apiKey: limitedKey, maxRetries: 0 })
})

afterAll(async () => {
  await stack?.close()
  await main?.close()
  await named?.close()
})

describe('models without a facade pass through, priced from the catalogue', () => {
  it('a dated gpt-4o id goes to OpenAI as sent; cached reads at the cached rate', async () => {
    const res = await openai.chat.completions
      .create({ model: 'gpt-4o-2024-08-06', messages, prompt_cache_key: 'tenant-1' })
      .withResponse()
    const sent = lastReceived(main)
    expect(sent.path).toBe('/v1/chat/completions')
    expect(sent.body?.model).toBe('gpt-4o-2024-08-06')
    expect(sent.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`)
    const usage = res.data.usage!
    const cached = usage.prompt_tokens_details!.cached_tokens!
    expect(cached).toBeGreaterThan(0)
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({
      provider: 'openai',
      model: 'gpt-4o-2024-08-06',
      upstream_model: 'gpt-4o-2024-08-06',
      input_tokens: usage.prompt_tokens - cached,
      cached_read_tokens: cached,
      output_tokens: usage.completion_tokens,
    })
    expectCost(row, rates('openai', 'gpt-4o'))
  })

  it('reasoning tokens of o3 (streamed and not) are recorded and billed once, as output', async () => {
    const plain = await openai.chat.completions
      .create({ model: 'o3', messages, reasoning_effort: 'high' })
      .withResponse()
    const reasoning = plain.data.usage!.completion_tokens_details!.reasoning_tokens!
    expect(reasoning).toBeGreaterThan(0)
    const row = await waitForRow(plain.response.headers.get('x-request-id'))
    expect(row.reasoning_tokens).toBe(reasoning)
    expect(row.output_tokens).toBe(plain.data.usage!.completion_tokens)
    const o3 = rates('openai', 'o3')
    expectCost(row, o3)
    // Counting reasoning again on top of output would cost this much more.
    expect(Number(row.cost)).toBeLessThan(expectedUsd(row, o3) + (reasoning * o3.output) / 1e6 - 1e-9)

    const stream = await openai.chat.completions
      .create({ model: 'o3-2025-04-16', messages, reasoning_effort: 'low', stream: true })
      .withResponse()
    let sawUsage = false
    for await (const chunk of stream.data) if (chunk.usage) sawUsage = true
    // The gateway asked for usage on the client's behalf and hid it again.
    expect(sawUsage).toBe(false)
    const streamed = await waitForRow(stream.response.headers.get('x-request-id'))
    expect(streamed.reasoning_tokens).toBeGreaterThan(0)
    expect(streamed.reasoning_tokens).toBeLessThan(streamed.output_tokens)
    expectCost(streamed, o3)
  })

  it('the Responses API: o4-mini with reasoning passes through, reasoning recorded and billed as output once', async () => {
    const res = await openai.responses
      .create({ model: 'o4-mini', input: 'Think, then answer in one line.', reasoning: { effort: 'low' } })
      .withResponse()
    const sent = lastReceived(main)
    expect(sent.path).toBe('/v1/responses')
    expect(sent.body?.model).toBe('o4-mini')
    const u = res.data.usage!
    expect(u.output_tokens_details.reasoning_tokens).toBeGreaterThan(0)
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({
      provider: 'openai',
      endpoint: '/v1/responses',
      output_tokens: u.output_tokens,
      reasoning_tokens: u.output_tokens_details.reasoning_tokens,
    })
    expectCost(row, rates('openai', 'o4-mini'))
  })

  it('GET /v1/models/{id} answers for a passthrough model the catalogue knows, 404 otherwise', async () => {
    expect(await openai.models.retrieve('gpt-4o-2024-08-06')).toMatchObject({
      id: 'gpt-4o-2024-08-06',
      owned_by: 'openai',
    })
    expect(await anthropic.models.retrieve('claude-haiku-4-5')).toMatchObject({ id: 'claude-haiku-4-5' })
    for (const [client, id] of [
      [openai, 'gpt-imaginary-9'],
      [limited, 'o3'],
    ] as const) {
      const err = (await client.models.retrieve(id).catch((e) => e)) as APIError
      expect(err.status, id).toBe(404)
    }
  })

  it('a dated claude id goes to Anthropic; cache reads and writes at their own rates', async () => {
    const res = await anthropic.messages
      .create({
        model: 'claude-haiku-4-5-20251001',
        max_tokens: 64,
        system: [{ type: 'text', text: 'A long shared preamble.', cache_control: { type: 'ephemeral' } }],
        messages,
      })
      .withResponse()
    const sent = lastReceived(main)
    expect(sent.path).toBe('/v1/messages')
    expect(sent.body?.model).toBe('claude-haiku-4-5-20251001')
    expect(sent.headers['x-api-key']).toBe(ANTHROPIC_KEY)
    const u = res.data.usage
    expect(u.cache_read_input_tokens).toBeGreaterThan(0)
    expect(u.cache_creation_input_tokens).toBeGreaterThan(0)
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({
      provider: 'anthropic',
      input_tokens: u.input_tokens,
      cached_read_tokens: u.cache_read_input_tokens,
      cache_write_tokens: u.cache_creation_input_tokens,
      output_tokens: u.output_tokens,
    })
    const haiku = rates('anthropic', 'claude-haiku-4-5')
    expect(haiku.cacheWrite).not.toBe(haiku.input)
    expectCost(row, haiku)
  })

  it('aliases: an undated claude alias, a -latest alias, and the id Claude Code sends for --model sonnet', async () => {
    for (const [model, catalogueId] of [
      ['claude-opus-4-1', 'claude-opus-4-1'],
      ['claude-3-7-sonnet-latest', 'claude-3-7-sonnet-latest'],
      // The catalogue prices claude-sonnet-5-5 by its claude-sonnet-5 entry (a starts_with rule).
      ['claude-sonnet-5-5', 'claude-sonnet-5'],
    ] as const) {
      const res = await anthropic.messages.create({ model, max_tokens: 32, messages }).withResponse()
      expect(lastReceived(main).body?.model).toBe(model)
      const row = await waitForRow(res.response.headers.get('x-request-id'))
      expect(row.provider, model).toBe('anthropic')
      expectCost(row, rates('anthropic', catalogueId))
    }
  })

  it('a bare family name (`sonnet`) goes out as the catalogue newest Sonnet', async () => {
    let newest = { id: '', version: -1 }
    for (const m of findProvider({ providerId: 'anthropic' })!.models) {
      const v = /^Claude Sonnet (\d+(?:\.\d+)?)$/.exec(m.name ?? '')
      if (v && !m.deprecated && Number(v[1]) > newest.version) newest = { id: m.id, version: Number(v[1]) }
    }
    const res = await anthropic.messages.create({ model: 'sonnet', max_tokens: 32, messages }).withResponse()
    expect(lastReceived(main).body?.model).toBe(newest.id)
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({ model: 'sonnet', upstream_model: newest.id, provider: 'anthropic' })
    expectCost(row, rates('anthropic', newest.id))
  })

  it('a model the catalogue does not know is forwarded, recorded at cost 0 and flagged price_unknown', async () => {
    // A model the catalogue prices, to compare with in the export.
    const priced = await openai.chat.completions
      .create({ model: 'gpt-4o-2024-08-06', messages })
      .withResponse()
    await waitForRow(priced.response.headers.get('x-request-id'))
    const res = await openai.chat.completions.create({ model: 'gpt-imaginary-9', messages }).withResponse()
    expect(lastReceived(main).body?.model).toBe('gpt-imaginary-9')
    const id = res.response.headers.get('x-request-id')!
    const row = await waitForRow(id)
    expect(row).toMatchObject({
      provider: 'openai',
      price_unknown: true,
      status_code: 200,
    })
    expect(Number(row.cost)).toBe(0)
    expect(row.output_tokens).toBeGreaterThan(0)
    // By the endpoint: an unknown name on /v1/messages is Anthropic's.
    const msg = await anthropic.messages
      .create({ model: 'house-model', max_tokens: 16, messages })
      .withResponse()
    expect(await waitForRow(msg.response.headers.get('x-request-id'))).toMatchObject({
      provider: 'anthropic',
      price_unknown: true,
    })

    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const log = (
      await stack.app.inject({ url: '/api/requests?range=24h&models=gpt-imaginary-9', headers: h })
    ).json()
    expect(log.rows).toHaveLength(1)
    expect(log.rows[0]).toMatchObject({ requestId: id, priceUnknown: true, spendUsd: 0 })
    const sources = new Set<string>()
    for (const q of RANGES) {
      const kpis = (await stack.app.inject({ url: `/api/kpis?${q}`, headers: h })).json()
      expect(kpis.unpricedRequests, q).toBe(2)
      sources.add(kpis.source)
    }
    expect([...sources].sort()).toEqual(['usage_1d', 'usage_1h', 'usage_5m'])
    const csv = parseCsv(
      (await stack.app.inject({ url: '/api/export.csv?range=24h&by=model', headers: h })).body,
    )
    const col = csv[0]!.indexOf('unpriced_requests')
    expect(col).toBeGreaterThan(0)
    expect(csv.find((l) => l[1] === 'gpt-imaginary-9')![col]).toBe('1')
    expect(csv.find((l) => l[1] === 'gpt-4o-2024-08-06')![col]).toBe('0')
  })

  it('reasoning tokens reach the request log, KPIs, series, breakdown, monthly usage and CSV', async () => {
    // A request with reasoning of this test's own; the totals below are whatever the file has sent.
    const o3 = await openai.chat.completions
      .create({ model: 'o3', messages, reasoning_effort: 'high' })
      .withResponse()
    await waitForRow(o3.response.headers.get('x-request-id'))
    await stack.core.recorder.flush()
    const [raw] = await stack.core.warehouse.query<{ r: string }>(
      'SELECT toString(sum(reasoning_tokens)) AS r FROM requests',
    )
    const total = Number(raw!.r)
    expect(total).toBeGreaterThan(0)
    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const get = async (url: string) => (await stack.app.inject({ url, headers: h })).json()
    for (const range of RANGES) {
      expect((await get(`/api/kpis?${range}`)).reasoningTokens, range).toBe(total)
      const series = await get(`/api/series?${range}`)
      const summed = series.series[0].points.reduce(
        (n: number, p: { reasoningTokens: number }) => n + p.reasoningTokens,
        0,
      )
      expect(summed, `series ${range}`).toBe(total)
    }
    const bd = await get('/api/breakdown?range=24h&by=model')
    expect(bd.rows.find((r: { id: string }) => r.id === 'o3').reasoningTokens).toBeGreaterThan(0)
    const month = new Date().toISOString().slice(0, 7)
    const monthly = await get(`/api/usage?month=${month}`)
    expect(
      monthly.models.reduce((n: number, m: { reasoningTokens: number }) => n + m.reasoningTokens, 0),
    ).toBe(total)
    const log = await get('/api/requests?range=24h&models=o3')
    expect(log.rows[0].reasoningTokens).toBeGreaterThan(0)
    const csv = parseCsv(
      (await stack.app.inject({ url: '/api/export.csv?range=24h&by=model', headers: h })).body,
    )
    const col = csv[0]!.indexOf('reasoning_tokens')
    expect(csv.slice(1).reduce((n, l) => n + Number(l[col]), 0)).toBe(total)
  })
})

describe('facades override the catalogue', () => {
  it('a facade sets provider, upstream model and price of its name', async () => {
    await adminOk('PUT', '/api/admin/models/gpt-4.1', {
      provider: 'openai',
      upstreamModel: 'gpt-4o-mini',
      inputPerM: 7,
      outputPerM: 11,
    })
    const res = await openai.chat.completions.create({ model: 'gpt-4.1', messages }).withResponse()
    expect(lastReceived(main).body?.model).toBe('gpt-4o-mini')
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({ model: 'gpt-4.1', upstream_model: 'gpt-4o-mini' })
    expectCost(row, { input: 7, output: 11, cachedRead: 0, cacheWrite: 0 })
  })

  it('an alias facade without prices is priced from the catalogue by its upstream model', async () => {
    await adminOk('PUT', '/api/admin/models/team-fast', {
      provider: 'anthropic',
      upstreamModel: 'claude-haiku-4-5-20251001',
      priceFromCatalogue: true,
    })
    const res = await anthropic.messages
      .create({ model: 'team-fast', max_tokens: 32, messages })
      .withResponse()
    expect(lastReceived(main).body?.model).toBe('claude-haiku-4-5-20251001')
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({ model: 'team-fast', provider: 'anthropic' })
    expectCost(row, rates('anthropic', 'claude-haiku-4-5'))

    const noPrice = await admin('PUT', '/api/admin/models/x-noprice', {
      provider: 'openai',
      upstreamModel: 'x',
    })
    expect(noPrice.statusCode).toBe(400)
    expect(noPrice.json().error.message).toContain('priceFromCatalogue')
    const badProvider = await admin('PUT', '/api/admin/models/x-groq', {
      provider: 'groq',
      upstreamModel: 'llama',
      priceFromCatalogue: true,
    })
    expect(badProvider.statusCode).toBe(400)
    expect(badProvider.json().error.message).toContain('openai, anthropic, simulated, openrouter, azure')
  })
})

describe('allowedModels patterns', () => {
  it('allow what matches, refuse the rest with 403 naming only the key patterns', async () => {
    await limited.chat.completions.create({ model: 'gpt-4o-mini', messages })
    await limitedAnthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 16, messages })
    const denied = (await limited.chat.completions
      .create({ model: 'o3', messages })
      .catch((e) => e)) as APIError
    expect(denied.status).toBe(403)
    const body = denied.error as { code: string; message: string }
    expect(body.code).toBe('model_not_allowed')
    expect(body.message).toBe('This key may not use "o3"; it is limited to: claude-*, gpt-4o*.')
    // A facade the key may not use is neither named in the refusal nor listed.
    expect(body.message).not.toContain('team-fast')
    const listed = (await limited.models.list()).data.map((m) => m.id)
    expect(listed).not.toContain('team-fast')
    expect(listed).not.toContain('gpt-4.1')
    const row = await waitForRow(denied.headers?.get('x-request-id'))
    expect(row).toMatchObject({
      model: 'o3',
      provider: 'openai',
      status_code: 403,
      error_class: 'model_not_allowed',
    })
    expect(Number(row.cost)).toBe(0)
  })
})

describe('named OpenAI-compatible upstreams', () => {
  it('<upstream>/<model> goes to that upstream without the prefix, with its credential', async () => {
    const before = main.received.length
    const res = await openai.chat.completions
      .create({ model: 'openrouter/openai/gpt-4o', messages })
      .withResponse()
    const sent = lastReceived(named)
    expect(sent.path).toBe('/v1/chat/completions')
    expect(sent.query).toBe('')
    expect(sent.body?.model).toBe('openai/gpt-4o')
    expect(sent.headers.authorization).toBe(`Bearer ${OPENROUTER_KEY}`)
    expect(main.received.length).toBe(before)
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({
      provider: 'openrouter',
      model: 'openrouter/openai/gpt-4o',
      upstream_model: 'openai/gpt-4o',
    })
    expectCost(row, rates('openrouter', 'openai/gpt-4o'))
  })

  it('Azure OpenAI: api-version query parameter and api-key header, no bearer token', async () => {
    const res = await openai.chat.completions.create({ model: 'azure/gpt-4o', messages }).withResponse()
    const sent = lastReceived(named)
    expect(sent.path).toBe('/v1/chat/completions')
    expect(new URLSearchParams(sent.query).get('api-version')).toBe(AZURE_VERSION)
    expect(sent.headers['api-key']).toBe(AZURE_KEY)
    expect(sent.headers.authorization).toBeUndefined()
    expect(sent.body?.model).toBe('gpt-4o')
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row).toMatchObject({ provider: 'azure', upstream_model: 'gpt-4o' })
    // The catalogue's azure provider falls back to OpenAI's entries for OpenAI models.
    expect(findProvider({ providerId: 'azure' })!.fallback_model_providers).toContain('openai')
    expectCost(row, rates('openai', 'gpt-4o'))
  })

  it('a facade can name a named upstream as its provider', async () => {
    await adminOk('PUT', '/api/admin/models/llama-big', {
      provider: 'openrouter',
      upstreamModel: 'meta-llama/llama-3.3-70b-instruct',
      inputPerM: 0.5,
      outputPerM: 0.75,
    })
    const res = await openai.chat.completions.create({ model: 'llama-big', messages }).withResponse()
    expect(lastReceived(named).body?.model).toBe('meta-llama/llama-3.3-70b-instruct')
    const row = await waitForRow(res.response.headers.get('x-request-id'))
    expect(row.provider).toBe('openrouter')
    expectCost(row, { input: 0.5, output: 0.75, cachedRead: 0, cacheWrite: 0 })
  })
})

describe('budgets see the resolved price', () => {
  it('reserves a passthrough model at its catalogue price', async () => {
    const { key, plaintext } = await adminOk('POST', '/api/admin/keys', {
      userId: 'user-m',
      name: 'budgeted',
    })
    const gpt4o = rates('openai', 'gpt-4o')
    // Room for 100 output tokens of gpt-4o at its catalogue rate, not for 10,000.
    const capUsd = (200 * gpt4o.output) / 1e6
    await adminOk('POST', '/api/admin/budgets', {
      budgetId: 'models-budget',
      scope: 'key',
      scopeId: key.keyId,
      period: 'day',
      capUsd,
    })
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: plaintext, maxRetries: 0 })
    const refused = (await client.chat.completions
      .create({ model: 'gpt-4o', messages, max_tokens: 10_000 })
      .catch((e) => e)) as APIError
    expect(refused.status).toBe(429)
    expect((refused.error as { code: string }).code).toBe('budget_exceeded')
    const ok = await client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 5 })
    expect(ok.choices).toHaveLength(1)
  })
})
