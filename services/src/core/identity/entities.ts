import { z } from 'zod'

// Shapes of admin state, shared by the store, the admin API and the web.
export const roleSchema = z.enum(['admin', 'lead', 'member'])
export type Role = z.infer<typeof roleSchema>

/**
 * Where a model is served: the built-in `openai`, `anthropic` and `simulated`
 * upstreams, or a named OpenAI-compatible upstream from UPSTREAMS (env.ts).
 * Open, so that a facade can name any configured upstream; the admin API
 * checks that the name is configured.
 */
export const BUILTIN_PROVIDERS = ['openai', 'anthropic', 'simulated'] as const
export const providerSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'provider names are lower-case letters, digits and -, up to 32')
export type Provider = z.infer<typeof providerSchema>

const id = z.string().min(1).max(64)

export const teamSchema = z.object({ teamId: id, name: z.string().min(1).max(200) })
export type Team = z.infer<typeof teamSchema>

export const userSchema = z.object({
  userId: id,
  email: z.string().max(320),
  name: z.string().min(1).max(200),
  teamId: z.string().max(64),
  role: roleSchema,
})
export type User = z.infer<typeof userSchema>

export interface ApiKey {
  keyId: string
  keyHash: string
  keyPrefix: string
  name: string
  userId: string
  teamId: string
  allowedModels: string[]
  createdAt: Date
  expiresAt: Date | null
  revokedAt: Date | null
  kind: 'key' | 'signin'
}

/**
 * Bounds that keep every amount inside the Decimal(18, 9) columns and far
 * above any real price or budget; beyond them the admin API answers 400.
 */
export const MAX_PRICE_PER_M_USD = 100_000
export const MAX_BUDGET_CAP_USD = 100_000_000
const price = z
  .number()
  .nonnegative()
  .max(MAX_PRICE_PER_M_USD, `at most ${MAX_PRICE_PER_M_USD} USD per million tokens`)

/**
 * Prices in USD per million tokens. A facade overrides everything about a
 * name: provider, upstream model and price. With `priceFromCatalogue` it only
 * aliases (`sonnet` -> a current Sonnet id) and its upstream model is priced
 * from the catalogue like a model without a facade.
 */
export const modelFacadeSchema = z.object({
  model: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:/-]+$/, 'model names use letters, digits and . _ : / -'),
  provider: providerSchema,
  upstreamModel: z.string().min(1).max(128),
  inputPerM: price,
  outputPerM: price,
  cachedReadPerM: price.default(0),
  cacheWritePerM: price.default(0),
  priceFromCatalogue: z.boolean().optional(),
})
export type ModelFacade = z.infer<typeof modelFacadeSchema>

export const budgetSchema = z.object({
  budgetId: id,
  scope: z.enum(['key', 'user', 'team']),
  scopeId: id,
  period: z.enum(['day', 'week', 'month']),
  capUsd: z.number().positive().max(MAX_BUDGET_CAP_USD, `at most ${MAX_BUDGET_CAP_USD} USD`),
  timezone: z.string().default('UTC'),
  thresholds: z.array(z.number().int().min(1).max(100)).default([50, 80, 100]),
})
export type Budget = z.infer<typeof budgetSchema>

/**
 * A web session: the cookie names only `sessionId`. It ends on sign-out, when
 * an admin ends it, or when what it came from is revoked, rotated or changed.
 */
export interface Session {
  sessionId: string
  /** Empty for a session made with ADMIN_TOKEN. */
  userId: string
  teamId: string
  role: Role
  source: 'admin-token' | 'key' | 'signin'
  /** The key or sign-in token id; for 'admin-token' a fingerprint of the token (never the token). */
  sourceId: string
  createdAt: Date
  expiresAt: Date
  endedAt: Date | null
  endReason: string
}
