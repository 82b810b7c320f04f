import {
  type Provider as CatalogueProvider,
  calcPrice,
  findProvider,
  type ModelPrice,
} from '@pydantic/genai-prices'
import type { Prices, TokenCounts } from './pricing.ts'

/**
 * Prices of models no admin has priced, from the catalogue embedded in
 * `@pydantic/genai-prices`. Only the data shipped inside the package is used:
 * the package fetches newer data only when `updatePrices` is called, which we
 * never do, so pricing needs no network and is the same on every instance of
 * one release (upgrade the package to get new models).
 *
 * Why this package and not `tokenlens` (both compared on the npm registry,
 * November 2026):
 * - genai-prices 0.1.8 (September 2026) knows the current OpenAI and Anthropic
 *   models (gpt-5.5, o3/o4, claude-opus-5-5, claude-sonnet-5, claude-haiku-4-5...)
 *   and matches dated ids and aliases by rule (`gpt-4o-2024-08-06` -> gpt-4o,
 *   `claude-sonnet-4-5-20250929` -> claude-sonnet-4-5, `*-latest`), with cached
 *   reads, cache writes (5 minute and 1 hour), long-context tiers, prices that
 *   change on a date, and reasoning tokens as a part of output tokens.
 * - tokenlens 1.3.1 (March 2026) lists exact ids only (no alias or date rules),
 *   stops at claude-opus-4-1 and gpt-5, and its own docs call its costs rough;
 *   its fresher data comes from fetching models.dev at run time.
 */

/** Catalogue provider ids whose models we route by name (Anthropic and OpenAI). */
const ROUTABLE = ['openai', 'anthropic'] as const

export interface CataloguePrice {
  /** The catalogue's id of the model the name matched (gpt-4o for gpt-4o-2024-08-06). */
  catalogueId: string
  /**
   * Per-million prices, the highest tier of each where the catalogue has
   * tiers (long context): an upper bound, for budget reservations.
   */
  worstCase: Prices
  /** Today's base prices (the first tier), as people read a price list; `tiered` when tiers raise them. */
  base: Prices
  tiered: boolean
  /** Cost of one request in integer nano-USD, tiers and date-bound prices applied. */
  cost(tokens: TokenCounts): number
}

/** A model the catalogue prices, as the "Available models" page lists it. */
export interface CatalogueModel {
  provider: 'openai' | 'anthropic'
  /** The catalogue's id: a name clients can send (dated ids and aliases match it too). */
  id: string
  /** Base per-million prices in force today (the first tier where the catalogue has tiers). */
  prices: Prices
  /** Long-context tiers raise some prices past a number of tokens. */
  tiered: boolean
}

export interface PriceCatalogue {
  /** The price of `model` at catalogue provider `provider` (an upstream name), if the catalogue knows it. */
  lookup(provider: string, model: string): CataloguePrice | undefined
  /** openai or anthropic when the catalogue knows the model there. */
  providerOf(model: string): 'openai' | 'anthropic' | undefined
  /** The newest Anthropic model of a family (`sonnet`, `opus`, `haiku`), for bare aliases. */
  newestOfFamily(family: string): string | undefined
  /** The OpenAI and Anthropic models it prices (not deprecated), what passthrough can route by name. */
  list(): CatalogueModel[]
}

const MAX_CACHED = 4096
/** Cached look-ups expire so that a price that starts on a date is picked up without a restart. */
const CACHE_MS = 3_600_000

function base(p: ModelPrice[string]): number | undefined {
  if (p === undefined) return undefined
  return typeof p === 'number' ? p : p.base
}

/** Today's base prices; a unit without its own price is billed at its parent's (the package's rule). */
function baseOf(mp: ModelPrice): { prices: Prices; tiered: boolean } {
  const input = base(mp.input_mtok) ?? 0
  return {
    prices: {
      inputPerM: input,
      outputPerM: base(mp.output_mtok) ?? 0,
      cachedReadPerM: base(mp.cache_read_mtok) ?? input,
      cacheWritePerM: base(mp.cache_write_mtok) ?? input,
    },
    tiered: Object.values(mp).some((v) => v !== undefined && typeof v !== 'number'),
  }
}

function highest(p: ModelPrice[string]): number | undefined {
  if (p === undefined) return undefined
  if (typeof p === 'number') return p
  return Math.max(p.base, ...p.tiers.map((t) => t.price))
}

