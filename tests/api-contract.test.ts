import { kpisResponse, seriesQuery } from '@tokenmeter/contract'
import Fastify, { type FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { responses, useRouteSchemas } from '../services/src/api/route-schemas.ts'
import { createErrorHandler } from '../services/src/error-handler.ts'
import { insertHistory, seedOrg } from './api-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * The /api routes declare their zod schemas as route schemas: requests are
 * validated with them, answers are checked against them, and the OpenAPI
 * document is generated from them. This file proves each of the three.
 */
let stack: TestStack
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

beforeAll(async () => {
  stack = await startTestStack()
  const org = await seedOrg(stack.core)
  await insertHistory(stack.core, org, 200, 7, 3, Date.now())
})
afterAll(async () => stack?.close())

/** A bare app with the product's schema setup and error handler, for routes the product would never ship. */
async function appWith(route: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.setErrorHandler(createErrorHandler({ maxBodyBytes: 1024 }))
  await useRouteSchemas(app)
  route(app)
  await app.ready()
  return app
}

describe('route schemas', () => {
  it('every documented GET answers what its schema declares (the serializer checks each answer)', async () => {
    const doc = (await stack.app.inject({ url: '/api/openapi.json' })).json()
    const gets = Object.entries<Record<string, { responses: Record<string, unknown> }>>(doc.paths).filter(
      ([path, ops]) => ops.get && path !== '/api/live',
    )
    expect(gets.length).toBeGreaterThanOrEqual(10)
    for (const [path, ops] of gets) {
      expect(ops.get!.responses['200'], `${path} declares its answer`).toBeDefined()
      const params = (ops.get as { parameters?: { name: string }[] }).parameters ?? []
      const qs = params.some((p) => p.name === 'range') ? '?range=30d' : ''
      const res = await stack.app.inject({ url: `${path}${qs}`, headers: admin })
      expect(res.statusCode, `${path}: ${res.body.slice(0, 300)}`).toBe(200)
    }
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
