import { z } from 'zod'
import { roleSchema } from './admin-api.schema.ts'
import { filterFields, filterSchema } from './filter.schema.ts'

/**
 * Parameters and answers of the usage API. Routes parse with these, query
 * functions return their inferred types, and /api/openapi.json is generated
 * from them, so the three cannot drift apart.
 */
const int = (d: string) => z.coerce.number().int().describe(d)

export const kpisQuery = filterSchema
export const seriesQuery = filterSchema
  .extend({
    split: z
      .enum(['none', 'model', 'team', 'key', 'tag', 'user', 'provider', 'project', 'app'])
      .default('none'),
    splitLimit: int('Most series returned; the rest are summed into "other".').min(1).max(50).default(10),
  })
  .strict()
export const breakdownQuery = filterSchema
  .extend({
    by: z.enum(['user', 'team', 'key', 'model', 'provider', 'project', 'app', 'tag']).default('user'),
    sort: z.enum(['requests', 'input', 'output', 'cached', 'tokens', 'cost', 'name']).default('cost'),
    order: z.enum(['asc', 'desc']).default('desc'),
    search: z.string().max(200).default('').describe('Case-insensitive substring of id, name or email.'),
    limit: int('Page size').min(1).max(500).default(50),
    offset: int('Rows to skip').min(0).max(1_000_000).default(0),
  })
  .strict()
export const leaderboardQuery = filterSchema
  .extend({
    by: z.enum(['user', 'team', 'key']).default('user'),
    metric: z.enum(['tokens', 'spend', 'requests']).default('tokens'),
    limit: int('Rows').min(1).max(100).default(20),
  })
  .strict()
export const keySpendQuery = filterSchema
export const requestLogQuery = filterSchema
  .extend({
    limit: int('Page size').min(1).max(1_000).default(100),
    cursor: z
      .string()
      .max(200)
      .regex(/^[A-Za-z0-9_-]*$/, 'use the nextCursor of the previous page')
      .optional(),
  })
  .strict()
export const monthlyUsageQuery = filterSchema
  .omit({ range: true, from: true, to: true, granularity: true })
  .strict()
export const exportQuery = filterSchema
  .extend({
    by: z.enum(['user', 'team', 'key', 'model', 'tag']).default('key'),
    rows: z
      .enum(['group', 'day'])
      .default('group')
      .describe('group: one row per group (the 30-day cost table); day: one row per group and local day'),
    bom: z
      .enum(['0', '1'])
      .default('0')
      .describe('1 starts the file with a UTF-8 byte order mark, so Excel reads non-ASCII names right'),
  })
  .strict()
export const filterOptionsQuery = z.object({}).strict()
export const sessionBody = z
  .object({ token: z.string().min(1).max(512).describe('A virtual key, a sign-in token or ADMIN_TOKEN.') })
  .strict()

const iso = z.string().describe('ISO 8601 UTC')

/** The one error envelope of every /api route. */
export const errorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
})
export type ErrorResponse = z.infer<typeof errorResponse>
const totals = {
  requests: z.number(),
  errors: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  cachedTokens: z.number(),
  cacheWriteTokens: z.number(),
  reasoningTokens: z
    .number()
    .describe('reasoning / thinking tokens: a part of outputTokens, billed as output, not added again'),
  unpricedRequests: z
    .number()
    .describe('requests recorded at cost 0 because no facade or catalogue price was known (price_unknown)'),
  spendUsd: z.number(),
  activeUsers: z.number(),
}
export const sourceEnum = z.enum(['usage_1d', 'usage_1h', 'usage_5m', 'requests'])
export const granularityEnum = z.enum(['5m', '1h', '1d'])

export const kpisResponse = z.object({
  ...totals,
  errorRate: z.number(),
  totalTokens: z.number(),
  avgRequestsPerUser: z.number(),
  latencyP50Ms: z.number().nullable(),
  latencyP95Ms: z.number().nullable(),
  from: iso,
  to: iso,
  tz: z.string(),
  granularity: granularityEnum,
  source: sourceEnum,
})
export type Kpis = z.infer<typeof kpisResponse>

export const pointSchema = z.object(totals)
export type Point = z.infer<typeof pointSchema>
export const seriesResponse = z.object({
  granularity: granularityEnum,
  source: sourceEnum,
  buckets: z.array(iso),
  series: z.array(z.object({ id: z.string(), name: z.string(), points: z.array(pointSchema) })),
})
export type SeriesResult = z.infer<typeof seriesResponse>

export const breakdownRow = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string().optional(),
  teamId: z.string().optional(),
  teamName: z.string().optional(),
  ...totals,
  totalTokens: z.number(),
  models: z.array(z.string()),
  trend: z.array(z.number()).describe('requests per bucket'),
})
export type BreakdownRow = z.infer<typeof breakdownRow>
export const breakdownResponse = z.object({
  total: z.number(),
  granularity: granularityEnum,
  source: sourceEnum,
  buckets: z.array(iso),
  rows: z.array(breakdownRow),
})
export type BreakdownResult = z.infer<typeof breakdownResponse>

