import { z } from 'zod'
import { keyStatus } from './member-api.schema.ts'
import { isTimeZone } from './time-zone-name.ts'

/**
 * The admin API (/api/admin/*): the shapes of admin state (teams, users,
 * model facades, budgets), the bodies the routes accept and the answers they
 * give. The store keeps these shapes, the routes declare these schemas (so
 * they validate, check answers and document /api/openapi.json), and the
 * dashboard's admin pages take their types from here.
 */

export const roleSchema = z.enum(['admin', 'lead', 'member'])
export type Role = z.infer<typeof roleSchema>

/**
 * Where a model is served: the built-in `openai`, `anthropic` and `simulated`
 * upstreams, or a named OpenAI-compatible upstream from UPSTREAMS. Open, so
 * that a facade can name any configured upstream; the admin route checks that
 * the name is configured (modelFacadeBody).
 */
export const BUILTIN_PROVIDERS = ['openai', 'anthropic', 'simulated'] as const
export const providerSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'provider names are lower-case letters, digits and -, up to 32')
export type Provider = z.infer<typeof providerSchema>

/** An id as stored (created by us or by an earlier release). */
const storedId = z.string().min(1).max(64)
/** An id a caller chooses for something new: a safe alphabet, so it reads well in URLs and logs. */
export const newIdSchema = storedId.regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : -')
/** An id in a path that is only looked up: anything unknown is a 404 naming the list to look in. */
const lookupId = (what: string) => z.string().min(1).max(256).describe(what)
const iso = z.string().describe('ISO 8601 UTC')

export const teamSchema = z.object({ teamId: storedId, name: z.string().min(1).max(200) })
export type Team = z.infer<typeof teamSchema>

export const userSchema = z.object({
  userId: storedId,
  email: z.string().max(320),
  name: z.string().min(1).max(200),
  teamId: z.string().max(64),
  role: roleSchema,
})
export type User = z.infer<typeof userSchema>

/**
 * Bounds that keep every amount inside the Decimal(18, 9) columns and far
 * above any real price or budget; beyond them the admin API answers 400.
 */
const MAX_PRICE_PER_M_USD = 100_000
const MAX_BUDGET_CAP_USD = 100_000_000
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

export const budgetScope = z.enum(['key', 'user', 'team'])
export const budgetPeriod = z.enum(['day', 'week', 'month'])
export const budgetSchema = z.object({
  budgetId: storedId,
  scope: budgetScope,
  scopeId: storedId,
  period: budgetPeriod,
  capUsd: z.number().positive().max(MAX_BUDGET_CAP_USD, `at most ${MAX_BUDGET_CAP_USD} USD`),
  timezone: z.string().default('UTC'),
  thresholds: z.array(z.number().int().min(1).max(100)).default([50, 80, 100]),
})
export type Budget = z.infer<typeof budgetSchema>

// --- Bodies and path parameters ---------------------------------------------

