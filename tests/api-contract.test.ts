import { kpisResponse, seriesQuery } from '@tokenmeter/contract'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAlertStore } from '../services/src/alerts/alert-store.ts'
import { apiRoutes } from '../services/src/api/api.routes.ts'
import { responses, useRouteSchemas } from '../services/src/api/route-schemas.ts'
import { createErrorHandler } from '../services/src/error-handler.ts'
import { insertHistory, type Org, seedOrg } from './api-fixtures.ts'
import { makeUsageRow } from './helpers/clickhouse-http-checks.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * The /api routes declare their zod schemas as route schemas: requests are
 * validated with them, answers are checked against them, and the OpenAPI
 * document is generated from them. This file proves each of the three.
 */
let stack: TestStack
let org: Org
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
/** Ids that exist, for the path parameters of the documented GETs (`{batchId}` -> a spilled batch). */
const ids: Record<string, string> = {}

beforeAll(async () => {
  // No worker role: a spilled batch waits in the spool, so its route has something to show.
  stack = await startTestStack({ env: { ROLES: 'gateway,api' } })
  org = await seedOrg(stack.core)
  await insertHistory(stack.core, org, 200, 7, 3, Date.now())
  // Something in every list the admin, budget, alert and ops routes answer with.
  const { core } = stack
  const key = org.keys[0]!
  const budget = await core.store.upsertBudget({
    budgetId: 'b_contract',
    scope: 'key',
    scopeId: key.keyId,
    period: 'month',
    capUsd: 50,
    timezone: 'Europe/Berlin',
    thresholds: [50, 100],
  })
  await core.store.upsertModel({
    model: 'contract-model',
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    inputPerM: 0.15,
    outputPerM: 0.6,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
  const session = await stack.app.inject({
    method: 'POST',
    url: '/api/session',
    payload: { token: TEST_ADMIN_TOKEN },
  })
  expect(session.statusCode).toBe(200)
  await createAlertStore(core.warehouse).insertIfNew({
    kind: 'threshold',
    subjectType: 'budget',
    subjectId: budget.budgetId,
    windowStart: new Date(Date.now() - 3_600_000).toISOString(),
    level: 50,
    severity: 'warning',
    message: 'Half of the budget is spent',
    valueUsd: 25,
    baselineUsd: 50,
    details: { percent: 50, note: null },
  })
  const batch = { batchId: 'contract-batch', createdAt: Date.now(), rows: [makeUsageRow(1), makeUsageRow(2)] }
  await core.outage.spool.spill(batch, 'test')
  await core.outage.spool.seal()
  ids.batchId = batch.batchId
  await core.outage.quarantine.put({
    id: 'contract-quarantine',
    kind: 'rows',
    batchId: 'contract-batch-0',
    reason: 'test: a row ClickHouse refused',
    rowCount: 1,
    rows: [{ reason: 'test', row: makeUsageRow(3) }],
  })
  ids.id = 'contract-quarantine'
})
afterAll(async () => stack?.close())

/** Every route the API plugin registers (method and URL), as Fastify sees them. */
async function registeredRoutes(): Promise<{ method: string; url: string }[]> {
  const app = Fastify({ logger: false })
  const seen: { method: string; url: string }[] = []
  app.addHook('onRoute', (r: RouteOptions) => {
    for (const method of [r.method].flat()) seen.push({ method, url: r.url })
  })
  await app.register(apiRoutes, { core: stack.core, prefix: '/api' })
  await app.close()
  return seen
}

/** A bare app with the product's schema setup and error handler, for routes the product would never ship. */
async function appWith(route: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.setErrorHandler(createErrorHandler({ maxBodyBytes: 1024 }))
  await useRouteSchemas(app)
  route(app)
  await app.ready()
  return app
}

type Operation = { responses: Record<string, unknown>; parameters?: { name: string; in: string }[] }

describe('route schemas', () => {
  it('the OpenAPI document covers every /api route, each with its answer', async () => {
    const doc = (await stack.app.inject({ url: '/api/openapi.json' })).json()
    const routes = (await registeredRoutes()).filter(
      // HEAD comes with every GET; the document itself is not part of the API it documents.
      (r) => r.method !== 'HEAD' && r.url !== '/api/openapi.json',
    )
    expect(routes.length).toBeGreaterThanOrEqual(35)
    const missing: string[] = []
    for (const { method, url } of routes) {
      const path = url.replace(/:([A-Za-z]+)/g, '{$1}')
      const op = doc.paths[path]?.[method.toLowerCase()] as Operation | undefined
      if (!op) missing.push(`${method} ${url}`)
      else
        expect(
          Object.keys(op.responses).some((s) => s.startsWith('2') || s === '101'),
          `${method} ${url} declares its answer`,
        ).toBe(true)
    }
    expect(missing, 'routes left out of /api/openapi.json (give them a schema with tags)').toEqual([])
    const tags = new Set(
      Object.values<Record<string, { tags?: string[] }>>(doc.paths).flatMap((ops) =>
        Object.values(ops).flatMap((op) => op.tags ?? []),
      ),
    )
    expect([...tags].sort()).toEqual([
      'admin',
      'alerts',
      'budgets',
      'live',
      'ops',
      'self-service',
      'session',
      'usage',
    ])
  })

  it('every documented GET answers what its schema declares (the serializer checks each answer)', async () => {
    const doc = (await stack.app.inject({ url: '/api/openapi.json' })).json()
    const gets = Object.entries<Record<string, Operation>>(doc.paths).filter(
      ([path, ops]) => ops.get && path !== '/api/live',
    )
    expect(gets.length).toBeGreaterThanOrEqual(20)
    for (const [path, ops] of gets) {
      const params = ops.get!.parameters ?? []
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
        expect(ids[name], `an existing ${name} for ${path}`).toBeDefined()
        return ids[name]!
      })
      const qs = params.some((p) => p.name === 'range') ? '?range=30d' : ''
      const res = await stack.app.inject({ url: `${url}${qs}`, headers: admin })
      expect(res.statusCode, `${path}: ${res.body.slice(0, 300)}`).toBe(200)
    }
  })

  it('an admin route whose answer drifts from its schema is a 500, not a different answer', async () => {
    const { store } = stack.core
    const teams = store.teams
    // As a store that renamed a field would answer.
    store.teams = () => [{ teamId: 'team_x', title: 'Renamed' }] as never
    try {
      const res = await stack.app.inject({ url: '/api/admin/teams', headers: admin })
      expect(res.statusCode).toBe(500)
      expect(res.json().error.code).toBe('internal')
    } finally {
      store.teams = teams
    }
    expect((await stack.app.inject({ url: '/api/admin/teams', headers: admin })).statusCode).toBe(200)
  })

  it('an answer that does not match its declared schema is a 500, not a different answer', async () => {
    const app = await appWith((app) =>
      app
        .withTypeProvider<ZodTypeProvider>()
        // A renamed field, as a drifted query function would return it.
        .get(
          '/drifted',
          { schema: { response: responses(kpisResponse) } },
          async () => ({ requestCount: 1 }) as never,
        ),
    )
    const res = await app.inject({ url: '/drifted' })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toEqual({
      error: { code: 'internal', message: 'Internal error; see the server log for the request id.' },
    })
    await app.close()
  })

  it('a request the schema refuses is the house 400 naming the parameter', async () => {
    const app = await appWith((app) =>
      app
        .withTypeProvider<ZodTypeProvider>()
        .get('/s', { schema: { querystring: seriesQuery } }, async (r) => ({
          split: r.query.split,
          keys: r.query.keys ?? [],
        })),
    )
    const unknown = await app.inject({ url: '/s?colour=red' })
    expect(unknown.statusCode).toBe(400)
    expect(unknown.json().error).toMatchObject({
      code: 'unknown_parameter',
      details: { parameters: ['colour'] },
    })
    expect(unknown.json().error.message).toContain('"colour"')
    const invalid = await app.inject({ url: '/s?splitLimit=0' })
    expect(invalid.statusCode).toBe(400)
    expect(invalid.json().error).toMatchObject({
      code: 'invalid_parameter',
      details: { parameter: 'splitLimit' },
    })
    // Repeated parameters mean the same as a comma-separated list.
    const repeated = await app.inject({ url: '/s?keys=a&keys=b,c&split=model' })
    expect(repeated.json()).toEqual({ split: 'model', keys: ['a', 'b', 'c'] })
    await app.close()
  })

  it('the usage API refuses bad input with 400 and strangers with 401, in that order of concern', async () => {
    const stranger = await stack.app.inject({ url: '/api/kpis?colour=red' })
    expect(stranger.statusCode).toBe(401)
    const bad = await stack.app.inject({ url: '/api/kpis?colour=red', headers: admin })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().error.code).toBe('unknown_parameter')
    const body = await stack.app.inject({ method: 'POST', url: '/api/session', payload: { tokn: 'x' } })
    expect(body.statusCode).toBe(400)
    expect(body.json().error.code).toBe('invalid_body')
    expect(body.json().error.message).toMatch(/token/)
  })
})
