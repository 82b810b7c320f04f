import type { AvailableModels } from '@tokenmeter/contract'
import type { NamedUpstream } from '../core/config/env.ts'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { ApiKey, ModelFacade } from '../core/identity/entities.ts'
import { modelAllowed } from '../core/identity/model-patterns.ts'
import type { PriceCatalogue } from '../core/pricing/price-catalogue.ts'

type Model = AvailableModels['models'][number]

export interface AvailableModelsDeps {
  store: AdminStore
  catalogue: PriceCatalogue
  /** MODEL_PASSTHROUGH: names without a facade are forwarded, priced from the catalogue. */
  passthrough: boolean
  namedUpstreams: Pick<NamedUpstream, 'name' | 'catalogue'>[]
}

/** A key that authenticates now: not revoked, not expired, a virtual key (not a sign-in token). */
export function isLive(k: ApiKey, now = new Date()): boolean {
  return k.kind === 'key' && !(k.revokedAt && k.revokedAt <= now) && !(k.expiresAt && k.expiresAt <= now)
}

/**
 * What the gateway would serve the caller's keys, as a price list: every
 * facade (an admin's name, provider and price) whose upstream is configured,
 * and, with passthrough on, every model the price catalogue routes by name
 * (OpenAI's and Anthropic's), each with the caller's keys that may call it.
 * The same rules as the gateway's model resolver (gateway/model-resolver.ts):
 * a facade wins over a catalogue model of the same name, a key's
 * allowedModels (names and `*` patterns) limit it, a facade priced from the
 * catalogue shows the catalogue's price of its upstream model. A caller
 * without live keys sees everything the gateway serves, so they know what to
 * ask an admin for; with keys, only what at least one of them may call.
 */
export function availableModels(deps: AvailableModelsDeps, userId: string): AvailableModels {
  const keys = userId
    ? deps.store
        .keys()
        .filter((k) => k.userId === userId && isLive(k))
        .sort((a, b) => a.name.localeCompare(b.name))
    : []
  const named = new Map(deps.namedUpstreams.map((u) => [u.name, u.catalogue]))
  const configured = (provider: string) =>
    provider === 'openai' || provider === 'anthropic' || provider === 'simulated' || named.has(provider)

  function facadeEntry(f: ModelFacade): Omit<Model, 'keyIds'> {
    const base = {
      model: f.model,
      provider: f.provider,
      upstreamModel: f.upstreamModel,
      source: 'facade' as const,
    }
    if (!f.priceFromCatalogue) {
      const { inputPerM, outputPerM, cachedReadPerM, cacheWritePerM } = f
      return { ...base, prices: { inputPerM, outputPerM, cachedReadPerM, cacheWritePerM }, tiered: false }
    }
    const catalogue =
      f.provider === 'openai' || f.provider === 'anthropic' ? f.provider : named.get(f.provider)
    const price = catalogue ? deps.catalogue.lookup(catalogue, f.upstreamModel) : undefined
    return { ...base, prices: price?.base ?? null, tiered: price?.tiered ?? false }
  }

  const entries: Omit<Model, 'keyIds'>[] = deps.store
    .models()
    .filter((f) => configured(f.provider))
    .map(facadeEntry)
  if (deps.passthrough) {
    const facades = new Set(entries.map((e) => e.model))
    for (const m of deps.catalogue.list()) {
      if (facades.has(m.id)) continue
      entries.push({
        model: m.id,
        provider: m.provider,
        upstreamModel: m.id,
        source: 'catalogue',
        prices: m.prices,
        tiered: m.tiered,
      })
    }
  }
  const models = entries
    .map((e) => ({
      ...e,
      keyIds: keys.filter((k) => modelAllowed(k.allowedModels, e.model)).map((k) => k.keyId),
    }))
    .filter((e) => keys.length === 0 || e.keyIds.length > 0)
    .sort((a, b) => (a.source === b.source ? a.model.localeCompare(b.model) : a.source === 'facade' ? -1 : 1))
  return {
    passthrough: deps.passthrough,
    namedUpstreams: deps.passthrough ? [...named.keys()].sort() : [],
    keys: keys.map((k) => ({
      keyId: k.keyId,
      name: k.name,
      prefix: k.keyPrefix,
      allowedModels: k.allowedModels,
    })),
    models,
  }
}
