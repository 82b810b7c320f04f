import { HttpError } from '../core/errors/http-error.ts'
import type { ApiKey, ModelFacade } from '../core/identity/entities.ts'
import { modelAllowed } from '../core/identity/model-patterns.ts'
import type { PriceCatalogue } from '../core/pricing/price-catalogue.ts'
import { costNanos, type Prices, type TokenCounts } from '../core/pricing/pricing.ts'
import type { ApiKind } from './usage-capture.ts'

/** What a requested model name turned into: where it goes, as what, and at which price. */
export interface ResolvedModel {
  /** The name the client sent (the row's `model`, what allowedModels and budgets see). */
  model: string
  /** Upstream name: openai, anthropic, simulated or a named upstream (the row's `provider`). */
  provider: string
  /** The model name sent upstream (the row's `upstream_model`). */
  upstreamModel: string
  /** facade: an admin's facade; alias: a bare family name; passthrough: the name as sent. */
  via: 'facade' | 'alias' | 'passthrough'
  /** No facade price and unknown to the catalogue: recorded at cost 0 and flagged price_unknown. */
  priceUnknown: boolean
  /**
   * USD per million tokens. From the catalogue, the highest tier where it
   * has tiers, so `prices` is an upper bound that budget reservations can use.
   */
  prices: Prices
  /** Cost of the tokens the upstream reported, in integer nano-USD. */
  cost(tokens: TokenCounts): number
}

/**
 * The resolved model, or the refusal to send (400 unknown_model, 403
 * model_not_allowed, 503 upstream_not_configured: a named upstream not
 * configured, or the simulated provider without DEMO=true). A refused name that did
 * resolve keeps its model, so the refusal's row still names provider and upstream.
 */
export type Resolution =
  | { model: ResolvedModel; error?: undefined }
  | { model?: ResolvedModel; error: HttpError }

export interface ModelResolver {
  resolve(name: string, kind: ApiKind, key: ApiKey): Resolution
}

export interface ModelResolverDeps {
  /** The admin store's facades. */
  facades: { model(name: string): ModelFacade | undefined; models(): ModelFacade[] }
  catalogue: PriceCatalogue
  /** MODEL_PASSTHROUGH: models without a facade are forwarded. */
  passthrough: boolean
  /** Configured named upstreams and the catalogue provider that prices each. */
  namedUpstreams: { name: string; catalogue: string }[]
  /** Whether the built-in simulated provider runs here (DEMO=true; bootstrap.ts starts it). */
  simulatorRunning: () => boolean
}

const ZERO: Prices = { inputPerM: 0, outputPerM: 0, cachedReadPerM: 0, cacheWritePerM: 0 }

/** OpenAI's model families by name; `claude-` is Anthropic's. */
const OPENAI_NAME = /^(gpt-|o[134](-|$)|chatgpt-|text-embedding-|codex-|omni-moderation-|davinci-|babbage-)/

/** Bare names that Claude Code and people use for "the current one" of a family. */
const FAMILIES = new Set(['sonnet', 'opus', 'haiku'])

/**
 * Resolution order: the key's allowedModels, then a facade (an admin's
 * override of provider, upstream model and price), then, with passthrough on,
 * the name itself: `<upstream>/<model>` for a named upstream, a bare family
 * name (`sonnet`) as the catalogue's newest model of that family, else the
 * provider that serves the name (OpenAI's and Anthropic's prefixes, the
 * catalogue, and last the API the client called), priced from the catalogue.
 */
export function createModelResolver(deps: ModelResolverDeps): ModelResolver {
  const named = new Map(deps.namedUpstreams.map((u) => [u.name, u.catalogue]))
  const catalogueOf = (provider: string): string | undefined =>
    provider === 'openai' || provider === 'anthropic' ? provider : named.get(provider)

  function priced(base: Pick<ResolvedModel, 'model' | 'provider' | 'upstreamModel' | 'via'>): ResolvedModel {
    const cat = catalogueOf(base.provider)
    const price = cat ? deps.catalogue.lookup(cat, base.upstreamModel) : undefined
    if (!price) return { ...base, priceUnknown: true, prices: ZERO, cost: () => 0 }
    return { ...base, priceUnknown: false, prices: price.worstCase, cost: (t) => price.cost(t) }
  }

  function fromFacade(f: ModelFacade): ResolvedModel | HttpError {
    if (f.provider === 'simulated' && !deps.simulatorRunning()) {
      return new HttpError(
        503,
        'upstream_not_configured',
        `"${f.model}" is served by the built-in simulated provider, which runs only with DEMO=true. ` +
          'Ask an admin to point the facade at a real provider, or start the gateway with DEMO=true.',
      )
    }
    if (f.provider !== 'openai' && f.provider !== 'anthropic' && f.provider !== 'simulated') {
      if (!named.has(f.provider)) {
        return new HttpError(
          503,
          'upstream_not_configured',
          `"${f.model}" is served by upstream "${f.provider}", which this gateway does not configure ` +
            '(UPSTREAMS). Ask an admin to configure it or to change the facade.',
        )
      }
    }
    const base = {
      model: f.model,
      provider: f.provider,
      upstreamModel: f.upstreamModel,
      via: 'facade' as const,
    }
    if (f.priceFromCatalogue) return priced(base)
    return { ...base, priceUnknown: false, prices: f, cost: (t) => costNanos(t, f) }
  }

  function providerFor(name: string, kind: ApiKind): string {
    if (name.startsWith('claude-')) return 'anthropic'
    if (OPENAI_NAME.test(name)) return 'openai'
    return deps.catalogue.providerOf(name) ?? (kind === 'messages' ? 'anthropic' : 'openai')
  }

  function lookup(name: string, kind: ApiKind, allowed: readonly string[]): ResolvedModel | HttpError {
    const facade = deps.facades.model(name)
    if (facade) return fromFacade(facade)
    if (!deps.passthrough) {
      const available = deps.facades
        .models()
        .map((m) => m.model)
        .filter((m) => modelAllowed(allowed, m))
        .sort()
      return new HttpError(
        400,
        'unknown_model',
        `Unknown model "${name}". Available: ${available.join(', ') || 'none yet'}. ` +
          `An admin adds a model with PUT /api/admin/models/${encodeURIComponent(name)} ` +
          '{ "provider", "upstreamModel", "inputPerM", "outputPerM" }.',
        { available },
      )
    }
    const slash = name.indexOf('/')
    if (slash > 0 && named.has(name.slice(0, slash))) {
      return priced({
        model: name,
        provider: name.slice(0, slash),
        upstreamModel: name.slice(slash + 1),
        via: 'passthrough',
      })
    }
    const newest = FAMILIES.has(name) ? deps.catalogue.newestOfFamily(name) : undefined
    if (newest) return priced({ model: name, provider: 'anthropic', upstreamModel: newest, via: 'alias' })
    return priced({
      model: name,
      provider: providerFor(name, kind),
      upstreamModel: name,
      via: 'passthrough',
    })
  }

  return {
    resolve(name, kind, key) {
      const allowed = key.allowedModels
      const found = lookup(name, kind, allowed)
      const model = found instanceof HttpError ? undefined : found
      if (!modelAllowed(allowed, name)) {
        const error = new HttpError(
          403,
          'model_not_allowed',
          `This key may not use "${name}"; it is limited to: ${allowed.join(', ')}.`,
          { allowed },
        )
        return { model, error }
      }
      return model ? { model } : { error: found as HttpError }
    },
  }
}
