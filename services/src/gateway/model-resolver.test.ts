import { findProvider } from '@pydantic/genai-prices'
import { describe, expect, it } from 'vitest'
import type { ApiKey, ModelFacade } from '../core/identity/entities.ts'
import { modelAllowed } from '../core/identity/model-patterns.ts'
import { createPriceCatalogue } from '../core/pricing/price-catalogue.ts'
import { createModelResolver } from './model-resolver.ts'

const catalogue = createPriceCatalogue()

function key(allowedModels: string[] = []): ApiKey {
  return {
    keyId: 'k',
    keyHash: '',
    keyPrefix: '',
    name: 'k',
    userId: 'u',
    teamId: 't',
    allowedModels,
    createdAt: new Date(0),
    expiresAt: null,
    revokedAt: null,
    kind: 'key',
  }
}

const facade = (model: string, over: Partial<ModelFacade> = {}): ModelFacade => ({
  model,
  provider: 'openai',
  upstreamModel: model,
  inputPerM: 1,
  outputPerM: 2,
  cachedReadPerM: 0,
  cacheWritePerM: 0,
  ...over,
})

function resolver(facades: ModelFacade[], passthrough = true, simulatorRunning = true) {
  const byName = new Map(facades.map((f) => [f.model, f]))
  return createModelResolver({
    facades: { model: (n) => byName.get(n), models: () => [...byName.values()] },
    catalogue,
    passthrough,
    namedUpstreams: [{ name: 'openrouter', catalogue: 'openrouter' }],
    simulatorRunning: () => simulatorRunning,
  })
}

describe('modelAllowed', () => {
  it('matches exact names and * patterns on the whole name', () => {
    expect(modelAllowed([], 'anything')).toBe(true)
    expect(modelAllowed(['claude-*'], 'claude-sonnet-4-5-20250929')).toBe(true)
    expect(modelAllowed(['gpt-4o*'], 'gpt-4o')).toBe(true)
    expect(modelAllowed(['gpt-4o*'], 'gpt-4o-mini')).toBe(true)
    expect(modelAllowed(['gpt-4o*'], 'gpt-4.1')).toBe(false)
    expect(modelAllowed(['claude-*'], 'my-claude-x')).toBe(false)
    // Pattern characters other than * are literal.
    expect(modelAllowed(['gpt-4.1'], 'gpt-401')).toBe(false)
    expect(modelAllowed(['gpt-4o'], 'gpt-4o-mini')).toBe(false)
  })
})