export const leaderboardResponse = z.object({
  metric: z.enum(['tokens', 'spend', 'requests']),
  ranked: z
    .enum(['network', 'team', 'own'])
    .describe(
      "whose usage is ranked: the whole network, the caller's team, or only what the caller may see (keys)",
    ),
  rows: z.array(
    z.object({
      rank: z.number(),
      id: z.string(),
      name: z.string(),
      value: z.number(),
      canOpen: z.boolean().describe("the caller may open this row's detail page"),
    }),
  ),
})
export type LeaderboardResult = z.infer<typeof leaderboardResponse>

export const keySpendResponse = z.object({
  keys: z.array(
    z.object({
      keyId: z.string(),
      name: z.string(),
      prefix: z.string(),
      userId: z.string(),
      teamId: z.string(),
      revoked: z.boolean(),
      allowedModels: z
        .array(z.string())
        .describe('names or `*` patterns the key may call; empty: every model'),
      spentUsd: z.number().describe('spend in the requested range'),
      capUsd: z.number().nullable(),
      period: z.enum(['day', 'week', 'month']).nullable(),
      periodStart: iso.nullable(),
      periodSpentUsd: z.number().nullable().describe("spend in the cap's current period"),
      percentUsed: z.number().nullable().describe('periodSpentUsd / capUsd x 100'),
    }),
  ),
})
export type KeySpendResult = z.infer<typeof keySpendResponse>

export const requestLogRow = z.object({
  requestId: z.string(),
  startedAt: iso,
  keyId: z.string(),
  keyPrefix: z.string(),
  userId: z.string(),
  teamId: z.string(),
  model: z.string(),
  provider: z.string(),
  endpoint: z.string(),
  statusCode: z.number(),
  errorClass: z.string(),
  streamed: z.boolean(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  cachedTokens: z.number(),
  cacheWriteTokens: z.number(),
  reasoningTokens: z.number().describe('a part of outputTokens'),
  tokensEstimated: z.boolean(),
  priceUnknown: z.boolean().describe('no price was known for the model: spendUsd is 0 for lack of a price'),
  spendUsd: z.number(),
  latencyMs: z.number(),
  ttftMs: z.number(),
  tags: z.array(z.string()),
  project: z.string(),
  clientApp: z.string(),
})
export type RequestLogRow = z.infer<typeof requestLogRow>
export const requestLogResponse = z.object({
  rows: z.array(requestLogRow),
  nextCursor: z.string().nullable(),
})
export type RequestLogResult = z.infer<typeof requestLogResponse>

export const monthlyUsageResponse = z.object({
  month: z.string(),
  tz: z.string(),
  source: sourceEnum,
  totalCents: z.number().describe('continuous, not rounded'),
  requests: z.number(),
  daily: z.array(
    z.object({
      date: z.string(),
      totalCents: z.number(),
      requests: z.number(),
      models: z.array(z.object({ model: z.string(), costCents: z.number() })),
      keys: z.array(z.object({ keyId: z.string(), costCents: z.number() })),
    }),
  ),
  keys: z.array(
    z.object({
      keyId: z.string(),
      name: z.string(),
      prefix: z.string(),
      costCents: z.number(),
      requests: z.number(),
    }),
  ),
  models: z.array(
    z.object({
      model: z.string(),
      provider: z.string(),
      costCents: z.number(),
      requests: z.number(),
      inputTokens: z.number(),
      outputTokens: z.number(),
      reasoningTokens: z.number().describe('a part of outputTokens'),
      unpricedRequests: z.number().describe('requests recorded at cost 0 for lack of a price'),
    }),
  ),
})
export type MonthlyUsage = z.infer<typeof monthlyUsageResponse>

export const filterOptionsResponse = z.object({
  keys: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      prefix: z.string(),
      userId: z.string(),
      teamId: z.string(),
    }),
  ),
  teams: z.array(z.object({ id: z.string(), name: z.string() })),
  users: z.array(z.object({ id: z.string(), name: z.string(), email: z.string(), teamId: z.string() })),
  models: z.array(z.string()),
  providers: z.array(z.string()),
  projects: z.array(z.string()),
  apps: z.array(z.string()),
  tags: z.array(z.string()),
})
export type FilterOptions = z.infer<typeof filterOptionsResponse>

export const meResponse = z.object({
  role: roleSchema,
  userId: z.string(),
  teamId: z.string(),
  name: z.string(),
  email: z.string(),
  via: z.enum(['admin-token', 'api-key', 'session']),
})
export type Me = z.infer<typeof meResponse>

export const liveServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), at: iso, kpis: kpisResponse, series: seriesResponse }),
  z.object({ type: z.literal('error'), error: z.object({ code: z.string(), message: z.string() }) }),
])
export type LiveServerMessage = z.infer<typeof liveServerMessage>
export const liveClientMessage = z
  .object({
    type: z.literal('subscribe'),
    filters: z.record(z.string(), z.string()).describe('the same parameters as the query string'),
  })
  .strict()

export { filterFields }