export const teamBody = z.strictObject({
  teamId: newIdSchema.optional().describe('generated when omitted; an existing id renames that team'),
  name: z.string().trim().min(1).max(200),
})
export type TeamBody = z.input<typeof teamBody>
export const userBody = z.strictObject({
  userId: newIdSchema.optional().describe('generated when omitted'),
  email: z.email().max(320),
  name: z.string().trim().min(1).max(200),
  teamId: newIdSchema,
  role: roleSchema.default('member'),
})
export type UserBody = z.input<typeof userBody>
export const keyBody = z.strictObject({
  userId: newIdSchema,
  name: z.string().trim().min(1).max(200),
  allowedModels: z
    .array(
      z
        .string()
        .min(1)
        .max(128)
        .regex(/^[A-Za-z0-9._:/*-]+$/, 'use model names or patterns of letters, digits, . _ : / - and *'),
    )
    .max(200)
    .optional()
    .describe(
      'Model names or patterns with `*` (`claude-*`, `gpt-4o*`), matched on the name clients send; empty: any',
    ),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
})
export type KeyBody = z.input<typeof keyBody>
/** What may change on a live key without issuing a new one; an empty list allows every model. */
export const keyChangeBody = z.strictObject({ allowedModels: keyBody.shape.allowedModels.unwrap() })
export type KeyChangeBody = z.input<typeof keyChangeBody>
const MAX_GRACE_SECONDS = 30 * 24 * 3600
export const rotateBody = z.strictObject({
  graceSeconds: z
    .number()
    .int()
    .min(0)
    .max(MAX_GRACE_SECONDS)
    .default(3600)
    .describe('how long the old key keeps working'),
})
export const signinTokenBody = z.strictObject({ userId: newIdSchema })

/**
 * A facade either prices its model (inputPerM and outputPerM) or only aliases
 * it (`priceFromCatalogue: true`, prices omitted): then the upstream model is
 * priced from the catalogue like a model without a facade. `providers` are
 * the upstreams this server has configured (built-in and UPSTREAMS).
 */
export const modelFacadeBody = (providers: readonly string[]) =>
  modelFacadeSchema
    .omit({ model: true })
    .extend({
      provider: providerSchema.refine((p) => providers.includes(p), {
        message: `not configured; use one of ${providers.join(', ')} (named upstreams come from UPSTREAMS)`,
      }),
      inputPerM: price.optional(),
      outputPerM: price.optional(),
    })
    .strict()
    .refine((b) => b.priceFromCatalogue || (b.inputPerM !== undefined && b.outputPerM !== undefined), {
      message:
        'give inputPerM and outputPerM, or priceFromCatalogue: true to price the upstream model from the catalogue',
    })
export type ModelFacadeBody = z.input<ReturnType<typeof modelFacadeBody>>

export const budgetBody = z.strictObject({
  budgetId: newIdSchema.optional().describe('generated when omitted; an existing id replaces that budget'),
  scope: budgetScope,
  scopeId: newIdSchema,
  period: budgetPeriod,
  capUsd: budgetSchema.shape.capUsd,
  timezone: z
    .string()
    .max(64)
    .refine(isTimeZone, 'use an IANA time zone such as UTC or Europe/Berlin')
    .default('UTC'),
  thresholds: z
    .array(z.number().int().min(1).max(100))
    .max(10)
    .default([50, 80, 100])
    .transform((t) => [...new Set(t)].sort((a, b) => a - b))
    .describe('percentages of the cap that raise an alert'),
})
export type BudgetBody = z.input<typeof budgetBody>

export const modelParams = z.strictObject({ model: modelFacadeSchema.shape.model })
export const budgetIdParams = z.strictObject({ budgetId: lookupId('a budget id') })
export const sessionIdParams = z.strictObject({ sessionId: lookupId('a session id') })

// --- Answers ------------------------------------------------------------------

/** A key as the API shows it: never the hash, only the prefix. */
export const keyView = z.object({
  keyId: z.string(),
  name: z.string(),
  prefix: z.string().describe('the first characters of the key, to recognise it'),
  userId: z.string(),
  teamId: z.string(),
  allowedModels: z.array(z.string()),
  createdAt: iso,
  expiresAt: iso.nullable(),
  revokedAt: iso.nullable(),
  status: keyStatus,
})
export type KeyView = z.infer<typeof keyView>

/** A session as the admin list shows it; `status` is the rule every request is checked with. */
export const sessionView = z.object({
  sessionId: z.string(),
  userId: z.string().describe('empty for a session made with ADMIN_TOKEN'),
  who: z.string(),
  teamId: z.string(),
  role: roleSchema,
  source: z.enum(['admin-token', 'key', 'signin']),
  sourceId: z.string().describe('the key or sign-in token id (empty for ADMIN_TOKEN)'),
  createdAt: iso,
  expiresAt: iso,
  endedAt: iso.nullable(),
  status: z.enum(['active', 'ended']),
  endReason: z.string(),
})
export type SessionView = z.infer<typeof sessionView>

/** A budget with this period's spend, when the enforcer can tell (else the spend fields are null). */
export const budgetView = budgetSchema.extend({
  timezone: z.string(),
  thresholds: z.array(z.number()),
  spentUsd: z.number().nullable(),
  reservedUsd: z.number().nullable().describe('held by requests in flight'),
  percentUsed: z.number().nullable(),
  periodStart: iso.nullable(),
  resetsAt: iso.nullable(),
})
export type BudgetView = z.infer<typeof budgetView>

export const teamsResponse = z.object({ teams: z.array(teamSchema) })
export type TeamsResponse = z.infer<typeof teamsResponse>
export const teamResponse = z.object({ team: teamSchema })
export const usersResponse = z.object({ users: z.array(userSchema) })
export type UsersResponse = z.infer<typeof usersResponse>
export const userResponse = z.object({ user: userSchema })
export const keysResponse = z.object({ keys: z.array(keyView) })
export type KeysResponse = z.infer<typeof keysResponse>
export const keyResponse = z.object({ key: keyView })
export const keyCreatedResponse = z.object({
  key: keyView,
  plaintext: z.string().describe('the key itself: shown here once, stored only as a hash'),
})
export type KeyCreated = z.infer<typeof keyCreatedResponse>
export const keyRotatedResponse = keyCreatedResponse.extend({
  old: keyView.describe('the rotated key, working until its expiresAt'),
})
export const modelFacadeView = modelFacadeSchema.extend({
  cachedReadPerM: z.number(),
  cacheWritePerM: z.number(),
})
export const modelsResponse = z.object({ models: z.array(modelFacadeView) })
export type ModelsResponse = z.infer<typeof modelsResponse>
export const modelResponse = z.object({ model: modelFacadeView })
export const signinTokenResponse = z.object({
  token: z.string().describe('one-time web sign-in token'),
  tokenId: z.string(),
  expiresAt: iso,
})
export type SigninToken = z.infer<typeof signinTokenResponse>
export const sessionsResponse = z.object({ sessions: z.array(sessionView) })
export type SessionsResponse = z.infer<typeof sessionsResponse>
export const sessionResponse = z.object({ session: sessionView })
export const budgetsResponse = z.object({ budgets: z.array(budgetView) })
export type BudgetsResponse = z.infer<typeof budgetsResponse>
export const budgetResponse = z.object({ budget: budgetView })
