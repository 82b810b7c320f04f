import { Readable } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import type { Core } from '../core/core.ts'
import { localParts } from '../core/time-zone.ts'
import { requireRole } from './auth.plugin.ts'
import {
  assertInScope,
  type ParsedFilter,
  parseQuery,
  resolveFilter,
  type Scope,
  scopeFor,
  scopeKey,
  type UsageFilter,
} from './filters.ts'
import { createInflight } from './inflight.ts'
import { buildOpenApi } from './openapi.ts'
import { queryBreakdown } from './queries/breakdown.ts'
import { exportCostCsv } from './queries/cost-export.ts'
import { queryFilterOptions } from './queries/filter-options.ts'
import { queryKeySpend } from './queries/key-spend.ts'
import { queryKpis } from './queries/kpis.ts'
import { queryLeaderboard } from './queries/leaderboard.ts'
import { queryMonthlyUsage } from './queries/monthly-usage.ts'
import { queryRequestLog } from './queries/request-log.ts'
import { querySeries } from './queries/series.ts'
import {
  breakdownQuery,
  exportQuery,
  filterOptionsQuery,
  keySpendQuery,
  kpisQuery,
  leaderboardQuery,
  monthlyUsageQuery,
  requestLogQuery,
  seriesQuery,
} from './schemas.ts'
import { answerStorageOutages } from './storage-unavailable.ts'

/**
 * The usage API. Every handler: authenticate, parse the one filter schema
 * (400 naming the parameter), derive the scope from the principal, refuse
 * out-of-scope ids (403), then run one query function with scope applied.
 */
export const usageRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const wh = core.warehouse
  const store = core.store
  const signedIn = { preHandler: requireRole() }
  answerStorageOutages(app, core)
  // Viewers of the same filter (same scope, same parameters) share a query that is already running.
  const inflight = createInflight()
  const shareKey = (route: string, q: unknown, scope: Scope) =>
    `${route}|${scopeKey(scope)}|${JSON.stringify(q)}`

  function context<S extends z.ZodType>(
    request: FastifyRequest,
    schema: S,
    defaultPreset: '7d' | '30d' = '7d',
  ): { q: z.output<S>; f: UsageFilter; scope: Scope } {
    const q = parseQuery(schema, request.query)
    const f = resolveFilter(q as ParsedFilter, Date.now(), defaultPreset)
    const scope = scopeFor(request.principal!, store)
    assertInScope(scope, f.lists, store)
    return { q, f, scope }
  }

  const openapi = buildOpenApi()
  app.get('/openapi.json', async () => openapi)

  app.get('/filters', signedIn, async (request) => {
    parseQuery(filterOptionsQuery, request.query)
    return queryFilterOptions(wh, store, scopeFor(request.principal!, store))
  })

  app.get('/kpis', signedIn, async (request) => {
    const { q, f, scope } = context(request, kpisQuery)
    return inflight.share(shareKey('kpis', q, scope), () => queryKpis(wh, f, scope))
  })

  app.get('/series', signedIn, async (request) => {
    const { q, f, scope } = context(request, seriesQuery)
    return inflight.share(shareKey('series', q, scope), () =>
      querySeries(wh, store, f, scope, q.split, q.splitLimit),
    )
  })

  app.get('/breakdown', signedIn, async (request) => {
    const { q, f, scope } = context(request, breakdownQuery)
    return inflight.share(shareKey('breakdown', q, scope), () => queryBreakdown(wh, store, f, scope, q))
  })

  app.get('/leaderboard', signedIn, async (request) => {
    const { q, f, scope } = context(request, leaderboardQuery)
    return queryLeaderboard(wh, store, f, scope, q.by, q.metric, q.limit)
  })

  app.get('/keys/spend', signedIn, async (request) => {
    const { f, scope } = context(request, keySpendQuery)
    return queryKeySpend(wh, store, f, scope)
  })

  app.get('/requests', signedIn, async (request) => {
    const { q, f, scope } = context(request, requestLogQuery)
    return queryRequestLog(wh, f, scope, q.limit, q.cursor)
  })

  app.get('/usage', signedIn, async (request) => {
    const raw = parseQuery(monthlyUsageQuery, request.query)
    const now = localParts(raw.tz, Date.now())
    const month = raw.month ?? `${now.y}-${String(now.m).padStart(2, '0')}`
    const f = resolveFilter({ ...raw, month } as ParsedFilter)
    const scope = scopeFor(request.principal!, store)
    assertInScope(scope, f.lists, store)
    return queryMonthlyUsage(wh, store, f, scope, month)
  })

  app.get('/export.csv', signedIn, async (request, reply) => {
    const { q, f, scope } = context(request, exportQuery, '30d')
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
      .send(body)
  })
}