describe('createModelResolver', () => {
  it('routes names without a facade by prefix, catalogue and last the endpoint', () => {
    const r = resolver([])
    const route = (name: string, kind: 'chat' | 'messages' | 'embeddings' = 'chat') =>
      r.resolve(name, kind, key()).model?.provider
    expect(route('gpt-4o-2024-08-06')).toBe('openai')
    expect(route('o3')).toBe('openai')
    expect(route('o4-mini')).toBe('openai')
    expect(route('chatgpt-4o-latest')).toBe('openai')
    expect(route('codex-mini-latest')).toBe('openai')
    expect(route('text-embedding-3-small', 'embeddings')).toBe('openai')
    expect(route('claude-haiku-4-5', 'messages')).toBe('anthropic')
    expect(route('whisper-1')).toBe('openai')
    expect(route('my-local-model', 'messages')).toBe('anthropic')
    expect(route('my-local-model', 'chat')).toBe('openai')
  })

  it('flags a name the catalogue does not know as price unknown, at cost 0', () => {
    const m = resolver([]).resolve('gpt-imaginary-9', 'chat', key()).model!
    expect(m.priceUnknown).toBe(true)
    expect(m.cost({ input: 1000, output: 1000, cachedRead: 0, cacheWrite: 0 })).toBe(0)
    expect(resolver([]).resolve('gpt-4o', 'chat', key()).model!.priceUnknown).toBe(false)
  })

  it('gives budgets the highest tier of a tiered catalogue price', () => {
    const m = resolver([]).resolve('claude-sonnet-4-5', 'messages', key()).model!
    const data = findProvider({ providerId: 'anthropic' })!.models.find((x) => x.id === 'claude-sonnet-4-5')!
    const prices = data.prices as Record<string, { base: number; tiers: { price: number }[] }>
    const top = (p: { base: number; tiers: { price: number }[] }) =>
      Math.max(p.base, ...p.tiers.map((t) => t.price))
    expect(m.prices.inputPerM).toBe(top(prices.input_mtok!))
    expect(m.prices.outputPerM).toBe(top(prices.output_mtok!))
    expect(m.prices.inputPerM).toBeGreaterThan(prices.input_mtok!.base)
  })

  it('resolves bare family names to the newest model of the family, unless a facade has the name', () => {
    const newest = (family: string) => {
      let best = { id: '', v: -1 }
      for (const m of findProvider({ providerId: 'anthropic' })!.models) {
        const v = new RegExp(`^Claude ${family} (\\d+(?:\\.\\d+)?)$`, 'i').exec(m.name ?? '')
        if (v && !m.deprecated && Number(v[1]) > best.v) best = { id: m.id, v: Number(v[1]) }
      }
      return best.id
    }
    for (const family of ['sonnet', 'opus', 'haiku']) {
      const m = resolver([]).resolve(family, 'messages', key()).model!
      expect(m, family).toMatchObject({ provider: 'anthropic', upstreamModel: newest(family), via: 'alias' })
      expect(m.priceUnknown, family).toBe(false)
    }
    const own = resolver([facade('sonnet', { provider: 'anthropic', upstreamModel: 'claude-sonnet-4-5' })])
    expect(own.resolve('sonnet', 'messages', key()).model).toMatchObject({
      upstreamModel: 'claude-sonnet-4-5',
      via: 'facade',
    })
  })

  it('sends <upstream>/<model> to that named upstream without the prefix', () => {
    const m = resolver([]).resolve('openrouter/openai/gpt-4o', 'chat', key()).model!
    expect(m).toMatchObject({ provider: 'openrouter', upstreamModel: 'openai/gpt-4o', priceUnknown: false })
    // Not a configured upstream: an ordinary name.
    expect(resolver([]).resolve('groq/llama', 'chat', key()).model).toMatchObject({
      provider: 'openai',
      upstreamModel: 'groq/llama',
    })
  })

  it('lets a facade override price, provider and upstream model; refuses an upstream not configured', () => {
    const r = resolver([
      facade('gpt-4o', { upstreamModel: 'gpt-4o-mini', inputPerM: 7, outputPerM: 9 }),
      facade('fast', { provider: 'anthropic', upstreamModel: 'claude-haiku-4-5', priceFromCatalogue: true }),
      facade('gone', { provider: 'groq' }),
    ])
    const over = r.resolve('gpt-4o', 'chat', key()).model!
    expect(over).toMatchObject({ upstreamModel: 'gpt-4o-mini', prices: { inputPerM: 7, outputPerM: 9 } })
    expect(over.cost({ input: 1_000_000, output: 1_000_000, cachedRead: 0, cacheWrite: 0 })).toBe(16e9)
    const alias = r.resolve('fast', 'messages', key()).model!
    expect(alias.priceUnknown).toBe(false)
    expect(alias.prices.inputPerM).toBe(
      (resolver([]).resolve('claude-haiku-4-5', 'messages', key()).model as { prices: { inputPerM: number } })
        .prices.inputPerM,
    )
    expect(r.resolve('gone', 'chat', key()).error).toMatchObject({
      status: 503,
      code: 'upstream_not_configured',
    })
  })

  it('refuses a simulated facade with a 503 naming DEMO=true while the simulator is not running', () => {
    const sim = facade('sim-chat', { provider: 'simulated', upstreamModel: 'sim-small' })
    const off = resolver([sim], true, false).resolve('sim-chat', 'chat', key())
    expect(off.error).toMatchObject({ status: 503, code: 'upstream_not_configured' })
    expect(off.error!.message).toContain('runs only with DEMO=true')
    expect(resolver([sim], true, true).resolve('sim-chat', 'chat', key()).model).toMatchObject({
      provider: 'simulated',
      upstreamModel: 'sim-small',
    })
  })

  it('passthrough off: unknown_model names only the facades the key may use', () => {
    const r = resolver([facade('gpt-team'), facade('gpt-other'), facade('claude-team')], false)
    const { error } = r.resolve('gpt-nope', 'chat', key(['gpt-*']))
    expect(error).toMatchObject({ status: 400, code: 'unknown_model' })
    expect(error!.message).toContain('gpt-other, gpt-team')
    expect(error!.message).not.toContain('claude-team')
    expect(r.resolve('gpt-team', 'chat', key()).model?.via).toBe('facade')
  })

  it('model_not_allowed names only the patterns of the key, and keeps what the name resolved to', () => {
    const r = resolver([facade('secret-model')])
    const res = r.resolve('o3', 'chat', key(['claude-*', 'gpt-4o*']))
    expect(res.error).toMatchObject({ status: 403, code: 'model_not_allowed' })
    expect(res.error!.message).toBe('This key may not use "o3"; it is limited to: claude-*, gpt-4o*.')
    expect(res.model?.provider).toBe('openai')
    expect(r.resolve('gpt-4o-mini', 'chat', key(['claude-*', 'gpt-4o*'])).error).toBeUndefined()
  })
})
