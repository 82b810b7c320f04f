import { Readable } from 'node:stream'
import {
  breakdownQuery,
  breakdownResponse,
  exportQuery,
  filterOptionsQuery,
  filterOptionsResponse,
  keySpendQuery,
  keySpendResponse,
  kpisQuery,
  kpisResponse,
  leaderboardQuery,
  leaderboardResponse,
  monthlyUsageQuery,
  monthlyUsageResponse,
  requestLogQuery,
  requestLogResponse,
  seriesQuery,
  seriesResponse,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { localParts } from '../core/time/time-zone.ts'
import { readSettings } from './admin-settings.ts'
import { requireRole } from './auth.plugin.ts'
import {
  assertInScope,
  outOfScope,
  type ParsedFilter,
  resolveFilter,
  type Scope,
  scopeFor,
  scopeKey,
  type UsageFilter,
} from './filters.ts'
import { createInflight } from './inflight.ts'
import { leaderboardRanking } from './leaderboard-access.ts'
import { queryBreakdown } from './queries/breakdown.ts'
import { exportCostCsv } from './queries/cost-export.ts'
import { queryFilterOptions } from './queries/filter-options.ts'
import { queryKeySpend } from './queries/key-spend.ts'
import { queryKpis } from './queries/kpis.ts'
import { queryLeaderboard } from './queries/leaderboard.ts'
import { queryMonthlyUsage } from './queries/monthly-usage.ts'
import { queryRequestLog } from './queries/request-log.ts'
import { querySeries } from './queries/series.ts'
import { responses } from './route-schemas.ts'
import { answerStorageOutages } from './storage-unavailable.ts'

/**
 * The usage API. Every handler: authenticate, parse the one filter schema
 * (400 naming the parameter), derive the scope from the principal, refuse
 * out-of-scope ids (403), then run one query function with scope applied.
 */
export const usageRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const wh = core.warehouse
  const store = core.store
  // Before validation: a caller who is not signed in hears 401, not which parameter was wrong.
  const signedIn = { preValidation: requireRole() }
  answerStorageOutages(app, core)
  // Viewers of the same filter (same scope, same parameters) share one answer while the data
  // it read is unchanged, for USAGE_ANSWER_KEEP_MS (a second: the live page's own refresh limit).
  const inflight = createInflight({
    keepMs: core.env.USAGE_ANSWER_KEEP_MS,
    dataVersion: () => `${wh.writesFinished()}.${core.rowFeed.batchesFromOthers()}`,
  })
  const shareKey = (route: string, q: unknown, scope: Scope) =>
    `${route}|${scopeKey(scope)}|${JSON.stringify(q)}`
  const doc = (summary: string) => ({ tags: ['usage'], summary })

  function context(
    request: FastifyRequest,
    q: ParsedFilter,
    defaultPreset: '7d' | '30d' = '7d',
  ): { f: UsageFilter; scope: Scope } {
    const f = resolveFilter(q, Date.now(), defaultPreset)
    const scope = scopeFor(request.principal!, store)
    assertInScope(scope, f.lists, store)
    return { f, scope }
  }

  app.get('/openapi.json', { schema: { hide: true } }, async () => plain.swagger())

  app.get(
    '/filters',
    {
      ...signedIn,
      schema: {
        ...doc('Options for the filter pickers, scoped to the caller'),
        querystring: filterOptionsQuery,
        response: responses(filterOptionsResponse),
      },
    },
    async (request) => queryFilterOptions(wh, store, scopeFor(request.principal!, store)),
  )

  app.get(
    '/kpis',
    {
      ...signedIn,
      schema: {
        ...doc('Headline numbers for a filter'),
        querystring: kpisQuery,
        response: responses(kpisResponse),
      },
    },
    async (request) => {
      const q = request.query
      const { f, scope } = context(request, q)
      return inflight.share(shareKey('kpis', q, scope), () => queryKpis(wh, f, scope))
    },
  )

  app.get(
    '/series',
    {
      ...signedIn,
      schema: {
        ...doc('Time series, optionally split for stacked charts'),
        querystring: seriesQuery,
        response: responses(seriesResponse),
      },
    },
    async (request) => {
      const q = request.query
      const { f, scope } = context(request, q)
      return inflight.share(shareKey('series', q, scope), () =>
        querySeries(wh, store, f, scope, q.split, q.splitLimit),
      )
    },
  )

  app.get(
    '/breakdown',
    {
      ...signedIn,
      schema: {
        ...doc('Per-group table with trend, sortable, searchable, paged'),
        querystring: breakdownQuery,
        response: responses(breakdownResponse),
      },
    },
    async (request) => {
      const q = request.query
      const { f, scope } = context(request, q)
      return inflight.share(shareKey('breakdown', q, scope), () => queryBreakdown(wh, store, f, scope, q))
    },
  )

  app.get(
    '/leaderboard',
    {
      ...signedIn,
      schema: {
        ...doc(
          'Top users, teams or keys: users and teams network-wide unless an admin restricted it (ranked says whose); keys within your scope',
        ),
        querystring: leaderboardQuery,
        response: responses(leaderboardResponse),
      },
    },
    async (request) => {
      const q = request.query
      const { f, scope } = context(request, q)
      const { leaderboardVisibility } = readSettings(store)
      const ranking = leaderboardRanking(request.principal!, scope, q.by, leaderboardVisibility)
      const board = await queryLeaderboard(wh, store, f, ranking.scope, q.by, q.metric, q.limit)
      const list = ({ user: 'users', team: 'teams', key: 'keys' } as const)[q.by]
      return {
        ...board,
        ranked: ranking.ranked,
        // A row links to its detail page only where that page would answer the caller.
        rows: board.rows.map((r) => ({ ...r, canOpen: !outOfScope(scope, { [list]: [r.id] }, store) })),
      }
    },
  )

  app.get(
    '/keys/spend',
    {
      ...signedIn,
      schema: {
        ...doc('Per-key spend and spend against the key cap'),
        querystring: keySpendQuery,
        response: responses(keySpendResponse),
      },
    },
    async (request) => {
      const { f, scope } = context(request, request.query)
      return queryKeySpend(wh, store, f, scope)
    },
  )

  app.get(
    '/requests',
    {
      ...signedIn,
      schema: {
        ...doc('Request log (newest first, cursor-paged)'),
        querystring: requestLogQuery,
        response: responses(requestLogResponse),
      },
    },
    async (request) => {
      const q = request.query
      const { f, scope } = context(request, q)
      return queryRequestLog(wh, f, scope, q.limit, q.cursor)
    },
  )

  app.get(
    '/usage',
    {
      ...signedIn,
      schema: {
        ...doc('Monthly shape with continuous *Cents'),
        querystring: monthlyUsageQuery,
        response: responses(monthlyUsageResponse),
      },
    },
    async (request) => {
      const raw = request.query
      const now = localParts(raw.tz, Date.now())
      const month = raw.month ?? `${now.y}-${String(now.m).padStart(2, '0')}`
      const f = resolveFilter({ ...raw, month })
      const scope = scopeFor(request.principal!, store)
      assertInScope(scope, f.lists, store)
      return queryMonthlyUsage(wh, store, f, scope, month)
    },
  )

  app.get(
    '/export.csv',
    {
      ...signedIn,
      schema: {
        ...doc(
          'Cost table as CSV (one row per group and day; header day,group_id,group_name,requests,input_tokens,output_tokens,cached_tokens,cost_usd,cache_write_tokens,reasoning_tokens,unpriced_requests; default range 30d)',
        ),
        querystring: exportQuery,
        response: {
          ...responses(z.string()),
          200: { description: 'CSV', content: { 'text/csv': { schema: z.string() } } },
        },
      },
    },
    async (request, reply) => {
      const q = request.query
      const { f, scope } = context(request, q, '30d')
      const lines = exportCostCsv(wh, store, f, scope, q.by, q.rows, q.bom === '1')
      // Pull the header (which starts the ClickHouse query) before committing to a 200,
      // so a failing query is still a proper error response.
      const first = await lines.next()
      const body = Readable.from(
        (async function* () {
          if (!first.done) yield first.value
          yield* lines
        })(),
      )
      const day = (ms: number) => new Date(ms).toISOString().slice(0, 10)
      const span = `${day(f.range.fromMs)}-to-${day(f.range.toMs - 1)}`
      return reply
        .type('text/csv; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="tokenmeter-cost-by-${q.by}${q.rows === 'day' ? '-per-day' : ''}-${span}.csv"`,
        )
        .header('cache-control', 'no-store')
        .send(body as unknown as string)
    },
  )
}