/** Upper-bound flat prices; a unit without its own price is billed at its parent's (the package's rule). */
function worstCaseOf(mp: ModelPrice): Prices {
  const input = highest(mp.input_mtok) ?? 0
  const output = Math.max(highest(mp.output_mtok) ?? 0, highest(mp.output_reasoning_mtok) ?? 0)
  return {
    inputPerM: input,
    outputPerM: output,
    cachedReadPerM: highest(mp.cache_read_mtok) ?? input,
    cacheWritePerM: Math.max(highest(mp.cache_write_mtok) ?? input, highest(mp.cache_write_1h_mtok) ?? 0),
  }
}

/**
 * The package's usage shape: `input_tokens` is the whole prompt, of which
 * cache reads and writes are parts; `output_tokens` is all output, of which
 * reasoning is a part. Both providers bill reasoning (thinking) tokens as
 * output and already count them in output_tokens / completion_tokens, so
 * reasoning is passed as a part, never added: a model with its own reasoning
 * rate bills that part at it, every other model at the output rate, and
 * nothing is counted twice.
 */
function usageOf(t: TokenCounts): Record<string, number> {
  return {
    input_tokens: t.input + t.cachedRead + t.cacheWrite,
    cache_read_tokens: t.cachedRead,
    cache_write_tokens: t.cacheWrite,
    output_tokens: t.output,
    output_reasoning_tokens: Math.min(t.reasoning ?? 0, t.output),
  }
}

export function createPriceCatalogue(): PriceCatalogue {
  const cache = new Map<string, { at: number; price: CataloguePrice | undefined }>()

  function build(provider: CatalogueProvider, model: string): CataloguePrice | undefined {
    const found = calcPrice({}, model, { provider })
    if (!found) return undefined
    // Later cost calls scan this one model, not the provider's hundreds.
    const single: CatalogueProvider = { ...provider, models: [found.model] }
    const { prices, tiered } = baseOf(found.model_price)
    return {
      catalogueId: found.model.id,
      worstCase: worstCaseOf(found.model_price),
      base: prices,
      tiered,
      cost(tokens) {
        const r = calcPrice(usageOf(tokens), model, { provider: single })
        return r ? Math.round(r.total_price * 1e9) : 0
      },
    }
  }

  function lookup(provider: string, model: string): CataloguePrice | undefined {
    const key = `${provider}\u0000${model}`
    const hit = cache.get(key)
    const now = Date.now()
    if (hit && now - hit.at < CACHE_MS) return hit.price
    const p = findProvider({ providerId: provider })
    // findProvider falls back to a fuzzy match on the id; only an exact id counts here.
    const price = p && p.id === provider ? build(p, model) : undefined
    if (cache.size >= MAX_CACHED) cache.clear()
    cache.set(key, { at: now, price })
    return price
  }

  const families = new Map<string, { id: string; version: number }>()
  const anthropic = findProvider({ providerId: 'anthropic' })
  for (const m of anthropic?.models ?? []) {
    const match = /^Claude (Sonnet|Opus|Haiku) (\d+(?:\.\d+)?)$/i.exec(m.name ?? '')
    if (!match || m.deprecated) continue
    const family = match[1]!.toLowerCase()
    const version = Number(match[2])
    const best = families.get(family)
    if (!best || version > best.version) families.set(family, { id: m.id, version })
  }

  let listed: { at: number; models: CatalogueModel[] } | undefined
  function list(): CatalogueModel[] {
    const now = Date.now()
    if (listed && now - listed.at < CACHE_MS) return listed.models
    const models: CatalogueModel[] = []
    for (const id of ROUTABLE) {
      const provider = findProvider({ providerId: id })
      for (const m of provider?.models ?? []) {
        // Ids ending in "-" are match prefixes (fine-tune families), not names a client sends.
        if (m.deprecated || m.id.endsWith('-')) continue
        // The price in force now (some change on a date), as calcPrice picks it.
        const found = provider && calcPrice({}, m.id, { provider: { ...provider, models: [m] } })
        if (!found) continue
        models.push({ provider: id, id: m.id, ...baseOf(found.model_price) })
      }
    }
    listed = { at: now, models }
    return models
  }

  return {
    lookup,
    list,
    providerOf(model) {
      return ROUTABLE.find((p) => lookup(p, model) !== undefined)
    },
    newestOfFamily: (family) => families.get(family.toLowerCase())?.id,
  }
}
